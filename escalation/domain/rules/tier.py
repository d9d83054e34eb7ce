"""Moving a case between tiers: where an escalation lands, and what entering a tier sets up."""

from __future__ import annotations

from escalation.domain.models import MANUAL_REASONS, EscalationReason, Status, Tier, TierStint
from escalation.domain.policy import Policy
from escalation.domain.rules import pause, routing
from escalation.domain.rules.sla import start_clock
from escalation.domain.rules.step import SYSTEM, RuleViolation, Step


def _names(tiers: list[Tier]) -> str:
    return ", ".join(t.value for t in tiers)


def on_ladder(step: Step, tier: Tier, field: str) -> Tier:
    if tier not in step.policy.ladder:
        raise RuleViolation(
            field,
            f"'{tier.value}' is not on the ladder of policy '{step.policy.name}' ({_names(step.policy.ladder)})",
        )
    return tier


def escalation_target(step: Step, reason: EscalationReason, target: Tier | None, *, manual: bool) -> Tier:
    """Where an escalation goes. Team lead stands in before supervisor and manager unless policy says so."""
    policy, current = step.policy, step.state.current_tier
    if manual and reason not in MANUAL_REASONS:
        raise RuleViolation(
            "reason",
            f"'{reason.value}' is set by the system; give one of {', '.join(sorted(r.value for r in MANUAL_REASONS))}",
        )
    above = policy.above(current)
    if above is None:
        raise RuleViolation(
            "target_tier" if target else "reason",
            f"the case is already at the top tier ({current.value}); resolve it, or close it as customer_lost or legal",
        )
    if target is not None:
        on_ladder(step, target, "target_tier")
        if policy.rank(target) <= policy.rank(current):
            raise RuleViolation(
                "target_tier",
                f"'{target.value}' is not above the current tier '{current.value}'; use de_escalate to go down",
            )
        if target not in (above, _routed(policy, reason, current, above)) and reason not in policy.skip_reasons:
            raise RuleViolation(
                "target_tier",
                f"reason '{reason.value}' may only go to the next tier ('{above.value}'); skipping tiers needs "
                f"one of: {', '.join(r.value for r in policy.skip_reasons)}",
            )
        return target
    return _routed(policy, reason, current, above)


def _routed(policy: Policy, reason: EscalationReason, current: Tier, above: Tier) -> Tier:
    """Where the policy sends a reason by default (`above` is the tier above `current`); never down or sideways."""
    wanted = above
    if reason == EscalationReason.THREAT:
        wanted = policy.threat_target
    elif reason == EscalationReason.CUSTOMER_REQUEST and policy.customer_request_tier is not None:
        wanted = policy.customer_request_tier
    return wanted if policy.rank(wanted) > policy.rank(current) else above


def enter_tier(step: Step, tier: Tier, *, reason: str, prefer: str | None = None) -> None:
    """Start the tier's clocks and a new stint, and ask for an owner."""
    s, policy = step.state, step.policy
    if s.stints and s.stints[-1].left_at is None:
        s.stints[-1].left_at = step.now
    pause.end(step, SYSTEM)  # a new tier picks the case up; its clocks start fresh
    tp = policy.tier(tier)
    s.tier = tier
    s.owner = None
    s.acknowledged_by = None
    calendar = step.calendar  # the new tier's
    s.acknowledge_clock = start_clock(calendar, step.now, tp.acknowledge_within)
    s.resolve_clock = start_clock(calendar, step.now, tp.resolve_within)
    s.stints.append(TierStint(tier=tier, entered_at=step.now, reason=reason))
    routing.request_owner(step, prefer=prefer)


def move(
    step: Step,
    target: Tier,
    *,
    kind: str,
    reason: str,
    actor: str = SYSTEM,
    detail: str | None = None,
    prefer: str | None = None,
) -> None:
    s = step.state
    origin = s.current_tier
    if step.policy.rank(target) > step.policy.rank(origin):
        s.escalations += 1
    step.log(kind, actor, from_tier=origin.value, to_tier=target.value, reason=reason, detail=detail)
    enter_tier(step, target, reason=reason, prefer=prefer)
    s.status = Status.OPEN
