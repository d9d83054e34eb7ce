"""SLA clocks: when a target falls due. Wall-clock time for now; business calendars plug in here."""

from __future__ import annotations

from datetime import datetime, timedelta

from escalation.models import Clock


def due_at(start: datetime, duration: timedelta) -> datetime:
    return start + duration


def start_clock(start: datetime, duration: timedelta) -> Clock:
    return Clock(started_at=start, due_at=due_at(start, duration))
