"""What a case answers while it opens: between its start and the moment its policy has loaded (an activity on
a worker, usually well under a second) it has no tier, clocks or owner yet, but a caller asking at once is
told so in the state it has, status `opening`, rather than with an error (another SDK shows a query the
workflow fails as, say, `QueryNotRegisteredError`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from escalation.domain.models import Brief, CaseState, EscalationInput, Status


def opening_state(inp: EscalationInput, opening_id: str, started_at: datetime) -> CaseState:
    """The state of a case whose policy is loading: status `opening`; tier and policy version unknown yet."""
    return CaseState(
        case_id=inp.case_id,
        opening_id=opening_id,
        input=inp,
        policy_name=inp.policy,
        policy_version=None,
        status=Status.OPENING,
        tier=None,
        sentiment=inp.sentiment,
        opened_at=started_at,
    )


def opening_brief(state: CaseState, now: datetime) -> Brief:
    """The brief of an opening case: what the first agent wrote, and that the case is opening."""
    inp, c = state.input, state.input.customer
    open_for = max((now - state.opened_at).total_seconds(), 0.0)
    text = "\n".join(
        [
            f"Case {state.case_id} - {inp.severity.value} {inp.category}"
            + (" - THREAT" if inp.threat else "")
            + f" - opening (loading policy '{state.policy_name}'; tier and owner follow in a moment)",
            f"Customer: {c.name} ({c.id}), lifetime value {c.lifetime_value}, prefers {c.preferred_channel.value}, "
            f"time zone {c.time_zone}",
            f"Came in by {inp.channel.value}; sentiment now: {state.sentiment.value}",
            f"Problem: {inp.summary}",
            f"Wants: {inp.desired_outcome}",
        ]
    )
    return Brief(
        case_id=state.case_id,
        tier=None,
        owner=None,
        status=Status.OPENING,
        severity=inp.severity,
        threat=inp.threat,
        customer=c.name,
        customer_value=c.lifetime_value,
        customer_time_zone=c.time_zone,
        preferred_channel=c.preferred_channel,
        problem=inp.summary,
        wants=inp.desired_outcome,
        category=inp.category,
        sentiment=state.sentiment,
        tried=[],
        offers=[],
        granted_total=Decimal("0"),
        currency=None,
        notes=[],
        previous_owners=[],
        time_open_seconds=open_for,
        time_by_tier_seconds={},
        text=text,
    )
