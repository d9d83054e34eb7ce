"""How a case reads in the Temporal UI: its summary (one line, fixed for the case) and its current details
(markdown, kept up to date by the workflow). Ids, tiers, statuses, amounts and times only: never the customer's
name or contact details, nor text anyone typed (the case's summary, notes, reasons, offer descriptions)."""

from __future__ import annotations

from datetime import datetime

from escalation.domain.formatting import duration, instant
from escalation.domain.models import (
    CallbackStatus,
    CaseState,
    EscalationInput,
    OfferStatus,
    Status,
)
from escalation.domain.policy import Policy
from escalation.domain.rules.case import describe_deadline, next_deadline
from escalation.domain.rules.sla import breach_flag, overdue_since


def static_summary(inp: EscalationInput) -> str:
    """'Case C-1001 · billing · high severity · came in by call': what the case is, on one line."""
    return f"Case {inp.case_id} · {inp.category} · {inp.severity.value} severity · came in by {inp.channel.value}"


def _code(text: str) -> str:
    """An id as markdown code: shown as it is (an underscore does not start emphasis)."""
    return f"`{text.replace('`', '')}`"


def _when(at: datetime, now: datetime) -> str:
    return instant(at) + (" (overdue)" if at <= now else "")


def deadline_summary(state: CaseState, deadline: datetime) -> str:
    """What the deadline `next_deadline` gave is, in a few words without free text (a wait's reason stays out):
    for the details, and for the summary of the timer that waits for it."""
    what = describe_deadline(state, deadline)
    waiting = state.waiting
    if waiting is not None and what == f"waiting on the customer ({waiting.reason})":
        return "the wait on the customer ends"
    return what


def current_details(state: CaseState, policy: Policy, now: datetime) -> str:
    """The case as it stands, in markdown: status, tier and owner id; the next deadline and what it is; an SLA
    target missed; the open offer; pending callbacks; the next follow-up check-in; a wait on the customer."""
    tier = state.tier.value if state.tier is not None else "no tier yet"
    if state.owner is not None:
        owner = f"owner {_code(state.owner.id)}"
    elif (pending := state.pending_assignment) is not None:
        owner = f"offered to {_code(pending.rep.id)} until {instant(pending.accept_by)}"
    else:
        owner = "no owner"
    status = state.status.value
    if state.status == Status.CLOSED and state.outcome is not None:
        status += f" ({state.outcome.value})"
    lines = [f"**{status}** at **{tier}**, {owner}"]
    if state.tier is None:
        lines.append(f"- opening: policy {_code(policy.name)} loading")
        return _markdown(lines)

    if (missed := overdue_since(state)) is not None:
        nobody = ", nobody owns the case" if breach_flag(state) == "unowned" else ""
        lines.append(f"- **SLA BREACHED**: target missed at {instant(missed)}{nobody}")
    if (deadline := next_deadline(state)) is not None:
        lines.append(f"- next: {deadline_summary(state, deadline)} at {_when(deadline, now)}")
    if state.sla_paused_remaining is not None:
        lines.append(f"- resolve clock paused with {duration(state.sla_paused_remaining)} of working time left")
    if (waiting := state.waiting) is not None:
        until = f" until {instant(waiting.until)}" if waiting.until is not None else ""
        lines.append(f"- waiting on the customer since {instant(waiting.started_at)}{until}")

    open_offers = [o for o in state.offers if o.status == OfferStatus.PROPOSED]
    if open_offers:
        o = open_offers[-1]
        lines.append(f"- offer {_code(o.id)}: {o.kind.value} {o.amount} {o.currency}, {o.status.value}")

    callbacks = sorted(
        (c for c in state.callbacks if c.status == CallbackStatus.SCHEDULED), key=lambda c: (c.due_at, c.id)
    )
    if callbacks:
        first = callbacks[0]
        lines.append(
            f"- callbacks pending: {len(callbacks)}, next {_code(first.id)} at {_when(first.due_at, now)}"
            f" by {_code(first.owner.id)}"
        )

    checkins = sorted(
        (c for c in state.checkins if c.sent_at is None and not c.cancelled and not c.expired),
        key=lambda c: c.due_at,
    )
    if state.status == Status.RESOLVED and checkins:
        c = checkins[0]
        lines.append(f"- next follow-up check-in: {c.number} at {_when(c.due_at, now)} by {c.channel.value}")
    if state.status == Status.RESOLVED and state.followup_ends_at is not None:
        lines.append(f"- follow-up ends {instant(state.followup_ends_at)}")
    if state.reopens:
        lines.append(f"- reopened {state.reopens} time(s)")
    return _markdown(lines)


def _markdown(lines: list[str]) -> str:
    """The headline, then the facts as a list (a blank line between, so markdown starts the list)."""
    return "\n\n".join(filter(None, [lines[0], "\n".join(lines[1:])]))
