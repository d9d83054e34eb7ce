"""The error every rule raises to refuse a command."""

from __future__ import annotations

from escalation.constants import ERR_INVALID_ARGUMENT


class RuleViolation(Exception):
    """A command the rules refuse. `field` names the offending input; the message says why and what to do."""

    def __init__(self, field: str, reason: str, *, type: str = ERR_INVALID_ARGUMENT) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.type = type
