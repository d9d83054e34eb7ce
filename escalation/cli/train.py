"""`escalations train`: being written."""
