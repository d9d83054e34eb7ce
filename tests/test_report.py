"""`escalations report` from a known set of events: exact counts, rates, percentiles, spend, breaches by hour of
week, the loophole ranking; repeated ids counted once, a forgotten case's text nowhere; filters and the time
range; the same figures from the events receiver's day folders and from Parquet; JSON, CSV and the HTML page
through the real CLI (in process); bad input named with its exit code. No server needed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shlex
import shutil
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from bench.report import generate
from escalation.cli import Code, app
from escalation.insight import render, source
from escalation.insight import report as patterns
from escalation.insight.report import Filters, Period
from escalation.insight.source import SourceProblem
from tests.test_screens import Browser, needs_chromium

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)  # the week the known cases open in
WEEK = Period(since=MONDAY, until=MONDAY + timedelta(days=7))
SECRET = "secret-words"  # in a forgotten case's summary and note: must never come out


# ----- a small builder of events as the product writes them


class CaseEvents:
    def __init__(self, log: list[dict[str, Any]], case_id: str, opening: str, opened: datetime) -> None:
        self.log, self.case_id, self.opening, self.opened = log, case_id, opening, opened
        self.seq, self.tier = 0, "agent"

    def add(self, what: str, minutes: float, actor: str = "system", /, **detail: Any) -> CaseEvents:
        self.seq += 1
        if what in ("escalated", "de_escalated"):
            self.tier = detail["to_tier"]
        self.log.append(
            {
                "id": f"escalation-{self.case_id}/{self.opening}/{self.seq}",
                "type": f"escalation.{what}",
                "case_id": self.case_id,
                "seq": self.seq,
                "at": (self.opened + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
                "actor": actor,
                "tier": self.tier,
                "status": "resolved" if what == "resolved" else "open",
                "owner": None if actor in ("system", "customer") else actor,
                "detail": detail,
            }
        )
        return self


class Events:
    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []

    def case(self, case_id: str, opening: str, opened: datetime, **detail: Any) -> CaseEvents:
        events = CaseEvents(self.log, case_id, opening, opened)
        return events.add("opened", 0, "crm", **detail)

    def repeat(self, index: int) -> None:
        """The event at `index` again, as a receiver may get it twice."""
        self.log.append(dict(self.log[index]))

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(e) + "\n" for e in self.log))
        return path


def opened(category: str | None, channel: str, severity: str, band: str | None, value: str | None, **more: Any):
    detail = {"channel": channel, "severity": severity, "threat": False, "policy": "standard"}
    detail |= {"category": category, "value_band": band, "customer_value": value, "language": "en"}
    return {k: v for k, v in (detail | more).items() if v is not None}


def known() -> Events:
    """Seven cases opened in the week of MONDAY (one case id opened twice) and one before it."""
    ev = Events()
    at = lambda day, hour: MONDAY + timedelta(days=day, hours=hour)  # noqa: E731
    a = ev.case("C-1", "oA", at(0, 9), **opened("billing", "call", "high", "1k_10k", "5000.00", customer_id="cust-A"))
    a.add("assigned", 1, owner="ana").add("acknowledged", 10, "ana")
    a.add("resolved", 120, "ana", resolution="refunded", root_cause="billing_error", kb_missing=True)
    a.add("followup_sent", 1440, checkin=1).add("followup_answered", 1500, "customer", checkin=1, answer="fixed")
    a.add("closed", 1600, outcome="resolved")
    ev.repeat(2)  # A's acknowledgement, twice

    b = ev.case(
        "C-2", "oB", at(0, 10), **opened("billing", "chat", "medium", "100k_plus", "200000", customer_id="cust-B")
    )
    b.add("breached", 15, clock="acknowledge").add("acknowledged", 20, "ana")
    b.add("escalated", 30, "ana", from_tier="agent", to_tier="team_lead", reason="sla_breach")
    ev.repeat(len(ev.log) - 1)  # B's escalation, twice
    b.add("acknowledged", 60, "lee")
    b.add("offer_proposed", 90, "lee", offer_id="o1", kind="compensation", amount="50.00", currency="EUR")
    b.add("offer_accepted", 100, "customer", offer_id="o1", amount="50.00", currency="EUR")
    b.add("resolved", 300, "lee", resolution="credited", root_cause="billing_error", kb_missing=True)
    b.add("followup_sent", 1440, checkin=1).add("followup_answered", 1500, "customer", answer="not_fixed")
    b.add("reopened", 1501).add("acknowledged", 1560, "lee")
    b.add("resolved", 1800, "lee", resolution="credited again", root_cause="billing_error", kb_article="KB-7")

    c = ev.case("C-3", "oC", at(1, 14), **opened("delivery", "email", "low", "under_1k", "500"))
    c.add("acknowledged", 5, "bob")
    c.add("offer_proposed", 30, "bob", offer_id="o1", kind="goodwill", amount="20.00", currency="EUR")
    c.add("offer_declined", 40, "customer", offer_id="o1", amount="20.00", currency="EUR")
    c.add("resolved", 60, "bob", resolution="resent", root_cause="delivery", kb_article="KB-1")
    c.add("followup_sent", 1440).add("followup_answered", 1450, "customer", answer="fixed")

    d = ev.case(
        "C-4",
        "oD",
        at(1, 15),
        **opened("delivery", "call", "critical", "10k_100k", "20000", customer_id="cust-D", summary=f"lost {SECRET}"),
    )
    d.add("acknowledged", 8, "bob")
    d.add("escalated", 20, "bob", from_tier="agent", to_tier="team_lead", reason="customer_request", detail=SECRET)
    d.add("acknowledged", 50, "lee")
    d.add("escalated", 60, "lee", from_tier="team_lead", to_tier="supervisor", reason="needs_authority")
    d.add("breached", 120, clock="resolve")
    d.add("note", 130, "sam", text=f"customer said {SECRET}")
    d.add("forgotten", 200, "dpo", reference="ticket-1")

    g = ev.case("C-5", "oG", at(2, 8), **opened("billing", "call", "high", "1k_10k", "3000"))
    g.add("acknowledged", 12, "ana")
    g.add("escalated", 40, "ana", from_tier="agent", to_tier="team_lead", reason="needs_authority")
    g.add("acknowledged", 70, "lee")
    g.add("offer_proposed", 90, "lee", offer_id="o1", kind="goodwill", amount="30.00", currency="EUR")
    g.add("offer_accepted", 95, "customer", offer_id="o1", amount="30.00", currency="EUR")
    g.add("offer_proposed", 100, "lee", offer_id="o2", kind="compensation", amount="25.00", currency="EUR")
    g.add("offer_accepted", 105, "customer", offer_id="o2", amount="25.00", currency="EUR")
    g.add("resolved", 240, "lee", resolution="refunded", root_cause="billing_error", kb_missing=True)

    h = ev.case("C-6", "oH", at(2, 9), **opened("account", "sms", "low", None, None))
    h.add("escalated", 10, "amy", from_tier="agent", to_tier="team_lead", reason="complexity")
    h.add("breached", 15, clock="acknowledge")

    a2 = ev.case("C-1", "oA2", at(3, 9), **opened("billing", "call", "medium", "1k_10k", "5000"))
    a2.add("acknowledged", 6, "ana")
    a2.add("resolved", 30, "ana", resolution="explained", root_cause="customer_misunderstanding", kb_article="KB-2")

    old = ev.case("C-9", "oZ", MONDAY - timedelta(days=30), **opened("billing", "call", "low", None, None))
    old.add("escalated", 5, "ana", from_tier="agent", to_tier="manager", reason="threat")
    return ev


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return known().write(tmp_path / "events.jsonl")


def build(path: Path | str, flt: Filters | None = None, when: Period = WEEK, **kw: Any) -> patterns.Report:
    con = source.connect(path)
    try:
        return patterns.build(con, when, flt or Filters(), themes=kw.pop("themes", 0), **kw)
    finally:
        con.close()


# ----- the figures


def test_headline_tiers_reasons_and_breaches(events_file):
    r = build(events_file)
    h = r.headline
    assert (h.cases, h.escalated, h.resolved, h.first_contact_resolved, h.reopened, h.breaches) == (7, 4, 5, 3, 1, 3)
    assert h.escalation_rate == pytest.approx(4 / 7) and h.first_contact_resolution_rate == pytest.approx(3 / 5)
    assert h.granted == Decimal("105.00")
    assert [(t.tier, t.cases) for t in r.highest_tier] == [
        ("agent", 3),
        ("team_lead", 3),
        ("supervisor", 1),
        ("manager", 0),
    ]
    assert {(x.group, x.reason, x.escalations) for x in r.reasons_by_category} == {
        ("billing", "sla_breach", 1),
        ("billing", "needs_authority", 1),
        ("delivery", "customer_request", 1),
        ("delivery", "needs_authority", 1),
        ("account", "complexity", 1),
    }
    assert {(x.group, x.reason) for x in r.reasons_by_channel} >= {("chat", "sla_breach"), ("sms", "complexity")}
    assert [(b.tier, b.clock, b.breaches) for b in r.breaches_by_tier] == [
        ("agent", "acknowledge", 1),
        ("team_lead", "acknowledge", 1),
        ("supervisor", "resolve", 1),
    ]
    grid = r.breaches_by_hour_of_week
    cells = {(d, hour): n for d, row in enumerate(grid) for hour, n in enumerate(row) if n}
    assert cells == {(0, 10): 1, (1, 17): 1, (2, 9): 1}  # Mon 10:15, Tue 17:00, Wed 09:15 UTC


def test_times_to_acknowledge_and_resolve_are_interpolated_percentiles(events_file):
    timings = {t.tier: t for t in build(events_file).timings}
    agent, lead = timings["agent"], timings["team_lead"]
    # Agent acknowledgements 5, 6, 8, 10, 12, 20 minutes (A's repeated one counts once).
    assert (agent.acknowledged, agent.ack_p50_minutes, agent.ack_p90_minutes) == pytest.approx((6, 9, 16))
    # Team lead: 30 after each escalation (B, D, G) and 59 after B was reopened.
    assert (lead.acknowledged, lead.ack_p50_minutes, lead.ack_p90_minutes) == pytest.approx((4, 30, 50.3))
    # Time to the first resolution per highest tier: agent 2 h, 1 h, 0.5 h; team lead 5 h (B), 4 h (G).
    assert (agent.resolved, agent.resolve_p50_hours, agent.resolve_p90_hours) == pytest.approx((3, 1, 1.8))
    assert (lead.resolved, lead.resolve_p50_hours, lead.resolve_p90_hours) == pytest.approx((2, 4.5, 4.9))
    assert timings["supervisor"].acknowledged == 0 and timings["manager"].ack_p50_minutes is None


def test_spend_per_tier_and_value_band_and_follow_ups(events_file):
    r = build(events_file)
    tiers = {s.group: s for s in r.spend_by_tier}
    assert (tiers["agent"].offers, tiers["agent"].granted_cases, tiers["agent"].granted) == (1, 0, Decimal(0))
    lead = tiers["team_lead"]
    assert (lead.cases, lead.offers, lead.granted_cases) == (2, 3, 2)
    assert (lead.compensation, lead.goodwill, lead.granted) == (Decimal("75.00"), Decimal("30.00"), Decimal("105.00"))
    bands = {s.group: s for s in r.spend_by_band}
    assert [s.group for s in r.spend_by_band] == ["under_1k", "1k_10k", "10k_100k", "100k_plus", "unknown"]
    assert (bands["1k_10k"].cases, bands["1k_10k"].granted, bands["1k_10k"].customer_value) == (
        3,
        Decimal("55.00"),
        Decimal("13000.00"),
    )
    assert bands["1k_10k"].share_of_value == pytest.approx(55 / 13000)
    assert bands["100k_plus"].share_of_value == pytest.approx(50 / 200000)
    assert bands["under_1k"].share_of_value == 0 and bands["unknown"].share_of_value is None
    f = r.followups
    assert (f.cases_followed_up, f.reopened, f.answers, f.fixed) == (3, 1, 3, 2)
    assert f.reopen_rate == pytest.approx(1 / 3) and f.satisfaction == pytest.approx(2 / 3)


def test_reps(events_file):
    reps = {x.rep: x for x in build(events_file).reps}
    assert [x.rep for x in build(events_file).reps] == ["ana", "bob", "lee"]
    assert (reps["ana"].resolved, reps["ana"].resolved_without_escalation, reps["ana"].acknowledged) == (2, 2, 4)
    assert reps["ana"].ack_p50_minutes == pytest.approx(11)  # 6, 10, 12, 20
    assert (reps["lee"].resolved, reps["lee"].resolved_without_escalation, reps["lee"].ack_p50_minutes) == (2, 0, 30)
    assert (reps["lee"].offers_made, reps["lee"].offers_accepted) == (3, 3)
    assert (reps["bob"].offers_made, reps["bob"].offers_accepted, reps["bob"].ack_p50_minutes) == (1, 0, 6.5)


def test_loopholes_rank_by_escalation_rate_with_a_minimum_of_cases(events_file):
    one = build(events_file, min_cases=1).loopholes
    assert [(x.name, x.cases, x.escalated) for x in one.categories_by_escalation] == [
        ("account", 1, 1),
        ("billing", 4, 2),
        ("delivery", 2, 1),
    ]
    two = build(events_file, min_cases=2).loopholes
    assert [x.name for x in two.categories_by_escalation] == ["billing", "delivery"]  # one case tops nothing
    assert two.categories_by_escalation[0].escalation_rate == pytest.approx(0.5)
    assert (one.root_causes_by_escalation[0].name, one.root_causes_by_escalation[0].escalated) == ("billing_error", 2)
    # Resolved without a KB article: A and G (B's last resolution had one).
    assert [(x.name, x.kb_missing, x.kb_missing_rate) for x in two.categories_without_kb] == [("billing", 2, 0.5)]
    assert [(x.name, x.kb_missing) for x in one.root_causes_without_kb] == [("billing_error", 2)]


def test_repeated_ids_count_once_and_a_reused_case_id_counts_apart(events_file):
    con = source.connect(events_file)
    ids = con.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
    assert ids is not None and ids[0] == ids[1] == len(known().log) - 2
    openings = con.execute("SELECT count(*) FROM cases WHERE case_id = 'C-1'").fetchone()
    assert openings == (2,)
    assert con.execute("SELECT escalations FROM cases WHERE opening = 'oB'").fetchone() == (1,)


def test_a_forgotten_cases_text_is_dropped_everywhere(events_file):
    con = source.connect(events_file)
    texts = con.execute("SELECT string_agg(detail::VARCHAR, ' ') FROM events WHERE opening = 'oD'").fetchone()
    assert texts is not None and SECRET not in texts[0] and "cust-D" not in texts[0]
    assert "customer_request" in texts[0]  # codes stay: the escalation's reason is not free text
    assert con.execute("SELECT forgotten, customer_id FROM cases WHERE opening = 'oD'").fetchone() == (True, None)
    whole = build(events_file, themes=4).model_dump_json()
    assert SECRET not in whole and "cust-" not in whole


def test_filters_and_time_range(events_file):
    assert build(events_file, Filters(category="delivery")).headline.cases == 2
    assert build(events_file, Filters(tier="team_lead")).headline.cases == 3
    assert build(events_file, Filters(channel="call")).headline.cases == 4
    low = build(events_file, Filters(severity="low"))
    assert (low.headline.cases, low.headline.escalated, low.headline.breaches) == (2, 1, 1)
    tuesday = build(events_file, when=Period(since=MONDAY + timedelta(days=1), until=MONDAY + timedelta(days=7)))
    assert tuesday.headline.cases == 5
    month = build(events_file, when=Period(since=MONDAY - timedelta(days=31), until=MONDAY + timedelta(days=7)))
    assert month.headline.cases == 8 and month.highest_tier[-1].cases == 1  # C-9 reached the manager
    nothing = build(events_file, when=Period(since=MONDAY + timedelta(days=20), until=MONDAY + timedelta(days=21)))
    assert nothing.headline.cases == 0 and nothing.headline.escalation_rate is None


def test_time_range_words():
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert patterns.parse_when("7d", "--since", now) == now - timedelta(days=7)
    assert patterns.parse_when("24h", "--since", now) == now - timedelta(hours=24)
    assert patterns.parse_when("2026-11-01", "--since", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert patterns.parse_when("2026-11-01T08:00+01:00", "--since", now) == datetime(2026, 11, 1, 7, tzinfo=UTC)
    default = patterns.period(None, None, now)
    assert (default.since, default.until) == (now - timedelta(days=30), now)
    assert patterns.period("7d", "2026-11-20", now).since == datetime(2026, 11, 13, tzinfo=UTC)
    for bad in ("7x", "", "-3d", "99999d", "yesterday", "2026-13-01", "x" * 100):
        with pytest.raises(patterns.ReportInputError, match="--since"):
            patterns.parse_when(bad, "--since", now)
    with pytest.raises(patterns.ReportInputError, match="before --until"):
        patterns.period("2026-11-20", "2026-11-10", now)
    with pytest.raises(patterns.ReportInputError, match="--category"):
        patterns.filters("Billing; DROP", None, None, None)
    # Any category a case may carry can be reported on.
    assert patterns.filters("Billing.refunds:EU-2", None, None, None).category == "Billing.refunds:EU-2"


def test_themes_are_in_the_report(tmp_path):
    ev = Events()
    for n in range(12):
        text = "router keeps dropping the wifi connection" if n % 2 else "charged twice on the monthly invoice"
        case = ev.case(
            f"C-{n}", f"o{n}", MONDAY + timedelta(hours=n), **opened("billing", "call", "low", None, None, summary=text)
        )
        if n % 2:
            case.add("escalated", 5, "ana", from_tier="agent", to_tier="team_lead", reason="complexity")
    r = build(ev.write(tmp_path / "events.jsonl"), themes=2)
    assert r.themes is not None and len(r.themes) == 2
    router = next(t for t in r.themes if "router" in t.terms)
    assert router.size == 6 and router.escalation_rate == 1.0


# ----- other sources


def test_day_partitioned_folder_glob_and_parquet_give_the_same_figures(events_file, tmp_path):
    folder = tmp_path / "sink"
    for line in events_file.read_text().splitlines():
        day = json.loads(line)["at"][:10]
        part = folder / f"date={day}" / "events.jsonl"
        part.parent.mkdir(parents=True, exist_ok=True)
        with part.open("a") as out:
            out.write(line + "\n")
    parquet = tmp_path / "events.parquet"
    with duckdb.connect() as con:  # written by another tool: no `via` column, `detail` as text
        con.execute(
            f'COPY (SELECT id, type, case_id, seq, "at", actor, tier, status, owner, detail::VARCHAR AS detail '
            f"FROM read_json('{events_file}', columns = {{'id': 'VARCHAR', 'type': 'VARCHAR', 'case_id': 'VARCHAR', "
            f"'seq': 'BIGINT', 'at': 'TIMESTAMPTZ', 'actor': 'VARCHAR', 'tier': 'VARCHAR', 'status': 'VARCHAR', "
            f"'owner': 'VARCHAR', 'detail': 'JSON'}})) TO '{parquet}' (FORMAT parquet)"
        )
    expected = build(events_file).model_dump(exclude={"generated_at"})
    for src in (folder, f"{folder}/date=*/events.jsonl", parquet):
        assert build(src).model_dump(exclude={"generated_at"}) == expected, src


def test_missing_keys_read_as_null(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(
        '{"id": "escalation-C-1/o/1", "type": "escalation.opened", "case_id": "C-1", "seq": 1, '
        '"at": "2026-11-02T09:00:00Z", "actor": "crm", "tier": "agent", "status": "open", "unknown": 1}\n'
    )
    r = build(path)
    assert r.headline.cases == 1 and r.spend_by_band[0].group == "unknown"


def test_a_torn_last_line_is_counted_and_left_out(events_file, tmp_path):
    torn = tmp_path / "torn.jsonl"
    torn.write_text(events_file.read_text() + '{"id": "escalation-C-7/o7/1", "type": "escalation.ope')
    r = build(torn)
    assert (r.headline.cases, r.headline.skipped_lines) == (7, 1)
    assert build(events_file).headline.skipped_lines == 0


def test_sources_that_cannot_be_read_are_named(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text("not json\n")
    (tmp_path / "folder").mkdir()
    cases = {
        tmp_path / "nowhere.jsonl": "nothing at",
        tmp_path / "empty.jsonl": "holds no events",
        tmp_path / "bad.jsonl": "holds no events",
        tmp_path / "folder": "no events files",
    }
    for path, words in cases.items():
        with pytest.raises(SourceProblem, match=words) as err:
            source.connect(path)
        assert str(path) in str(err.value)


# ----- the command


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["report", *args])


def test_the_command_prints_json_csv_and_writes_the_html_page(events_file, tmp_path):
    week = ["--events", str(events_file), "--since", "2026-11-02", "--until", "2026-11-09", "--themes", "0"]
    shown = invoke(*week)
    assert shown.exit_code == 0, shown.output
    assert "Highest tier reached" in shown.stdout and "Loopholes" in shown.stdout and "(UTC)" in shown.stdout

    as_json = invoke(*week, "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["headline"]["cases"] == 7 and data["time_zone"] == "UTC"
    assert patterns.Report.model_validate(data).headline.granted == Decimal("105.00")

    as_csv = invoke(*week, "--csv", "--category", "billing")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(rows[0]) == ["section", "label", "metric", "value"]
    found = {(r["section"], r["label"], r["metric"]): r["value"] for r in rows}
    assert found["headline", "all", "cases"] == "4"
    assert found["highest_tier", "team_lead", "cases"] == "2"
    assert found["breaches_by_hour_of_week", "Mon 10", "breaches"] == "1"
    assert found["spend_by_tier", "team_lead", "granted"] == "105.00"

    page = tmp_path / "report.html"
    written = invoke(*week[:-2], "--themes", "2", "--html", str(page))
    assert written.exit_code == 0, written.output
    html = page.read_text()
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert html.count('<img src="data:image/png;base64,') >= 5  # tiers, loopholes, breaches, timings, spend
    for chart in (
        "Highest tier reached",
        "SLA breaches by hour of week",
        "Time to acknowledge",
        "Granted per customer",
    ):
        assert chart in html
    assert "http://" not in html.replace("http-equiv", "") and "https://" not in html and "<script" not in html
    # No customer and no free text, but for the themes' top terms.
    assert SECRET not in html and "cust-" not in html and "credited again" not in html


def test_text_from_the_events_never_drives_the_terminal(tmp_path):
    ev = Events()
    ev.case("C-1", "o1", MONDAY, **opened("billing", "call", "low", None, None)).add(
        "resolved", 5, "ana\x1b[2J", root_cause="other"
    )
    shown = invoke(
        "--events", str(ev.write(tmp_path / "events.jsonl")), "--since", "2026-11-01", "--until", "2026-11-09"
    )
    assert shown.exit_code == 0, shown.output
    assert "\x1b[2J" not in shown.stdout and "ana\\x1b[2J" in shown.stdout


def test_the_command_refuses_bad_input_with_its_exit_code(events_file, tmp_path):
    refusals = [
        (["--events", str(tmp_path / "nowhere.jsonl")], Code.INVALID_ARGUMENT, "nowhere.jsonl"),
        (["--events", str(events_file), "--since", "7x"], Code.INVALID_ARGUMENT, "--since"),
        (["--events", str(events_file), "--until", "2026-02-30"], Code.INVALID_ARGUMENT, "--until"),
        (["--events", str(events_file), "--category", "Bill ing"], Code.INVALID_ARGUMENT, "--category"),
        (["--events", str(events_file), "--json", "--csv"], Code.INVALID_ARGUMENT, "choose one"),
        (["--events", str(events_file), "--tier", "boss"], Code.USAGE, "--tier"),
        (["--events", str(events_file), "--themes", "500"], Code.USAGE, "--themes"),
        (["--events", str(events_file), "--html", str(tmp_path / "no" / "where.html")], Code.ERROR, "--html"),
    ]
    for args, code, words in refusals:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert words in result.output, (args, result.output)
        assert "Traceback" not in result.output


# ----- the README's examples

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES_MARKER = "<!-- report-examples -->"


def readme_examples() -> list[list[str]]:
    """The commands of the sh block after EXAMPLES_MARKER in the README, each as its arguments."""
    text = README.read_text()
    block = text[text.index(EXAMPLES_MARKER) :].split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_readme_examples_run(events_file, tmp_path, monkeypatch):
    """On the events file, the receiver's day folders and Parquet, laid out as the examples name them."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(events_file, data / "events.jsonl")
    for line in events_file.read_text().splitlines():
        part = tmp_path / "events" / f"date={json.loads(line)['at'][:10]}" / "events.jsonl"
        part.parent.mkdir(parents=True, exist_ok=True)
        with part.open("a") as out:
            out.write(line + "\n")
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_json_auto('{events_file}')) TO '{tmp_path / 'events.parquet'}'")
    monkeypatch.chdir(tmp_path)
    examples = readme_examples()
    assert len(examples) >= 4 and all(args[:2] == ["escalations", "report"] for args in examples)
    for args in examples:
        done = CliRunner().invoke(app, args[1:], env={"ESCALATIONS_DATA_DIR": str(data)})
        assert done.exit_code == 0, (args, done.output)
        assert done.stdout.strip(), args
    assert "<img" in (tmp_path / "report.html").read_text()


# ----- the page in a real browser


@needs_chromium
@pytest.mark.server  # starts chromium
async def test_the_page_in_a_browser(tmp_path):
    """The page over a generated history, as the README shows it: headless chromium loads it with nothing else
    and every chart draws. With ESCALATIONS_SCREENSHOTS=<folder> its screenshot goes there (docs/report.png)."""
    jsonl, _ = generate(tmp_path / "sample", 60_000)
    page = tmp_path / "report.html"
    args = ["report", "--events", str(jsonl), "--since", "2026-10-01", "--until", "2026-12-01", "--html", str(page)]
    done = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert done.exit_code == 0, done.output
    async with Browser(width=1200, height=2400) as browser:
        await browser.open(page.as_uri())
        await browser.shows("Escalation patterns", "cases opened", "Loopholes", "Themes of the free text")
        drawn = await browser.call(
            "Runtime.evaluate",
            expression="[...document.images].filter(i => i.complete && i.naturalWidth > 0).length",
            returnByValue=True,
        )
        assert drawn["result"]["value"] >= 6  # tiers, loopholes, themes, breaches, timings, spend
        await browser.screenshot(tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_names_from_the_events_are_escaped_on_the_page_and_drawn_as_they_are(tmp_path):
    ev = Events()
    for n in range(6):
        case = ev.case(
            f"C-{n}", f"o{n}", MONDAY + timedelta(hours=n), **opened("$x^{2" + "y" * 80, "call", "low", None, None)
        )
        case.add("escalated", 5, "ana", from_tier="agent", to_tier="team_lead", reason="complexity")
        case.add("resolved", 10, "ana", root_cause="<script>alert(1)</script>", kb_missing=True)
    page = render.to_html(build(ev.write(tmp_path / "events.jsonl"), min_cases=1))  # '$' starts no formula
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
