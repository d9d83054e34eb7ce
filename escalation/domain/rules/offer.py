"""Offers of compensation or goodwill, within the authority of the rep who makes them.

Authority belongs to the person: the acting rep's own limit from the roster, else their tier's; never the
case owner's or the case tier's when someone else acts. Offers from before identity (no verified sender)
replay with the owner's or the case tier's limit, as they were made."""

from __future__ import annotations

from decimal import Decimal

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.formatting import instant
from escalation.domain.models import (
    Offer,
    OfferAnswer,
    OfferInput,
    OfferKind,
    OfferResponseInput,
    OfferStatus,
    Owner,
    Tier,
)
from escalation.domain.policy import Policy
from escalation.domain.rules.brief import committed_total
from escalation.domain.rules.permission import rank
from escalation.domain.rules.step import MessageKind, RuleViolation, Step, command


def tier_limit(policy: Policy, tier: Tier) -> Decimal | None:
    """A tier's limit; a tier the ladder skips has the limit of the highest ladder tier below it (none: 0)."""
    if tier in policy.ladder:
        return policy.tier(tier).authority_limit
    below = [t for t in policy.tiers if rank(t.name) < rank(tier)]
    return below[-1].authority_limit if below else Decimal(0)


def authority_limit(step: Step) -> Decimal | None:
    """The most the sender may commit in total on this case; None means no limit. A rep: their own limit when
    the roster sets one, else their tier's. A service: the roster's limit for it, else none at all."""
    by, s = step.by, step.state
    if by is None:  # an offer from before identity: the owner's or the case tier's limit, as it was made
        if s.owner is not None and s.owner.authority_limit is not None:
            return s.owner.authority_limit
        return step.policy.tier(s.current_tier).authority_limit
    if by.authority_limit is not None:
        return by.authority_limit
    return tier_limit(step.policy, by.tier) if by.tier is not None else Decimal(0)


def _owner_limit(policy: Policy, owner: Owner) -> Decimal | None:
    return owner.authority_limit if owner.authority_limit is not None else tier_limit(policy, owner.tier)


def _over_limit(step: Step, amount: Decimal, total: Decimal, limit: Decimal, currency: str) -> str:
    s, policy, by = step.state, step.policy, step.by
    if by is None:
        own = s.owner is not None and s.owner.authority_limit is not None
        tier: Tier | None = s.current_tier
        whose = f"{s.owner.name}'s own" if own and s.owner else f"the {s.current_tier.value}"
    else:
        tier = by.tier
        whose = f"{by.id}'s own" if by.authority_limit is not None or tier is None else f"{by.id}'s ({tier.value})"
    start = tier if tier is not None and tier in policy.ladder else None
    higher = policy.lowest_tier_granting(total, above=start)
    if by is not None and s.owner is not None and s.owner.id != by.id:
        cap = _owner_limit(policy, s.owner)
        if cap is None or cap >= total:
            # The case's own owner can grant it: the quickest way, no escalation needed.
            return (
                f"{amount} {currency} would bring the total offered on this case to {total} {currency}, above "
                f"{whose} authority limit of {limit} {currency}; the case's owner {s.owner.id} "
                f"({s.owner.tier.value}) may grant it"
                f" (customer lifetime value is {s.input.customer.lifetime_value} {currency})"
            )
    if higher is not None:
        cap = policy.tier(higher).authority_limit
        where = (
            f"the lowest tier that may grant it is {higher.value} "
            f"(limit {cap if cap is not None else 'none'}); escalate with reason needs_authority"
        )
    else:
        where = f"no tier above {tier.value if tier else 'that'} in policy '{policy.name}' may grant that much"
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
