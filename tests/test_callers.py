"""What a caller sees at the edges of a case's life, on the real dev server: another SDK's user (the `temporal`
CLI, run as a subprocess) asking right after the start or sending an update without its argument, and the
`escalations` CLI and client on a case the server terminated."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.activity import _Definition
from temporalio.worker import Worker
from typer.testing import CliRunner

from activities.policy import PolicyActivities
from escalation.cli import app
from escalation.client import EscalationClient
from escalation.client.contract import UPDATES
from escalation.client.errors import CaseClosed, CaseEnded, CaseTerminated
from escalation.domain.models import CaseState
from escalation.domain.policy import Policy, PolicyStore
from escalation.domain.refusal import shape
from escalation.identity import HEADER, Signer
from escalation.service.worker import build_identity, interceptors
from tests.cases import case_input, eventually
from tests.conftest import IDENTITY
from worker import build_activities
from workflows import Escalation

TEMPORAL = str(Path(sys.executable).parent / "temporal")


def temporal(env, *args: str) -> subprocess.CompletedProcess:
    """The `temporal` CLI against the test's dev server: another SDK's view of the contract."""
    address = ["--address", env.client.service_client.config.target_host, "--namespace", env.client.namespace]
    return subprocess.run([TEMPORAL, *args, *address], capture_output=True, text=True, timeout=60)


async def run_temporal(env, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(temporal, env, *args)


def signed(rep: str) -> list[str]:
    """The `temporal` CLI's header carrying a credential for `rep` (a JSON string, as the Temporal SDKs send it)."""
    signer = Signer.from_settings(IDENTITY)
    assert signer is not None
    return ["--headers", f"{HEADER}={json.dumps(signer.mint(rep))}"]


async def start(env, task_queue: str, **overrides) -> str:
    inp = case_input(**overrides)
    started = await run_temporal(
        env,
        "workflow",
        "start",
        "--type",
        "Escalation",
        "--task-queue",
        task_queue,
        "--workflow-id",
        f"escalation-{inp.case_id}",
        "--input",
        inp.model_dump_json(exclude_none=True),
        *signed(inp.opened_by),
    )
    assert started.returncode == 0, started.stderr
    return inp.case_id


async def query(env, case_id: str, name: str) -> dict:
    answered = await run_temporal(
        env, "workflow", "query", "--workflow-id", f"escalation-{case_id}", "--type", name, "-o", "json"
    )
    assert answered.returncode == 0, answered.stdout + answered.stderr
    return json.loads(answered.stdout)["queryResult"][0]


@asynccontextmanager
async def policy_held(env, settings) -> AsyncIterator[asyncio.Event]:
    """A worker whose policy answers only once the test sets the event it yields: the case stays `opening`."""
    real = PolicyActivities(PolicyStore(settings.policy_dir))
    loaded = asyncio.Event()

    @activity.defn(name="load_policy")
    async def slow_policy(name: str) -> Policy:
        await loaded.wait()
        return await real.load_policy(name)

    identity = build_identity(settings)
    activities = [
        a
        for a in build_activities(settings, identity=identity)
        if _Definition.must_from_callable(a).name != "load_policy"
    ]
    async with Worker(
        env.client,
        task_queue=settings.task_queue,
        workflows=[Escalation],
        activities=[slow_policy, *activities],
        interceptors=interceptors(identity),
    ):
        yield loaded


async def test_a_query_right_after_the_start_answers_with_the_opening_case(env, settings):
    """While the policy loads the case has no tier yet; the `state` and `brief` queries say it is opening
    (other SDKs showed the error a query raised as QueryNotRegisteredError)."""
    async with policy_held(env, settings) as loaded:
        case_id = await start(env, settings.task_queue, policy="standard")
        state = await query(env, case_id, "state")
        assert (state["status"], state["tier"], state["policy_name"], state["policy_version"]) == (
            "opening",
            None,
            "standard",
            None,
        )
        assert state["case_id"] == case_id and state["input"]["summary"] == "Charged twice for the November invoice"
        brief = await query(env, case_id, "brief")
        assert (brief["status"], brief["tier"], brief["currency"]) == ("opening", None, None)
        assert brief["text"].startswith(
            f"Case {case_id} - high billing - opening (loading policy 'standard'; tier "
            "and owner follow in a moment)\nCustomer: Dana Doe (cust-42)"
        )
        # The contract's model reads it too (the `temporal` CLI prints empty lists as null, so read it here).
        typed = await env.client.get_workflow_handle(f"escalation-{case_id}").query("state", result_type=CaseState)
        assert typed.status == "opening" and typed.tier is None and typed.timeline == []

        loaded.set()

        async def opened():
            s = await query(env, case_id, "state")
            return s if s["status"] == "open" else None

        state = await eventually(opened)
        assert state["tier"] == "agent" and state["policy_version"] and state["timeline"][0]["kind"] == "opened"
        await run_temporal(env, "workflow", "terminate", "--workflow-id", f"escalation-{case_id}", "--reason", "test")


async def test_an_update_without_its_argument_is_refused_naming_the_input_model(env, worker, settings):
    case_id = await start(env, settings.task_queue)
    workflow_id = f"escalation-{case_id}"

    async def update(name: str, *inputs: str) -> str:
        sent = await run_temporal(
            env,
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            *[arg for i in inputs for arg in ("--input", i)],
        )
        assert sent.returncode == 1
        return (sent.stdout + sent.stderr).strip()

    assert await update("acknowledge") == (
        "Error: unable to update workflow: acknowledge takes one argument, an AcknowledgeInput object: "
        "{actor, note?}; none was given (type: InvalidArgument, retryable: false)"
    )
    # Every update of the contract, each naming its own input model.
    for op in UPDATES:
        article = "an" if op.arg.__name__[0] in "AEIOU" else "a"
        assert await update(op.name) == (
            f"Error: unable to update workflow: {op.name} takes one argument, {article} {op.arg.__name__} object: "
            f"{shape(op.arg)}; none was given (type: InvalidArgument, retryable: false)"
        )
    assert await update("schedule_callback") == (
        "Error: unable to update workflow: schedule_callback takes one argument, a ScheduleCallbackInput object: "
        "{actor, at, window?, owner?, channel?, phone?, notes?}; none was given (type: InvalidArgument, "
        "retryable: false)"
    )
    assert await update("add_note", '{"actor": "ana", "text": "x"}', '"again"') == (
        "Error: unable to update workflow: add_note takes one argument, a NoteInput object: {actor, text, "
        "sentiment?}; 2 were given (type: InvalidArgument, retryable: false)"
    )
    assert await update("acknowledge", "null") == (
        "Error: unable to update workflow: AcknowledgeInput: must be an object {actor, note?}, not null "
        "(type: InvalidArgument, retryable: false)"
    )
    # Nothing was applied; the case still takes a proper command.
    state = await query(env, case_id, "state")
    assert [e["kind"] for e in state["timeline"]][:1] == ["opened"] and state["acknowledged_by"] is None
    ok = await run_temporal(
        env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id,
        "--name",
        "acknowledge",
        "--input",
        '{"actor": "ana"}',
        *signed("ana"),
    )
    assert ok.returncode == 0, ok.stderr
    await run_temporal(env, "workflow", "terminate", "--workflow-id", workflow_id, "--reason", "test")


async def test_a_terminated_case_says_by_whom_and_why(env, worker, settings):
    esc = EscalationClient(env.client, task_queue=settings.task_queue, retry_timeout=0)
    case = await esc.open(case_input())
    await case.state()
    ended = await run_temporal(
        env,
        "workflow",
        "terminate",
        "--workflow-id",
        case.workflow_id,
        "--reason",
        "duplicate of C-1002",
        "--identity",
        "ops-console:kim",
    )
    assert ended.returncode == 0, ended.stderr
    ending = await case.ending()
    assert (ending.status, ending.by, ending.reason) == ("terminated", "ops-console:kim", "duplicate of C-1002")
    said = (
        f"case {case.case_id} was terminated by ops-console:kim at {ending.at:%Y-%m-%d %H:%M} UTC: duplicate of "
        "C-1002; it has no outcome and takes no more commands (its last state can still be read)"
    )

    # The client: an update and the outcome both say so (a CaseClosed for commands, a CaseEnded for the outcome).
    with pytest.raises(CaseTerminated) as refused:
        await case.acknowledge({"actor": "ana"})
    assert str(refused.value) == said and isinstance(refused.value, CaseClosed)
    with pytest.raises(CaseTerminated) as no_outcome:
        await case.outcome()
    assert str(no_outcome.value) == said and isinstance(no_outcome.value, CaseEnded)
    assert no_outcome.value.ending.by == "ops-console:kim"

    # The CLI: the refusal (exit 4) and `show`.
    runner = CliRunner()
    base = ["--address", env.client.service_client.config.target_host, "--namespace", env.client.namespace]
    ack = await asyncio.to_thread(runner.invoke, app, [*base, "ack", case.case_id, "-a", "ana"])
    assert ack.exit_code == 4 and ack.stderr == f"error: {said}\n"
    shown = await asyncio.to_thread(runner.invoke, app, [*base, "show", case.case_id])
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"Case {case.case_id}: terminated (was open) at agent, owner ")
    assert lines[1] == (
        f"  ENDED      terminated by ops-console:kim at {ending.at:%Y-%m-%d %H:%M} UTC: duplicate of "
        "C-1002; no outcome, takes no more commands"
    )
    watched = await asyncio.to_thread(runner.invoke, app, [*base, "watch", case.case_id, "--timeout", "60"])
    assert watched.exit_code == 0 and watched.stdout.splitlines()[-1] == (
        f"ended: terminated by ops-console:kim at {ending.at:%Y-%m-%d %H:%M} UTC: duplicate of C-1002"
    )
    as_json = json.loads((await asyncio.to_thread(runner.invoke, app, [*base, "show", case.case_id, "--json"])).stdout)
    assert as_json["ended"] | {"at": None} == {
        "status": "terminated",
        "at": None,
        "by": "ops-console:kim",
        "reason": "duplicate of C-1002",
    }


async def _owned(case) -> CaseState | None:
    state = await case.state()
    return state if state.owner else None


async def test_a_completed_case_still_says_completed(env, worker, settings):
    esc = EscalationClient(env.client, task_queue=settings.task_queue, retry_timeout=0)
    case = await esc.open(case_input("fast"))
    owner = (await eventually(lambda: _owned(case))).owner.id
    await case.resolve({"actor": owner, "resolution": "Refunded", "root_cause": "billing_error", "kb_missing": True})
    await case.close({"actor": owner, "outcome": "resolved", "reason": "sorted on the first call"})
    await case.outcome()
    with pytest.raises(CaseClosed) as refused:
        await case.add_note({"actor": "ana", "text": "late"})
    assert type(refused.value) is CaseClosed
    assert str(refused.value) == (
        f"case {case.case_id} has completed; it takes no more commands (its state and outcome can still be read)"
    )
    assert (await case.ending()).status == "completed"


async def test_a_case_opens_when_it_was_started_however_long_its_policy_takes(env, settings):
    """The SLA clocks start at the workflow's start, an instant history records, not when the policy's answer
    reached the workflow (after a crash that answer can come with an earlier task's time)."""
    async with policy_held(env, settings) as loaded:
        case_id = await start(env, settings.task_queue, policy="standard")
        handle = env.client.get_workflow_handle(f"escalation-{case_id}")
        started = (await handle.describe()).start_time
        await asyncio.sleep(1.0)  # the policy answers a second after the start
        loaded.set()

        async def opened() -> CaseState | None:
            s = await handle.query("state", result_type=CaseState)
            return s if s.status == "open" else None

        state = await eventually(opened)
        assert state.opened_at == started == state.timeline[0].at
        assert state.acknowledge_clock is not None and state.acknowledge_clock.started_at == started
        await handle.terminate("test")
