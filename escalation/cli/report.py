"""`escalations report`: being written."""
