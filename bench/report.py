"""The report's figure: `escalations report` over a million events, against a bare DuckDB scan of the same file.

    python -m bench.report [--events N] [--seed S] [--out DIR]     (make bench runs it in its quick mode too)

With --out it only writes the events there (a sample to try the report on) and times nothing.

The events are synthetic and seeded: cases of every category, channel and value band that climb the ladder,
breach, get offers, resolve, are followed up and reopen, written by DuckDB itself (a few seconds) as JSON lines
and as Parquet, and kept in a temporary folder named for their size and seed, so the next run reuses them.
The figure is the command as a person runs it (`escalations report --json`, a process of its own, imports
included, its bytecode cached as pip would have it) over the whole generated range, against a bare DuckDB scan of the same file (count and distinct ids).
Each format prints one line in the form of bench/perf.py: `report[format]: X s over N events (C s CPU), K cases
(ratio R to a DuckDB scan of the same file S s), target < 10 s: OK|MISS`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from bench.perf import Line

EVENTS = 1_000_000
SEED = 7
TARGET_SECONDS = 10.0
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 60
DUPLICATES = 0.005  # a receiver's repeats: the same event again


def _pick(values: list[str], salt: str) -> str:
    """SQL choosing one of `values` per case, by a hash of the case number and the seed."""
    listed = ", ".join(f"'{v}'" for v in values)
    return f"([{listed}])[1 + (hash(i, {salt!r}, seed) % {len(values)})::BIGINT]"


CATEGORIES = ["billing", "delivery", "outage", "refund", "account", "fraud", "contract", "device"]
# How often each category climbs past the first tier, per mille: the loopholes the report should find.
CLIMB = {"billing": 500, "delivery": 250, "outage": 700, "refund": 350, "account": 120, "fraud": 800, "contract": 300}
ROOT_CAUSES = ["billing_error", "delivery", "service_outage", "policy_gap", "product_defect", "communication"]
REPS = [f"rep{n:02d}" for n in range(40)]
# What customers say, per category (three ways each), so the themes have something to find.
SAYINGS = {
    "billing": ["charged twice for the monthly plan", "invoice shows a fee never agreed", "double charge on the card"],
    "delivery": ["parcel marked delivered never arrived", "courier missed the delivery slot", "parcel arrived damaged"],
    "outage": ["internet down for three days", "router keeps dropping the connection", "no signal since the storm"],
    "refund": [
        "refund promised weeks ago still missing",
        "returned the phone no refund yet",
        "refund went to old card",
    ],
    "account": ["locked out of the account", "password reset email never comes", "cannot change the account email"],
    "fraud": ["unknown payments on the card", "someone ordered a phone in my name", "sim swapped without asking"],
    "contract": ["contract renewed without asking", "cancel the contract without the fee", "price rose mid contract"],
    "device": ["phone screen went black after update", "handset battery swells", "device will not charge"],
}


def events_sql(cases: int, seed: int) -> str:
    """Every event of `cases` synthetic cases, ordered by case and seq, with `at` as ISO-8601 text."""
    climb = " ".join(f"WHEN '{c}' THEN {p}" for c, p in CLIMB.items())
    start = START.strftime("%Y-%m-%d %H:%M:%S")
    return f"""
    WITH base AS (
        SELECT i, {seed} AS seed FROM range({cases}) t(i)
    ), c AS (
        SELECT i, seed, 'C-' || lpad(i::VARCHAR, 7, '0') AS case_id, md5(i::VARCHAR || '-' || seed) AS opening,
               TIMESTAMP '{start}' + to_seconds((hash(i, 't', seed) % {DAYS * 86400})::BIGINT) AS opened_at,
               {_pick(CATEGORIES, "cat")} AS category,
               {_pick(["call", "call", "chat", "email", "sms"], "ch")} AS channel,
               {_pick(["low", "medium", "medium", "high", "critical"], "sev")} AS severity,
               {_pick(["under_1k", "under_1k", "1k_10k", "1k_10k", "10k_100k", "100k_plus"], "band")} AS value_band,
               {_pick(["furious", "angry", "upset", "neutral", "calm"], "sent")} AS sentiment,
               {_pick(ROOT_CAUSES, "rc")} AS root_cause,
               {_pick(REPS, "rep")} AS rep, {_pick(REPS, "lead")} AS lead,
               CASE {" ".join(f"WHEN {_pick(CATEGORIES, 'cat')} = '{c}' THEN {_pick(SAYINGS[c], 'say')}" for c in CATEGORIES)}
               END AS summary,
               (hash(i, 'u', seed) % 1000)::BIGINT AS u, (hash(i, 'v', seed) % 1000)::BIGINT AS v, (hash(i, 'w', seed) % 1000)::BIGINT AS w
        FROM base
    ), cases AS (
        SELECT *, u < CASE category {climb} ELSE 200 END AS climbs,
               u < CASE category {climb} ELSE 200 END AND v < 300 AS climbs_twice,
               u < CASE category {climb} ELSE 200 END AND v < 60 AS climbs_thrice,
               v % 7 = 0 AS breach, w < 400 AS offered, w < 280 AS accepted, w % 5 <> 0 AS resolves,
               v % 10 < 2 AS not_fixed, (u + w) % 3 = 0 AS kb_missing,
               CASE value_band WHEN 'under_1k' THEN 400 WHEN '1k_10k' THEN 4000 WHEN '10k_100k' THEN 40000
                    ELSE 250000 END + (v * 7) AS customer_value
        FROM c
    ), slots AS (
        SELECT c.*, s.n, s.kind, s.minutes FROM cases c,
        (VALUES (1, 'opened', 0), (2, 'assigned', 1), (3, 'acknowledged', 6), (4, 'note', 20),
                (5, 'breached', 31), (6, 'escalated', 40), (7, 'acknowledged2', 55), (8, 'escalated2', 120),
                (9, 'acknowledged3', 150), (10, 'escalated3', 155), (11, 'acknowledged4', 165),
                (12, 'offer_proposed', 170), (13, 'offer_answered', 190),
                (14, 'resolved', 240), (15, 'followup_sent', 1680), (16, 'followup_answered', 1700),
                (17, 'reopened', 1701), (18, 'resolved2', 1900), (19, 'closed', 4000)) s(n, kind, minutes)
        WHERE CASE s.kind
            WHEN 'breached' THEN breach
            WHEN 'escalated' THEN climbs WHEN 'acknowledged2' THEN climbs
            WHEN 'escalated2' THEN climbs_twice WHEN 'acknowledged3' THEN climbs_twice
            WHEN 'escalated3' THEN climbs_thrice WHEN 'acknowledged4' THEN climbs_thrice
            WHEN 'offer_proposed' THEN offered WHEN 'offer_answered' THEN offered
            WHEN 'resolved' THEN resolves WHEN 'followup_sent' THEN resolves WHEN 'followup_answered' THEN resolves
            WHEN 'reopened' THEN resolves AND not_fixed WHEN 'resolved2' THEN resolves AND not_fixed
            WHEN 'closed' THEN resolves AND NOT not_fixed
            ELSE true END
    ), shaped AS (
        SELECT *, row_number() OVER (PARTITION BY i ORDER BY n) AS seq,
               CASE WHEN n >= 10 AND climbs_thrice THEN 'manager' WHEN n >= 8 AND climbs_twice THEN 'supervisor'
                    WHEN n >= 6 AND climbs THEN 'team_lead'
                    ELSE 'agent' END AS tier,
               CASE WHEN n >= 6 AND climbs THEN lead ELSE rep END AS who,
               opened_at + to_seconds((minutes * 60 * (0.3 + u / 400.0 + (hash(i, n, seed) % 100) / 1000.0))::BIGINT) AS at_ts
        FROM slots
    )
    SELECT 'escalation-' || case_id || '/' || opening || '/' || seq AS id,
           'escalation.' || regexp_replace(kind, '[0-9]$', '') AS type_raw,
           kind, case_id, seq, strftime(at_ts, '%Y-%m-%dT%H:%M:%SZ') AS "at",
           CASE WHEN kind IN ('opened', 'breached', 'assigned', 'followup_sent') THEN 'system'
                WHEN kind IN ('offer_answered', 'followup_answered') THEN 'customer' ELSE who END AS actor,
           tier, CASE WHEN kind IN ('resolved', 'resolved2', 'followup_sent', 'followup_answered') THEN 'resolved'
                      WHEN kind = 'closed' THEN 'closed' ELSE 'open' END AS status,
           CASE WHEN kind = 'opened' THEN NULL ELSE who END AS owner,
           CASE kind
             WHEN 'opened' THEN json_object('channel', channel, 'severity', severity, 'threat', false,
                 'policy', 'standard', 'category', category, 'customer_id', 'cust-' || (i % 50000),
                 'customer_value', customer_value::VARCHAR, 'value_band', value_band, 'language', 'en',
                 'sentiment', sentiment, 'summary', summary, 'desired_outcome', 'a refund')
             WHEN 'assigned' THEN json_object('owner', rep)
             WHEN 'note' THEN json_object('text', summary, 'sentiment', sentiment)
             WHEN 'breached' THEN json_object('clock', 'acknowledge', 'owner', rep)
             WHEN 'escalated' THEN json_object('from_tier', 'agent', 'to_tier', 'team_lead',
                 'reason', CASE WHEN breach THEN 'sla_breach' WHEN v % 2 = 0 THEN 'customer_request'
                                ELSE 'needs_authority' END)
             WHEN 'escalated2' THEN json_object('from_tier', 'team_lead', 'to_tier', 'supervisor',
                 'reason', 'complexity')
             WHEN 'escalated3' THEN json_object('from_tier', 'supervisor', 'to_tier', 'manager',
                 'reason', CASE WHEN w % 3 = 0 THEN 'threat' ELSE 'needs_authority' END)
             WHEN 'offer_proposed' THEN json_object('offer_id', 'o1', 'kind',
                 CASE WHEN w % 2 = 0 THEN 'compensation' ELSE 'goodwill' END,
                 'amount', (10 + w % 90)::VARCHAR || '.00', 'currency', 'EUR')
             WHEN 'offer_answered' THEN json_object('offer_id', 'o1', 'amount', (10 + w % 90)::VARCHAR || '.00',
                 'currency', 'EUR')
             WHEN 'resolved' THEN json_object('resolution', 'fixed it', 'root_cause', root_cause,
                 'kb_missing', CASE WHEN kb_missing THEN true END,
                 'kb_article', CASE WHEN NOT kb_missing THEN 'KB-1' END)
             WHEN 'resolved2' THEN json_object('resolution', 'fixed again', 'root_cause', root_cause)
             WHEN 'followup_sent' THEN json_object('checkin', 1, 'channel', 'email')
             WHEN 'followup_answered' THEN json_object('checkin', 1,
                 'answer', CASE WHEN not_fixed THEN 'not_fixed' ELSE 'fixed' END)
             WHEN 'closed' THEN json_object('outcome', 'resolved')
             ELSE json_object() END AS detail,
           accepted
    FROM shaped
    """


def generate(folder: Path, events: int = EVENTS, seed: int = SEED) -> tuple[Path, Path]:
    """`events.jsonl` and `events.parquet` in `folder` holding exactly `events` events (DUPLICATES of them
    repeats of others), made once."""
    jsonl, parquet = folder / "events.jsonl", folder / "events.parquet"
    if jsonl.exists() and parquet.exists():
        return jsonl, parquet
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    repeats = int(events * DUPLICATES)
    cases = (events - repeats) // 9 + 1000  # about nine events a case; the surplus is cut below
    con.execute(
        f"""CREATE TABLE generated AS
            SELECT id, CASE kind WHEN 'offer_answered' THEN
                              CASE WHEN accepted THEN 'escalation.offer_accepted' ELSE 'escalation.offer_declined' END
                          ELSE type_raw END AS type,
                   case_id, seq, "at", actor, tier, status, owner, detail
            FROM ({events_sql(cases, seed)}) ORDER BY case_id, seq LIMIT {events - repeats}"""
    )
    con.execute(f"INSERT INTO generated SELECT * FROM generated USING SAMPLE {repeats} ROWS (reservoir, {seed})")
    partial = folder / "events.jsonl.part"
    con.execute(f"COPY generated TO '{partial}' (FORMAT json)")
    partial.rename(jsonl)
    con.execute(f"COPY generated TO '{parquet}' (FORMAT parquet)")
    con.close()
    return jsonl, parquet


def scan_seconds(path: Path) -> float:
    """A bare DuckDB scan of the file: the least any report over it could take."""
    con = duckdb.connect()
    reader = "read_parquet" if path.suffix == ".parquet" else "read_json_auto"
    t0 = time.perf_counter()
    con.execute(f"SELECT count(*), count(DISTINCT id) FROM {reader}('{path}')").fetchall()
    took = time.perf_counter() - t0
    con.close()
    return took


def command_env(folder: Path) -> dict[str, str]:
    """The command's environment: Python's bytecode cached (in `folder`), as in an installation by pip, even where
    this machine turns the cache off (PYTHONDONTWRITEBYTECODE); otherwise every start compiles scikit-learn again."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(folder / "pycache")}


def report_seconds(path: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """The command as a person runs it (`escalations report --json`, a process of its own, imports included) over
    the whole generated range: seconds on the clock, CPU seconds (of all its threads) and the cases it counted."""
    since = START.date().isoformat()
    until = (START + timedelta(days=DAYS + 1)).date().isoformat()
    command = [str(Path(sys.executable).parent / "escalations"), "report", "--events", str(path)]
    command += ["--since", since, "--until", until, "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"escalations report exited {done.returncode}: {done.stderr.strip()[:500]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu, int(json.loads(done.stdout)["headline"]["cases"])


def figure(events: int = EVENTS, seed: int = SEED) -> list[Line]:
    folder = Path(tempfile.gettempdir()) / f"escalations-report-bench-{events}-{seed}"
    t0 = time.perf_counter()
    files = generate(folder, events, seed)
    print(f"  .. {events:,} events ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    env = command_env(folder)
    report_seconds(generate(folder / "warm-up", 10_000, seed)[0], env)  # fills the bytecode cache
    lines = []
    for path in files:
        took, cpu, cases = report_seconds(path, env)
        scan = scan_seconds(path)
        kind = "parquet" if path.suffix == ".parquet" else "jsonl"
        lines.append(
            Line(
                f"report[{kind}]",
                f"{took:.1f} s over {events:,} events ({cpu:.1f} s CPU), {cases:,} cases",
                f"ratio {took / scan:.1f} to a DuckDB scan of the same file {scan:.2f} s",
                f"< {TARGET_SECONDS:.0f} s",
                took < TARGET_SECONDS,
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS, help="how many events (10,000 to 10,000,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--out", type=Path, help="only write the events (events.jsonl, events.parquet) into this folder"
    )
    args = parser.parse_args(argv)
    if not 10_000 <= args.events <= 10_000_000:
        parser.error("--events: between 10,000 and 10,000,000")
    if args.out is not None:
        jsonl, parquet = generate(args.out, args.events, args.seed)
        print(f"{jsonl}\n{parquet}")
        return 0
    lines = figure(args.events, args.seed)
    for line in lines:
        print(line, flush=True)
    return 0 if all(line.ok for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
