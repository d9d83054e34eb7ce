"""What a case makes searchable about itself: the dimensions the pattern questions filter on ("billing cases that
reached a manager without a KB article this week"). Codes, counts and amounts only, never personal data."""

from __future__ import annotations

from typing import Any

from escalation.constants import (
    SA_CATEGORY,
    SA_CHANNEL,
    SA_ESCALATION_RISK,
    SA_ESCALATIONS,
    SA_FIRST_CONTACT,
    SA_FOLLOWUP_ANSWER,
    SA_GRANTED,
    SA_HIGHEST_TIER,
    SA_KB_MISSING,
    SA_ROOT_CAUSE,
)
from escalation.domain.models import CaseState, Tier
from escalation.domain.policy import Policy
from escalation.domain.rules.brief import granted_total


def highest_tier(state: CaseState, policy: Policy) -> Tier:
    """The highest tier the case has been at (its stints; a tier off today's ladder counts by the enum's order)."""
    tiers = [st.tier for st in state.stints] or [state.current_tier]
    order = list(Tier)
    return max(tiers, key=lambda t: (policy.rank(t) if t in policy.ladder else -1, order.index(t)))


def first_contact_resolved(state: CaseState) -> bool | None:
    """Resolved where it opened, never escalated nor reopened; None until it is resolved."""
    if not state.resolutions:
        return None
    return state.escalations == 0 and state.reopens == 0


def last_answer(state: CaseState) -> str | None:
    answered = [c for c in state.checkins if c.answer is not None and c.answered_at is not None]
    if not answered:
        return None
    latest = max(answered, key=lambda c: c.answered_at or state.opened_at)
    return latest.answer.value if latest.answer is not None else None


def dimensions(state: CaseState, policy: Policy) -> dict[str, Any]:
    """The insight search attributes of `state` (None: unset, e.g. a root cause before any resolution)."""
    causes = list(dict.fromkeys(r.root_cause.value for r in state.resolutions))
    granted = granted_total(state)
    return {
        SA_CATEGORY: state.input.category,
        SA_CHANNEL: state.input.channel.value,
        SA_HIGHEST_TIER: highest_tier(state, policy).value,
        SA_ESCALATIONS: state.escalations,
        SA_GRANTED: float(granted) if granted else None,
        SA_ROOT_CAUSE: causes or None,
        SA_KB_MISSING: any(r.kb_missing for r in state.resolutions) if state.resolutions else None,
        SA_FIRST_CONTACT: first_contact_resolved(state),
        SA_FOLLOWUP_ANSWER: last_answer(state),
        SA_ESCALATION_RISK: state.risk,
    }
