"""The wallboard's figures, read from Temporal visibility (and the roster, when it can be read): open cases per
tier and status, what breaches next, cases nobody owns, each rep's load. A plain model, so the terminal view
(`escalations board`), the web page (escalation.board_web) and anything else can show it; no personal data (no
customer, no free text).

Breaches and escalations in the last hour come from the workers' metrics, not visibility (it keeps each case's
current search attributes, not when it breached or climbed): `MetricsWindow` reads the counters every time the
board is drawn and keeps an hour of readings, so it knows how much they grew over the last hour."""

from __future__ import annotations

import asyncio
import re
from collections import Counter, deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
from pydantic import BaseModel

from escalation import metrics
from escalation.client import EscalationClient
from escalation.domain.formatting import duration
from escalation.domain.models import Severity, Status, Tier
from escalation.domain.roster import RosterError, load_roster
from escalation.search import CaseFilter, CaseSummary

# The statuses a running case shows in visibility (a closed case has completed).
BOARD_STATUSES = (Status.OPEN, Status.RESOLVED)


CASE_COLUMNS = ("case", "tier", "severity", "owner", "SLA due")


def countdown(at: datetime | None, now: datetime) -> str:
    """'in 4m12s', '3m late', or '-'."""
    if at is None:
        return "-"
    return f"in {duration(at - now)}" if at > now else f"{duration(now - at)} late"


class BoardCase(BaseModel):
    """A case as the board shows it: ids, tier, status, owner id, severity and its next SLA instant."""

    case_id: str
    tier: Tier | None
    status: Status | None
    owner: str | None
    severity: Severity | None
    sla_due_at: datetime | None
    # "unowned" / "owned": the target at sla_due_at was missed and is still owed.
    sla_breach: str | None = None

    def row(self, now: datetime) -> tuple[str, str, str, str, str]:
        """The case as a board row (CASE_COLUMNS), in the terminal and on the web page alike."""
        due = countdown(self.sla_due_at, now)
        if self.sla_breach is not None:
            due += ", BREACHED" + (", unowned" if self.sla_breach == "unowned" else "")
        tier, severity = self.tier.value if self.tier else "-", self.severity.value if self.severity else "-"
        return self.case_id, tier, severity, self.owner or "-", due

    @classmethod
    def of(cls, case: CaseSummary) -> BoardCase:
        return cls(
            case_id=case.case_id,
            tier=case.tier,
            status=case.status,
            owner=case.owner,
            severity=case.severity,
            sla_due_at=case.sla_due_at,
            sla_breach=case.sla_breach,
        )


class RepLoad(BaseModel):
    rep_id: str
    open_cases: int  # open cases the rep owns (what routing counts as their load)
    tier: Tier | None = None  # from the roster
    max_cases: int | None = None  # from the roster; None: no cap
    # From the roster: "working", "off shift" (their calendar is closed), "inactive"; with "full" when they
    # hold max_cases or more. None: not in the roster (or the roster could not be read).
    state: str | None = None


class LastHour(BaseModel):
    """SLA breaches and escalations counted by the workers' metrics over the last hour (or since `since`, when
    the board has read them for less than an hour)."""

    breaches: int
    escalations: int
    since: datetime  # the reading the counts are from: an hour ago, or the board's first reading
    full_hour: bool
    unreachable: list[str] = []  # metrics addresses that did not answer this time (their counts are missing)


class Board(BaseModel):
    at: datetime
    # Open and resolved (in follow-up) running cases per tier, every tier and status listed (0 included).
    counts: dict[Tier, dict[Status, int]]
    running: int  # every running case (including any still opening, which has no tier yet)
    next_breaches: list[BoardCase]  # soonest SLA instant first; a missed one (past) first of all
    unowned: list[BoardCase]  # open cases nobody owns, soonest SLA instant first
    reps: list[RepLoad]  # highest load first
    # How many running cases the lists below the counts were taken from, and whether that was all of them.
    listed: int
    complete: bool
    roster_problem: str | None = None  # why the roster could not be read (rep states are then missing)
    # From the workers' metrics (MetricsWindow); None when the board reads no metrics.
    last_hour: LastHour | None = None


async def gather_board(
    esc: EscalationClient,
    now: datetime,
    *,
    roster_path: Path | None = None,
    breaches: int = 10,
    limit: int = 2000,
) -> Board:
    """One look at visibility: counts per tier and status, the next `breaches` SLA instants, unowned cases and
    each rep's load (from at most `limit` running cases), with the roster's reps and their state."""

    async def count(tier: Tier, status: Status) -> tuple[Tier, Status, int]:
        return tier, status, await esc.count_cases(CaseFilter(tier=tier, status=status))

    found = await esc.list_cases(CaseFilter(), limit=limit)
    running = await esc.count_cases(CaseFilter())
    counted = await asyncio.gather(*(count(t, s) for t in Tier for s in BOARD_STATUSES))
    counts = {t: {s: 0 for s in BOARD_STATUSES} for t in Tier}
    for tier, status, n in counted:
        counts[tier][status] = n
    cases = [BoardCase.of(c) for c in found]
    due = sorted((c for c in cases if c.sla_due_at is not None), key=_urgency)
    unowned = sorted((c for c in cases if c.status == Status.OPEN and c.owner is None), key=_urgency)
    load = Counter(c.owner for c in cases if c.status == Status.OPEN and c.owner is not None)

    reps: dict[str, RepLoad] = {rep_id: RepLoad(rep_id=rep_id, open_cases=n) for rep_id, n in load.items()}
    problem = None
    if roster_path is not None:
        try:
            roster = load_roster(roster_path)
        except RosterError as err:
            problem = err.summary
        else:
            for rep in roster.reps:
                held = load.get(rep.id, 0)
                state = (
                    "inactive" if not rep.active else "working" if roster.calendar_of(rep).is_open(now) else "off shift"
                )
                if rep.max_cases is not None and held >= rep.max_cases:
                    state += ", full"
                reps[rep.id] = RepLoad(
                    rep_id=rep.id, open_cases=held, tier=rep.tier, max_cases=rep.max_cases, state=state
                )
    return Board(
        at=now,
        counts=counts,
        running=running,
        next_breaches=due[:breaches],
        unowned=unowned,
        reps=sorted(reps.values(), key=lambda r: (-r.open_cases, r.rep_id)),
        listed=len(cases),
        complete=len(cases) >= running,
        roster_problem=problem,
    )


def _urgency(case: BoardCase) -> tuple[bool, datetime, str]:
    """A missed target nobody owns first, then by SLA instant (a missed one is in the past), then by id."""
    at = case.sla_due_at or datetime.max.replace(tzinfo=UTC)
    return case.sla_breach != "unowned", at, case.case_id


# ----- breaches and escalations in the last hour, from the workers' metrics

HOUR = timedelta(hours=1)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)")
_COUNTED = {metrics.SLA_BREACHES: "breaches", metrics.ESCALATIONS: "escalations"}


def metrics_url(address: str) -> str:
    """The metrics page of a worker's ESCALATIONS_METRICS_ADDRESS (host:port), or a URL as given."""
    return address if "://" in address else f"http://{address}/metrics"


def counted(text: str) -> dict[str, float]:
    """The breach and escalation counters in a Prometheus text page, each summed over its labels."""
    totals = dict.fromkeys(_COUNTED.values(), 0.0)
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None:
            continue
        name = found.group(1).removesuffix("_total")
        if name in _COUNTED:
            try:
                totals[_COUNTED[name]] += float(found.group(2))
            except ValueError:
                continue
    return totals


class MetricsWindow:
    """The growth of the breach and escalation counters of one or more workers over the last hour: each call to
    `sample` reads every worker's metrics page and keeps an hour of readings. A counter that went down (a worker
    restarted) counts from zero again, as Prometheus' increase() does."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 3.0) -> None:
        self.urls = list(dict.fromkeys(urls))
        self.timeout = timeout
        # Per metrics page, its readings (when, counters), oldest first: the hour's, and the last one before it.
        self._readings: dict[str, deque[tuple[datetime, dict[str, float]]]] = {u: deque() for u in self.urls}

    async def _read(self, client: httpx.AsyncClient, url: str) -> dict[str, float] | None:
        try:
            answer = await client.get(url)
            answer.raise_for_status()
        except httpx.HTTPError:
            return None
        return counted(answer.text)

    async def sample(self, now: datetime) -> LastHour | None:
        """Read every page now; None when the board reads no metrics."""
        if not self.urls:
            return None
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            read = await asyncio.gather(*(self._read(client, url) for url in self.urls))
        for url, counters in zip(self.urls, read, strict=True):
            if counters is not None:
                self.record(url, now, counters)
        return self.last_hour(now, unreachable=[u for u, c in zip(self.urls, read, strict=True) if c is None])

    def record(self, url: str, at: datetime, counters: dict[str, float]) -> None:
        readings = self._readings.setdefault(url, deque())
        readings.append((at, counters))
        while len(readings) > 1 and readings[1][0] <= at - HOUR:  # one reading before the hour stays: the baseline
            readings.popleft()

    def last_hour(self, now: datetime, unreachable: Sequence[str] = ()) -> LastHour:
        grown = dict.fromkeys(_COUNTED.values(), 0.0)
        starts: list[datetime] = []
        full = True
        for readings in self._readings.values():
            kept = [r for r in readings if r[0] <= now]
            before = [r for r in kept if r[0] <= now - HOUR]
            window = before[-1:] + [r for r in kept if r[0] > now - HOUR]
            if not window:
                continue
            full = full and bool(before)
            starts.append(window[0][0])
            for (_, previous), (_, current) in pairwise(window):
                for key, value in current.items():
                    was = previous.get(key, 0.0)
                    grown[key] += value - was if value >= was else value
        return LastHour(
            breaches=round(grown["breaches"]),
            escalations=round(grown["escalations"]),
            since=min(starts) if starts else now,
            full_hour=bool(starts) and full,
            unreachable=list(unreachable),
        )


def metrics_window(addresses: Sequence[str] | None, worker_address: str | None) -> MetricsWindow:
    """The window over the metrics pages given (host:port or URLs), else the worker's ESCALATIONS_METRICS_ADDRESS
    when it is set (and not "off"); with neither, a window that reads nothing (the board shows no last hour)."""
    if addresses:
        return MetricsWindow([metrics_url(a) for a in addresses])
    if worker_address and worker_address.strip().lower() != "off":
        return MetricsWindow([metrics_url(worker_address.strip())])
    return MetricsWindow([])
