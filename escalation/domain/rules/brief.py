"""The hand-off brief: what the next owner reads so the customer never has to repeat themselves."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from escalation.domain.formatting import duration, instant, stamp
from escalation.domain.models import (
    JOURNEY_DAYS,
    Brief,
    BriefFacts,
    CaseState,
    EscalationReason,
    Offer,
    OfferLine,
    OfferStatus,
    TimelineEntry,
)
from escalation.domain.policy import Policy
from escalation.domain.rules import journey

# Timeline kinds that tell the story of what was tried.
_STORY = {
    "opened",
    "acknowledged",
    "escalated",
    "de_escalated",
    "breached",
    "offer_proposed",
    "offer_accepted",
    "offer_declined",
    "resolved",
    "reopened",
    "followup_answered",
    "unassigned",
    "reassigned",
    "callback_scheduled",
    "callback_outcome",
    "callback_missed",
}


def offer_line(o: Offer) -> OfferLine:
    return OfferLine(
        kind=o.kind,
        amount=o.amount,
        currency=o.currency,
        description=o.description,
        status=o.status,
        tier=o.tier,
        proposed_by=o.proposed_by,
        answer_note=o.answer_note,
    )


def granted_total(state: CaseState) -> Decimal:
    return sum((o.amount for o in state.offers if o.status == OfferStatus.ACCEPTED), Decimal("0"))


def committed_total(state: CaseState) -> Decimal:
    """Granted plus still awaiting an answer: what the case would cost if every open offer is taken."""
    return sum((o.amount for o in state.offers if o.status != OfferStatus.DECLINED), Decimal("0"))


def is_threat(state: CaseState) -> bool:
    # Stints too: the timeline keeps only recent entries (rules.retention).
    return (
        state.input.threat
        or any(st.reason == EscalationReason.THREAT.value for st in state.stints)
        or any(
            e.kind == "escalated" and e.detail.get("reason") == EscalationReason.THREAT.value for e in state.timeline
        )
    )


def _indented(text: object) -> str:
    """Multi-line text inside one item of the brief: its later lines are indented under the item, so a note can
    never pass for a line of the brief itself."""
    return str(text).replace("\n", "\n      ")


def time_by_tier(state: CaseState, now: datetime) -> dict[str, float]:
    spent: dict[str, float] = {}
    for stint in state.stints:
        end = stint.left_at or (state.closed_at or now)
        spent[stint.tier.value] = spent.get(stint.tier.value, 0.0) + (end - stint.entered_at).total_seconds()
    return spent


def _by(e: TimelineEntry) -> str:
    """Who did it: the verified sender, the service that acted for them, and whose case it was."""
    through = f" through {e.via}" if e.via else ""
    override = f" (on {e.detail['override_of']}'s case)" if e.detail.get("override_of") else ""
    return f"{e.actor}{through}{override}"


def _story_line(e: TimelineEntry) -> str:
    d = e.detail
    when = instant(e.at)
    match e.kind:
        case "escalated" | "de_escalated" | "reopened":
            extra = f" ({d['detail']})" if d.get("detail") else ""
            return f"{when} {e.kind.replace('_', '-')} {d.get('from_tier')} -> {d.get('to_tier')} by {_by(e)}: {d.get('reason')}{extra}"
        case "breached":
            return f"{when} {d.get('clock')} SLA breached at {e.tier.value} (due {d.get('due_at')})"
        case "offer_proposed":
            return (
                f"{when} {_by(e)} offered {d.get('kind')} {d.get('amount')} {d.get('currency')}: {d.get('description')}"
            )
        case "offer_accepted" | "offer_declined":
            # The customer's reason travels with the answer: the next tier must not ask again.
            why = f": {d['note']}" if d.get("note") else ""
            return f"{when} customer {e.kind.split('_')[1]} {d.get('offer_id')}{why}"
        case "resolved":
            return f"{when} resolved by {_by(e)}: {d.get('resolution')} (root cause {d.get('root_cause')})"
        case "reassigned":
            return f"{when} reassigned from {d.get('from_owner') or 'nobody'} by {_by(e)}: {d.get('reason')}"
        case "callback_scheduled":
            return f"{when} {_by(e)} booked {d.get('callback_id')} with {d.get('owner')} for {d.get('customer_time')} (customer's time)"
        case "callback_outcome":
            return f"{when} {d.get('callback_id')} attempt {d.get('attempt')} by {_by(e)}: {d.get('outcome')}"
        case "followup_answered":
            return f"{when} follow-up {d.get('checkin')}: customer says {d.get('answer')} {d.get('comment') or ''}".rstrip()
        case _:
            return f"{when} {e.kind.replace('_', ' ')} by {_by(e)}"


def brief_facts(state: CaseState, policy: Policy, now: datetime) -> BriefFacts:
    """What the brief of `state` says at `now`, as data."""
    inp, customer = state.input, state.input.customer
    previous: list[str] = []
    for stint in state.stints:
        for owner in stint.owners:
            if owner not in previous and (state.owner is None or owner != state.owner.id):
                previous.append(owner)
    return BriefFacts(
        case_id=state.case_id,
        tier=state.current_tier,
        owner=state.owner.id if state.owner else None,
        status=state.status,
        severity=inp.severity,
        threat=is_threat(state),
        customer=customer.name,
        customer_value=customer.lifetime_value,
        customer_time_zone=customer.time_zone,
        preferred_channel=customer.preferred_channel,
        problem=inp.summary,
        wants=inp.desired_outcome,
        category=inp.category,
        sentiment=state.sentiment,
        tried=[_story_line(e) for e in state.timeline if e.kind in _STORY],
        offers=[offer_line(o) for o in state.offers],
        granted_total=granted_total(state),
        currency=policy.currency,
        notes=[f"{stamp(n.at)} {n.actor}: {_indented(n.detail.get('text'))}" for n in state.notes],
        previous_owners=previous,
        earlier_cases=state.journey.count if state.journey is not None else None,
        earlier=journey.earlier_lines(state.journey, policy.currency),
        risk=state.risk,
        time_open_seconds=((state.closed_at or now) - state.opened_at).total_seconds(),
        time_by_tier_seconds=time_by_tier(state, now),
    )


def brief_text(facts: BriefFacts, state: CaseState) -> str:
    """The brief as the next owner reads it: the facts, with what only the text shows from the case (the
    customer's id, the channel the case came in by, how many entries the state no longer keeps)."""
    f, inp = facts, state.input
    currency = f.currency or ""
    spent = f.time_by_tier_seconds
    repeat = journey.repeat_line(state.journey)
    lines = [
        f"Case {f.case_id} - {f.severity.value} {f.category}"
        + (" - THREAT" if f.threat else "")
        + (f" - now at {f.tier.value}" if f.tier else " - opening"),
        *([repeat] if repeat else []),
        f"Customer: {f.customer} ({inp.customer.id}), lifetime value {f.customer_value} {currency}, "
        f"prefers {f.preferred_channel.value}, time zone {f.customer_time_zone}",
        f"Came in by {inp.channel.value}; sentiment now: {f.sentiment.value}",
        f"Problem: {_indented(f.problem)}",
        f"Wants: {_indented(f.wants)}",
        f"Open for {duration(f.time_open_seconds)}"
        + ("; by tier: " + ", ".join(f"{t} {duration(v)}" for t, v in spent.items()) if spent else ""),
    ]
    if f.risk is not None:
        lines.append(f"Escalation risk at opening: {f.risk:.0%}")
    if f.earlier:
        lines.append(f"Earlier cases of this customer ({f.earlier_cases} in {JOURNEY_DAYS} days, newest first):")
        lines += [f"  - {line}" for line in f.earlier]
    if f.offers:
        lines.append("Offers:")
        lines += [
            f"  - {o.kind.value} {o.amount} {o.currency} ({o.status.value}, {o.tier.value}): {o.description}"
            + (f"; customer said: {_indented(o.answer_note)}" if o.answer_note else "")
            for o in f.offers
        ]
        lines.append(f"  granted so far: {f.granted_total} {currency}")
    if f.tried or state.timeline_earlier:
        lines.append("What happened so far:")
        if state.timeline_earlier:
            lines.append(f"  - ({state.timeline_earlier} earlier entries are in the case's events)")
        lines += [f"  - {_indented(t)}" for t in f.tried]
    if f.notes:
        lines.append("Notes:")
        lines += [f"  - {n}" for n in f.notes]
    if f.previous_owners:
        lines.append("Previous owners: " + ", ".join(f.previous_owners))
    return "\n".join(lines)


def build_brief(state: CaseState, policy: Policy, now: datetime) -> Brief:
    """The brief of `state` at `now`: its facts and their text."""
    facts = brief_facts(state, policy, now)
    return Brief(**dict(facts), text=brief_text(facts, state))
