"""Waiting on the customer: the resolve clock stops, keeping its business time, until they reply."""

from __future__ import annotations

from datetime import timedelta

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.formatting import duration, instant
from escalation.domain.models import CustomerRepliedInput, Pause, WaitOnCustomerInput
from escalation.domain.rules.sla import due, pause_clock, resume_clock
from escalation.domain.rules.step import RuleViolation, Step, command


@command
def wait_on_customer(step: Step, cmd: WaitOnCustomerInput) -> None:
    step.require_open()
    s, policy = step.state, step.policy
    if s.waiting is not None:
        raise RuleViolation(
            "status",
            f"case {s.case_id} is already waiting on the customer since "
            f"{instant(s.waiting.started_at)} ({s.waiting.reason}); record "
            "customer_replied first",
            type=ERR_INVALID_STATE,
        )
    most = policy.pause.limit
    if cmd.limit is not None and cmd.limit <= timedelta(0):
        raise RuleViolation("limit", "must be longer than zero")
    if cmd.limit is not None and most is not None and cmd.limit > most:
        raise RuleViolation(
            "limit",
            f"{duration(cmd.limit)} is longer than policy '{policy.name}' allows "
            f"({duration(most)}); leave it out to wait the policy's limit",
        )
    limit = cmd.limit or most
    clock = s.resolve_clock
    if clock is not None and clock.running:
        pause_clock(clock, step.calendar, step.now)
    pause = Pause(
        started_at=step.now,
        by=cmd.actor,
        reason=cmd.reason,
        until=step.now + limit if limit else None,
        on_limit=policy.pause.on_limit,
    )
    s.pauses.append(pause)
    step.log(
        "waiting_on_customer",
        cmd.actor,
        reason=cmd.reason,
        until=pause.until.isoformat() if pause.until else None,
        remaining_seconds=clock.remaining.total_seconds() if clock and clock.remaining is not None else None,
    )


@command
def customer_replied(step: Step, cmd: CustomerRepliedInput) -> None:
    s = step.state
    if s.waiting is None:
        step.require_open()
        raise RuleViolation(
            "status",
            f"case {s.case_id} is not waiting on the customer; nothing to resume (wait_on_customer stops the clock)",
            type=ERR_INVALID_STATE,
        )
    covered = end(step, cmd.actor)
    step.log(
        "customer_replied",
        cmd.actor,
        channel=cmd.channel,
        note=cmd.note,
        paused_business_seconds=covered.total_seconds() if covered is not None else None,
        due_at=at.isoformat() if (at := due(s.resolve_clock)) else None,
    )


def end(step: Step, actor: str) -> timedelta | None:
    """End the open wait, if any, and restart the resolve clock; returns the business time it covered."""
    s = step.state
    pause = s.waiting
    if pause is None:
        return None
    pause.ended_at = step.now
    pause.ended_by = actor
    s.paused_total += step.now - pause.started_at
    clock = s.resolve_clock
    if clock is not None and clock.live and clock.paused_at is not None:
        pause.business_paused = resume_clock(clock, step.calendar, step.now)
    return pause.business_paused
