"""The customer's journey: a new case learns, before it opens, how often this customer escalated before
(activities.insight looks in visibility) and its escalation risk; the brief shows both so nobody asks the customer
again what happened last time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from escalation.domain.formatting import stamp
from escalation.domain.models import JOURNEY_DAYS, EarlierCase, Journey


def earlier_line(case: EarlierCase, currency: str | None) -> str:
    """One earlier case as the brief lists it: 'C-0991 (2026-10-02) billing, reached manager, granted 50 EUR,
    follow-up: not_fixed, resolved'."""
    parts = [f"{case.case_id} ({stamp(case.opened_at)})", case.category or "category unknown"]
    if case.highest_tier is not None:
        parts.append(f"reached {case.highest_tier.value}")
    if case.granted:
        parts.append(f"granted {case.granted} {currency or ''}".rstrip())
    if case.followup is not None:
        parts.append(f"follow-up said {case.followup.value}")
    if case.status:
        parts.append(case.status.lower())
    return ", ".join(parts)


def earlier_lines(journey: Journey | None, currency: str | None) -> list[str]:
    if journey is None:
        return []
    return [earlier_line(c, currency) for c in journey.cases]


def repeat_line(journey: Journey | None) -> str | None:
    """The brief's warning for a repeat escalation: the owner reads what happened last time first."""
    if journey is None or not journey.repeat:
        return None
    n = journey.count
    return f"REPEAT ESCALATION: {n} earlier case{'s' if n != 1 else ''} of this customer in {JOURNEY_DAYS} days"


def granted_decimal(value: Any) -> Decimal | None:
    """A GrantedTotal search attribute read back (a float) as money, rounded to cents."""
    if value is None:
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None
