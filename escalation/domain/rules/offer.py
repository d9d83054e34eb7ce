"""Offers of compensation or goodwill, within the authority of whoever owns the case."""

from __future__ import annotations

from decimal import Decimal

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.formatting import instant
from escalation.domain.models import Offer, OfferAnswer, OfferInput, OfferKind, OfferResponseInput, OfferStatus
from escalation.domain.rules.brief import committed_total
from escalation.domain.rules.step import MessageKind, RuleViolation, Step, command


def authority_limit(step: Step) -> Decimal | None:
    """The owner's own limit when the roster sets one, else the tier's. None means no limit."""
    s = step.state
    if s.owner is not None and s.owner.authority_limit is not None:
        return s.owner.authority_limit
    return step.policy.tier(s.current_tier).authority_limit


def _over_limit(step: Step, amount: Decimal, total: Decimal, limit: Decimal, currency: str) -> str:
    s, policy = step.state, step.policy
    own = s.owner is not None and s.owner.authority_limit is not None
    tier = s.current_tier
    whose = f"{s.owner.name}'s own" if own and s.owner else f"the {tier.value}"
    higher = policy.lowest_tier_granting(total, above=tier)
    if higher is not None:
        cap = policy.tier(higher).authority_limit
        where = (
            f"the lowest tier that may grant it is {higher.value} "
            f"(limit {cap if cap is not None else 'none'}); escalate with reason needs_authority"
        )
    else:
        where = f"no tier above {tier.value} in policy '{policy.name}' may grant that much"
    return (
        f"{amount} {currency} would bring the total offered on this case to {total} {currency}, above "
        f"{whose} authority limit of {limit} {currency}; {where} "
        f"(customer lifetime value is {s.input.customer.lifetime_value} {currency})"
    )


@command
def propose_offer(step: Step, cmd: OfferInput) -> None:
    step.require_open()
    s, policy = step.state, step.policy
    currency = cmd.currency or policy.currency
    if currency != policy.currency:
        raise RuleViolation("currency", f"offers on this case are in {policy.currency}, not {currency}")
    if cmd.kind == OfferKind.COMPENSATION and cmd.amount <= 0:
        raise RuleViolation(
            "amount", "compensation must be more than 0; use kind 'goodwill' for a gesture without money"
        )
    limit = authority_limit(step)
    total = committed_total(s) + cmd.amount
    # A gesture without money (amount 0) needs no authority.
    if limit is not None and total > limit and cmd.amount > 0:
        raise RuleViolation("amount", _over_limit(step, cmd.amount, total, limit, currency))
    offer = Offer(
        id=f"offer-{len(s.offers) + 1}",
        kind=cmd.kind,
        amount=cmd.amount,
        currency=currency,
        description=cmd.description,
        proposed_by=cmd.actor,
        proposed_at=step.now,
        tier=s.current_tier,
    )
    s.offers.append(offer)
    step.log(
        "offer_proposed",
        cmd.actor,
        offer_id=offer.id,
        kind=offer.kind.value,
        amount=str(offer.amount),
        currency=currency,
        description=offer.description,
        limit=None if limit is None else str(limit),
    )


@command
def record_offer_response(step: Step, cmd: OfferResponseInput) -> None:
    step.require_not_closed()
    s = step.state
    offer = next((o for o in s.offers if o.id == cmd.offer_id), None)
    if offer is None:
        known = ", ".join(o.id for o in s.offers) or "none yet"
        raise RuleViolation("offer_id", f"no offer '{cmd.offer_id}' on case {s.case_id} (offers: {known})")
    if offer.status != OfferStatus.PROPOSED:
        answered = f" at {instant(offer.answered_at)}" if offer.answered_at else ""
        raise RuleViolation(
            "offer_id",
            f"{offer.id} was already {offer.status.value}{answered}",
            type=ERR_INVALID_STATE,
        )
    offer.status = OfferStatus(cmd.answer.value)
    offer.answered_at = step.now
    offer.answer_note = cmd.note
    entry = step.log(
        f"offer_{cmd.answer.value}",
        cmd.actor,
        offer_id=offer.id,
        amount=str(offer.amount),
        currency=offer.currency,
        note=cmd.note,
    )
    if cmd.answer == OfferAnswer.ACCEPTED:
        c = s.input.customer
        channel = c.written_channel()  # the preferred channel first (email or SMS)
        step.send(
            entry,
            MessageKind.OFFER_CONFIRMATION,
            step.customer(),
            channel,
            f"Confirmation of your {offer.kind.value} (case {s.case_id})",
            f"Dear {c.name},\n\nas agreed, we will provide: {offer.description} "
            f"({offer.amount} {offer.currency}).\n\nReference: case {s.case_id}, {offer.id}.",
        )
