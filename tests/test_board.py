"""`escalations board`: the wallboard's figures from visibility and how the terminal shows them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from escalation.board import Board, BoardCase, RepLoad
from escalation.cli import views
from escalation.client import EscalationClient
from escalation.domain.models import Severity, Status, Tier
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
