"""Business calendars: when a team works, so SLA clocks count working time only.

Pure date arithmetic (zoneinfo, no clock reads). Instants are aware datetimes; each day's working hours
are laid out on the wall clock of the calendar's own zone, so a DST change shortens or lengthens the day
exactly as the people working it feel it. A wall time that does not exist (inside a spring-forward gap)
is read the way most calendar software reads it: shifted later by the length of the gap; an ambiguous
one (fall-back) means its first occurrence.

Holidays come from the `holidays` package but are resolved into plain dates when a policy file loads
(`with_holidays`, called in an activity), so a running case never depends on that package's version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from itertools import pairwise
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from escalation.domain.formatting import calendar_day
from escalation.domain.models import Contract, TimeZoneName

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 24 * 60  # minutes
WEEK = 7 * DAY
# How far ahead a calendar is searched for working time before giving up (closed dates could, in
# theory, cover everything); two years is beyond any SLA or callback horizon.
SEARCH_DAYS = 2 * 366

_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(\+1)?$")


class CalendarError(ValueError):
    pass


def parse_interval(text: str) -> tuple[int, int]:
    """'09:00-17:30' -> minutes from the day's midnight. '22:00-06:00+1' ends the next day (overnight)."""
    m = _INTERVAL.match(text.strip())
    if not m:
        raise CalendarError(f"'{text}' is not an interval like '09:00-17:30' (or '22:00-06:00+1' overnight)")
    h1, m1, h2, m2, overnight = int(m[1]), int(m[2]), int(m[3]), int(m[4]), bool(m[5])
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2):
        raise CalendarError(f"'{text}' has a time that does not exist (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if overnight:
        if end > start:
            raise CalendarError(f"'{text}' would be longer than a day; an overnight shift ends before it starts")
        end += DAY
    elif end < start:
        raise CalendarError(f"'{text}' ends before it starts; for an overnight shift write '{text.strip()}+1'")
    return start, end


def _utc(at: datetime) -> datetime:
    """The instant in UTC. Python adds and subtracts datetimes sharing a tzinfo on their wall clock, so
    instants given in a DST zone (the calendar's own, say) would count 24h across a 23h day."""
    if at.utcoffset() is None:
        raise CalendarError(f"{at} has no time zone; calendars work with aware datetimes")
    return at.astimezone(UTC)


class HolidaySource(Contract):
    """Public holidays from the `holidays` package, e.g. country 'US', subdivision 'NY'."""

    country: str = Field(pattern=r"^[A-Z]{2,3}$")
    subdivision: str | None = None


class WorkingCalendar(Contract):
    """When a team (or a customer's contact window) is open, in its own time zone."""

    time_zone: TimeZoneName = "UTC"
    # 24x7: every instant counts (closed dates, if any, still close whole days).
    always_open: bool = False
    # Weekday ("mon".."sun") -> intervals; a day left out is closed. Intervals may not overlap.
    hours: dict[str, list[str]] = Field(default_factory=dict)
    holidays: HolidaySource | None = None
    # Extra closed days (company events, local holidays the package does not know).
    closed_dates: list[date] = Field(default_factory=list)
    # Filled from `holidays` when the policy loads; not written by hand.
    holiday_dates: list[date] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: dict[str, list[str]]) -> dict[str, list[str]]:
        spans: list[tuple[int, int, str]] = []
        for day, intervals in hours.items():
            if day not in WEEKDAYS:
                raise ValueError(f"'{day}' is not a weekday; use {', '.join(WEEKDAYS)}")
            for text in intervals:
                try:
                    start, end = parse_interval(text)
                except CalendarError as err:
                    raise ValueError(f"{day}: {err}") from None
                if end > start:
                    offset = WEEKDAYS.index(day) * DAY
                    spans.append((offset + start, offset + end, f"{day} {text}"))
        # Lay the week out as a ring (Sunday night runs into Monday) and look for overlaps.
        ring = sorted((a % WEEK, a % WEEK + (b - a), name) for a, b, name in spans)
        ring += [(a + WEEK, b + WEEK, name) for a, b, name in ring[:1]]
        for (_, b1, n1), (a2, _, n2) in pairwise(ring):
            if a2 < b1:  # also an interval written twice, which would otherwise count twice
                raise ValueError(f"'{n1}' and '{n2}' overlap")
        return hours

    @model_validator(mode="after")
    def _works_sometime(self) -> WorkingCalendar:
        if not self.always_open and not any(e > s for s, e in self._week_flat):
            raise ValueError(
                "hours: the calendar has no working time at all, so its clocks would never "
                "fire; give working hours or set always_open = true"
            )
        return self

    # ----- layout

    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @cached_property
    def _week(self) -> list[list[tuple[int, int]]]:
        """Per weekday (Monday = 0): working intervals in minutes from that day's midnight."""
        if self.always_open:
            return [[(0, DAY)] for _ in WEEKDAYS]
        week: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        for day, intervals in self.hours.items():
            i = WEEKDAYS.index(day)
            week[i] = sorted(p for p in map(parse_interval, intervals) if p[1] > p[0])
        return week

    @property
    def _week_flat(self) -> list[tuple[int, int]]:
        return [p for day in self._week for p in day]

    @cached_property
    def _closed(self) -> frozenset[date]:
        return frozenset(self.closed_dates) | frozenset(self.holiday_dates)

    @property
    def _simple(self) -> bool:
        return self.always_open and not self._closed

    def _instant(self, day: date, minutes: int) -> datetime:
        day += timedelta(days=minutes // DAY)
        minutes %= DAY
        local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self._zone)
        return local.astimezone(UTC)

    def _open_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """Working periods that begin on `day` (local), as UTC instants, with closed days cut out."""
        periods = []
        for start, end in self._week[day.weekday()]:
            a, b = self._instant(day, start), self._instant(day, end)
            pieces = [(a, b)] if b > a else []
            for d in {day, day + timedelta(days=end // DAY)} & self._closed:
                lo, hi = self._instant(d, 0), self._instant(d, DAY)
                pieces = [q for p, r in pieces for q in ((p, min(r, lo)), (max(p, hi), r)) if q[1] > q[0]]
            periods += pieces
        return periods

    def periods(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working periods from `start` on, in order; the first is clipped to begin at `start`."""
        start = _utc(start)
        day = start.astimezone(self._zone).date() - timedelta(days=1)  # last night's shift may still run
        # Working time before `horizon` was yielded already (or lies before `start`). Wall times read
        # "shifted later" inside a spring-forward gap can put a day's periods out of order, or make
        # one overlap the next (a shift ending at 02:30 then ends at 03:30, after a 03:00 start): sort
        # each day and clip to the horizon so every instant counts once and periods come in order.
        horizon = start
        for _ in range(SEARCH_DAYS):
            for a, b in sorted(self._open_on(day)):
                a = max(a, horizon)
                if b > a:
                    yield a, b
                    horizon = b
            day += timedelta(days=1)
        raise CalendarError(f"no working time within {SEARCH_DAYS} days of {calendar_day(start)}; check closed_dates")

    # ----- questions

    def is_open(self, at: datetime) -> bool:
        if self._simple:
            return True
        a, _ = next(self.periods(at))
        return a == _utc(at)  # in UTC: a time in a fall-back hour never equals one in another zone

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when the calendar is open then, else the instant it next opens."""
        if self._simple:
            return at
        a, _ = next(self.periods(at))
        return a

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of working time has passed since `start`."""
        if duration < timedelta(0):
            raise CalendarError("a duration of working time cannot be negative")
        start = _utc(start)
        if self._simple or not duration:
            return start + duration
        remaining = duration
        for a, b in self.periods(start):
            if b - a >= remaining:
                return a + remaining
            remaining -= b - a
        raise AssertionError("unreachable: periods() raises before running out")

    def business_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time in [a, b); zero when b is not after a."""
        a, b = _utc(a), _utc(b)
        if b <= a:
            return timedelta(0)
        if self._simple:
            return b - a
        total = timedelta(0)
        for p, q in self.periods(a):
            if p >= b:
                break
            total += min(q, b) - p
        return total

    def with_holidays(self, years: Iterable[int]) -> WorkingCalendar:
        """A copy with `holidays` resolved into dates for `years`. Raises CalendarError for an unknown
        country or subdivision. Call it where files load (an activity), never in workflow code."""
        if self.holidays is None:
            return self
        import holidays  # imported here: only loading a policy needs it

        source = self.holidays
        try:
            table = holidays.country_holidays(source.country, subdiv=source.subdivision, years=list(years))
        except NotImplementedError as err:
            field = "holidays.subdivision" if "subdivision" in str(err) else "holidays.country"
            raise CalendarError(f"{field}: {err}; see the `holidays` package for the supported codes") from None
        return WorkingCalendar.model_validate({**self.model_dump(), "holiday_dates": sorted(table)})


ALWAYS = WorkingCalendar(always_open=True)


__all__ = ["ALWAYS", "WEEKDAYS", "CalendarError", "HolidaySource", "WorkingCalendar", "parse_interval"]
