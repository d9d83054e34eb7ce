"""The escalation pattern report: what a manager learns across the cases opened in a time range, computed in
DuckDB over the tables of escalation.insight.source.

Every figure counts the cases opened in [since, until) that pass the filters, and their events (a breach in the
range of a case opened before it is not counted). Times are UTC; the hour of week is the UTC hour. Percentiles
interpolate between the two nearest values (DuckDB's quantile_cont). Money is summed as given, whatever the
currency. No customer id and no free text reaches the report: its dimensions are codes, tiers, rep ids and the
themes' top terms.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb
from pydantic import BaseModel, Field

from escalation.domain.bands import VALUE_BANDS
from escalation.domain.models import Channel, Severity, Tier, parse_duration
from escalation.insight.source import TIERS

DEFAULT_SPAN = timedelta(days=30)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,39}")
# A category as a case may carry it (escalation.domain.models.Identifier): a narrower check would leave some
# categories impossible to report on.
CATEGORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
MIN_CASES = 5  # a category or root cause needs this many cases to be ranked (one case at 100% tops nothing)
MAX_ROWS = 25  # rows per ranking and reps listed
MAX_THEMES = 20
THEME_DOCS = 10_000  # the most recent cases of the range whose text is grouped: seconds, not minutes
TOP_REASONS = 12


# The themes' libraries take seconds to import (more where no bytecode is cached): a report that finds themes
# starts importing them while DuckDB reads the events (see import_theme_libraries).
THEME_LIBRARIES = ("escalation.insight.themes",)


def import_theme_libraries() -> threading.Thread:
    """Import the themes' libraries in a background thread; the themes' own import waits for it if still running.
    A library that cannot be imported is reported there, not here."""

    def load() -> None:
        for name in THEME_LIBRARIES:
            try:
                importlib.import_module(name)
            except ImportError:
                return

    thread = threading.Thread(target=load, name="import-theme-libraries", daemon=True)
    thread.start()
    return thread


class ReportInputError(ValueError):
    """A range, filter or bound the report cannot use; the message names the option."""


# ----- the inputs


class Filters(BaseModel):
    category: str | None = None
    channel: str | None = None
    tier: str | None = None  # highest tier reached
    severity: str | None = None


class Period(BaseModel):
    since: datetime
    until: datetime


def parse_when(value: str, option: str, now: datetime) -> datetime:
    """An ISO date (midnight UTC), an ISO datetime (UTC unless it says otherwise) or a duration before `now`
    ('7d', '24h', '2w')."""
    text = value.strip()
    if not text or len(text) > 40:
        raise ReportInputError(f"{option}: give an ISO date, datetime or a duration such as 7d or 24h")
    if text[0].isdigit() and not text[-1].isdigit() and "-" not in text and ":" not in text:
        try:
            span = parse_duration(text)
        except ValueError as err:
            raise ReportInputError(f"{option}: {str(err).removeprefix('Value error, ')}") from None
        if isinstance(span, timedelta):
            return now - span
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ReportInputError(
            f"{option}: '{text}' is not an ISO date (2026-11-01), datetime (2026-11-01T08:00Z) or duration (7d, 24h)"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def period(since: str | None, until: str | None, now: datetime) -> Period:
    end = parse_when(until, "--until", now) if until else now
    start = parse_when(since, "--since", end if until else now) if since else end - DEFAULT_SPAN
    if start >= end:
        raise ReportInputError(f"--since: must be before --until (got {start.isoformat()} >= {end.isoformat()})")
    return Period(since=start, until=end)


def filters(category: str | None, channel: str | None, tier: str | None, severity: str | None) -> Filters:
    """Filter values checked: identifiers, and the known values for channel, tier and severity."""
    known = {
        "--channel": [c.value for c in Channel],
        "--tier": [t.value for t in Tier],
        "--severity": [s.value for s in Severity],
    }
    for option, value in (("--category", category), ("--channel", channel), ("--tier", tier), ("--severity", severity)):
        if value is None:
            continue
        if option == "--category":
            if not CATEGORY.fullmatch(value):
                raise ReportInputError(
                    f"{option}: '{value[:40]}' is not a category (letters, digits, '.', '_', ':', '-'; at most 100)"
                )
        elif not IDENTIFIER.fullmatch(value):
            raise ReportInputError(f"{option}: '{value[:40]}' is not an identifier (a-z, 0-9, _; at most 40)")
        if option in known and value not in known[option]:
            raise ReportInputError(f"{option}: '{value}' is not one of {', '.join(known[option])}")
    return Filters(category=category, channel=channel, tier=tier, severity=severity)


# ----- the result


class Headline(BaseModel):
    cases: int
    events: int
    escalated: int
    escalation_rate: float | None
    resolved: int
    first_contact_resolved: int
    first_contact_resolution_rate: float | None  # of the resolved cases
    reopened: int
    breaches: int
    granted: Decimal
    skipped_lines: int = 0  # lines of the source that were not an event (torn by a crash, or stray), left out


class TierCount(BaseModel):
    tier: str
    cases: int
    share: float


class ReasonCount(BaseModel):
    group: str  # the category or channel
    reason: str
    escalations: int


class BreachCount(BaseModel):
    tier: str
    clock: str
    breaches: int


class Timing(BaseModel):
    tier: str
    acknowledged: int  # acknowledgements at this tier
    ack_p50_minutes: float | None
    ack_p90_minutes: float | None
    resolved: int  # cases whose highest tier is this one, resolved
    resolve_p50_hours: float | None
    resolve_p90_hours: float | None


class Spend(BaseModel):
    group: str  # the tier that made the offers, or the customer-value band
    cases: int
    offers: int
    granted_cases: int
    compensation: Decimal
    goodwill: Decimal
    granted: Decimal
    customer_value: Decimal | None  # summed over the group's cases (per band only)
    share_of_value: float | None  # granted / customer_value


class FollowUps(BaseModel):
    cases_followed_up: int
    reopened: int
    reopen_rate: float | None
    answers: int
    fixed: int
    satisfaction: float | None  # share of answers that said fixed


class Rep(BaseModel):
    rep: str
    resolved: int
    resolved_without_escalation: int
    acknowledged: int
    ack_p50_minutes: float | None
    offers_made: int
    offers_accepted: int


class Loophole(BaseModel):
    name: str
    cases: int
    escalated: int
    escalation_rate: float
    resolved: int
    kb_missing: int
    kb_missing_rate: float | None  # of the resolved


class Loopholes(BaseModel):
    min_cases: int
    categories_by_escalation: list[Loophole]
    root_causes_by_escalation: list[Loophole]
    categories_without_kb: list[Loophole]
    root_causes_without_kb: list[Loophole]


class ThemeRow(BaseModel):
    name: str
    terms: list[str]
    size: int
    escalation_rate: float
    examples: list[str]  # case ids


class Report(BaseModel):
    generated_at: datetime
    period: Period
    filters: Filters
    time_zone: str = "UTC"
    headline: Headline
    highest_tier: list[TierCount]
    reasons_by_category: list[ReasonCount]
    reasons_by_channel: list[ReasonCount]
    breaches_by_tier: list[BreachCount]
    # 7 rows (Monday first) of 24 hours (UTC).
    breaches_by_hour_of_week: list[list[int]] = Field(min_length=7, max_length=7)
    timings: list[Timing]
    spend_by_tier: list[Spend]
    spend_by_band: list[Spend]
    followups: FollowUps
    reps: list[Rep]
    loopholes: Loopholes
    themes: list[ThemeRow] | None = None  # None: not asked for, or no free text to group
    themes_note: str | None = None


# ----- the queries


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    return _rows(con, sql)[0]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _select(con: duckdb.DuckDBPyConnection, when: Period, flt: Filters) -> None:
    """`sel` (the cases in the report, a table), `sel_events` (their events, a view) and `ack_times` (each tier's
    time to acknowledge), temporary; the schema `selected` names them `cases` and `events` for the themes."""
    where = ["opened_at >= ?", "opened_at < ?"]
    params: list[Any] = [when.since, when.until]
    for column, value in (
        ("category", flt.category),
        ("channel", flt.channel),
        ("highest_tier", flt.tier),
        ("severity", flt.severity),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    con.execute("DROP VIEW IF EXISTS sel_events; DROP TABLE IF EXISTS sel")
    con.execute(f"CREATE TEMP TABLE sel AS SELECT * FROM cases WHERE {' AND '.join(where)}", params)
    # A view: each query filters the events by type first, then keeps those of the selected cases.
    con.execute(
        "CREATE OR REPLACE TEMP VIEW sel_events AS SELECT e.* FROM main.events e SEMI JOIN temp.main.sel USING (opening)"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE ack_times AS {ACKS}")
    # The same names over the selection, for code that asks `events` and `cases` (the themes, see _themes): the
    # events that carry free text or say that the case climbed, of the selected cases.
    con.execute("CREATE SCHEMA IF NOT EXISTS selected")
    con.execute(
        "CREATE OR REPLACE VIEW selected.events AS SELECT * FROM temp.main.sel_events WHERE type IN "
        "('escalation.opened', 'escalation.note', 'escalation.resolved', 'escalation.escalated', "
        "'escalation.forgotten')"
    )
    con.execute("CREATE OR REPLACE VIEW selected.cases AS SELECT * FROM temp.main.sel")


def _headline(con: duckdb.DuckDBPyConnection) -> Headline:
    row = _one(
        con,
        """SELECT count(*) AS cases, count(*) FILTER (escalated) AS escalated,
                  count(*) FILTER (resolved_at IS NOT NULL) AS resolved,
                  count(*) FILTER (first_contact_resolved) AS fcr, count(*) FILTER (reopens > 0) AS reopened,
                  coalesce(sum(breaches), 0) AS breaches, coalesce(sum(granted), 0) AS granted,
                  (SELECT count(*) FROM sel_events) AS events, (SELECT max(lines) FROM skipped) AS skipped
           FROM sel""",
    )
    return Headline(
        cases=row["cases"],
        events=row["events"],
        escalated=row["escalated"],
        escalation_rate=_rate(row["escalated"], row["cases"]),
        resolved=row["resolved"],
        first_contact_resolved=row["fcr"],
        first_contact_resolution_rate=_rate(row["fcr"], row["resolved"]),
        reopened=row["reopened"],
        breaches=int(row["breaches"]),
        granted=Decimal(row["granted"]),
        skipped_lines=row["skipped"] or 0,
    )


def _highest_tier(con: duckdb.DuckDBPyConnection, total: int) -> list[TierCount]:
    counts = {r["highest_tier"]: r["n"] for r in _rows(con, "SELECT highest_tier, count(*) AS n FROM sel GROUP BY 1")}
    return [
        TierCount(tier=t, cases=counts.get(t, 0), share=(counts.get(t, 0) / total) if total else 0.0) for t in TIERS
    ]


def _reasons(con: duckdb.DuckDBPyConnection, column: str) -> list[ReasonCount]:
    rows = _rows(
        con,
        f"""SELECT coalesce(c.{column}, 'unknown') AS "group", coalesce(e.detail->>'reason', 'unknown') AS reason,
                   count(*) AS escalations
            FROM sel_events e JOIN sel c USING (opening)
            WHERE e.type = 'escalation.escalated'
            GROUP BY ALL ORDER BY escalations DESC, "group", reason""",
    )
    return [ReasonCount(**r) for r in rows]


def _breaches(con: duckdb.DuckDBPyConnection) -> tuple[list[BreachCount], list[list[int]]]:
    by_tier = _rows(
        con,
        """SELECT coalesce(tier, 'unknown') AS tier, coalesce(detail->>'clock', 'unknown') AS clock, count(*) AS breaches
           FROM sel_events WHERE type = 'escalation.breached'
           GROUP BY ALL""",
    )
    rank = {t: n for n, t in enumerate(TIERS)}
    by_tier.sort(key=lambda r: (rank.get(r["tier"], len(TIERS)), r["tier"], r["clock"]))
    grid = [[0] * 24 for _ in DAYS]
    for r in _rows(
        con,
        """SELECT isodow("at") AS dow, hour("at") AS hour, count(*) AS n
           FROM sel_events WHERE type = 'escalation.breached' GROUP BY ALL""",
    ):
        grid[r["dow"] - 1][r["hour"]] = r["n"]
    return [BreachCount(**r) for r in by_tier], grid


# A tier's acknowledge clock starts when the case comes to the tier: opened there, escalated or de-escalated to
# it, or reopened at it. Each stint's first acknowledgement counts once.
ACKS = """
    WITH starts AS (
        SELECT opening, seq, "at" AS started_at FROM sel_events
        WHERE type IN ('escalation.opened', 'escalation.escalated', 'escalation.de_escalated', 'escalation.reopened')
    ), acks AS (
        SELECT opening, seq, "at", tier, actor FROM sel_events WHERE type = 'escalation.acknowledged'
    )
    SELECT a.tier, a.actor, epoch(a."at" - s.started_at) / 60.0 AS minutes
    FROM acks a ASOF JOIN starts s ON a.opening = s.opening AND a.seq >= s.seq
    QUALIFY row_number() OVER (PARTITION BY a.opening, s.seq ORDER BY a.seq) = 1
"""


def _timings(con: duckdb.DuckDBPyConnection) -> list[Timing]:
    acks = {
        r["tier"]: r
        for r in _rows(
            con,
            """SELECT tier, count(*) AS n, quantile_cont(minutes, 0.5) AS p50, quantile_cont(minutes, 0.9) AS p90
                FROM ack_times GROUP BY tier""",
        )
    }
    resolves = {
        r["tier"]: r
        for r in _rows(
            con,
            """SELECT highest_tier AS tier, count(*) AS n,
                      quantile_cont(epoch(first_resolved_at - opened_at) / 3600.0, 0.5) AS p50,
                      quantile_cont(epoch(first_resolved_at - opened_at) / 3600.0, 0.9) AS p90
               FROM sel WHERE first_resolved_at IS NOT NULL GROUP BY highest_tier""",
        )
    }
    empty: dict[str, Any] = {"n": 0, "p50": None, "p90": None}
    return [
        Timing(
            tier=t,
            acknowledged=acks.get(t, empty)["n"],
            ack_p50_minutes=acks.get(t, empty)["p50"],
            ack_p90_minutes=acks.get(t, empty)["p90"],
            resolved=resolves.get(t, empty)["n"],
            resolve_p50_hours=resolves.get(t, empty)["p50"],
            resolve_p90_hours=resolves.get(t, empty)["p90"],
        )
        for t in TIERS
    ]


def _spend(con: duckdb.DuckDBPyConnection) -> tuple[list[Spend], list[Spend]]:
    zero = Decimal(0)
    by_tier = {
        r["grp"]: r
        for r in _rows(
            con,
            """SELECT o.tier AS grp, count(DISTINCT o.opening) AS cases, count(*) AS offers,
                      count(DISTINCT o.opening) FILTER (o.accepted) AS granted_cases,
                      coalesce(sum(o.amount) FILTER (o.accepted AND o.kind = 'compensation'), 0) AS compensation,
                      coalesce(sum(o.amount) FILTER (o.accepted AND o.kind = 'goodwill'), 0) AS goodwill,
                      coalesce(sum(o.amount) FILTER (o.accepted), 0) AS granted
               FROM offers o SEMI JOIN sel USING (opening) GROUP BY o.tier""",
        )
    }
    tiers = [
        Spend(
            group=t,
            cases=by_tier[t]["cases"] if t in by_tier else 0,
            offers=by_tier[t]["offers"] if t in by_tier else 0,
            granted_cases=by_tier[t]["granted_cases"] if t in by_tier else 0,
            compensation=by_tier[t]["compensation"] if t in by_tier else zero,
            goodwill=by_tier[t]["goodwill"] if t in by_tier else zero,
            granted=by_tier[t]["granted"] if t in by_tier else zero,
            customer_value=None,
            share_of_value=None,
        )
        for t in TIERS
    ]
    bands = []
    for r in _rows(
        con,
        """SELECT coalesce(value_band, 'unknown') AS grp, count(*) AS cases, sum(offers) AS offers,
                  count(*) FILTER (granted > 0) AS granted_cases, sum(granted_compensation) AS compensation,
                  sum(granted_goodwill) AS goodwill, sum(granted) AS granted, sum(customer_value) AS customer_value
           FROM sel GROUP BY 1""",
    ):
        value = r["customer_value"]
        bands.append(
            Spend(
                group=r["grp"],
                cases=r["cases"],
                offers=int(r["offers"]),
                granted_cases=r["granted_cases"],
                compensation=r["compensation"],
                goodwill=r["goodwill"],
                granted=r["granted"],
                customer_value=value,
                share_of_value=float(r["granted"] / value) if value else None,
            )
        )
    order = {band: n for n, (_, band) in enumerate(VALUE_BANDS)}
    bands.sort(key=lambda b: (order.get(b.group, len(order)), b.group))
    return tiers, bands


def _followups(con: duckdb.DuckDBPyConnection) -> FollowUps:
    cases = _one(con, "SELECT count(*) AS n, count(*) FILTER (reopens > 0) AS reopened FROM sel WHERE followups > 0")
    answers = _one(
        con,
        """SELECT count(*) AS n, count(*) FILTER (detail->>'answer' = 'fixed') AS fixed
           FROM sel_events WHERE type = 'escalation.followup_answered'""",
    )
    return FollowUps(
        cases_followed_up=cases["n"],
        reopened=cases["reopened"],
        reopen_rate=_rate(cases["reopened"], cases["n"]),
        answers=answers["n"],
        fixed=answers["fixed"],
        satisfaction=_rate(answers["fixed"], answers["n"]),
    )


def _reps(con: duckdb.DuckDBPyConnection) -> list[Rep]:
    rows = _rows(
        con,
        f"""WITH resolved AS (
                SELECT resolved_by AS rep, count(*) AS resolved, count(*) FILTER (NOT escalated) AS without
                FROM sel WHERE resolved_by IS NOT NULL GROUP BY 1
            ), acked AS (
                SELECT actor AS rep, count(*) AS acknowledged, median(minutes) AS p50 FROM ack_times GROUP BY 1
            ), made AS (
                SELECT actor AS rep, count(*) AS offers, count(*) FILTER (accepted) AS accepted
                FROM offers SEMI JOIN sel USING (opening) GROUP BY 1
            )
            SELECT rep, coalesce(r.resolved, 0) AS resolved, coalesce(r.without, 0) AS without,
                   coalesce(a.acknowledged, 0) AS acknowledged, a.p50,
                   coalesce(m.offers, 0) AS offers, coalesce(m.accepted, 0) AS accepted
            FROM resolved r FULL JOIN acked a USING (rep) FULL JOIN made m USING (rep)
            ORDER BY without DESC, resolved DESC, acknowledged DESC, rep LIMIT {MAX_ROWS}""",
    )
    return [
        Rep(
            rep=r["rep"],
            resolved=r["resolved"],
            resolved_without_escalation=r["without"],
            acknowledged=r["acknowledged"],
            ack_p50_minutes=r["p50"],
            offers_made=r["offers"],
            offers_accepted=r["accepted"],
        )
        for r in rows
    ]


def _ranked(con: duckdb.DuckDBPyConnection, column: str, order: str, min_cases: int) -> list[Loophole]:
    rows = _rows(
        con,
        f"""SELECT {column} AS name, count(*) AS cases, count(*) FILTER (escalated) AS escalated,
                   count(*) FILTER (escalated) / count(*) AS escalation_rate,
                   count(*) FILTER (resolved_at IS NOT NULL) AS resolved,
                   count(*) FILTER (kb_missing) AS kb_missing,
                   count(*) FILTER (kb_missing) / nullif(count(*) FILTER (resolved_at IS NOT NULL), 0) AS kb_missing_rate
            FROM sel WHERE {column} IS NOT NULL GROUP BY 1 HAVING count(*) >= ?
            ORDER BY {order}, name LIMIT {MAX_ROWS}""",
        [min_cases],
    )
    return [Loophole(**r) for r in rows]


def _loopholes(con: duckdb.DuckDBPyConnection, min_cases: int) -> Loopholes:
    by_rate = "escalation_rate DESC, escalated DESC"
    by_kb = "kb_missing DESC, kb_missing_rate DESC"
    return Loopholes(
        min_cases=min_cases,
        categories_by_escalation=_ranked(con, "category", by_rate, min_cases),
        root_causes_by_escalation=_ranked(con, "root_cause", by_rate, min_cases),
        categories_without_kb=[x for x in _ranked(con, "category", by_kb, min_cases) if x.kb_missing],
        root_causes_without_kb=[x for x in _ranked(con, "root_cause", by_kb, min_cases) if x.kb_missing],
    )


def _themes(con: duckdb.DuckDBPyConnection, k: int, seed: int) -> tuple[list[ThemeRow] | None, str | None]:
    from escalation.insight import themes as found  # scikit-learn, for the themes only

    # theme_docs reads `events`: with the selection's schema first, that is the selection's events.
    con.execute("SET search_path = 'selected,main'")
    try:
        docs = found.theme_docs(con, limit=THEME_DOCS)
    finally:
        con.execute("RESET search_path")
    if not docs:
        return None, "no free text to group in this range"
    rows = found.find_themes(docs, themes=k, seed=seed)
    cases = con.execute("SELECT count(*) FROM sel").fetchone()
    note = (
        f"over the {len(docs):,} latest of the {cases[0]:,} cases"
        if len(docs) >= THEME_DOCS and cases and cases[0] > len(docs)
        else None
    )
    return [
        ThemeRow(
            name=t.name, terms=list(t.terms), size=t.size, escalation_rate=t.escalation_rate, examples=list(t.examples)
        )
        for t in rows
    ], note


def build(
    con: duckdb.DuckDBPyConnection,
    when: Period,
    flt: Filters,
    *,
    min_cases: int = MIN_CASES,
    themes: int = 8,
    seed: int = 7,
    now: datetime | None = None,
) -> Report:
    """The report over a connection from escalation.insight.source.connect. `themes=0` leaves themes out."""
    if not 1 <= min_cases <= 100_000:
        raise ReportInputError(f"--min-cases: must be between 1 and 100000 (got {min_cases})")
    if not 0 <= themes <= MAX_THEMES:
        raise ReportInputError(f"--themes: must be between 0 and {MAX_THEMES} (got {themes})")
    _select(con, when, flt)
    headline = _headline(con)
    by_tier, grid = _breaches(con)
    spend_tier, spend_band = _spend(con)
    found, note = _themes(con, themes, seed) if themes and headline.cases else (None, None)
    return Report(
        generated_at=now or datetime.now(UTC),
        period=when,
        filters=flt,
        headline=headline,
        highest_tier=_highest_tier(con, headline.cases),
        reasons_by_category=_reasons(con, "category"),
        reasons_by_channel=_reasons(con, "channel"),
        breaches_by_tier=by_tier,
        breaches_by_hour_of_week=grid,
        timings=_timings(con),
        spend_by_tier=spend_tier,
        spend_by_band=spend_band,
        followups=_followups(con),
        reps=_reps(con),
        loopholes=_loopholes(con, min_cases),
        themes=found,
        themes_note=note,
    )
