"""Durations and times as people read them in rules' refusals, messages, briefs and the CLI: one place, so
the same instant or span reads the same everywhere.

Instants are kept in UTC and shown in UTC ('2026-11-24 09:05 UTC'), on the customer's wall clock with its
zone ('Tue 24 Nov 2026 10:05 CET'), or with their UTC offset where a wall clock matters ('15:00 +0100').
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)


def duration(value: timedelta | float) -> str:
    """'15s', '4m30s', '2h05m', '3d04h': the two largest units, the rest cut off (a float is seconds). A
    duration above zero never reads as zero: under a second is 'under 1s', so a 15-second window is '15s'."""
    seconds = abs(value.total_seconds() if isinstance(value, timedelta) else float(value))
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return "under 1s"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def duration_in_days(value: timedelta) -> str:
    """'30 days' for whole days (as policies usually give a horizon), else `duration`."""
    if value >= _DAY and value % _DAY == timedelta(0):
        return f"{value.days} day" + ("s" if value.days != 1 else "")
    return duration(value)


def _utc(at: datetime) -> datetime:
    """`at` in UTC; a naive datetime is taken to be UTC already."""
    return at if at.tzinfo is None else at.astimezone(UTC)


def instant(at: datetime, *, seconds: bool = False) -> str:
    """'2026-11-24 09:05 UTC', or '2026-11-24 09:05:12 UTC' with `seconds`."""
    return f"{stamp(at, seconds=seconds)} UTC"


def stamp(at: datetime, *, seconds: bool = False) -> str:
    """'2026-11-24 09:05' (or '...:12' with `seconds`): an instant in UTC without saying so, for lists whose
    every line is UTC (timeline entries, notes in a brief)."""
    return wall(_utc(at), seconds=seconds)


def wall(at: datetime, *, seconds: bool = False) -> str:
    """'2026-11-24 09:05': a wall-clock time as it is, converted to nothing (a time the customer gave
    without a zone)."""
    return f"{at:%Y-%m-%d %H:%M:%S}" if seconds else f"{at:%Y-%m-%d %H:%M}"


def with_offset(at: datetime, *, day: bool = True) -> str:
    """'2026-11-24 15:00 +0100' (or '15:00 +0100' without `day`): `at` on its own wall clock, with its
    offset from UTC."""
    return f"{at:%Y-%m-%d %H:%M %z}" if day else f"{at:%H:%M %z}"


def local(at: datetime, zone: str) -> str:
    """'Tue 24 Nov 2026 10:05 CET': `at` on the wall clock of `zone` (an IANA name), as a customer reads it."""
    return at.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y %H:%M %Z")


def calendar_day(at: date) -> str:
    """'2026-11-24'."""
    return f"{at:%Y-%m-%d}"
