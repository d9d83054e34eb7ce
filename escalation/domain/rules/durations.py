"""Durations as people read them in messages, briefs and the CLI: one formatter for all of them."""

from __future__ import annotations

from datetime import timedelta


def human(value: timedelta | float) -> str:
    """'15s', '4m30s', '2h05m', '3d04h': the two largest units, the rest cut off. A duration above
    zero never reads as zero: under a second is 'under 1s', so a 15-second window is '15s'."""
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


def days_or_less(value: timedelta) -> str:
    """'30 days' for whole days (as policies usually give a horizon), else `human`."""
    if value >= timedelta(days=1) and value % timedelta(days=1) == timedelta(0):
        return f"{value.days} day" + ("s" if value.days != 1 else "")
    return human(value)
