"""`escalations events-sink`: being written."""
