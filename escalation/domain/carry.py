"""What one run of a long case hands to the next when it continues as new. Internal to the workflow:
it travels in `EscalationInput.carried`, which a run not started by continue-as-new refuses."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from escalation.domain.models import CaseState, Contract, EventBatch
from escalation.domain.rules.step import Assign, Send


class CarriedCase(Contract):
    state: CaseState
    policy: dict[str, Any]
    published: int  # number (seq) of the last timeline entry handed to the record activity
    # Side effects still in flight when the run ended; the next run starts them again (their keys
    # are stable, so a receiver that already got one drops the repeat).
    pending: list[Assign | Send | EventBatch] = Field(default_factory=list)
    # Update id -> compact answer of the case's most recent updates (workflows.once).
    answered: dict[str, dict[str, Any]] = Field(default_factory=dict)
