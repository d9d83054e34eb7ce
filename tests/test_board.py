"""`escalations board`: the wallboard's figures from visibility and the metrics, and how the terminal and the web
page show them (the page's access: no login on loopback, a verified credential elsewhere)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from rich.console import Console

from escalation import board_web
from escalation.board import Board, BoardCase, LastHour, MetricsWindow, RepLoad, counted, metrics_window
from escalation.cli import views
from escalation.client import EscalationClient
from escalation.config import ConfigError
from escalation.domain.models import Severity, Status, Tier
from escalation.identity import IdentitySettings, Signer, new_key
from tests.cases import eventually
from tests.test_cli import case_file, cli_fixture, owner, worker_logs_stay_out_of_cli_output  # noqa: F401  (fixtures)

ROSTER = Path(__file__).resolve().parent / "roster.toml"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def rendered(board: Board) -> str:
    console = Console(width=160, highlight=False)
    with console.capture() as captured:
        console.print(views.board_view(board, NOW))
    return captured.get()


def row(text: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row '{first}' in:\n{text}")


def test_the_board_shows_counts_breaches_unowned_and_load():
    counts = {t: {s: 0 for s in (Status.OPEN, Status.RESOLVED)} for t in Tier}
    counts[Tier.AGENT][Status.OPEN] = 3
    counts[Tier.SUPERVISOR][Status.RESOLVED] = 1
    late = BoardCase(
        case_id="C-late", tier=Tier.MANAGER, status=Status.OPEN, owner=None, severity=Severity.CRITICAL,
        sla_due_at=NOW - timedelta(minutes=3), sla_breach="unowned",
    )  # fmt: skip
    soon = BoardCase(
        case_id="C-soon", tier=Tier.AGENT, status=Status.OPEN, owner="ana", severity=Severity.LOW,
        sla_due_at=NOW + timedelta(minutes=4, seconds=12),
    )  # fmt: skip
    board = Board(
        at=NOW,
        counts=counts,
        running=4,
        next_breaches=[late, soon],
        unowned=[late],
        reps=[
            RepLoad(rep_id="ana", open_cases=2, tier=Tier.AGENT, max_cases=2, state="working, full"),
            RepLoad(rep_id="ben", open_cases=0, tier=Tier.AGENT, state="off shift"),
        ],
        listed=4,
        complete=True,
    )
    text = rendered(board)
    assert "4 running case(s)" in text
    assert row(text, "tier") == ["tier", "open", "resolved"]
    assert row(text, "agent")[1:] == ["3", "0"] and row(text, "supervisor")[1:] == ["0", "1"]
    assert row(text, "manager")[1:] == ["0", "0"]
    breaches = text.split("Next breaches")[1].split("Unowned")[0]
    assert breaches.index("C-late") < breaches.index("C-soon")
    assert row(breaches, "C-late") == ["C-late", "manager", "critical", "-", "3m late, BREACHED, unowned"]
    assert row(breaches, "C-soon") == ["C-soon", "agent", "low", "ana", "in 4m12s"]
    assert "Unowned: 1" in text and "C-late" in text.split("Unowned: 1")[1]
    assert row(text, "ana")[1:] == ["agent", "2/2", "working, full"] and row(text, "ben")[1:] == [
        "agent",
        "0",
        "off shift",
    ]
    unread = rendered(board.model_copy(update={"roster_problem": "roster r.toml: not valid TOML", "complete": False}))
    assert "roster not readable, rep states missing: roster r.toml: not valid TOML" in unread
    assert "from the first 4 of 4 running cases" in unread


async def test_board_once_on_a_real_server(cli, env, tmp_path):
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    person = {"id": customer, "name": "Dana Doe", "email": "dana@example.org"}
    at_agent, agent_path = case_file(tmp_path, customer=person, severity="low")
    at_supervisor, supervisor_path = case_file(tmp_path, customer=person, threat=True)
    # The top (only) tier acknowledges within 2s and no manager speaks French: nobody owns it, and it breaches.
    unowned, unowned_path = case_file(tmp_path, policy="overdue", customer=person | {"language": "fr"})
    for path in (agent_path, supervisor_path, unowned_path):
        await cli("open", str(path))
    agent = await owner(cli, at_agent, "agent")
    sam = await owner(cli, at_supervisor, "supervisor")
    esc = EscalationClient(env.client)

    async def settled():
        listed = {c.case_id: c for c in await esc.list_cases({"customer": customer})}
        return len(listed) == 3 and listed[unowned].sla_breach == "unowned"

    await eventually(settled)

    async def frame():
        text = (await cli("board", "--once", "--roster", str(ROSTER))).stdout
        # Other tests' cases share the server: the counts are those visibility gives for the same tiers.
        for tier in ("agent", "supervisor", "manager"):
            expected = await esc.count_cases({"tier": tier, "status": "open"})
            if row(text, tier)[1] != str(expected) or expected < 1:
                return None
        return text

    text = await eventually(frame)
    breaches = text.split("Next breaches")[1].split("Unowned")[0]
    assert re.search(r"\d+s late, BREACHED, unowned", row(breaches, unowned)[4]), text
    assert row(breaches, unowned)[1:4] == ["manager", "high", "-"]
    # A missed target nobody owns comes before anything still to come.
    assert breaches.index(unowned) < breaches.index(at_agent) and breaches.index(unowned) < breaches.index(
        at_supervisor
    )
    assert re.fullmatch(r"in \d+m\d+s|in \d+m", row(breaches, at_agent)[4]), row(breaches, at_agent)
    assert row(breaches, at_agent)[1:4] == ["agent", "low", agent]
    assert row(text.split("Unowned:")[1].split("Reps")[0], unowned)[1] == "manager"
    assert row(text.split("Reps")[1], sam)[1] == "supervisor" and int(row(text.split("Reps")[1], sam)[2]) >= 1
    # No personal data: no customer id, name or contact.
    assert customer not in text and "Dana" not in text and "example.org" not in text

    # A bad interval is refused as the other commands' intervals are, before anything is read.
    for bad in ("0", "7200", "nan", "soon"):
        refused = await cli("board", "--once", "--interval", bad, code=2)
        assert "Error: Invalid value for '--interval'" in refused.stderr and not refused.stdout, refused.stderr


# ----- breaches and escalations in the last hour, from the workers' metrics

PAGE = """# HELP escalations_sla_breaches SLA targets missed
# TYPE escalations_sla_breaches counter
escalations_sla_breaches{tier="agent",clock="acknowledge"} 2
escalations_sla_breaches_total{tier="manager",clock="resolve"} 1
escalations_escalated{from_tier="agent",to_tier="team_lead",reason="threat"} 4
escalations_escalated_sum 99
escalations_cases_opened{tier="agent"} 7
"""


def test_the_breach_and_escalation_counters_are_summed_over_their_labels():
    assert counted(PAGE) == {"breaches": 3.0, "escalations": 4.0}
    assert counted('garbage\nescalations_escalated{x="y"} not-a-number\n') == {"breaches": 0.0, "escalations": 0.0}


def test_the_window_counts_what_grew_in_the_last_hour_across_worker_restarts():
    window = MetricsWindow(["http://a/metrics", "http://b/metrics"])
    a, b = "http://a/metrics", "http://b/metrics"
    window.record(a, NOW - timedelta(minutes=90), {"breaches": 5, "escalations": 1})
    window.record(a, NOW - timedelta(minutes=61), {"breaches": 6, "escalations": 1})  # the hour's baseline
    window.record(a, NOW - timedelta(minutes=30), {"breaches": 8, "escalations": 3})
    window.record(a, NOW - timedelta(minutes=10), {"breaches": 1, "escalations": 0})  # a restarted: from zero
    window.record(b, NOW - timedelta(minutes=65), {"breaches": 0, "escalations": 10})
    window.record(b, NOW, {"breaches": 2, "escalations": 12})
    hour = window.last_hour(NOW)
    assert (hour.breaches, hour.escalations) == (2 + 1 + 2, 2 + 0 + 2)
    assert hour.full_hour and hour.since == NOW - timedelta(minutes=65)
    # Read for less than an hour: since the first reading.
    young = MetricsWindow([a])
    young.record(a, NOW - timedelta(minutes=5), {"breaches": 4, "escalations": 4})
    young.record(a, NOW, {"breaches": 5, "escalations": 4})
    hour = young.last_hour(NOW)
    assert (hour.breaches, hour.escalations, hour.full_hour) == (1, 0, False)
    assert hour.since == NOW - timedelta(minutes=5)
    assert metrics_window(None, "off").urls == [] and metrics_window(None, "127.0.0.1:9464").urls == [
        "http://127.0.0.1:9464/metrics"
    ]
    assert metrics_window(["h:1", "http://x/m"], "127.0.0.1:9464").urls == ["http://h:1/metrics", "http://x/m"]


# ----- the web page


def sample_board() -> Board:
    counts = {t: {s: 0 for s in (Status.OPEN, Status.RESOLVED)} for t in Tier}
    counts[Tier.MANAGER][Status.OPEN] = 1
    late = BoardCase(
        case_id="C-late", tier=Tier.MANAGER, status=Status.OPEN, owner=None, severity=Severity.CRITICAL,
        sla_due_at=NOW - timedelta(minutes=3), sla_breach="unowned",
    )  # fmt: skip
    return Board(
        at=NOW,
        counts=counts,
        running=1,
        next_breaches=[late],
        unowned=[late],
        reps=[RepLoad(rep_id="maya", open_cases=0, tier=Tier.MANAGER, state="working")],
        listed=1,
        complete=True,
        roster_problem="roster <b>r.toml</b>: not valid TOML",
        last_hour=LastHour(breaches=3, escalations=5, since=NOW - timedelta(hours=1), full_hour=True),
    )


def test_the_page_shows_the_board_escaped_and_reloads_itself():
    html = board_web.page(sample_board(), NOW, refresh=5)
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "<td>C-late</td><td>manager</td><td>critical</td><td>-</td><td>3m late, BREACHED, unowned</td>" in html
    assert "<h2>Unowned: 1</h2>" in html and "<td>maya</td><td>manager</td><td>0</td><td>working</td>" in html
    assert '<div class="figure" id="breaches-last-hour">3</div>' in html and "SLA breaches, last hour" in html
    assert '<div class="figure" id="escalations-last-hour">5</div>' in html
    assert "&lt;b&gt;r.toml&lt;/b&gt;" in html and "<b>r.toml" not in html
    no_metrics = board_web.page(sample_board().model_copy(update={"last_hour": None}), NOW, refresh=5)
    assert "no metrics read" in no_metrics
    # The terminal board says the same.
    text = rendered(sample_board())
    assert "3 SLA breach(es) and 5 escalation(s) in the last hour" in text
    young = LastHour(breaches=0, escalations=1, since=NOW, full_hour=False, unreachable=["http://w:9464/metrics"])
    text = rendered(sample_board().model_copy(update={"last_hour": young}))
    assert "0 SLA breach(es) and 1 escalation(s) since 2026-11-24 09:00:00 UTC" in text
    assert "metrics not reachable: http://w:9464/metrics" in text


def test_only_loopback_binds_go_without_a_login():
    assert board_web.is_loopback("127.0.0.1") and board_web.is_loopback("localhost") and board_web.is_loopback("::1")
    assert not board_web.is_loopback("0.0.0.0") and not board_web.is_loopback("board.example.org")
    assert board_web.parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert board_web.parse_address("[::1]:0") == ("::1", 0) and board_web.parse_address(":80") == ("0.0.0.0", 80)
    for bad in ("8080", "host:", "host:99999", "host:http"):
        with pytest.raises(ConfigError, match="--web: give HOST:PORT"):
            board_web.parse_address(bad)
    assert board_web.verifier_for("127.0.0.1:8080", IdentitySettings()) is None
    with pytest.raises(ConfigError, match=r"every request needs a credential.*bind it to 127\.0\.0\.1"):
        board_web.verifier_for("0.0.0.0:8080", IdentitySettings())


class _Fixed(board_web.Wallboard):
    def __init__(self, board: Board) -> None:
        super().__init__(None, roster_path=None, clock=lambda: NOW)  # type: ignore[arg-type]
        self.fixed = board

    async def board(self) -> Board:
        return self.fixed


async def test_elsewhere_every_request_needs_a_verified_credential_of_a_rep(tmp_path):
    keys = tmp_path / "keys.json"
    new_key(keys)
    identity = IdentitySettings(keys=str(keys))
    verifier = board_web.verifier_for("0.0.0.0:0", identity)
    signer = Signer.from_settings(identity)
    assert verifier is not None and signer is not None
    app = board_web.build_app(_Fixed(sample_board()), refresh=5, verifier=verifier)
    async with TestClient(TestServer(app)) as client:
        missing = await client.get("/")
        assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in (await missing.json())["error"]
        forged = await client.get("/", headers={"Authorization": "Bearer " + signer.mint("maya")[:-4] + "AAAA"})
        assert forged.status == 401
        customer = signer.mint("customer", case_id="C-late")
        refused = await client.get("/board.json", headers={"Authorization": f"Bearer {customer}"})
        assert refused.status == 403
        rep = {"Authorization": f"Bearer {signer.mint('maya')}"}
        page = await client.get("/", headers=rep)
        assert page.status == 200 and "C-late" in await page.text()
        figures = await client.get("/board.json", headers=rep)
        assert (await figures.json())["last_hour"]["escalations"] == 5
        assert (await client.get("/healthz")).status == 200  # for load balancers, no credential
    # On loopback, no credential at all.
    async with TestClient(TestServer(board_web.build_app(_Fixed(sample_board()), refresh=5))) as client:
        assert (await client.get("/")).status == 200
