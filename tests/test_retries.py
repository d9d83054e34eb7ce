"""Crashes and retries against a real dev server: a case whose workflow task keeps failing refuses commands
with a typed, retryable error (client and CLI); an update id is an idempotency key the server applies once;
and the client's own retries resend the same id until the case recovers.

A case is made stuck the way a crash or a bad deploy leaves it: a worker registered under the name
"Escalation" whose every workflow task fails (a plain exception fails the task, not the workflow), so the
server keeps retrying the task and, from its third attempt, refuses updates."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker
from typer.testing import CliRunner

from escalation.cli import Code, app
from escalation.client import EscalationClient
from escalation.client.errors import (
    CaseUnavailable,
    CredentialsRefused,
    EscalationError,
    InvalidArgument,
    InvalidState,
    NamespaceNotFound,
    NoWorker,
    Unreachable,
)
from escalation.constants import WORKFLOW_TYPE, workflow_id
from escalation.domain.models import EscalationInput, NoteInput, TimelineEntry
from tests.cases import case_input, eventually
from tests.test_cli import connection, worker_logs_stay_out_of_cli_output  # noqa: F401 (an autouse fixture)
from worker import build_worker

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class FailingTask:
    """Stands in for worker code that cannot run the case: every workflow task fails."""

    @workflow.run
    async def run(self, case: dict[str, Any]) -> None:
        raise RuntimeError("this worker cannot run the case")


@asynccontextmanager
async def failing_worker(env, task_queue: str) -> AsyncIterator[Worker]:
    async with Worker(env.client, task_queue=task_queue, workflows=[FailingTask]) as w:
        yield w


async def task_attempt(handle: WorkflowHandle) -> int:
    """The attempt of the case's pending workflow task (0: none pending)."""
    described = await handle.describe()
    return described.raw_description.pending_workflow_task.attempt


async def open_stuck(env, task_queue: str, inp: EscalationInput, *, task_timeout: float) -> WorkflowHandle:
    """Open `inp` on `task_queue` while only a failing worker polls it, and wait until the server refuses
    updates (the task's third attempt is pending). The failing worker is gone when this returns, so the
    next worker to poll the queue picks the case up."""
    async with failing_worker(env, task_queue):
        handle = await env.client.start_workflow(
            WORKFLOW_TYPE,
            inp,
            id=workflow_id(inp.case_id),
            task_queue=task_queue,
            task_timeout=timedelta(seconds=task_timeout),
        )
        # The first attempt fails at once; the second is not reported and times out after `task_timeout`.
        await eventually(lambda: _at_least(task_attempt(handle), 2), timeout=30)
    await eventually(lambda: _at_least(task_attempt(handle), 3), timeout=30 + task_timeout)
    return handle


async def _at_least(attempt, n: int) -> bool:
    return await attempt >= n


def accepted_update_ids(history) -> list[str]:
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]


def retries(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The client's retry log lines, as fields."""
    return [
        dict(re.findall(r"(\w+)=(\S+)", r.getMessage()))
        for r in caplog.records
        if r.name == "escalation.client" and r.getMessage().startswith("update_retry")
    ]


@pytest_asyncio.fixture
async def stuck(env, settings) -> AsyncIterator[tuple[str, WorkflowHandle]]:
    task_queue = f"{settings.task_queue}-stuck"
    inp = case_input()
    handle = await open_stuck(env, task_queue, inp, task_timeout=1)
    yield inp.case_id, handle
    await handle.terminate("test finished")


async def test_a_case_whose_workflow_task_fails_refuses_commands_with_a_typed_retryable_error(env, stuck, caplog):
    case_id, handle = stuck
    case = EscalationClient(env.client, retry_timeout=0).case(case_id)
    with pytest.raises(CaseUnavailable) as caught:
        await case.add_note(NoteInput(actor="ana", text="called the customer"), update_id="note-1")
    err = caught.value
    assert isinstance(err, EscalationError) and err.type == "CaseUnavailable" and err.retryable
    assert err.update_id == "note-1"
    assert str(err).startswith(
        f"case {case_id} cannot take commands right now: its workflow task is failing "
        "(a worker restarted mid-task, or the case is stuck); nothing was applied. Try again "
        "shortly with the same update id; if it persists, `escalations doctor` lists stuck "
        "cases"
    )
    # The server's own words (FAILED_PRECONDITION with a WorkflowNotReadyFailure detail) are kept at the end.
    assert "Workflow Task in failed state" in str(err)

    # The client resends it with the same id, backing off, until its retry time is up; then raises.
    caplog.set_level(logging.INFO, logger="escalation.client")
    patient = EscalationClient(env.client, retry_timeout=1.5).case(case_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CaseUnavailable) as again:
        await patient.acknowledge({"actor": "ana"})
    assert 1.5 <= loop.time() - started < 10
    generated = again.value.update_id
    assert re.fullmatch(UUID, generated)
    tries = retries(caplog)
    assert len(tries) >= 3 and {t["update_id"] for t in tries} == {generated}
    assert [int(t["attempt"]) for t in tries] == list(range(1, len(tries) + 1))
    assert {t["error"] for t in tries} == {"CaseUnavailable"} and {t["case_id"] for t in tries} == {case_id}
    # Nothing was taken.
    assert accepted_update_ids(await handle.fetch_history()) == []


def test_retryable_says_what_a_caller_may_send_again():
    assert not EscalationError("x").retryable and not InvalidState("x").retryable
    assert CaseUnavailable("x").retryable and Unreachable("x").retryable and NoWorker("x").retryable
    assert not CredentialsRefused("x").retryable and not NamespaceNotFound("x").retryable


async def test_the_client_retry_resends_the_same_update_id_until_the_case_recovers(env, settings, caplog):
    """A crash left the case's workflow task failing and no worker runs; an update sent meanwhile is refused
    and resent with its id; when a healthy worker starts, the case recovers and applies it once."""
    caplog.set_level(logging.INFO, logger="escalation.client")
    stuck_settings = settings.model_copy(update={"task_queue": f"{settings.task_queue}-recovers"})
    inp = case_input()
    # Long enough for a healthy worker's first task (replaying the case from the start) on a busy machine.
    handle = await open_stuck(env, stuck_settings.task_queue, inp, task_timeout=5)
    case = EscalationClient(env.client, retry_timeout=60).case(inp.case_id)
    sending = asyncio.create_task(case.add_note(NoteInput(actor="ana", text="customer called again")))
    try:
        await eventually(lambda: _retried(caplog), timeout=10)
        assert not sending.done()
        async with build_worker(env.client, stuck_settings):
            entry = await asyncio.wait_for(sending, 60)
            assert isinstance(entry, TimelineEntry) and entry.kind == "note" and entry.actor == "ana"
            state = await case.state()
        [update_id] = {t["update_id"] for t in retries(caplog)}
        assert re.fullmatch(UUID, update_id)
        # The update the case finally took carries the id of every refused try, and it took it once.
        assert accepted_update_ids(await handle.fetch_history()) == [update_id]
        assert [e.kind for e in state.timeline].count("note") == 1
    finally:
        sending.cancel()
        await handle.terminate("test finished")


async def _retried(caplog) -> bool:
    return bool(retries(caplog))


@pytest_asyncio.fixture
async def esc(env, worker, settings) -> EscalationClient:
    return EscalationClient(env.client, task_queue=settings.task_queue)


async def test_an_update_id_is_applied_once_and_a_repeat_gets_the_first_result(esc, env):
    case = await esc.open(case_input())
    note = NoteInput(actor="ana", text="promised a refund by Friday")
    key = f"crm-{uuid.uuid4().hex[:8]}"
    first = await case.add_note(note, update_id=key)
    again = await case.add_note(note, update_id=key)
    assert again == first and first.kind == "note"
    # The key names the command: a repeat gets the first result whatever it carries.
    other = await case.add_note({"actor": "ana", "text": "something else"}, update_id=key)
    assert other == first
    notes = [e for e in (await case.state()).timeline if e.kind == "note"]
    assert notes == [first]
    history = await case.handle.fetch_history()
    assert accepted_update_ids(history) == [key]
    # A new key is a new command.
    assert (await case.add_note(note)).seq > first.seq


# ----- CLI


def invoke(env, *args: str) -> Any:
    result = CliRunner().invoke(app, [*connection(env), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_cli_help_names_the_update_id_and_exit_code_9():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"]).stdout
    assert "--retry-timeout" in top and "9 the case cannot take commands for now" in " ".join(top.split())
    for name in (
        ["ack"],
        ["escalate"],
        ["de-escalate"],
        ["note"],
        ["offer"],
        ["offer-response"],
        ["wait"],
        ["replied"],
        ["resolve"],
        ["followup"],
        ["close"],
        ["accept"],
        ["reassign"],
        ["callback", "schedule"],
        ["callback", "outcome"],
        ["callback", "reschedule"],
        ["callback", "cancel"],
    ):
        assert "--update-id" in runner.invoke(app, [*name, "--help"]).stdout, name


async def test_cli_exit_code_and_the_update_id_to_retry_with_for_a_stuck_case(env, stuck):
    case_id, _ = stuck
    result = await asyncio.to_thread(invoke, env, "--retry-timeout", "0", "note", case_id, "calmer", "-a", "ana")
    assert result.exit_code == Code.UNAVAILABLE == 9, result.output
    assert result.stderr.startswith(
        f"error: case {case_id} cannot take commands right now: its workflow task is failing"
    )
    assert "`escalations doctor` lists stuck cases" in result.stderr
    match = re.search(
        rf"to retry safely, send the same command with --update-id ({UUID}) \(the case applies it "
        r"once\)",
        result.stderr,
    )
    assert match, result.stderr
    mine = await asyncio.to_thread(
        invoke, env, "--retry-timeout", "0", "ack", case_id, "-a", "ana", "--update-id", "ack-7"
    )
    assert mine.exit_code == 9 and "--update-id ack-7 " in mine.stderr


async def test_cli_update_id_makes_a_repeated_command_safe(env, esc, settings):
    case = await esc.open(case_input())
    args = [
        "--task-queue",
        settings.task_queue,
        "note",
        case.case_id,
        "promised a refund",
        "-a",
        "ana",
        "--update-id",
        "desk-42",
        "--json",
    ]
    first = await asyncio.to_thread(invoke, env, *args)
    second = await asyncio.to_thread(invoke, env, *args)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.stdout == second.stdout
    assert [e.kind for e in (await case.state()).timeline].count("note") == 1


@pytest.mark.parametrize("bad", ["", "x" * 201, "line\nbreak"])
async def test_an_update_id_out_of_bounds_is_refused_before_sending(env, bad):
    case = EscalationClient(env.client).case("C-never-sent")
    with pytest.raises(InvalidArgument) as refused:
        await case.add_note({"actor": "ana", "text": "hello"}, update_id=bad)
    assert refused.value.field == "update_id" and "1 to 200 printable characters" in refused.value.message
