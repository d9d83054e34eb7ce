"""Routing: which rep owns a case at a tier, the offer they must accept in time, and handing the case on.

`choose` is the whole decision, given the roster, the open-case count of each rep (read by the routing
activity from Temporal visibility) and the instant: right tier, every skill, the customer's language,
room under the rep's cap; working now (or the soonest to start when nobody is), then the preferred rep,
then the least loaded, then a spread that is stable per case. Everything else here changes a case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.calendar import CalendarError
from escalation.domain.formatting import duration, instant
from escalation.domain.models import (
    AcceptInput,
    Assignment,
    AssignmentStatus,
    CaseState,
    ContactChannel,
    Contract,
    Owner,
    Status,
    Tier,
)
from escalation.domain.roster import Rep, Roster
from escalation.domain.rules.brief import build_brief
from escalation.domain.rules.step import SYSTEM, Assign, MessageKind, Recipient, RuleViolation, Step, command


class Routed(Contract):
    """The routing answer to an `Assign` request."""

    stint: int
    request: int = 0
    callback_id: str | None = None
    owner: Owner | None = None
    load: int | None = None  # the owner's open cases when chosen; None when visibility could not count
    # When the owner's own calendar (roster) next has them working: the request's instant if working now;
    # None when the roster gives them no calendar (they count as always working).
    starts_at: datetime | None = None
    reason: str | None = None  # why nobody, when owner is None
    failed: bool = False  # routing itself failed (the roster could not be read): nobody was judged


# ----- the choice (pure)


def _spread(case_id: str, rep_id: str) -> str:
    return hashlib.sha256(f"{case_id}/{rep_id}".encode()).hexdigest()


def _names(reps: Iterable[Rep]) -> str:
    return ", ".join(r.id for r in reps)


def _nobody(req: Assign, reason: str) -> Routed:
    return Routed(stint=req.stint, request=req.request, callback_id=req.callback_id, reason=reason)


def choose(roster: Roster, req: Assign, loads: Mapping[str, int] | None, now: datetime) -> Routed:
    """Pick the rep for `req`. `loads` maps rep id to open cases held; None means unknown, and then
    nobody counts as full."""
    tier = req.tier.value
    qualified = roster.qualified(req.tier, req.skills, req.language)
    if not qualified:
        skills = f" with {', '.join(req.skills)}" if req.skills else ""
        return _nobody(req, f"no active {tier}{skills} speaks '{req.language}'")
    pool = [r for r in qualified if r.id not in set(req.exclude)]
    if not pool:
        return _nobody(req, f"every qualified {tier} ({_names(qualified)}) was asked already")

    def load(rep: Rep) -> int:
        return loads.get(rep.id, 0) if loads is not None else 0

    free = [r for r in pool if r.max_cases is None or load(r) < r.max_cases]
    if not free:
        full = ", ".join(f"{r.id} {load(r)}/{r.max_cases}" for r in pool)
        return _nobody(req, f"every qualified {tier} is at their limit of open cases ({full})")
    starts: dict[str, datetime] = {}
    for rep in free:
        try:
            starts[rep.id] = roster.calendar_of(rep).next_open(now)
        except CalendarError:
            continue  # closed for the foreseeable future (closed dates cover every working day)
    if not starts:
        return _nobody(req, f"no qualified {tier} ({_names(free)}) has working time ahead")
    best = min(
        (r for r in free if r.id in starts),
        key=lambda r: (starts[r.id], r.id != req.prefer, load(r), _spread(req.case_id, r.id)),
    )
    return Routed(
        stint=req.stint,
        request=req.request,
        callback_id=req.callback_id,
        owner=roster.owner(best),
        load=None if loads is None else load(best),
        starts_at=starts[best.id] if best.calendar is not None else None,
    )


# ----- changing a case


def recipient(owner: Owner) -> Recipient:
    return Recipient(kind="owner", id=owner.id, name=owner.name, email=owner.email, phone=owner.phone)


def channel(owner: Owner) -> ContactChannel:
    return ContactChannel.SMS if not owner.email and owner.phone else ContactChannel.EMAIL


def holder(state: CaseState) -> str | None:
    """Who the case is with: its owner, or the rep it is offered to (the `Owner` search attribute, so an
    open offer counts towards that rep's load)."""
    if state.owner is not None:
        return state.owner.id
    pending = state.pending_assignment
    return pending.rep.id if pending is not None else None


def request_owner(
    step: Step,
    *,
    prefer: str | None = None,
    exclude: Iterable[str] = (),
    callback_id: str | None = None,
    tier: Tier | None = None,
) -> None:
    """Ask routing for a rep. For the case itself this voids any open offer, and reps already asked at
    this tier are not asked again (unless preferred by name)."""
    s = step.state
    excluded = set(exclude)
    if callback_id is None:
        withdraw(step)
        s.route_requests += 1
        stint = len(s.stints)
        excluded |= {a.rep.id for a in s.assignments if a.stint == stint}
    excluded.discard(prefer)
    step.effects.append(
        Assign(
            case_id=s.case_id,
            tier=tier or s.current_tier,
            stint=len(s.stints),
            skills=list(s.input.skills),
            language=s.input.customer.language,
            prefer=prefer,
            exclude=sorted(excluded),
            request=s.route_requests,
            at=step.now,
            callback_id=callback_id,
        )
    )


def withdraw(step: Step) -> None:
    pending = step.state.pending_assignment
    if pending is not None:
        pending.status = AssignmentStatus.WITHDRAWN
        pending.answered_at = step.now


def offer(step: Step, routed: Routed, accept_within: timedelta) -> Assignment:
    """Offer the case to the chosen rep. Their time to accept starts when they start work; an urgent
    case reaches them at once, any other when their hours begin."""
    s = step.state
    rep = routed.owner
    assert rep is not None
    start = max(step.now, routed.starts_at or step.now)
    offered = Assignment(
        stint=len(s.stints), rep=rep, offered_at=step.now, accept_by=start + accept_within, load=routed.load
    )
    s.assignments.append(offered)
    entry = step.log(
        "assignment_offered",
        SYSTEM,
        rep=rep.id,
        rep_name=rep.name,
        load=routed.load,
        accept_by=offered.accept_by.isoformat(),
        starts_at=start.isoformat() if start > step.now else None,
    )
    urgent = s.input.severity in step.policy.urgent_severities
    brief = build_brief(s, step.policy, step.now)
    step.send(
        entry,
        MessageKind.CASE_OFFERED,
        recipient(rep),
        channel(rep),
        f"[{s.case_id}] accept within {duration(accept_within)}: {s.input.severity.value} escalation "
        f"{s.input.summary[:80]}",
        f"{brief.text}\n\nAccept by {instant(offered.accept_by, seconds=True)} (update `accept`), "
        "or the case is offered to the next rep.",
        at=step.now if urgent else start,
    )
    return offered


def take(step: Step, actor: str, note: str | None = None) -> None:
    """The rep the case is offered to accepts it and becomes its owner."""
    s = step.state
    pending = s.pending_assignment
    assert pending is not None and pending.rep.id == actor
    pending.status = AssignmentStatus.ACCEPTED
    pending.answered_at = step.now
    s.owner = pending.rep
    s.stints[-1].owners.append(actor)
    step.log(
        "assignment_accepted",
        actor,
        note=note,
        waited_seconds=round((step.now - pending.offered_at).total_seconds(), 3),
    )


@command
def accept(step: Step, cmd: AcceptInput) -> None:
    step.require_open()
    s = step.state
    pending = s.pending_assignment
    if pending is None:
        if s.owner is not None and s.owner.id == cmd.actor:
            raise RuleViolation("actor", f"{cmd.actor} already owns case {s.case_id}", type=ERR_INVALID_STATE)
        held = f" (its owner is {s.owner.id})" if s.owner else ""
        raise RuleViolation(
            "actor", f"case {s.case_id} is not offered to anyone right now{held}", type=ERR_INVALID_STATE
        )
    if pending.rep.id != cmd.actor:
        raise RuleViolation(
            "actor",
            f"case {s.case_id} is offered to {pending.rep.id}, not {cmd.actor}; only "
            f"{pending.rep.id} may accept it (reassign hands it to someone else)",
        )
    take(step, cmd.actor, cmd.note)


def expire(step: Step) -> None:
    """An offer not accepted in time goes to the next qualified rep."""
    pending = step.state.pending_assignment
    if pending is None or pending.accept_by > step.now:
        return
    pending.status = AssignmentStatus.EXPIRED
    pending.answered_at = step.now
    step.log("assignment_expired", SYSTEM, rep=pending.rep.id, accept_by=pending.accept_by.isoformat())
    request_owner(step)


def reassign(
    step: Step,
    actor: str,
    reason: str,
    *,
    to: str | None = None,
    from_owner: str | None = None,
    to_rep: Owner | None = None,
) -> None:
    """Take the case from whoever holds it (owner or open offer) and route it again at the same tier.
    `to_rep`: the rep `to` names, as the roster knows them; one at another tier is refused (routing
    would pass them over and page the escalation contact instead)."""
    step.require_open()
    s = step.state
    current = holder(s)
    if from_owner is not None and from_owner != current:
        raise RuleViolation(
            "from_owner",
            f"case {s.case_id} is with {current or 'nobody'}, not {from_owner}; nothing to reassign",
            type=ERR_INVALID_STATE,
        )
    if to is not None and to == current:
        raise RuleViolation("to", f"case {s.case_id} is already with {to}")
    tier = s.current_tier
    if to_rep is not None and to_rep.id == to and to_rep.tier != tier:
        raise RuleViolation(
            "to",
            f"{to} is a rep at {to_rep.tier.value} and case {s.case_id} is at {tier.value}; "
            f"name a rep at {tier.value}, leave `to` out to let routing choose, or move the case "
            f"to {to_rep.tier.value} first (escalate / de_escalate)",
        )
    s.owner = None
    step.log("reassigned", actor, from_owner=current, to=to, reason=reason)
    request_owner(step, prefer=to, exclude=[current] if current else [])


def deadlines(state: CaseState) -> list[datetime]:
    pending = state.pending_assignment
    return [pending.accept_by] if state.status == Status.OPEN and pending is not None else []


__all__ = [
    "Routed",
    "accept",
    "choose",
    "deadlines",
    "expire",
    "holder",
    "offer",
    "reassign",
    "request_owner",
    "take",
    "withdraw",
]
