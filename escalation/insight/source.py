"""The events the product emits, as DuckDB tables to ask questions of: `events` (one row per event, deduplicated
on its id, a forgotten case's free text dropped) and `cases` (one row per opening of a case, with what the
report, the themes and the risk model group by). Every query of insight starts from these two.

A source is the events file (JSON lines), a glob of such files, a folder the events receiver writes
(`<dir>/date=YYYY-MM-DD/events.jsonl`), or Parquet (a file, a glob or a folder). Columns are named, not
guessed: an event missing an optional key reads as null, and a key nobody knows is ignored.
"""

from __future__ import annotations

import glob
from pathlib import Path

import duckdb

from escalation.domain.rules.erasure import FREE_TEXT, REASON_CODES

# The ladder's order: the highest tier reached is the highest rank.
TIERS = ("agent", "team_lead", "supervisor", "manager")

# An event's columns and their types. `at` is read as an instant and kept in UTC.
COLUMNS: dict[str, str] = {
    "id": "VARCHAR",
    "type": "VARCHAR",
    "case_id": "VARCHAR",
    "seq": "BIGINT",
    "at": "TIMESTAMPTZ",
    "actor": "VARCHAR",
    "tier": "VARCHAR",
    "status": "VARCHAR",
    "owner": "VARCHAR",
    "via": "VARCHAR",
    "detail": "JSON",
}

# Detail keys a forgotten case loses: the texts someone typed and the customer's details (the opening's summary,
# desired outcome and customer id included). `reason` goes unless it is a code (an escalation's reason).
ERASED = sorted((FREE_TEXT - {"reason"}) | {"summary", "desired_outcome", "customer_id"})
QUOTED = ", ".join(f'"{name}"' for name in COLUMNS)


class SourceProblem(ValueError):
    """The events cannot be read: nothing at the path, no events in it, or a file that is not what it claims."""


def _sql_list(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _patch(with_reason: bool) -> str:
    keys = ERASED + (["reason"] if with_reason else [])
    return "'{" + ",".join(f'"{k}":null' for k in keys) + "}'"


def _tier_rank(expr: str) -> str:
    return f"list_position([{_sql_list(TIERS)}], {expr})"


# How the tables are made, in order: `{read}` is the source as read (see _read). Events: one row per event id (a
# receiver may have seen an event twice: the first copy read wins), with the opening its id names
# (`<workflow id>/<opening>/<seq>`: a case id used again later is another opening) and the tier's rank. A forgotten
# opening's details lose their free text here, so nothing downstream can show it. Duplicates and forgotten cases
# are few: they are fixed in place rather than by copying a million rows again.
EVENTS = [
    f"""CREATE TABLE events AS
        SELECT id, type, case_id, coalesce(nullif(split_part(id, '/', -2), ''), case_id) AS opening, seq, "at", actor, tier,
               {_tier_rank("tier")} AS tier_rank, status, owner, via, detail, false AS forgotten
        FROM ({{read}})""",
    # Lines that are not an event (a line a crash tore, a stray line): counted, then left out.
    """CREATE TABLE skipped AS SELECT count(*) AS lines FROM events WHERE id IS NULL OR type IS NULL""",
    """DELETE FROM events WHERE id IS NULL OR type IS NULL""",
    """DELETE FROM events WHERE rowid IN (
        SELECT rowid FROM events WHERE id IN (SELECT id FROM events GROUP BY id HAVING count(*) > 1)
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY rowid) > 1)""",
    f"""UPDATE events SET forgotten = true,
            detail = CASE WHEN detail IS NULL THEN NULL
                          WHEN detail->>'reason' IN ({_sql_list(sorted(REASON_CODES))})
                              THEN json_merge_patch(detail, {_patch(False)})
                          ELSE json_merge_patch(detail, {_patch(True)}) END
        FROM (SELECT DISTINCT opening FROM events WHERE type = 'escalation.forgotten') f
        WHERE events.opening = f.opening""",
]

# The tables made from `events`, in order.
TABLES: dict[str, str] = {
    # Offers, one row each: who proposed it at which tier, its kind and amount, and whether it was granted.
    "offers": """
        WITH proposed AS (
            SELECT case_id, opening, detail->>'offer_id' AS offer_id, "at", actor, tier, tier_rank,
                   detail->>'kind' AS kind, TRY_CAST(detail->>'amount' AS DECIMAL(18, 2)) AS amount,
                   detail->>'currency' AS currency
            FROM events WHERE type = 'escalation.offer_proposed'
            QUALIFY row_number() OVER (PARTITION BY opening, offer_id ORDER BY seq) = 1
        ), answered AS (
            SELECT case_id, opening, detail->>'offer_id' AS offer_id, type = 'escalation.offer_accepted' AS accepted,
                   TRY_CAST(detail->>'amount' AS DECIMAL(18, 2)) AS amount
            FROM events WHERE type IN ('escalation.offer_accepted', 'escalation.offer_declined')
            QUALIFY row_number() OVER (PARTITION BY opening, offer_id ORDER BY seq DESC) = 1
        )
        SELECT p.case_id, p.opening, p.offer_id, p.at, p.actor, p.tier, p.tier_rank, p.kind, p.currency,
               coalesce(a.amount, p.amount) AS amount, coalesce(a.accepted, false) AS accepted,
               a.offer_id IS NOT NULL AS answered
        FROM proposed p LEFT JOIN answered a USING (opening, offer_id)
    """,
    # One row per opening of a case.
    "cases": f"""
        WITH opened AS (
            SELECT case_id, opening, "at" AS opened_at, tier AS first_tier, tier_rank AS first_rank,
                   detail->>'category' AS category, detail->>'channel' AS channel,
                   detail->>'severity' AS severity, TRY_CAST(detail->>'threat' AS BOOLEAN) AS threat,
                   detail->>'value_band' AS value_band,
                   TRY_CAST(detail->>'customer_value' AS DECIMAL(18, 2)) AS customer_value,
                   detail->>'customer_id' AS customer_id, detail->>'language' AS language,
                   detail->>'sentiment' AS sentiment, TRY_CAST(detail->>'earlier_cases' AS INTEGER) AS earlier_cases,
                   TRY_CAST(detail->>'risk' AS DOUBLE) AS risk, detail->>'policy' AS policy
            FROM events WHERE type = 'escalation.opened'
            QUALIFY row_number() OVER (PARTITION BY opening ORDER BY seq) = 1
        ), counted AS (
            SELECT opening, any_value(case_id) AS case_id,
                   min("at") AS first_at,
                   count(*) FILTER (type = 'escalation.escalated') AS escalations,
                   count(*) FILTER (type = 'escalation.reopened') AS reopens,
                   count(*) FILTER (type = 'escalation.breached') AS breaches,
                   count(*) FILTER (type = 'escalation.followup_sent') AS followups,
                   min("at") FILTER (type = 'escalation.resolved') AS first_resolved_at,
                   max("at") FILTER (type = 'escalation.resolved') AS resolved_at,
                   max("at") FILTER (type = 'escalation.closed') AS closed_at,
                   bool_or(forgotten) AS forgotten
            FROM events GROUP BY opening
        ), detailed AS (
            -- Details read from the few event types that carry them, not from every event.
            SELECT opening,
                   max({_tier_rank("detail->>'to_tier'")}) FILTER (type = 'escalation.escalated') AS escalated_rank,
                   arg_max(detail->>'root_cause', seq) FILTER (type = 'escalation.resolved') AS root_cause,
                   arg_max(coalesce(TRY_CAST(detail->>'kb_missing' AS BOOLEAN), false), seq)
                       FILTER (type = 'escalation.resolved') AS kb_missing,
                   arg_max(detail->>'kb_article', seq) FILTER (type = 'escalation.resolved') AS kb_article,
                   arg_max(actor, seq) FILTER (type = 'escalation.resolved') AS resolved_by,
                   arg_max(tier, seq) FILTER (type = 'escalation.resolved') AS resolved_tier,
                   arg_max(detail->>'outcome', seq) FILTER (type = 'escalation.closed') AS outcome,
                   arg_max(detail->>'answer', seq) FILTER (type = 'escalation.followup_answered') AS followup_answer
            FROM events
            WHERE type IN ('escalation.escalated', 'escalation.resolved', 'escalation.closed',
                           'escalation.followup_answered')
            GROUP BY opening
        ), per_case AS (
            SELECT * FROM counted LEFT JOIN detailed USING (opening)
        ), granted AS (
            SELECT opening,
                   sum(amount) FILTER (accepted) AS granted,
                   sum(amount) FILTER (accepted AND kind = 'compensation') AS granted_compensation,
                   sum(amount) FILTER (accepted AND kind = 'goodwill') AS granted_goodwill,
                   count(*) AS offers
            FROM offers GROUP BY opening
        )
        SELECT p.case_id, p.opening, coalesce(o.opened_at, p.first_at) AS opened_at,
               o.category, o.channel, o.severity, o.threat, o.value_band, o.customer_value,
               CASE WHEN p.forgotten THEN NULL ELSE o.customer_id END AS customer_id,
               o.language, o.sentiment, o.earlier_cases, o.policy, o.first_tier,
               [{_sql_list(TIERS)}][greatest(coalesce(o.first_rank, 1), coalesce(p.escalated_rank, 1))] AS highest_tier,
               greatest(coalesce(o.first_rank, 1), coalesce(p.escalated_rank, 1)) AS highest_rank,
               p.escalations, p.escalations > 0 AS escalated, p.reopens, p.breaches, p.followups,
               coalesce(g.granted, 0) AS granted, coalesce(g.granted_compensation, 0) AS granted_compensation,
               coalesce(g.granted_goodwill, 0) AS granted_goodwill, coalesce(g.offers, 0) AS offers,
               p.first_resolved_at, p.resolved_at, p.resolved_by, p.resolved_tier, p.root_cause, p.kb_missing, p.kb_article,
               p.closed_at, p.outcome,
               p.resolved_at IS NOT NULL AND p.escalations = 0 AND p.reopens = 0 AS first_contact_resolved,
               p.followup_answer, p.forgotten, o.risk
        FROM per_case p LEFT JOIN opened o USING (opening) LEFT JOIN granted g USING (opening)
    """,
}


def _files(source: Path) -> tuple[str, list[str]]:
    """The format ('json' or 'parquet') and the files of a source; SourceProblem naming it when there are none."""
    text = str(source)
    if any(c in text for c in "*?["):
        files = sorted(glob.glob(text, recursive=True))
    elif source.is_dir():
        files = sorted(
            str(p) for p in source.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".ndjson", ".parquet")
        )
    elif source.is_file():
        files = [text]
    else:
        raise SourceProblem(f"events: nothing at {source}: give the events file, a glob, a folder or Parquet")
    if not files:
        raise SourceProblem(f"events: no events files in {source} (looked for *.jsonl, *.json, *.ndjson, *.parquet)")
    kinds = {"parquet" if f.endswith(".parquet") else "json" for f in files}
    if len(kinds) > 1:
        raise SourceProblem(f"events: {source} mixes Parquet and JSON lines files; point at one kind")
    return kinds.pop(), files


def _read(con: duckdb.DuckDBPyConnection, kind: str, files: list[str]) -> str:
    """SQL that reads the files with exactly COLUMNS (missing ones null)."""
    listed = "[" + _sql_list(files) + "]"
    if kind == "json":
        columns = "{" + ", ".join(f"'{name}': '{t}'" for name, t in COLUMNS.items()) + "}"
        return (
            f"SELECT {QUOTED} FROM read_json({listed}, format = 'newline_delimited', columns = {columns}, "
            "hive_partitioning = false, ignore_errors = true)"
        )
    present = {
        row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({listed}, union_by_name = true)").fetchall()
    }
    parts = [
        (f'CAST("{name}" AS {t})' if name in present else f"CAST(NULL AS {t})") + f' AS "{name}"'
        for name, t in COLUMNS.items()
    ]
    return f"SELECT {', '.join(parts)} FROM read_parquet({listed}, union_by_name = true)"


def connect(source: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the tables `events`, `offers` and `cases` over the source (see the
    module's docstring), read once so that many queries do not parse the files again, and `skipped` (one row:
    how many lines were not an event). Raises SourceProblem naming
    the path when there is nothing to read or it cannot be parsed."""
    kind, files = _files(Path(source))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        con.execute(EVENTS[0].format(read=_read(con, kind, files)))
        for sql in EVENTS[1:]:
            con.execute(sql)
        row = con.execute("SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)").fetchone()
        if not row or row[0] == 0:
            raise SourceProblem(f"events: {source} holds no events")
        for name, sql in TABLES.items():
            con.execute(f"CREATE TABLE {name} AS {sql}")
    except SourceProblem:
        con.close()
        raise
    except duckdb.Error as err:
        con.close()
        first = " ".join(str(err).split())[:300]
        raise SourceProblem(f"events: cannot read {source}: {first}") from None
    return con
