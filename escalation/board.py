"""The wallboard's figures, read from Temporal visibility (and the roster, when it can be read): open cases per
tier and status, what breaches next, cases nobody owns, each rep's load. A plain model, so the terminal view
(`escalations board`) and anything else can show it; no personal data (no customer, no free text).

Breaches and escalations in the last hour are not here: visibility keeps each case's current search
attributes, not when it breached or climbed (that is in each case's history and in the worker's metrics)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from escalation.client import EscalationClient
from escalation.domain.models import Severity, Status, Tier
from escalation.domain.roster import RosterError, load_roster
from escalation.search import CaseFilter, CaseSummary

# The statuses a running case shows in visibility (a closed case has completed).
BOARD_STATUSES = (Status.OPEN, Status.RESOLVED)


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
