"""`escalations simulate`: being written."""
