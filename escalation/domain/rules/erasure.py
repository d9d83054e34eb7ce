"""Right to erasure: `forget` replaces the customer's name and contact details, and every text someone typed on
the case (its summary and desired outcome, notes, reasons, resolutions, offer descriptions, answers, callback
notes and numbers), with a tombstone. Ids, codes, tiers, amounts and times stay, so the case runs on: its clocks,
owner, offers and follow-ups are unchanged; messages to the customer find no address (their fallback applies)."""

from __future__ import annotations

from typing import Any

from escalation.domain.models import EscalationReason, ForgetInput
from escalation.domain.rules.step import Step, command

TOMBSTONE = "[forgotten]"
# Timeline entry details that hold free text or contact details; every other detail is an id, a code, an amount or
# a time.
FREE_TEXT = frozenset(
    {
        "text",
        "note",
        "notes",
        "detail",
        "reason",
        "resolution",
        "comment",
        "description",
        "error",
        "phone",
        "email",
        "summary",
        "desired_outcome",
    }
)
# Reasons that are codes, not text: kept.
REASON_CODES = frozenset({r.value for r in EscalationReason} | {"opened", "risk"})


def _text(value: str | None) -> str | None:
    return None if value is None else TOMBSTONE


def _reason(value: str | None) -> str | None:
    return value if value is None or value in REASON_CODES else TOMBSTONE


def _detail(key: str, value: Any) -> Any:
    if key not in FREE_TEXT or value is None:
        return value
    if key == "reason" and isinstance(value, str):
        return _reason(value)
    return TOMBSTONE


@command
def forget(step: Step, cmd: ForgetInput) -> None:
    s = step.state
    customer = s.input.customer.model_copy(update={"name": TOMBSTONE, "email": None, "phone": None})
    s.input = s.input.model_copy(
        update={"customer": customer, "summary": TOMBSTONE, "desired_outcome": TOMBSTONE, "carried": None}
    )
    for entry in s.timeline:
        entry.detail = {k: _detail(k, v) for k, v in entry.detail.items()}
    for offer in s.offers:
        offer.description = TOMBSTONE
        offer.answer_note = _text(offer.answer_note)
    for pause in s.pauses:
        pause.reason = TOMBSTONE
    for stint in s.stints:
        stint.reason = _reason(stint.reason) or stint.reason
    for resolution in [*s.resolutions, *([s.resolution] if s.resolution is not None else [])]:
        resolution.resolution = TOMBSTONE
    for checkin in s.checkins:
        checkin.comment = _text(checkin.comment)
    s.close_reason = _text(s.close_reason)
    for cb in s.callbacks:
        cb.phone = None
        cb.notes = _text(cb.notes)
        cb.end_reason = _reason(cb.end_reason)
        for attempt in cb.attempts:
            attempt.note = _text(attempt.note)
    step.log("forgotten", cmd.actor, reference=cmd.reference)
