"""Business calendars (escalation.domain.calendar): pure date arithmetic, no Temporal.

Unit tests pin the behaviour people feel on the wall clock: DST changes in New York and Berlin, holidays,
weekends, closed days, overnight shifts, boundaries. Validation tests check that each bad input names its
field and says what is wrong. Hypothesis properties check that `add`, `business_between`, `is_open`,
`next_open` and the SLA pause/resume helpers agree with one another on generated calendars (zones with
DST, half-hour DST and none; overnight shifts; closed dates) and instants all over 2026.

Expected instants are written in UTC on purpose: Python compares and subtracts two datetimes that share a
tzinfo on their wall clock, and (PEP 495) never finds a time in a fall-back hour equal to one in another
zone. The calendar is fed both UTC and local instants.

No property needs its strategy narrowed around DST: wall times inside a spring-forward gap are read
"shifted later" (see the unit test), and the periods built from them are sorted and de-overlapped, so the
properties hold there too; the strategies deliberately put interval edges and instants in those gaps.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from escalation.domain.calendar import ALWAYS, WEEKDAYS, CalendarError, WorkingCalendar, parse_interval
from escalation.domain.models import Severity, Tier
from escalation.domain.policy import Policy, PolicyError, load_policy_file
from escalation.domain.rules.sla import pause_clock, resume_clock, start_clock

NEW_YORK, BERLIN, KOLKATA, LORD_HOWE = "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"
MICRO = timedelta(microseconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def local(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    """A wall-clock time in `zone` (never inside a DST gap or fold in these tests)."""
    return datetime(y, mo, d, h, mi, s, us, tzinfo=ZoneInfo(zone))


def z(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def every(days: str | list[str], *intervals: str) -> dict[str, list[str]]:
    names = WEEKDAYS[:5] if days == "weekdays" else WEEKDAYS if days == "all" else days
    return {d: list(intervals) for d in names}


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


def first_periods(cal: WorkingCalendar, start: datetime, n: int) -> list[tuple[datetime, datetime]]:
    return list(islice(cal.periods(start), n))


OFFICE_NY = WorkingCalendar(time_zone=NEW_YORK, hours=every("weekdays", "09:00-18:00"))
OFFICE_BERLIN = WorkingCalendar(time_zone=BERLIN, hours=every("weekdays", "09:00-17:00"))


# ----- 1. DST in New York and Berlin

# (zone, Saturday before the change, shift start in UTC, shift end in UTC, real length)
NIGHT_SHIFTS = [
    pytest.param(NEW_YORK, date(2026, 3, 7), z(2026, 3, 8, 3), z(2026, 3, 8, 10), 7, id="new-york-spring-forward"),
    pytest.param(NEW_YORK, date(2026, 10, 31), z(2026, 11, 1, 2), z(2026, 11, 1, 11), 9, id="new-york-fall-back"),
    pytest.param(BERLIN, date(2026, 3, 28), z(2026, 3, 28, 21), z(2026, 3, 29, 4), 7, id="berlin-spring-forward"),
    pytest.param(BERLIN, date(2026, 10, 24), z(2026, 10, 24, 20), z(2026, 10, 25, 5), 9, id="berlin-fall-back"),
]


@pytest.mark.parametrize(("zone", "saturday", "begins", "ends", "hours"), NIGHT_SHIFTS)
def test_overnight_shift_across_a_dst_change_lasts_the_real_hours(
    zone: str, saturday: date, begins: datetime, ends: datetime, hours: int
) -> None:
    cal = WorkingCalendar(time_zone=zone, hours={"sat": ["22:00-06:00+1"]})
    noon = local(zone, saturday.year, saturday.month, saturday.day, 12)
    assert first_periods(cal, noon, 1) == [(begins, ends)]
    sunday_noon = noon + DAY  # same wall time, the other side of the change
    assert cal.business_between(noon, sunday_noon) == timedelta(hours=hours)
    assert cal.add(noon, timedelta(hours=hours)) == ends
    assert cal.add(begins, timedelta(hours=hours) - MICRO) == ends - MICRO
    assert cal.is_open(begins) and cal.is_open(ends - MICRO)
    assert not cal.is_open(begins - MICRO) and not cal.is_open(ends)


# (zone, day of the change, real length of that local day)
CHANGE_DAYS = [
    pytest.param(NEW_YORK, date(2026, 3, 8), 23, id="new-york-spring-forward"),
    pytest.param(NEW_YORK, date(2026, 11, 1), 25, id="new-york-fall-back"),
    pytest.param(BERLIN, date(2026, 3, 29), 23, id="berlin-spring-forward"),
    pytest.param(BERLIN, date(2026, 10, 25), 25, id="berlin-fall-back"),
]
FULL_DAY_CALENDARS = {
    "always-open": lambda zone: WorkingCalendar(time_zone=zone, always_open=True),
    # With a closed date the calendar lays always_open out day by day instead of counting instants.
    "always-open-with-a-closed-date": lambda zone: WorkingCalendar(
        time_zone=zone, always_open=True, closed_dates=[date(2026, 1, 1)]
    ),
    "00:00-24:00": lambda zone: WorkingCalendar(time_zone=zone, hours=every("all", "00:00-24:00")),
    "00:00-00:00+1": lambda zone: WorkingCalendar(time_zone=zone, hours=every("all", "00:00-00:00+1")),
}


@pytest.mark.parametrize("kind", sorted(FULL_DAY_CALENDARS))
@pytest.mark.parametrize(("zone", "day", "hours"), CHANGE_DAYS)
def test_a_24h_day_across_a_dst_change_is_23_or_25_real_hours(zone: str, day: date, hours: int, kind: str) -> None:
    cal = FULL_DAY_CALENDARS[kind](zone)
    midnight = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))
    next_midnight = datetime.combine(day + DAY, time(0), tzinfo=ZoneInfo(zone))
    assert next_midnight.astimezone(UTC) - midnight.astimezone(UTC) == timedelta(hours=hours)
    # Given in the calendar's own zone (a wall-clock subtraction would say 24h) and in UTC.
    assert cal.business_between(midnight, next_midnight) == timedelta(hours=hours)
    assert cal.business_between(midnight.astimezone(UTC), next_midnight.astimezone(UTC)) == timedelta(hours=hours)
    assert cal.add(midnight, timedelta(hours=hours)) == next_midnight
    assert cal.is_open(midnight) and cal.is_open(next_midnight - MICRO)


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        # Saturday 23:00 EST + 4 real hours = Sunday 04:00 EDT (the wall clock skips 02:00-03:00).
        pytest.param(local(NEW_YORK, 2026, 3, 7, 23), 4 * HOUR, z(2026, 3, 8, 8), id="new-york-spring-4h"),
        # Saturday noon + 24 real hours = Sunday 13:00 EDT, not noon.
        pytest.param(local(NEW_YORK, 2026, 3, 7, 12), DAY, z(2026, 3, 8, 17), id="new-york-spring-24h"),
        # Saturday noon + 24 real hours = Sunday 11:00 EST.
        pytest.param(local(NEW_YORK, 2026, 10, 31, 12), DAY, z(2026, 11, 1, 16), id="new-york-fall-24h"),
        # Saturday 12:00 CET (11:00Z) + 24 real hours = Sunday 13:00 CEST (11:00Z).
        pytest.param(local(BERLIN, 2026, 3, 28, 12), DAY, z(2026, 3, 29, 11), id="berlin-spring-24h"),
        # Saturday 12:00 CEST (10:00Z) + 24 real hours = Sunday 11:00 CET (10:00Z).
        pytest.param(local(BERLIN, 2026, 10, 24, 12), DAY, z(2026, 10, 25, 10), id="berlin-fall-24h"),
    ],
)
@pytest.mark.parametrize("closed", [[], [date(2025, 12, 25)]], ids=["instants", "day-by-day"])
def test_a_24x7_calendar_in_a_dst_zone_counts_real_elapsed_time(
    start: datetime, duration: timedelta, due: datetime, closed: list[date]
) -> None:
    zone = str(start.tzinfo)  # a ZoneInfo prints as its key
    cal = WorkingCalendar(time_zone=zone, always_open=True, closed_dates=closed)
    assert cal.add(start, duration) == due
    assert cal.add(start.astimezone(UTC), duration) == due
    assert cal.business_between(start, due) == duration
    assert cal.business_between(start, due.astimezone(start.tzinfo)) == duration


@pytest.mark.parametrize(
    ("cal", "start", "duration", "due"),
    [
        # Friday 16:00 + 3 business hours: two on Friday (the office closes at 18:00), one on Monday.
        pytest.param(OFFICE_NY, local(NEW_YORK, 2026, 3, 6, 16), 3 * HOUR, z(2026, 3, 9, 14), id="new-york-spring"),
        pytest.param(OFFICE_NY, local(NEW_YORK, 2026, 10, 30, 16), 3 * HOUR, z(2026, 11, 2, 15), id="new-york-fall"),
        pytest.param(OFFICE_BERLIN, local(BERLIN, 2026, 3, 27, 16), 2 * HOUR, z(2026, 3, 30, 8), id="berlin-spring"),
        pytest.param(OFFICE_BERLIN, local(BERLIN, 2026, 10, 23, 16), 2 * HOUR, z(2026, 10, 26, 9), id="berlin-fall"),
    ],
)
def test_a_deadline_started_before_the_change_lands_on_the_same_wall_time_after_it(
    cal: WorkingCalendar, start: datetime, duration: timedelta, due: datetime
) -> None:
    """Monday 10:00 local in every case: opening hours follow the wall clock, not UTC."""
    got = cal.add(start, duration)
    assert got == due
    assert got.astimezone(ZoneInfo(cal.time_zone)).time() == time(10)
    assert cal.business_between(start, got) == duration


def test_daytime_hours_on_the_change_day_are_untouched() -> None:
    cal = WorkingCalendar(time_zone=NEW_YORK, hours=every("all", "09:00-17:00"))
    for day in (date(2026, 3, 8), date(2026, 11, 1)):
        midnight = datetime.combine(day, time(0), tzinfo=ZoneInfo(NEW_YORK))
        assert cal.business_between(midnight, midnight + 2 * DAY) == 16 * HOUR


def test_wall_times_inside_a_spring_forward_gap_are_read_shifted_later() -> None:
    """The documented reading: a wall time that does not exist moves later by the gap (as calendar
    software reads a meeting at 02:30). So on 2026-03-08 in New York '02:30-02:45' is worked 03:30-03:45
    EDT; '01:00-03:00' is one real hour; an ambiguous fall-back time means its first occurrence."""
    gap = WorkingCalendar(time_zone=NEW_YORK, hours={"sun": ["02:30-02:45"]})
    assert first_periods(gap, z(2026, 3, 8), 1) == [(z(2026, 3, 8, 7, 30), z(2026, 3, 8, 7, 45))]
    across = WorkingCalendar(time_zone=NEW_YORK, hours={"sun": ["01:00-03:00"]})
    assert first_periods(across, z(2026, 3, 8), 1) == [(z(2026, 3, 8, 6), z(2026, 3, 8, 7))]
    fold = WorkingCalendar(time_zone=NEW_YORK, hours={"sun": ["01:30-02:00"]})
    assert first_periods(fold, z(2026, 11, 1), 1) == [(z(2026, 11, 1, 5, 30), z(2026, 11, 1, 7))]


def test_periods_shifted_by_the_gap_never_count_twice() -> None:
    """Regression: a night shift ending at 02:30 on the spring-forward day ends at 03:30 EDT (read shifted
    later), after Sunday's 03:00 start. The overlap used to count twice (11h30 of work in 11 real hours)
    and `add` was not additive across it."""
    cal = WorkingCalendar(time_zone=NEW_YORK, hours={"sat": ["22:00-02:30+1"], "sun": ["03:00-10:00"]})
    start, end = local(NEW_YORK, 2026, 3, 7, 22), local(NEW_YORK, 2026, 3, 8, 10)
    assert end.astimezone(UTC) - start.astimezone(UTC) == 11 * HOUR
    assert cal.business_between(start, end) == 11 * HOUR
    assert first_periods(cal, start, 2) == [
        (z(2026, 3, 8, 3), z(2026, 3, 8, 7, 30)),
        (z(2026, 3, 8, 7, 30), z(2026, 3, 8, 14)),
    ]
    s = z(2026, 3, 8, 7, 10)
    assert cal.add(s, 40 * MIN) == cal.add(cal.add(s, 10 * MIN), 30 * MIN) == z(2026, 3, 8, 7, 50)


def test_periods_shifted_by_the_gap_come_in_order() -> None:
    """Regression: '02:30-02:45' (worked 03:30-03:45 EDT) came before '03:00-03:10', so 03:05 read as
    closed and next_open skipped the 03:00 period."""
    cal = WorkingCalendar(time_zone=NEW_YORK, hours={"sun": ["02:30-02:45", "03:00-03:10"]})
    assert first_periods(cal, z(2026, 3, 8), 2) == [
        (z(2026, 3, 8, 7), z(2026, 3, 8, 7, 10)),
        (z(2026, 3, 8, 7, 30), z(2026, 3, 8, 7, 45)),
    ]
    assert cal.is_open(z(2026, 3, 8, 7, 5))
    assert cal.next_open(z(2026, 3, 8, 6)) == z(2026, 3, 8, 7)
    assert cal.business_between(z(2026, 3, 8), z(2026, 3, 9)) == 25 * MIN


# ----- 2. Holidays, weekends, closed dates, overnight, zero-length, full-day and split intervals


def test_new_york_holidays_close_thanksgiving_and_christmas() -> None:
    office = WorkingCalendar(
        time_zone=NEW_YORK, hours=every("weekdays", "09:00-18:00"), holidays={"country": "US", "subdivision": "NY"}
    )
    # Unresolved, the holidays are not known yet: Thanksgiving counts like any Thursday.
    assert office.holiday_dates == [] and office.is_open(local(NEW_YORK, 2026, 11, 26, 12))
    cal = office.with_holidays([2026])
    assert {date(2026, 11, 26), date(2026, 12, 25), date(2026, 7, 3)} <= set(cal.holiday_dates)
    assert cal.hours == office.hours and cal.holidays == office.holidays
    # Wednesday 17:00 + 2h: one hour on Wednesday, Thanksgiving closed, one hour on Friday.
    assert cal.add(local(NEW_YORK, 2026, 11, 25, 17), 2 * HOUR) == z(2026, 11, 27, 15)
    assert not cal.is_open(local(NEW_YORK, 2026, 11, 26, 12))
    assert cal.next_open(local(NEW_YORK, 2026, 11, 26, 12)) == z(2026, 11, 27, 14)
    assert cal.business_between(local(NEW_YORK, 2026, 11, 23), local(NEW_YORK, 2026, 11, 30)) == 4 * 9 * HOUR
    # Christmas Friday: Thursday 17:30 + 1h lands Monday 09:30.
    assert cal.add(local(NEW_YORK, 2026, 12, 24, 17, 30), HOUR) == z(2026, 12, 28, 14, 30)
    # Several years: the 2027 observed Christmas (Friday 24th) is closed too.
    two = office.with_holidays(range(2026, 2028))
    assert date(2027, 12, 24) in two.holiday_dates
    assert two.add(local(NEW_YORK, 2027, 12, 23, 17, 30), HOUR) == z(2027, 12, 27, 14, 30)


def test_berlin_holidays_close_easter_and_christmas() -> None:
    cal = WorkingCalendar(
        time_zone=BERLIN, hours=every("weekdays", "09:00-17:00"), holidays={"country": "DE", "subdivision": "BE"}
    ).with_holidays([2026])
    assert {date(2026, 4, 3), date(2026, 4, 6), date(2026, 12, 25), date(2026, 12, 26)} <= set(cal.holiday_dates)
    # Good Friday and Easter Monday: Thursday 16:00 CEST + 2h = Tuesday 10:00 CEST.
    assert cal.add(local(BERLIN, 2026, 4, 2, 16), 2 * HOUR) == z(2026, 4, 7, 8)
    # Christmas Friday (24 December is a working day in Germany): Thursday 16:30 + 1h = Monday 09:30.
    assert cal.add(local(BERLIN, 2026, 12, 24, 16, 30), HOUR) == z(2026, 12, 28, 8, 30)
    # 24x7 with holidays: the holiday closes the whole local day.
    always = WorkingCalendar(
        time_zone=BERLIN, always_open=True, holidays={"country": "DE", "subdivision": "BE"}
    ).with_holidays([2026])
    assert always.business_between(local(BERLIN, 2026, 12, 24), local(BERLIN, 2026, 12, 28)) == DAY + DAY
    assert always.next_open(local(BERLIN, 2026, 12, 25, 12)) == z(2026, 12, 26, 23)


def test_with_holidays_without_a_source_is_the_same_calendar() -> None:
    assert OFFICE_NY.with_holidays([2026]) is OFFICE_NY


@pytest.mark.parametrize(
    ("cal", "friday", "monday"),
    [
        pytest.param(OFFICE_NY, local(NEW_YORK, 2026, 6, 5, 17, 55), z(2026, 6, 8, 13, 5), id="new-york-june"),
        pytest.param(OFFICE_NY, local(NEW_YORK, 2026, 3, 6, 17, 55), z(2026, 3, 9, 13, 5), id="new-york-dst-weekend"),
        pytest.param(
            WorkingCalendar(time_zone=BERLIN, hours=every("weekdays", "09:00-18:00")),
            local(BERLIN, 2026, 10, 23, 17, 55),
            z(2026, 10, 26, 8, 5),
            id="berlin-dst-weekend",
        ),
    ],
)
def test_ten_business_minutes_from_friday_1755_is_monday_0905(
    cal: WorkingCalendar, friday: datetime, monday: datetime
) -> None:
    due = cal.add(friday, 10 * MIN)
    assert due == monday
    assert due.astimezone(ZoneInfo(cal.time_zone)).time() == time(9, 5)
    assert cal.business_between(friday, due) == 10 * MIN
    assert not cal.is_open(friday + HOUR)


def test_closed_dates_close_the_whole_local_day() -> None:
    cal = WorkingCalendar(time_zone=NEW_YORK, hours=every("weekdays", "09:00-18:00"), closed_dates=[date(2026, 6, 8)])
    assert cal.add(local(NEW_YORK, 2026, 6, 5, 17, 55), 10 * MIN) == z(2026, 6, 9, 13, 5)
    assert not cal.is_open(local(NEW_YORK, 2026, 6, 8, 12))
    assert cal.business_between(local(NEW_YORK, 2026, 6, 8), local(NEW_YORK, 2026, 6, 9)) == timedelta(0)


@pytest.mark.parametrize(
    ("closed", "worked"),
    [
        ([], 8 * HOUR),
        ([date(2026, 6, 8)], 2 * HOUR),  # Monday closed: only Sunday 22:00-24:00 counts
        ([date(2026, 6, 7)], 6 * HOUR),  # Sunday closed: only Monday 00:00-06:00 counts
        ([date(2026, 6, 7), date(2026, 6, 8)], timedelta(0)),
    ],
)
def test_a_closed_day_cuts_an_overnight_shift_at_midnight(closed: list[date], worked: timedelta) -> None:
    cal = WorkingCalendar(hours={"sun": ["22:00-06:00+1"]}, closed_dates=closed)
    assert cal.business_between(z(2026, 6, 7), z(2026, 6, 9)) == worked


def test_sunday_night_shift_runs_into_monday() -> None:
    cal = WorkingCalendar(hours={"sun": ["22:00-06:00+1"], "mon": ["09:00-17:00"]})
    monday = date(2026, 6, 8)
    assert monday.weekday() == 0
    # Starting on Monday, the shift that began on Sunday is still running.
    assert first_periods(cal, z(2026, 6, 8), 2) == [
        (z(2026, 6, 8), z(2026, 6, 8, 6)),
        (z(2026, 6, 8, 9), z(2026, 6, 8, 17)),
    ]
    assert cal.is_open(z(2026, 6, 8, 3)) and not cal.is_open(z(2026, 6, 8, 6))
    assert cal.next_open(z(2026, 6, 8, 6)) == z(2026, 6, 8, 9)
    assert cal.add(z(2026, 6, 7, 23), 8 * HOUR) == z(2026, 6, 8, 10)  # 7h of night shift, 1h on Monday
    # A week from Monday 00:00: the end of the night shift begun on Sunday 31 May (6h), Monday (8h) and
    # the start of Sunday 7 June's shift (2h).
    assert cal.business_between(z(2026, 6, 1), z(2026, 6, 8)) == 6 * HOUR + 8 * HOUR + 2 * HOUR


def test_zero_length_intervals_contribute_nothing() -> None:
    cal = WorkingCalendar(hours={"mon": ["09:00-09:00", "10:00-11:00"], "tue": ["12:00-12:00"]})
    assert cal.business_between(z(2026, 6, 8), z(2026, 6, 15)) == HOUR
    assert not cal.is_open(z(2026, 6, 8, 9)) and not cal.is_open(z(2026, 6, 9, 12))
    assert cal.next_open(z(2026, 6, 8, 8)) == z(2026, 6, 8, 10)
    assert cal.next_open(z(2026, 6, 8, 11)) == z(2026, 6, 15, 10)


def test_full_day_intervals_join_up() -> None:
    for text in ("00:00-24:00", "00:00-00:00+1"):
        cal = WorkingCalendar(hours=every(["mon", "tue"], text))
        assert cal.add(z(2026, 6, 8, 23), 2 * HOUR) == z(2026, 6, 9, 1)
        assert cal.is_open(z(2026, 6, 9)) and cal.is_open(z(2026, 6, 8))
        assert not cal.is_open(z(2026, 6, 10)) and cal.is_open(z(2026, 6, 10) - MICRO)
        assert cal.business_between(z(2026, 6, 7), z(2026, 6, 11)) == 2 * DAY
        assert cal.next_open(z(2026, 6, 10)) == z(2026, 6, 15)


@pytest.mark.parametrize("order", [["09:00-12:00", "13:00-17:00"], ["13:00-17:00", "09:00-12:00"]])
def test_several_intervals_a_day_lunch_break(order: list[str]) -> None:
    cal = WorkingCalendar(hours={"mon": order})
    assert cal.business_between(z(2026, 6, 8), z(2026, 6, 9)) == 7 * HOUR
    assert cal.add(z(2026, 6, 8, 11, 30), HOUR) == z(2026, 6, 8, 13, 30)
    assert cal.add(z(2026, 6, 8, 11, 30), 30 * MIN) == z(2026, 6, 8, 12)  # due as lunch starts
    assert not cal.is_open(z(2026, 6, 8, 12)) and cal.is_open(z(2026, 6, 8, 13))
    assert cal.next_open(z(2026, 6, 8, 12, 30)) == z(2026, 6, 8, 13)
    assert first_periods(cal, z(2026, 6, 8), 2) == [
        (z(2026, 6, 8, 9), z(2026, 6, 8, 12)),
        (z(2026, 6, 8, 13), z(2026, 6, 8, 17)),
    ]


@pytest.mark.parametrize("fold", [0, 1])
def test_is_open_in_the_repeated_fall_back_hour_given_in_local_time(fold: int) -> None:
    """Regression: `is_open` tested `period start == at`, and by PEP 495 a time in a fall-back hour never
    equals a time in another zone; 01:30 New York time on 2026-11-01, given in local time, read as
    closed at the very start of a period (and, with instants counted in UTC, anywhere in one)."""
    t = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo(NEW_YORK), fold=fold)
    for cal in (
        WorkingCalendar(time_zone=NEW_YORK, always_open=True, closed_dates=[date(2026, 1, 1)]),
        WorkingCalendar(time_zone=NEW_YORK, hours={"sun": ["01:30-24:00"]}),
    ):
        assert cal.is_open(t)
        assert utc(cal.next_open(t)) == utc(t)
    # 01:30 EDT starts the period; 01:30 EST (an hour later) is inside it.
    cal = WorkingCalendar(time_zone=NEW_YORK, hours={"sun": ["01:30-24:00"]})
    # Until Monday 00:00 EST (05:00Z): 23.5 real hours from the first 01:30, 22.5 from the second.
    assert cal.business_between(t, z(2026, 11, 2, 5)) == [23.5, 22.5][fold] * HOUR


def test_adjacent_intervals_have_no_gap_between_them() -> None:
    cal = WorkingCalendar(hours={"mon": ["09:00-12:00", "12:00-17:00"]})
    assert cal.is_open(z(2026, 6, 8, 12))
    assert cal.business_between(z(2026, 6, 8), z(2026, 6, 9)) == 8 * HOUR
    assert cal.add(z(2026, 6, 8, 11), 2 * HOUR) == z(2026, 6, 8, 13)


# ----- 3. Boundaries, zero and negative


def test_is_open_includes_the_start_and_excludes_the_end() -> None:
    cal = OFFICE_NY
    nine, six = local(NEW_YORK, 2026, 6, 9, 9), local(NEW_YORK, 2026, 6, 9, 18)
    assert cal.is_open(nine) and cal.is_open(six - MICRO)
    assert not cal.is_open(nine - MICRO) and not cal.is_open(six)
    assert cal.next_open(nine) == nine
    assert cal.next_open(nine - MICRO) == nine
    assert cal.next_open(six) == local(NEW_YORK, 2026, 6, 10, 9)
    assert cal.next_open(local(NEW_YORK, 2026, 6, 5, 18)) == local(NEW_YORK, 2026, 6, 8, 9)  # Friday close
    assert cal.add(six - HOUR, HOUR) == six  # due exactly as the office closes, not the next morning


@pytest.mark.parametrize(
    "cal",
    [ALWAYS, OFFICE_NY, WorkingCalendar(always_open=True, closed_dates=[date(2026, 6, 9)])],
    ids=["24x7", "office", "24x7-closed-date"],
)
def test_zero_negative_and_naive(cal: WorkingCalendar) -> None:
    t = z(2026, 6, 9, 12)
    assert cal.business_between(t, t) == timedelta(0)
    assert cal.business_between(t + HOUR, t) == timedelta(0)
    assert cal.business_between(t + DAY, t - DAY) == timedelta(0)
    assert cal.add(t, timedelta(0)) == t
    assert cal.add(z(2026, 6, 9, 3), timedelta(0)) == z(2026, 6, 9, 3)  # zero is due at once, open or not
    with pytest.raises(CalendarError, match="cannot be negative"):
        cal.add(t, -MICRO)
    with pytest.raises(CalendarError, match="no time zone"):
        cal.add(t.replace(tzinfo=None), HOUR)
    with pytest.raises(CalendarError, match="no time zone"):
        cal.business_between(t.replace(tzinfo=None), t.replace(tzinfo=None) + HOUR)


def test_a_calendar_closed_for_two_years_says_so() -> None:
    mondays = [date(2026, 1, 5) + timedelta(weeks=i) for i in range(110)]
    cal = WorkingCalendar(hours={"mon": ["09:00-17:00"]}, closed_dates=mondays)
    with pytest.raises(CalendarError, match="no working time within"):
        cal.add(z(2026, 1, 1), HOUR)


# ----- 4. Bad input: ValidationError naming the field and the reason


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param(
            {"time_zone": "Mars/Olympus"}, ["time_zone", "'Mars/Olympus' is not an IANA time zone"], id="zone"
        ),
        pytest.param({"time_zone": "Europe"}, ["time_zone", "is not an IANA time zone"], id="zone-folder"),
        pytest.param(
            {"hours": {"mon": ["17:00-09:00"]}},
            ["hours", "mon: '17:00-09:00' ends before it starts", "'17:00-09:00+1'"],
            id="inverted",
        ),
        pytest.param({"hours": {"mon": ["09:00-10:00+1"]}}, ["hours", "longer than a day"], id="overnight-too-long"),
        pytest.param(
            {"hours": {"mon": ["09:00-12:00", "11:00-13:00"]}},
            ["hours", "'mon 09:00-12:00' and 'mon 11:00-13:00' overlap"],
            id="overlap-same-day",
        ),
        pytest.param(
            {"hours": {"mon": ["09:00-12:00", "09:00-12:00"]}},
            ["hours", "'mon 09:00-12:00' and 'mon 09:00-12:00' overlap"],
            id="written-twice",
        ),
        pytest.param(
            {"hours": {"mon": ["22:00-02:00+1"], "tue": ["01:00-09:00"]}},
            ["hours", "'mon 22:00-02:00+1' and 'tue 01:00-09:00' overlap"],
            id="overlap-across-midnight",
        ),
        pytest.param(
            {"hours": {"sun": ["22:00-06:00+1"], "mon": ["05:00-09:00"]}},
            ["hours", "'sun 22:00-06:00+1' and 'mon 05:00-09:00' overlap"],
            id="overlap-week-wrap",
        ),
        pytest.param(
            {"hours": {"monday": ["09:00-17:00"]}}, ["hours", "'monday' is not a weekday", "mon, tue"], id="weekday"
        ),
        pytest.param(
            {"hours": {"mon": ["25:00-26:00"]}}, ["hours", "'25:00-26:00' has a time that does not exist"], id="hour-25"
        ),
        pytest.param({"hours": {"mon": ["09:00-24:30"]}}, ["hours", "does not exist"], id="after-24"),
        pytest.param({"hours": {"mon": ["09:60-10:00"]}}, ["hours", "does not exist"], id="minute-60"),
        pytest.param(
            {"hours": {"mon": ["9-5"]}}, ["hours", "'9-5' is not an interval like '09:00-17:30'"], id="format"
        ),
        pytest.param({}, ["hours", "no working time at all", "always_open"], id="no-hours"),
        pytest.param({"hours": {"mon": ["09:00-09:00"]}}, ["no working time at all"], id="only-zero-length"),
        pytest.param({"holidays": {"country": "usa"}}, ["holidays.country", "pattern"], id="country-format"),
        pytest.param(
            {"timezone": "UTC", "always_open": True},
            ["timezone", "Extra inputs are not permitted"],
            id="misspelt-field",
        ),
    ],
)
def test_bad_calendar_names_field_and_reason(data: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as err:
        WorkingCalendar.model_validate(data)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message


def test_always_open_needs_no_hours_and_parse_interval_reads_overnight() -> None:
    assert WorkingCalendar(always_open=True).is_open(z(2026, 6, 7, 3))
    assert parse_interval("22:00-06:00+1") == (22 * 60, 30 * 60)
    assert parse_interval(" 00:00 - 24:00 ") == (0, DAY_MIN)


POLICY: dict[str, Any] = {
    "name": "gen",
    "version": "1",
    "tiers": [
        {"name": "agent", "acknowledge_within": "10m", "resolve_within": "1h"},
        {"name": "team_lead", "acknowledge_within": "10m", "resolve_within": "2h"},
    ],
}
TOML = 'name = "gen"\nversion = "1"\n[[tiers]]\nname = "agent"\nacknowledge_within = "10m"\nresolve_within = "1h"\n\n'
OFFICE = {"time_zone": NEW_YORK, "hours": every("weekdays", "09:00-18:00")}


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"country": "XX"}, "holidays.country"),
        ({"country": "US", "subdivision": "ZZ"}, "holidays.subdivision"),
        ({"country": "DE", "subdivision": "XX"}, "holidays.subdivision"),
    ],
)
def test_unknown_holiday_source(source: dict[str, str], field: str, tmp_path: Path) -> None:
    cal = WorkingCalendar(hours=every("weekdays", "09:00-17:00"), holidays=source)
    with pytest.raises(CalendarError, match=f"^{re.escape(field)}: .*see the `holidays` package"):
        cal.with_holidays([2026])
    policy = Policy.model_validate({**POLICY, "calendars": {"office": cal.model_dump()}, "calendar": "office"})
    with pytest.raises(PolicyError, match=re.escape(f"calendars.office.{field}: ")):
        policy.with_holidays(range(2026, 2027))
    # Loading the file reports it the same way, under the file's name.
    toml = tmp_path / "gen.toml"
    sub = f', subdivision = "{source["subdivision"]}"' if "subdivision" in source else ""
    toml.write_text(
        TOML + f'calendar = "office"\n[calendars.office]\nhours = {{ mon = ["09:00-17:00"] }}\n'
        f'holidays = {{ country = "{source["country"]}"{sub} }}\n'
    )
    expected = f"policy file gen.toml is invalid: calendars.office.{field}: "
    with pytest.raises(PolicyError, match=re.escape(expected)):
        load_policy_file(toml)


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        pytest.param(
            {"calendar": "nowhere"}, ["calendar: no calendar named 'nowhere' in calendars (office)"], id="default"
        ),
        pytest.param(
            {"tiers": [{**POLICY["tiers"][0], "calendar": "nowhere"}]},
            ["tiers.agent.calendar: no calendar named 'nowhere' in calendars (office)"],
            id="tier",
        ),
        pytest.param(
            {"severity_calendars": {"critical": "nowhere"}},
            ["severity_calendars.critical: no calendar named 'nowhere'"],
            id="severity",
        ),
        pytest.param(
            {"calendars": {}, "calendar": "office"},
            ["calendar: no calendar named 'office' in calendars (none defined)"],
            id="none-defined",
        ),
        pytest.param(
            {"calendars": {"office": {**OFFICE, "time_zone": "Mars/Base"}}},
            ["calendars.office.time_zone", "not an IANA time zone"],
            id="calendar-zone",
        ),
        pytest.param(
            {"calendars": {"office": {"hours": {"mon": ["17:00-09:00"]}}}},
            ["calendars.office.hours", "'17:00-09:00+1'"],
            id="calendar-hours",
        ),
        pytest.param(
            {"contact_hours": {"mon": ["20:00-08:00"]}},
            ["contact_hours", "ends before it starts", "'20:00-08:00+1'"],
            id="contact-inverted",
        ),
        pytest.param(
            {"contact_hours": {"mon": ["08:00-12:00", "11:00-20:00"]}},
            ["contact_hours", "overlap"],
            id="contact-overlap",
        ),
        pytest.param(
            {"contact_hours": {"mo": ["08:00-20:00"]}}, ["contact_hours", "'mo' is not a weekday"], id="contact-weekday"
        ),
        pytest.param({"contact_hours": {}}, ["contact_hours", "no working time at all"], id="contact-empty"),
        pytest.param({"pause": {"limit": "0m"}}, ["pause", "limit must be longer than zero"], id="pause-zero"),
        pytest.param({"pause": {"limit": -60}}, ["pause", "limit", "must be positive"], id="pause-negative"),
        pytest.param({"pause": {"on_limit": "forget"}}, ["pause.on_limit", "'resume' or 'close'"], id="pause-on-limit"),
    ],
)
def test_bad_policy_calendar_settings_name_field_and_reason(extra: dict[str, Any], fragments: list[str]) -> None:
    data = {**POLICY, "calendars": {"office": OFFICE}, **extra}
    with pytest.raises(ValidationError) as err:
        Policy.model_validate(data)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message


def test_calendar_for_prefers_severity_then_tier_then_default() -> None:
    night = {"time_zone": BERLIN, "hours": every("all", "22:00-06:00+1")}
    policy = Policy.model_validate(
        {
            **POLICY,
            "tiers": [POLICY["tiers"][0], {**POLICY["tiers"][1], "calendar": "night"}],
            "calendars": {"office": OFFICE, "night": night, "always": {"always_open": True}},
            "calendar": "office",
            "severity_calendars": {"critical": "always"},
        }
    )
    assert policy.calendar_for(Tier.AGENT, Severity.LOW) is policy.calendars["office"]
    assert policy.calendar_for(Tier.TEAM_LEAD, Severity.HIGH) is policy.calendars["night"]
    assert policy.calendar_for(Tier.TEAM_LEAD, Severity.CRITICAL) is policy.calendars["always"]
    assert policy.calendar_for(Tier.MANAGER, Severity.LOW) is policy.calendars["office"]  # not on the ladder
    bare = Policy.model_validate(POLICY)
    assert bare.calendar_for(Tier.AGENT, Severity.LOW) is ALWAYS
    assert bare.customer_window(KOLKATA) is ALWAYS


def test_customer_window_is_on_the_customers_wall_clock() -> None:
    policy = Policy.model_validate({**POLICY, "contact_hours": every("all", "08:00-20:00")})
    window = policy.customer_window(KOLKATA)
    assert window.time_zone == KOLKATA
    # 21:00 in Kolkata (15:30 UTC) is too late; the next call may go at 08:00 IST (02:30 UTC).
    assert not window.is_open(z(2026, 6, 9, 15, 30))
    assert window.next_open(z(2026, 6, 9, 15, 30)) == z(2026, 6, 10, 2, 30)
    assert policy.customer_window(NEW_YORK).is_open(z(2026, 6, 9, 15, 30))  # 11:30 in New York


# ----- 5. Properties

ZONES = [NEW_YORK, BERLIN, KOLKATA, "UTC", LORD_HOWE]
# The 2026 DST changes (local dates, all Sundays) and each zone's spring-forward gap in minutes of the
# day: New York and Berlin skip 02:00-03:00; Lord Howe (southern hemisphere, half-hour DST) skips
# 02:00-02:30 on 4 October and repeats 01:30-02:00 on 5 April. Kolkata and UTC have none.
CHANGES = {
    NEW_YORK: [date(2026, 3, 8), date(2026, 11, 1)],
    BERLIN: [date(2026, 3, 29), date(2026, 10, 25)],
    LORD_HOWE: [date(2026, 10, 4), date(2026, 4, 5)],
    KOLKATA: [],
    "UTC": [],
}
GAPS = {NEW_YORK: (120, 180), BERLIN: (120, 180), LORD_HOWE: (120, 150)}
DST_DAYS = sorted(d for days in CHANGES.values() for d in days)
JAN1 = z(2026, 1, 1)
YEAR_US = 365 * 86_400 * 1_000_000


def hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def notable_minutes(zone: str) -> list[int]:
    """Minutes of the day worth hitting often: midnight, and in and around the zone's DST changes (a
    shift ending inside the gap, the next starting just after it)."""
    lo, hi = GAPS.get(zone, (120, 180))
    return sorted(
        {
            0,
            1,
            DAY_MIN - 1,
            lo - 30,
            lo - 1,
            lo,
            lo + 1,
            (lo + hi) // 2,
            hi - 1,
            hi,
            hi + 1,
            hi + 15,
            hi + 30,
            2 * hi - lo - 1,
        }
    )


@st.composite
def weekly_hours(draw: st.DrawFn, zone: str) -> dict[str, list[str]]:
    """Non-overlapping intervals on the week's ring: 2n distinct points paired up, optionally rotated so
    the last interval runs from Sunday into Monday; each at most a day long (longer ones are cut). The
    points favour Sunday (the day every change here happens) and the minutes around the changes; in
    "weekend" mode they are all there, so shifts ending inside a gap and others starting just after it
    (which the gap's "shifted later" reading makes overlap) are common."""
    n = draw(st.integers(1, 6))
    minute = st.sampled_from(notable_minutes(zone))
    if draw(st.integers(0, 2)) == 0:
        point = st.builds(lambda d, m: d * DAY_MIN + m, st.sampled_from([5, 6, 6]), minute)
    else:
        notable = st.builds(lambda d, m: d * DAY_MIN + m, st.one_of(st.just(6), st.integers(0, 6)), minute)
        point = st.one_of(st.integers(0, WEEK_MIN - 1), notable, notable)
    points = sorted(draw(st.lists(point, min_size=2 * n, max_size=2 * n, unique=True)))
    if draw(st.booleans()):
        points = [*points[1:], points[0] + WEEK_MIN]
    hours: dict[str, list[str]] = {}
    for s, e in zip(points[::2], points[1::2], strict=True):
        length = min(e - s, DAY_MIN)
        begin = s % DAY_MIN
        end = begin + length
        text = f"{hm(begin)}-{hm(end)}" if end <= DAY_MIN else f"{hm(begin)}-{hm(end - DAY_MIN)}+1"
        hours.setdefault(WEEKDAYS[s // DAY_MIN], []).append(text)
    for _ in range(draw(st.integers(0, 2))):  # zero-length intervals, which count for nothing
        m = draw(st.integers(0, DAY_MIN - 1))
        hours.setdefault(draw(st.sampled_from(WEEKDAYS)), []).append(f"{hm(m)}-{hm(m)}")
    return hours


def near(days: list[date]) -> st.SearchStrategy[date]:
    return st.sampled_from(days).flatmap(lambda d: st.integers(-2, 2).map(lambda k: d + timedelta(days=k)))


@st.composite
def calendars(draw: st.DrawFn) -> WorkingCalendar:
    zone = draw(st.sampled_from(ZONES))
    some_date = st.one_of(near(CHANGES[zone] or DST_DAYS), st.dates(date(2025, 12, 30), date(2027, 1, 31)))
    closed = draw(st.one_of(st.just([]), st.lists(some_date, max_size=6)))
    if draw(st.integers(0, 4)) == 0:  # 24x7: counted as instants, or day by day when days are closed
        return WorkingCalendar(time_zone=zone, always_open=True, closed_dates=closed)
    return WorkingCalendar(time_zone=zone, hours=draw(weekly_hours(zone)), closed_dates=closed)


def weekly_minutes(cal: WorkingCalendar) -> int:
    if cal.always_open:
        return WEEK_MIN
    return sum(e - s for intervals in cal.hours.values() for s, e in map(parse_interval, intervals))


@st.composite
def instants(draw: st.DrawFn, cal: WorkingCalendar) -> datetime:
    """Anywhere in 2026, more often within two days of the calendar's DST changes, sometimes exactly
    where a working period starts or ends; given in UTC or in the calendar's own zone."""
    kind = draw(st.sampled_from(["year", "change", "change", "boundary"]))
    if kind == "year":
        t = JAN1 + timedelta(microseconds=draw(st.integers(0, YEAR_US - 1)))
    else:
        day = draw(st.sampled_from(CHANGES[cal.time_zone] or DST_DAYS))
        midnight = datetime.combine(day, time(0), ZoneInfo(cal.time_zone)).astimezone(UTC)
        t = midnight + timedelta(microseconds=draw(st.integers(-2 * 86_400 * 10**6, 2 * 86_400 * 10**6)))
    if kind == "boundary":
        a, b = next(cal.periods(t))
        t = draw(st.sampled_from([a, b]))
    if draw(st.booleans()):
        t = t.astimezone(ZoneInfo(cal.time_zone))
    return t


def durations(cal: WorkingCalendar, parts: int = 1) -> st.SearchStrategy[timedelta]:
    """From a microsecond up to two weeks of working time, capped at (6 / parts) weeks' worth of this
    calendar's hours so a sparse calendar is not searched for years."""
    cap = max(1, weekly_minutes(cal) * 60 * 10**6 * 6 // parts)
    raw = st.one_of(
        st.integers(1, 10**6),
        st.integers(10**6, 86_400 * 10**6),
        st.integers(86_400 * 10**6, 14 * 86_400 * 10**6),
        st.sampled_from([1, 60 * 10**6, 3600 * 10**6]),
    )
    return raw.map(lambda us: timedelta(microseconds=1 + (us - 1) % cap))


def describe(cal: WorkingCalendar) -> None:
    note(f"calendar: {cal.model_dump_json(exclude_defaults=True)}")


@SETTINGS
@given(st.data())
def test_add_is_additive_and_business_between_inverts_it(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    describe(cal)
    start = data.draw(instants(cal), label="start")
    d1 = data.draw(durations(cal, parts=2), label="d1")
    d2 = data.draw(durations(cal, parts=2), label="d2")
    mid = cal.add(start, d1)
    due = cal.add(start, d1 + d2)
    assert utc(cal.add(mid, d2)) == utc(due)
    assert utc(cal.add(mid.astimezone(ZoneInfo(cal.time_zone)), d2)) == utc(due)
    assert cal.business_between(start, mid) == d1
    assert cal.business_between(start, due) == d1 + d2
    assert cal.business_between(mid, due) == d2
    # Working time never exceeds the real time it takes.
    assert due.astimezone(UTC) - start.astimezone(UTC) >= d1 + d2


@SETTINGS
@given(st.data())
def test_a_due_instant_ends_working_time(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    describe(cal)
    start = data.draw(instants(cal), label="start")
    d = data.draw(durations(cal), label="d")
    due = cal.add(start, d)
    assert due > start
    assert cal.is_open(due - MICRO)
    assert cal.business_between(due - MICRO, due) == MICRO
    # One microsecond less of work is due no later than one microsecond earlier (earlier still when
    # `due - 1µs` opens a period: `add` answers the end of the one before), and exactly 1µs of work
    # before `due`. (For d of 1µs that is zero, due at `start` itself, open or not.)
    if d > MICRO:
        earlier = cal.add(start, d - MICRO)
        assert utc(earlier) <= utc(due) - MICRO
        assert cal.business_between(earlier, due) == MICRO


@SETTINGS
@given(st.data())
def test_pausing_moves_the_due_instant_by_the_working_time_paused(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    describe(cal)
    start = data.draw(instants(cal), label="start")
    d = data.draw(durations(cal), label="d")
    clock = start_clock(cal, start, d)
    old_due = clock.due_at
    span = utc(old_due) - utc(start)
    pause_at = utc(start) + data.draw(st.integers(0, span // MICRO - 1), label="pause after, µs") * MICRO
    wait = data.draw(st.one_of(st.just(timedelta(0)), durations(cal)), label="paused for")
    resume_at = pause_at + wait
    pause_clock(clock, cal, pause_at)
    assert clock.remaining == cal.business_between(pause_at, old_due) > timedelta(0)
    covered = resume_clock(clock, cal, resume_at)
    new_due = clock.due_at
    assert covered == cal.business_between(pause_at, resume_at)
    assert cal.business_between(old_due, new_due) == covered
    assert cal.business_between(start, new_due) - covered == d
    assert new_due >= old_due and cal.is_open(new_due - MICRO)


@SETTINGS
@given(st.data())
def test_next_open_is_the_first_working_instant(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    describe(cal)
    t = data.draw(instants(cal), label="t")
    opens = cal.next_open(t)
    assert opens >= t
    assert cal.is_open(opens)
    assert cal.business_between(t, opens) == timedelta(0)
    # Compared in UTC: by PEP 495 a time in a fall-back hour is never == to a time in another zone.
    is_now = utc(opens) == utc(t)
    assert cal.is_open(t) == is_now == (cal.business_between(t, utc(t) + MICRO) == MICRO)
    # Periods come in order, never overlap, and are never empty.
    periods = first_periods(cal, t, 12)
    assert utc(periods[0][0]) == utc(opens)
    for (a1, b1), (a2, b2) in pairwise(periods):
        assert a1 < b1 <= a2 < b2


@SETTINGS
@given(st.data())
def test_business_between_adds_up_over_a_split(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    describe(cal)
    a = data.draw(instants(cal), label="a")
    b = a.astimezone(UTC) + data.draw(durations(cal), label="a..b")  # real time, not wall-clock arithmetic
    c = b + data.draw(durations(cal), label="b..c")
    assert cal.business_between(a, c) == cal.business_between(a, b) + cal.business_between(b, c)
    assert cal.business_between(a, c) <= c.astimezone(UTC) - a.astimezone(UTC)
