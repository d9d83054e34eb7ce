"""SLA clocks: when a target falls due, counted in the business calendar of the case's tier."""

from __future__ import annotations

from datetime import datetime, timedelta

from escalation.calendar import WorkingCalendar
from escalation.models import CaseState, Clock, Status


def start_clock(calendar: WorkingCalendar, start: datetime, duration: timedelta) -> Clock:
    """A clock due once `duration` of working time has passed: one exact instant, never a poll."""
    return Clock(started_at=start, due_at=calendar.add(start, duration))


def pause_clock(clock: Clock, calendar: WorkingCalendar, now: datetime) -> None:
    clock.remaining = calendar.business_between(now, clock.due_at)
    clock.paused_at = now


def resume_clock(clock: Clock, calendar: WorkingCalendar, now: datetime) -> timedelta:
    """Restart a paused clock with the business time it had left; returns the business time the pause
    covered (so the due instant moved by exactly that much working time)."""
    assert clock.paused_at is not None and clock.remaining is not None
    covered = calendar.business_between(clock.paused_at, now)
    clock.due_at = calendar.add(now, clock.remaining)
    clock.paused_at = None
    clock.remaining = None
    return covered


def sla_due(state: CaseState) -> datetime | None:
    """The next instant an SLA target of an open case falls due."""
    if state.status != Status.OPEN:
        return None
    due = [c.due_at for c in (state.acknowledge_clock, state.resolve_clock) if c and c.running]
    return min(due) if due else None
