"""The `escalations` CLI against the real dev server and worker: each command's happy path, and its error
path with the validator's words and a non-zero exit code.

Commands run in a thread (each runs its own event loop, as from a terminal) so the worker, which runs on
the test's loop, keeps working meanwhile; one test runs the installed console script as a subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.worker import Replayer
from typer._completion_classes import BashComplete
from typer.main import get_command
from typer.testing import CliRunner

from escalation.cli import ManualReason, app
from escalation.client import EscalationClient
from escalation.client.converter import data_converter
from escalation.client.errors import InvalidArgument
from escalation.constants import workflow_id
from escalation.domain.formatting import duration
from escalation.domain.models import MANUAL_REASONS, CaseState, EscalationReason
from tests.cases import case_input, eventually
from workflows import Escalation
from workflows.replay import replay_interceptors

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "case.json"


def connection(env) -> list[str]:
    return ["--address", env.client.service_client.config.target_host, "--namespace", env.client.namespace]


@pytest.fixture(autouse=True)
def worker_logs_stay_out_of_cli_output():
    """The runner swaps sys.stdout while a command runs; the in-process worker's logs keep their own stream."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.configure(**saved)


@pytest_asyncio.fixture(name="cli")  # named apart from its function, so modules that import it can ask for `cli`
async def cli_fixture(env, worker, settings):
    runner = CliRunner()
    base = [*connection(env), "--task-queue", settings.task_queue]

    async def invoke(*args: str, input: str | None = None, code: int = 0):
        result = await asyncio.to_thread(runner.invoke, app, [*base, *args], input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, f"escalations {' '.join(args)} -> {result.exit_code}: {result.output}"
        return result

    return invoke


def case_file(tmp_path: Path, **overrides) -> tuple[str, Path]:
    inp = case_input(**overrides)
    path = tmp_path / f"{inp.case_id}.json"
    path.write_text(inp.model_dump_json(exclude_none=True))
    return inp.case_id, path


async def state(cli, case_id: str) -> CaseState:
    return CaseState.model_validate(json.loads((await cli("show", case_id, "--json")).stdout)["state"])


async def owner(cli, case_id: str, tier: str) -> str:
    async def check():
        s = await state(cli, case_id)
        return s.owner.id if s.tier == tier and s.owner and s.owner.id in s.stints[-1].owners else None

    return await eventually(check)


def test_help_lists_every_command_with_examples_and_exit_codes():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    commands = [
        "open",
        "ack",
        "escalate",
        "de-escalate",
        "note",
        "offer",
        "offer-response",
        "wait",
        "replied",
        "resolve",
        "followup",
        "close",
        "show",
        "list",
        "watch",
    ]
    for name in commands:
        assert f"  {name} " in top.stdout
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and "Example" in sub.stdout, name
    assert "Exit codes: 0 done" in top.stdout and "escalations open examples/case.json" in top.stdout


async def test_a_case_from_open_to_follow_up(cli, tmp_path):
    case_id, path = case_file(tmp_path, policy="fast")
    assert f"opened case {case_id}" in (await cli("open", str(path))).stdout
    # Idempotent: opening again reuses the open case; --fail-if-open refuses instead.
    assert "is already open" in (await cli("open", str(path))).stdout
    assert json.loads((await cli("open", str(path), "--json")).stdout) == {
        "case_id": case_id,
        "workflow_id": f"escalation-{case_id}",
        "opened": False,
    }
    refused = await cli("open", str(path), "--fail-if-open", code=6)
    assert f"error: case {case_id} is already open" in refused.stderr

    agent = await owner(cli, case_id, "agent")
    assert "acknowledged at agent by" in (await cli("ack", case_id, "--actor", agent, "--note", "on it")).stdout
    assert (
        "note at agent" in (await cli("note", case_id, "Customer calmer", "-a", agent, "--sentiment", "upset")).stdout
    )
    over = await cli(
        "offer", case_id, "-a", agent, "--kind", "compensation", "--amount", "80", "--description", "Refund", code=3
    )
    assert "error: amount: 80 EUR would bring the total" in over.stderr and "team_lead" in over.stderr
    assert (
        "to_tier=team_lead, reason=needs_authority"
        in (
            await cli(
                "escalate", case_id, "-a", agent, "--reason", "needs_authority", "--detail", "refund above my limit"
            )
        ).stdout
    )
    lead = await owner(cli, case_id, "team_lead")
    offered = json.loads(
        (
            await cli(
                "offer",
                case_id,
                "-a",
                lead,
                "--kind",
                "compensation",
                "--amount",
                "80",
                "--description",
                "Refund",
                "--json",
            )
        ).stdout
    )
    assert offered["id"] == "offer-1" and offered["amount"] == "80" and offered["status"] == "proposed"
    assert (
        "offer-1 80 EUR compensation"
        in (await cli("offer-response", case_id, "offer-1", "accepted", "-a", lead)).stdout
    )
    assert (
        "waiting_on_customer"
        in (await cli("wait", case_id, "-a", lead, "--reason", "bank statement", "--limit", "1d")).stdout
    )
    assert "customer_replied" in (await cli("replied", case_id, "-a", lead, "--channel", "email")).stdout
    assert "to_tier=agent" in (await cli("de-escalate", case_id, "-a", lead, "--reason", "agent follows up")).stdout

    shown = (await cli("show", case_id)).stdout
    assert f"Case {case_id}: open at agent" in shown
    assert 'offer-1 80 EUR compensation "Refund" accepted' in shown
    assert "Timeline (last 10 of" in shown and "Brief" in shown and "escalations 1" in shown

    resolved = await cli(
        "resolve", case_id, "-a", agent, "--resolution", "Refunded", "--root-cause", "billing_error", "--kb-missing"
    )
    assert "resolved at agent" in resolved.stdout

    async def checkin_sent():
        s = await state(cli, case_id)
        return s.checkins and s.checkins[0].sent_at

    await eventually(checkin_sent)
    assert "followup_answered" in (await cli("followup", case_id, "fixed", "--comment", "all good")).stdout

    async def closed():
        return (await state(cli, case_id)).outcome == "resolved"

    await eventually(closed)
    late = await cli("note", case_id, "too late", "-a", agent, code=4)
    assert "error: case" in late.stderr and ("has completed" in late.stderr or "is closed" in late.stderr)


async def test_close_at_the_top_tier(cli, tmp_path):
    case_id, path = case_file(tmp_path, threat=True)
    await cli("open", str(path))
    sup = await owner(cli, case_id, "supervisor")
    await cli("escalate", case_id, "-a", sup, "--reason", "complexity", "--to", "manager")
    manager = await owner(cli, case_id, "manager")
    closed = await cli(
        "close", case_id, "-a", manager, "--outcome", "customer_lost", "--reason", "contract cancelled", "--json"
    )
    assert json.loads(closed.stdout)["kind"] == "closed"


async def test_refusals_print_the_validators_words_and_exit_non_zero(cli, tmp_path):
    case_id, path = case_file(tmp_path)
    await cli("open", str(path))
    agent = await owner(cli, case_id, "agent")
    await cli("ack", case_id, "-a", agent)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(case_input().model_dump(mode="json", exclude_none=True) | {"severity": "urgent"}))

    table = [  # (arguments, exit code, words on stderr)
        (["ack", case_id, "-a", agent], 4, f"actor: already acknowledged at agent by {agent}"),
        (["ack", "C-nobody", "-a", agent], 5, "case C-nobody not found"),
        (
            ["escalate", case_id, "-a", agent, "--reason", "sla_breach"],
            2,
            "'sla_breach' is not one of 'customer_request', 'threat', 'needs_authority', 'complexity'",
        ),
        (["escalate", case_id, "-a", agent, "--reason", "bored"], 2, "bored"),
        (
            ["de-escalate", case_id, "-a", agent, "--reason", "calm"],
            3,
            "target_tier: the case is already at the first tier",
        ),
        (["note", case_id, "", "-a", agent], 3, "NoteInput: text: must not be empty"),
        (
            ["offer", case_id, "-a", agent, "--kind", "goodwill", "--amount", "1.234", "--description", "x"],
            3,
            "amount: has more than 2 decimal places",
        ),
        (["offer-response", case_id, "offer-9", "accepted", "-a", agent], 3, "offer_id: no offer 'offer-9'"),
        (["wait", case_id, "-a", agent, "--reason", "photo", "--limit", "0s"], 3, "limit: must be longer than zero"),
        (["replied", case_id, "-a", agent], 4, "not waiting on the customer"),
        (["resolve", case_id, "-a", agent, "--resolution", "x", "--root-cause", "other"], 3, "kb_article"),
        (["followup", case_id, "fixed"], 4, "follow-up answers are taken only"),
        (
            ["close", case_id, "-a", agent, "--outcome", "customer_lost", "--reason", "gone"],
            3,
            "outcome: only manager may close a case as customer_lost",
        ),
        (["show", "C-nobody"], 5, "case C-nobody not found"),
        (["list", "--tier", "boss"], 2, "boss"),
        (["list", "--due-before", "someday"], 2, "'someday' is neither a duration"),
        (["list", "--due-before", "2026-11-24T09:00:00"], 3, "due_before: give a time zone"),
        (["open", str(tmp_path / "missing.json")], 3, "missing.json: cannot read"),
        (["open", str(bad_json)], 3, "bad.json: not valid JSON"),
        (["open", str(broken)], 3, "EscalationInput: severity: Input should be 'low', 'medium', 'high' or 'critical'"),
    ]
    for args, code, words in table:
        result = await cli(*args, code=code)
        assert words in result.stderr, f"{args}: {result.stderr}"
    # Nothing refused changed the case.
    assert [e.kind for e in (await state(cli, case_id)).timeline] == ["opened", "assigned", "acknowledged"]


async def test_list_count_and_filters(cli, tmp_path):
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    person = {"id": customer, "name": "Dana Doe", "email": "dana@example.org"}
    plain, path = case_file(tmp_path, customer=person, severity="low")
    threat, threat_path = case_file(tmp_path, customer=person, threat=True)
    await cli("open", str(path))
    await cli("open", str(threat_path))
    sam = await owner(cli, threat, "supervisor")
    await owner(cli, plain, "agent")

    async def both_listed():
        return (await cli("list", "--customer", customer, "--count")).stdout.strip() == "2"

    await eventually(both_listed)
    table = (await cli("list", "--customer", customer)).stdout
    assert "2 case(s)" in table and plain in table and threat in table and sam in table and "supervisor" in table
    listed = json.loads((await cli("list", "--customer", customer, "--tier", "supervisor", "--json")).stdout)
    assert [(c["case_id"], c["owner"], c["tier"]) for c in listed] == [(threat, sam, "supervisor")]
    assert (await cli("list", "--customer", customer, "--owner", sam, "--count")).stdout.strip() == "1"
    assert (await cli("list", "--customer", customer, "--severity", "low", "--count")).stdout.strip() == "1"
    assert (await cli("list", "--customer", customer, "--due-before", "1m", "--count")).stdout.strip() == "0"
    assert (await cli("list", "--customer", customer, "--due-before", "2h", "--count")).stdout.strip() == "2"
    # The queue view shows the same table and stops when asked to.
    watched = await cli("watch", "--customer", customer, "--timeout", "0")
    assert "2 case(s)" in watched.stdout and plain in watched.stdout


async def test_watch_follows_a_case_until_it_closes(cli, env, tmp_path):
    case_id, path = case_file(tmp_path)
    await cli("open", str(path))
    agent = await owner(cli, case_id, "agent")
    watching = asyncio.create_task(cli("watch", case_id, "--interval", "0.1", "--timeout", "60"))
    # Driven meanwhile through the client (the CLI runner captures one command at a time).
    case = EscalationClient(env.client).case(case_id)
    await case.acknowledge({"actor": agent})
    await case.resolve({"actor": agent, "resolution": "Refunded", "root_cause": "billing_error", "kb_article": "KB-1"})
    await case.close({"actor": agent, "outcome": "resolved", "reason": "confirmed on the call"})
    out = (await asyncio.wait_for(watching, 60)).stdout
    lines = out.splitlines()
    kinds = [line.split()[3] for line in lines if line.startswith("#")]
    assert kinds == ["opened", "assigned", "acknowledged", "resolved", "closed"]
    # A status line whenever status, tier, owner or SLA changes (how many depends on when watching began).
    assert f"== {case_id}: closed at agent, owner {agent}" in out
    assert lines[-1] == "closed: resolved"


async def test_console_script_and_connection_errors(env, tmp_path):
    script = Path(sys.executable).parent / "escalations"
    run = lambda *args: subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)  # noqa: E731
    missing = await asyncio.to_thread(run, *connection(env), "show", "C-nobody")
    assert missing.returncode == 5 and "error: case C-nobody not found" in missing.stderr
    # A namespace that does not exist is a connection setting, for every command (not "case not found").
    address = connection(env)[:2]
    for args in (["list"], ["list", "--count"], ["show", "C-1"], ["open", str(EXAMPLE)]):
        wrong = await asyncio.to_thread(run, *address, "--namespace", "nope", *args)
        assert wrong.returncode == 8, (args, wrong.stderr)
        assert wrong.stderr.startswith("error: Namespace nope is not found: check the namespace"), (args, wrong.stderr)
    no_file = await asyncio.to_thread(run, "--config-file", str(tmp_path / "none.toml"), "show", "C-1")
    assert no_file.returncode == 8 and "none.toml" in no_file.stderr
    # "localhost" tries two addresses; the SDK's threads used to abort the process on the way out.
    for nowhere in await asyncio.gather(
        *(asyncio.to_thread(run, "--address", "localhost:1", "list") for _ in range(3))
    ):
        assert nowhere.returncode == 8, nowhere.stderr
        assert "cannot connect to Temporal at localhost:1" in nowhere.stderr


async def test_open_reads_stdin(cli):
    payload = json.loads(EXAMPLE.read_text()) | {"case_id": f"C-{uuid.uuid4().hex[:8]}", "policy": "standard"}
    result = await cli("open", "-", input=json.dumps(payload))
    assert f"opened case {payload['case_id']}" in result.stdout


async def test_accept_reassign_and_watch(cli, tmp_path):
    case_id, path = case_file(tmp_path, policy="routing")
    await cli("open", str(path))

    async def offered():
        return await offered_to(cli, case_id)

    rep = await eventually(offered)
    other = "ben" if rep == "ana" else "ana"
    refused = await cli("accept", case_id, "-a", other, code=3)
    assert f"error: actor: case {case_id} is offered to {rep}, not {other}" in refused.stderr
    moved = await cli("reassign", case_id, "-a", "tara", "--reason", "off sick", "--from", rep, "--to", other)
    assert f"reassigned at agent by tara: from_owner={rep}, to={other}, reason=off sick" in moved.stdout
    assert await eventually(lambda: _is(offered(), other))
    assert "assignment_accepted" in (await cli("accept", case_id, "-a", other)).stdout
    stale = await cli("reassign", case_id, "-a", "tara", "--reason", "again", "--from", rep, code=4)
    assert f"from_owner: case {case_id} is with {other}, not {rep}; nothing to reassign" in stale.stderr
    assert "case C-nobody not found" in (await cli("watch", "C-nobody", "--timeout", "0", code=5)).stderr


async def offered_to(cli, case_id: str) -> str | None:
    """The rep the case is offered to, if any."""
    s = await state(cli, case_id)
    return s.pending_assignment.rep.id if s.pending_assignment else None


async def _is(awaitable, expected):
    return await awaitable == expected


# ----- what a command prints, a paused clock, a missed target nobody owns, the reasons a person may give


async def test_ack_of_the_case_offered_to_you_prints_the_acknowledgement(cli, tmp_path):
    case_id, path = case_file(tmp_path, policy="routing")
    await cli("open", str(path))
    rep = await eventually(lambda: offered_to(cli, case_id))
    printed = (await cli("ack", case_id, "-a", rep, "--note", "calling back now")).stdout.strip()
    timeline = (await state(cli, case_id)).timeline
    # Acknowledging accepts the offer first; the command prints its own entry, not the acceptance.
    assert [e.kind for e in timeline[-2:]] == ["assignment_accepted", "acknowledged"]
    assert re.fullmatch(
        rf"#{timeline[-1].seq} \S+ \S+ acknowledged at agent by {rep}: note=calling back now", printed
    ), printed


def test_the_reasons_offered_are_the_contract_s_manual_reasons_in_its_order():
    assert [r.value for r in ManualReason] == [r.value for r in EscalationReason if r in MANUAL_REASONS]


async def test_escalate_offers_only_the_reasons_a_person_may_give(cli, env, tmp_path):
    manual = ["customer_request", "threat", "needs_authority", "complexity"]
    shown = CliRunner().invoke(app, ["escalate", "--help"]).stdout
    assert f"--reason <{'|'.join(manual)}>" in shown and "sla_breach" not in shown
    completions = BashComplete(get_command(app), {}, "escalations", "_ESCALATIONS_COMPLETE")
    assert [c.value for c in completions.get_completions(["escalate", "C-1", "--reason"], "")] == manual
    case_id, path = case_file(tmp_path)
    await cli("open", str(path))
    agent = await owner(cli, case_id, "agent")
    refused = await cli("escalate", case_id, "-a", agent, "--reason", "sla_breach", code=2)
    assert (
        "Invalid value for '--reason': Value error, 'sla_breach' is not one of 'customer_request', 'threat', "
        "'needs_authority', 'complexity'."
    ) in refused.stderr
    # A caller of the API still gets the case's own refusal.
    with pytest.raises(InvalidArgument) as caught:
        await EscalationClient(env.client).case(case_id).escalate({"actor": agent, "reason": "sla_breach"})
    assert str(caught.value) == (
        "reason: 'sla_breach' is set by the system; give one of complexity, customer_request, needs_authority, threat"
    )


async def test_a_paused_clock_shows_its_remaining_time(cli, env, tmp_path):
    case_id, path = case_file(tmp_path)  # standard: the agent acknowledges within 5m, resolves within 1h
    await cli("open", str(path))
    agent = await owner(cli, case_id, "agent")
    await cli("wait", case_id, "-a", agent, "--reason", "photo of the meter")
    s = await state(cli, case_id)
    left = s.resolve_clock.remaining
    assert timedelta(minutes=59) < left < timedelta(hours=1)
    # No stale instant: the paused clock has none; the case says how much working time it has left.
    raw = json.loads((await cli("show", case_id, "--json")).stdout)["state"]
    assert raw["resolve_clock"]["due_at"] is None and raw["resolve_clock"]["paused_at"] is not None
    assert s.sla_paused_remaining == left and s.sla_due_at == s.acknowledge_clock.due_at
    shown = (await cli("show", case_id)).stdout
    assert f"resolve paused (waiting on the customer), {duration(left)} of working time left" in shown
    details = (
        await EscalationClient(env.client)
        .case(case_id)
        .handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    ).current_details
    assert f"\n- resolve clock paused with {duration(left)} of working time left" in details, details
    await cli("replied", case_id, "-a", agent, "--channel", "email")
    resumed = await state(cli, case_id)
    assert resumed.sla_paused_remaining is None and resumed.resolve_clock.remaining is None
    assert resumed.resolve_clock.due_at is not None


async def test_a_missed_target_nobody_owns_stays_first_in_what_breaches_next(cli, env, tmp_path):
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    person = {"id": customer, "name": "Dana Doe", "email": "dana@example.org"}
    # The top (only) tier acknowledges within 2s and no manager speaks French: missed, and nobody owns it.
    missed, missed_path = case_file(tmp_path, policy="overdue", customer=person | {"language": "fr"})
    due_soon, due_soon_path = case_file(tmp_path, customer=person)  # acknowledge within 5m, owned
    await cli("open", str(missed_path))
    await cli("open", str(due_soon_path))
    await owner(cli, due_soon, "agent")

    async def breached():
        s = await state(cli, missed)
        return s if s.acknowledge_clock.breached_at else None

    s = await eventually(breached)
    assert s.owner is None and s.resolve_clock.due_at > s.acknowledge_clock.due_at
    assert s.sla_due_at == s.acknowledge_clock.due_at  # the missed instant, not the resolve target an hour away

    async def both_due():
        rows = json.loads((await cli("list", "--customer", customer, "--due-before", "10m", "--json")).stdout)
        return (
            rows if {r["case_id"] for r in rows} == {missed, due_soon} and any(r["sla_breach"] for r in rows) else None
        )

    rows = {r["case_id"]: r for r in await eventually(both_due)}
    assert rows[missed]["sla_breach"] == "unowned" and rows[due_soon]["sla_breach"] is None
    assert datetime.fromisoformat(rows[missed]["sla_due_at"]) == s.sla_due_at
    table = (await cli("list", "--customer", customer, "--due-before", "10m")).stdout.splitlines()
    listed = [line for line in table if missed in line or due_soon in line]
    assert missed in listed[0] and re.search(r"\d+s late, BREACHED, unowned", listed[0]), table
    # The Temporal UI finds it with the same search attributes.
    query = f'CustomerId = "{customer}" AND SlaBreach = "unowned" AND ExecutionStatus = "Running"'
    assert [w.id async for w in env.client.list_workflows(query)] == [workflow_id(missed)]
    # Closed: the marker goes with the case, and its history (the overdue-marker patch) replays.
    await cli("close", missed, "-a", "maya", "--outcome", "customer_lost", "--reason", "nobody speaks French")
    handle = EscalationClient(env.client).case(missed).handle
    await handle.result()
    described = await handle.describe()
    assert "SlaBreach" not in described.search_attributes and "SlaDueAt" not in described.search_attributes
    replayed = await Replayer(
        workflows=[Escalation], data_converter=data_converter, interceptors=replay_interceptors()
    ).replay_workflow(await handle.fetch_history())
    assert replayed.replay_failure is None


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--category", 'bad value"'], "is not a category"),
        (["--category", "x" * 101], "is not a category"),
        (["--min-risk", "1.5"], "--min-risk"),
        (["--min-risk", "nan"], "--min-risk"),
        (["--min-escalations", "-1"], "--min-escalations"),
        (["--root-cause", "nope"], "--root-cause"),
        (["--highest-tier", "boss"], "--highest-tier"),
        (["--followup", "maybe"], "--followup"),
    ],
)
def test_the_pattern_filters_refuse_bad_values_before_connecting(args, named):
    result = CliRunner().invoke(app, ["--address", "127.0.0.1:1", "list", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output
