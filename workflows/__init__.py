"""Temporal workflows of the escalation service."""

from workflows.escalation import Escalation

__all__ = ["Escalation"]
