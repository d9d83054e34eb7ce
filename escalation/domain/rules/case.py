"""The public rules of a case. Each function: (state, policy, command, now) -> (new state, effects).

A command's rule is written on a Step and made that function by `@command`; the commands whose rule lives
with its subject (offers, waits, routing, callbacks) are exported from there by `escalation.domain.rules`."""

from __future__ import annotations

from datetime import datetime

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.bands import value_band
from escalation.domain.formatting import duration, instant
from escalation.domain.models import (
    AcknowledgeInput,
    CallbackStatus,
    CaseState,
    CheckInResult,
    CloseInput,
    ContactChannel,
    DeEscalateInput,
    EscalateInput,
    EscalationInput,
    EscalationOutcome,
    EscalationReason,
    FollowUpResponseInput,
    LookBack,
    NoteInput,
    OfferStatus,
    Outcome,
    Owner,
    ReassignInput,
    Resolution,
    ResolveInput,
    Status,
    TimelineEntry,
)
from escalation.domain.policy import Policy
from escalation.domain.principal import CLOSE_LOST, Principal
from escalation.domain.rules import callback, fallback, followup, pause, permission, routing
from escalation.domain.rules.brief import build_brief, granted_total, offer_line
from escalation.domain.rules.routing import Routed
from escalation.domain.rules.sla import due
from escalation.domain.rules.step import (
    SYSTEM,
    Message,
    MessageKind,
    Recipient,
    Result,
    RuleViolation,
    Step,
    command,
)
from escalation.domain.rules.tier import enter_tier, escalation_target, move, on_ladder


def open_case(
    inp: EscalationInput,
    policy: Policy,
    now: datetime,
    opening_id: str,
    by: Principal | None = None,
    look: LookBack | None = None,
) -> Result:
    """A new case; `by` is who opened it, verified (None: a case opened before credentials existed); `look` what
    it learned before opening (the customer's earlier cases, its escalation risk; None: cases from before)."""
    look = look or LookBack()
    first, why = policy.opening_tier(inp.threat, look.risk)
    state = CaseState(
        case_id=inp.case_id,
        opening_id=opening_id,
        input=inp,
        policy_name=policy.name,
        policy_version=policy.version,
        status=Status.OPEN,
        tier=first,
        sentiment=inp.sentiment,
        opened_at=now,
        journey=look.journey,
        risk=look.risk,
        risk_model=look.risk_model,
    )
    step = Step(state, policy, now, by=by)
    customer = inp.customer
    # What the pattern report and the risk model learn from (escalation.insight): the case as it came in.
    step.log(
        "opened",
        inp.opened_by,
        channel=inp.channel.value,
        severity=inp.severity.value,
        threat=inp.threat,
        policy=policy.name,
        policy_version=policy.version,
        category=inp.category,
        customer_id=customer.id,
        customer_value=str(customer.lifetime_value),
        value_band=value_band(customer.lifetime_value),
        language=customer.language,
        sentiment=inp.sentiment.value,
        summary=inp.summary,
        desired_outcome=inp.desired_outcome,
        start=why,  # "opened", "threat", or "risk" (risk_routing started it higher: training leaves it out)
        **({"earlier_cases": look.journey.count} if look.journey is not None else {}),
        **({"risk": look.risk, "risk_model": look.risk_model} if look.risk is not None else {}),
    )
    enter_tier(step, first, reason=why)
    return step.result()


def owner_assigned(state: CaseState, policy: Policy, stint: int, owner: Owner | None, now: datetime) -> Result:
    """The routing answer of cases that started before offers and load-aware routing (kept so they
    replay): the owner is assigned at once; answers for an older stint are ignored."""
    step = Step.begin(state, policy, now)
    s = step.state
    if stint != len(s.stints) or s.status != Status.OPEN:
        return state, []  # the case moved on (another tier, resolved, closed) while routing ran
    if owner is None:
        _unassigned(step, f"nobody available at {s.current_tier.value}")
    else:
        _assign(step, owner)
    return step.result()


def owner_found(
    state: CaseState,
    policy: Policy,
    routed: Routed,
    now: datetime,
    *,
    own_hours: bool = True,
    announce_moves: bool = True,
) -> Result:
    """The routing answer for an `Assign` effect: offer the case to the rep (or assign it at once when the
    policy has no acceptance timeout); nobody qualified and free moves it up a tier with `no_capacity`.
    An owner assigned at once hears in their own hours (`routed.starts_at`); with `own_hours=False` in the
    tier's hours whatever their own, as cases did before rep calendars counted (their histories replay so).
    A callback handed to the next rep is announced to the customer unless `announce_moves=False` (likewise)."""
    step = Step.begin(state, policy, now)
    s = step.state
    if routed.callback_id is not None:
        callback.handed_over(step, routed, announce=announce_moves)
        return step.result()
    if routed.stint != len(s.stints) or routed.request != s.route_requests or s.status != Status.OPEN:
        return state, []  # the case moved on (another tier or routing request, resolved, closed)
    if routed.owner is not None:
        if policy.routing.accept_within is None:
            _assign(step, routed.owner, routed.starts_at if own_hours else None)
        else:
            routing.offer(step, routed, policy.routing.accept_within)
    elif routed.failed:
        _unassigned(step, routed.reason or "routing failed")
    elif (above := policy.above(s.current_tier)) is not None:
        move(step, above, kind="escalated", reason=EscalationReason.NO_CAPACITY.value, detail=routed.reason)
    else:
        # The top of the ladder has nobody free: say so loudly, to the tier's queue and the escalation contact.
        entry = _unassigned(step, routed.reason or "nobody available", reason=EscalationReason.NO_CAPACITY.value)
        step.send(
            entry,
            MessageKind.NO_CAPACITY,
            Recipient(
                kind="escalation_contact",
                id=policy.escalation_contact,
                name="escalation contact",
                email=policy.escalation_contact,
            ),
            _channel(None),
            f"[{s.case_id}] nobody free at {s.current_tier.value}, the top of the ladder",
            build_brief(s, policy, now).text,
            at=now,
        )
    return step.result()


def _unassigned(step: Step, detail: str, **extra: str) -> TimelineEntry:
    s = step.state
    entry = step.log("unassigned", SYSTEM, detail=detail, **extra)
    step.send(
        entry,
        MessageKind.UNASSIGNED,
        step.team(),
        _channel(None),
        f"[{s.case_id}] waiting for a {s.current_tier.value}",
        build_brief(s, step.policy, step.now).text,
    )
    return entry


def _assign(step: Step, owner: Owner, starts_at: datetime | None = None) -> None:
    """`starts_at`: when the owner's own calendar (roster) has them working; without it they hear when the
    tier's calendar opens. Urgent severities reach them at once either way."""
    s = step.state
    s.owner = owner
    s.stints[-1].owners.append(owner.id)
    entry = step.log("assigned", SYSTEM, owner=owner.id, owner_name=owner.name)
    at = None
    if starts_at is not None and s.input.severity not in step.policy.urgent_severities:
        at = max(step.now, starts_at)
    step.send(
        entry,
        MessageKind.OWNER_ASSIGNED,
        routing.recipient(owner),
        _channel(owner),
        f"[{s.case_id}] {s.input.severity.value} escalation for you: {s.input.summary[:80]}",
        build_brief(s, step.policy, step.now).text,
        at=at,
    )


@command
def reassign(step: Step, cmd: ReassignInput, to_rep: Owner | None = None) -> None:
    """`to_rep` is the rep `cmd.to` names, as the roster knows them (the workflow looks them up): one at
    another tier is refused. Unknown or inactive, they are only a preference routing cannot follow."""
    routing.reassign(step, cmd.actor, cmd.reason, to=cmd.to, from_owner=cmd.from_owner, to_rep=to_rep)


def _channel(owner: Owner | None) -> ContactChannel:
    if owner is not None and not owner.email and owner.phone:
        return ContactChannel.SMS
    return ContactChannel.EMAIL


@command
def acknowledge(step: Step, cmd: AcknowledgeInput) -> None:
    step.require_open()
    s = step.state
    if s.acknowledged_by is not None:
        raise RuleViolation(
            "actor", f"already acknowledged at {s.current_tier.value} by {s.acknowledged_by}", type=ERR_INVALID_STATE
        )
    pending = s.pending_assignment
    if pending is not None and pending.rep.id == cmd.actor:
        routing.take(step, cmd.actor)  # acknowledging the case offered to you accepts it
    s.acknowledged_by = cmd.actor
    if s.acknowledge_clock and s.acknowledge_clock.running:
        s.acknowledge_clock.stopped_at = step.now  # like paging tools: an ack stops the escalation clock
    step.log("acknowledged", cmd.actor, note=cmd.note)


@command
def escalate(step: Step, cmd: EscalateInput) -> None:
    step.require_open()
    target = escalation_target(step, cmd.reason, cmd.target_tier, manual=True)
    move(step, target, kind="escalated", reason=cmd.reason.value, actor=cmd.actor, detail=cmd.detail)


@command
def de_escalate(step: Step, cmd: DeEscalateInput) -> None:
    step.require_open()
    s = step.state
    below = step.policy.below(s.current_tier)
    if below is None:
        raise RuleViolation(
            "target_tier", f"the case is already at the first tier ({s.current_tier.value}); there is nothing below it"
        )
    target = below if cmd.target_tier is None else on_ladder(step, cmd.target_tier, "target_tier")
    if step.policy.rank(target) >= step.policy.rank(s.current_tier):
        raise RuleViolation("target_tier", f"'{target.value}' is not below the current tier '{s.current_tier.value}'")
    move(step, target, kind="de_escalated", reason=cmd.reason, actor=cmd.actor)


@command
def add_note(step: Step, cmd: NoteInput) -> None:
    step.require_not_closed()
    step.log("note", cmd.actor, text=cmd.text, sentiment=cmd.sentiment.value if cmd.sentiment else None)
    if cmd.sentiment is not None:
        step.state.sentiment = cmd.sentiment


@command
def resolve(step: Step, cmd: ResolveInput) -> None:
    s = step.state
    if s.status == Status.RESOLVED and s.resolution:
        raise RuleViolation(
            "status",
            f"case {s.case_id} was already resolved at "
            f"{instant(s.resolution.resolved_at)} by {s.resolution.resolved_by}",
            type=ERR_INVALID_STATE,
        )
    step.require_open()
    waiting = [o.id for o in s.offers if o.status == OfferStatus.PROPOSED]
    if waiting:
        raise RuleViolation(
            "offers",
            f"{', '.join(waiting)} still await the customer's answer; record it with "
            "record_offer_response before resolving",
            type=ERR_INVALID_STATE,
        )
    s.resolution = Resolution(
        resolution=cmd.resolution,
        root_cause=cmd.root_cause,
        kb_article=cmd.kb_article,
        kb_missing=cmd.kb_missing,
        resolved_by=cmd.actor,
        resolved_at=step.now,
        tier=s.current_tier,
    )
    s.resolutions.append(s.resolution)
    s.status = Status.RESOLVED
    pause.end(step, cmd.actor)
    step.stop_clocks()
    s.stints[-1].left_at = step.now  # time in follow-up is not time spent at the tier
    step.log(
        "resolved",
        cmd.actor,
        resolution=cmd.resolution,
        root_cause=cmd.root_cause.value,
        kb_article=cmd.kb_article,
        kb_missing=cmd.kb_missing or None,
    )
    routing.withdraw(step)
    callback.cancel_all(step, "the case was resolved")
    followup.schedule(step)


@command
def close(step: Step, cmd: CloseInput) -> None:
    step.require_not_closed()
    s = step.state
    if cmd.outcome == Outcome.RESOLVED and s.status != Status.RESOLVED:
        raise RuleViolation(
            "outcome", "a case is closed as resolved only after resolve; resolve it first", type=ERR_INVALID_STATE
        )
    if not step.policy.may_close_as(cmd.outcome, s.current_tier):
        allowed = step.policy.close_lost_allowed
        if not allowed:
            raise RuleViolation(
                "outcome",
                f"policy '{step.policy.name}' lets no tier close a case as {cmd.outcome.value} (close_lost_tiers is empty)",
            )
        raise RuleViolation(
            "outcome",
            f"only {', '.join(t.value for t in allowed)} may close a case as "
            f"{cmd.outcome.value} (the case is at {s.current_tier.value}); escalate it first",
        )
    by = step.by
    if cmd.outcome != Outcome.RESOLVED and by is not None and by.kind == "service" and CLOSE_LOST not in by.may:
        raise permission.refuse(
            f"{by.label} may not close a case as {cmd.outcome.value}: the roster does not give it {CLOSE_LOST}"
        )
    if cmd.outcome != Outcome.RESOLVED and by is not None and by.tier is not None:
        # Losing a customer or handing a case to legal is the decision of a rep of such a tier themselves.
        lowest = min(step.policy.close_lost_allowed, key=permission.rank)
        if permission.rank(by.tier) < permission.rank(lowest):
            raise permission.refuse(
                f"{by.label} may not close a case as {cmd.outcome.value}: only a {lowest.value} or above "
                f"(policy '{step.policy.name}' close_lost_tiers)"
            )
    _close(step, cmd.outcome, cmd.actor, cmd.reason)


def _close(step: Step, result: Outcome, actor: str, reason: str) -> None:
    s = step.state
    followup.cancel_pending(step)
    pause.end(step, actor)
    step.stop_clocks()
    if s.stints and s.stints[-1].left_at is None:
        s.stints[-1].left_at = step.now
    s.status = Status.CLOSED
    s.outcome = result
    s.closed_at = step.now
    s.close_reason = reason
    step.log("closed", actor, outcome=result.value, reason=reason)
    routing.withdraw(step)
    callback.cancel_all(step, "the case was closed")


@command
def followup_response(step: Step, cmd: FollowUpResponseInput) -> None:
    permission.customer_checkin(step, cmd.checkin)
    answered = followup.answer(step, cmd)
    s = step.state
    if followup.is_negative(answered):
        resolver = s.resolution
        followup.cancel_pending(step)
        s.reopens += 1
        tier = resolver.tier if resolver else s.current_tier
        s.resolution = None
        # Whoever fixed it first knows the case best: route back to them when they are available.
        move(
            step,
            tier,
            kind="reopened",
            reason=EscalationReason.FOLLOWUP_NEGATIVE.value,
            actor="customer",
            detail=cmd.comment,
            prefer=resolver.resolved_by if resolver else None,
        )
    elif step.policy.followups.stop_on_positive:
        _close(step, Outcome.RESOLVED, "customer", "customer confirmed the fix works")


def delivery_failed(
    state: CaseState, policy: Policy, message: Message, error: str, now: datetime, *, permanent: bool = False
) -> Result:
    """A message could not be handed over (refused for good, or still failing after a day of retries): the
    case says so instead of stalling, and the message goes out again by the next route, if there is one."""
    step = Step.begin(state, policy, now)
    route = fallback.next_route(step, message)
    entry = step.log(
        "delivery_failed",
        SYSTEM,
        key=message.key,
        message_kind=message.kind.value,
        to=message.to.id,
        channel=message.channel.value,
        error=error[:500],
        permanent=permanent or None,
        fallback_to=route.to.id if route else None,
        fallback_channel=route.channel.value if route else None,
    )
    if route is not None:
        fallback.resend(step, entry, message, route, error)
    return step.result()


# Notices about who holds the case; a held one (waiting for working hours) goes stale when the case moves on.
_HOLDING_NOTICES = {MessageKind.OWNER_ASSIGNED, MessageKind.CASE_OFFERED, MessageKind.UNASSIGNED}


def message_obsolete(
    state: CaseState, message: Message, *, about: str | None = None, announces: datetime | None = None
) -> bool:
    """Whether a message held until its recipient's hours no longer concerns anyone: a notice that the case
    is yours, offered to you or waiting for your team, when the case has since closed, resolved or moved
    on; a callback confirmation (`about` a callback, `announces` its time) when that callback has been
    cancelled or moved. Everything else still goes (a promise to the customer, a breach at the top)."""
    if about is not None:
        cb = next((c for c in state.callbacks if c.id == about), None)
        return cb is None or cb.status != CallbackStatus.SCHEDULED or cb.due_at != announces
    if message.kind not in _HOLDING_NOTICES:
        return False
    if state.status != Status.OPEN:
        return True
    to = message.to
    if message.kind == MessageKind.UNASSIGNED:
        return to.kind == "team" and (to.tier != state.tier or routing.holder(state) is not None)
    return to.kind == "owner" and routing.holder(state) != to.id


def next_deadline(state: CaseState) -> datetime | None:
    """The earliest instant at which `advance` has something to do; None when only events can move the case."""
    s = state
    dues: list[datetime] = []
    if s.status == Status.OPEN:
        dues += [at for c in (s.acknowledge_clock, s.resolve_clock) if (at := due(c))]
        if s.waiting is not None and s.waiting.until is not None:
            dues.append(s.waiting.until)
        dues += routing.deadlines(s) + callback.deadlines(s)
    elif s.status == Status.RESOLVED:
        dues += [c.due_at for c in s.checkins if c.sent_at is None and not c.cancelled]
        if s.followup_ends_at is not None:
            dues.append(s.followup_ends_at)
    return min(dues) if dues else None


def describe_deadline(state: CaseState, deadline: datetime) -> str:
    """What the deadline `next_deadline` gave is, in a few words (the timer's summary in the UI)."""
    pending = state.pending_assignment
    if pending is not None and pending.accept_by == deadline:
        return f"offer to {pending.rep.id} expires"
    if label := callback.describe(state, deadline):
        return label
    if state.status == Status.OPEN:
        if state.waiting is not None and state.waiting.until == deadline:
            return f"waiting on the customer ({state.waiting.reason})"
        ack = state.acknowledge_clock
        which = "acknowledge" if ack and ack.running and ack.due_at == deadline else "resolve"
        return f"{which} target at {state.current_tier.value}"
    return "follow-up"


def advance(state: CaseState, policy: Policy, now: datetime) -> Result:
    """Act on every deadline that has passed: breaches climb the ladder, check-ins go out, follow-up ends."""
    step = Step.begin(state, policy, now)
    s = step.state
    if s.status == Status.OPEN and s.waiting is not None and s.waiting.until is not None and s.waiting.until <= now:
        _wait_expired(step)
    if s.status == Status.OPEN:
        for name, clock in (("acknowledge", s.acknowledge_clock), ("resolve", s.resolve_clock)):
            due_at = due(clock)
            if clock is None or due_at is None or due_at > now:
                continue
            clock.breached_at = now
            s.breaches += 1
            entry = step.log(
                "breached", SYSTEM, clock=name, due_at=due_at.isoformat(), owner=s.owner.id if s.owner else None
            )
            tier = s.current_tier
            above = policy.above(tier)
            if above is not None:
                move(
                    step,
                    above,
                    kind="escalated",
                    reason=EscalationReason.SLA_BREACH.value,
                    detail=f"{name} target at {tier.value} missed (due {instant(due_at, seconds=True)})",
                )
                break  # the new tier's clocks start now
            brief = build_brief(s, policy, now)
            step.send(
                entry,
                MessageKind.TOP_BREACH,
                Recipient(
                    kind="escalation_contact",
                    id=policy.escalation_contact,
                    name="escalation contact",
                    email=policy.escalation_contact,
                ),
                _channel(None),
                f"[{s.case_id}] {name} target missed at {tier.value}, the top of the ladder",
                brief.text,
            )
        routing.expire(step)
        callback.advance(step)
    elif s.status == Status.RESOLVED:
        followup.send_due(step)
        if (
            s.followup_ends_at is not None
            and s.followup_ends_at <= now
            and all(c.sent_at or c.cancelled for c in s.checkins)
        ):
            for c in s.checkins:
                if c.sent_at and c.answer is None:
                    c.expired = True
            _close(step, Outcome.RESOLVED, SYSTEM, "follow-up completed without a complaint")
    return step.result()


def _wait_expired(step: Step) -> None:
    """The customer never came back within the wait's limit: resume the clock or give the case up."""
    s = step.state
    waited = s.waiting
    assert waited is not None
    hours = (step.now - waited.started_at).total_seconds() / 3600
    if waited.on_limit == "close":
        step.log("wait_expired", SYSTEM, reason=waited.reason, waited_hours=round(hours, 2), then="close")
        _close(
            step,
            Outcome.CUSTOMER_LOST,
            SYSTEM,
            f"no reply from the customer within {duration(step.now - waited.started_at)} (waiting for: {waited.reason})",
        )
        return
    covered = pause.end(step, SYSTEM)
    step.log(
        "wait_expired",
        SYSTEM,
        reason=waited.reason,
        waited_hours=round(hours, 2),
        then="resume",
        paused_business_seconds=covered.total_seconds() if covered is not None else None,
        due_at=at.isoformat() if (at := due(s.resolve_clock)) else None,
    )


def outcome(state: CaseState, policy: Policy) -> EscalationOutcome:
    s = state
    if s.closed_at is None or s.outcome is None:
        raise RuleViolation("status", "the case is not closed yet", type=ERR_INVALID_STATE)
    ranks = [policy.rank(st.tier) for st in s.stints if st.tier in policy.ladder] or [0]
    first = s.resolutions[0].resolved_at if s.resolutions else None
    last = s.resolutions[-1] if s.resolutions else None
    return EscalationOutcome(
        case_id=s.case_id,
        outcome=s.outcome,
        final_tier=s.current_tier,
        highest_tier=policy.ladder[max(ranks)],
        policy_version=s.policy_version,
        offers_granted=[offer_line(o) for o in s.offers if o.status == OfferStatus.ACCEPTED],
        granted_total=granted_total(s),
        currency=policy.currency,
        opened_at=s.opened_at,
        first_resolved_at=first,
        closed_at=s.closed_at,
        seconds_to_first_resolution=(first - s.opened_at).total_seconds() if first else None,
        seconds_open=(s.closed_at - s.opened_at).total_seconds(),
        escalations=s.escalations,
        breaches=s.breaches,
        reopens=s.reopens,
        root_cause=last.root_cause if last else None,
        kb_missing=any(r.kb_missing for r in s.resolutions),
        followups=[
            CheckInResult(number=c.number, channel=c.channel, sent_at=c.sent_at, answer=c.answer, comment=c.comment)
            for c in s.checkins
            if not c.cancelled
        ],
        callbacks_missed=sum(len(c.missed_by) for c in s.callbacks),
    )
