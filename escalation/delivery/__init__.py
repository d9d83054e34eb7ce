"""Delivery settings, the inbound endpoint for customers' answers, signatures and redaction of receivers' text."""
