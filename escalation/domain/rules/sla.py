"""SLA clocks: when a target falls due, counted in the business calendar of the case's tier."""

from __future__ import annotations

from datetime import datetime, timedelta

from escalation.domain.calendar import WorkingCalendar
from escalation.domain.models import CaseState, Clock, Status


def start_clock(calendar: WorkingCalendar, start: datetime, duration: timedelta) -> Clock:
    """A clock due once `duration` of working time has passed: one exact instant, never a poll."""
    return Clock(started_at=start, due_at=calendar.add(start, duration))


def pause_clock(clock: Clock, calendar: WorkingCalendar, now: datetime) -> None:
    """Stop a running clock, keeping the business time it had left; it has no due instant while paused."""
    assert clock.due_at is not None
    clock.remaining = calendar.business_between(now, clock.due_at)
    clock.paused_at = now
    clock.due_at = None


def resume_clock(clock: Clock, calendar: WorkingCalendar, now: datetime) -> timedelta:
    """Restart a paused clock with the business time it had left; returns the business time the pause
    covered (so the due instant moved by exactly that much working time)."""
    assert clock.paused_at is not None and clock.remaining is not None
    covered = calendar.business_between(clock.paused_at, now)
    clock.due_at = calendar.add(now, clock.remaining)
    clock.paused_at = None
    clock.remaining = None
    return covered


def due(clock: Clock | None) -> datetime | None:
    """When `clock` falls due; None when there is no clock or it does not run (stopped, breached, paused)."""
    return clock.due_at if clock is not None and clock.running else None


def running_due(state: CaseState) -> datetime | None:
    """The next instant a running SLA clock of an open case falls due."""
    if state.status != Status.OPEN:
        return None
    dues = [at for c in (state.acknowledge_clock, state.resolve_clock) if (at := due(c))]
    return min(dues) if dues else None


def overdue_since(state: CaseState) -> datetime | None:
    """The target an open case missed at its current tier and still owes: a breach where nothing climbs (the
    top of the ladder; below it the case moves up and new clocks start). An acknowledge target is owed until
    someone acknowledges, a resolve target until the case is resolved or closed. None when nothing is owed."""
    if state.status != Status.OPEN:
        return None
    ack, res = state.acknowledge_clock, state.resolve_clock
    missed = [
        c.due_at
        for c in (ack, res)
        if c
        and c.breached_at is not None
        and c.due_at is not None
        and not (c is ack and state.acknowledged_by is not None)
    ]
    return min(missed) if missed else None


def sla_due(state: CaseState) -> datetime | None:
    """What breaches next: the instant an SLA target of an open case was missed and is still owed, else the
    next instant a running clock falls due. A missed target stays here (and in `SlaDueAt`), so the cases that
    most need someone sort first instead of dropping out of every "due before" view."""
    return overdue_since(state) or running_due(state)


def breach_flag(state: CaseState) -> str | None:
    """'unowned' while a missed target is owed and nobody owns the case, 'owned' while someone does; None
    when nothing is owed (the `SlaBreach` search attribute)."""
    if overdue_since(state) is None:
        return None
    return "owned" if state.owner is not None else "unowned"


def paused_remaining(state: CaseState) -> timedelta | None:
    """The business time a paused clock (waiting on the customer) has left; None when no clock is paused."""
    if state.status != Status.OPEN:
        return None
    left = [
        c.remaining
        for c in (state.acknowledge_clock, state.resolve_clock)
        if c and c.live and c.paused_at is not None and c.remaining is not None
    ]
    return min(left) if left else None
