"""Stuck cases on the real dev server: `escalations doctor` finds them and resets them to their last good
point, and the worker logs one clear line per failing run instead of a traceback per retry.

A broken case is made the way it happens in production: its history was written by other code. A worker
runs a stand-in registered as "Escalation" that starts a timer and waits; that worker stops, a signal wakes
the case, and the real worker's replay makes different commands (the real workflow first loads its policy):
a nondeterminism error on every attempt, and the case is stuck. The CLI runs in a thread (its own event
loop, as from a terminal) so the worker on the test's loop keeps working meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import structlog
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Worker
from typer.testing import CliRunner

from escalation import logs
from escalation.cli import app
from escalation.cli import doctor as doctor_module
from escalation.client import case_state, open_case
from escalation.client.converter import data_converter
from escalation.constants import WORKFLOW_TYPE
from tests.cases import case_input, eventually, owned
from tests.test_replay import HISTORIES
from worker import build_worker


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class StandIn:
    """Other code under the workflow's name: a timer first, where the real workflow loads its policy."""

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> None:
        await workflow.sleep(timedelta(hours=1))


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class Buggy:
    """A bug in workflow code: every attempt of its first workflow task raises."""

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> None:
        raise RuntimeError("routing table missing\n(second line is not logged)")


def connection(client: Client) -> list[str]:
    return ["--address", client.service_client.config.target_host, "--namespace", client.namespace]


async def doctor(client: Client, *args: str, code: int | None = 0, input: str | None = None):
    result = await asyncio.to_thread(CliRunner().invoke, app, [*connection(client), "doctor", *args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert code is None or result.exit_code == code, f"doctor {' '.join(args)} -> {result.exit_code}: {result.output}"
    return result


async def events_of(handle: WorkflowHandle, kind: int) -> list[int]:
    return [e.event_id for e in (await handle.fetch_history()).events if e.event_type == kind]


async def written_by_stand_in(client: Client, task_queue: str) -> tuple[str, WorkflowHandle]:
    """A running case whose history the real workflow cannot replay (its worker has stopped)."""
    inp = case_input()
    async with Worker(client, task_queue=task_queue, workflows=[StandIn]):
        handle = await open_case(client, inp, task_queue_name=task_queue)
        await eventually(lambda: events_of(handle, EventType.EVENT_TYPE_TIMER_STARTED))
    return inp.case_id, client.get_workflow_handle(handle.id)


async def attempt(handle: WorkflowHandle) -> int:
    raw = (await handle.describe()).raw_description
    return raw.pending_workflow_task.attempt if raw.HasField("pending_workflow_task") else 0


def at_least(n: int, handle: WorkflowHandle) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await attempt(handle) >= n

    return check


async def stop(*handles: WorkflowHandle) -> None:
    for handle in handles:
        with contextlib.suppress(Exception):  # completed already
            await handle.terminate("test finished")


async def test_doctor_lists_a_stuck_case_and_repairs_it(env, settings):
    client = env.client
    case_id, handle = await written_by_stand_in(client, settings.task_queue)
    try:
        async with build_worker(client, settings):
            await handle.signal("wake")  # a new workflow task: the real worker replays and fails
            await eventually(at_least(2, handle), timeout=30)
            run_id = (await handle.describe()).run_id
            [good] = await events_of(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)  # the stand-in's one task

            [found] = json.loads((await doctor(client, case_id, "--json", code=10)).stdout)["cases"]
            assert found["case_id"] == case_id and found["run_id"] == run_id and found["state"] == "stuck"
            assert found["cause"] == "NON_DETERMINISTIC_ERROR" and "Nondeterminism" in found["message"]
            assert found["attempt"] >= 2 and found["failing_since"] and found["reset_event_id"] == good
            assert found["reset_command"] == (
                f"temporal workflow reset --workflow-id escalation-{case_id} --run-id {run_id} --event-id {good} "
                '--reason "escalations doctor: NON_DETERMINISTIC_ERROR; back to the last workflow task that replays"'
            )

            # Every running case: the table names it, the cause, and the command to copy.
            everyone = (await doctor(client, code=10)).stdout
            assert case_id in everyone and "NON_DETERMINISTIC_ERROR" in everyone
            assert found["reset_command"] in everyone

            # Asked and declined: nothing is reset.
            declined = await doctor(client, case_id, "--repair", input="n\n", code=10)
            assert "reset case" in declined.stderr and (await handle.describe()).run_id == run_id

            repaired = await doctor(client, case_id, "--repair", "--yes")
            new_run = repaired.stdout.split("new run ")[1].split()[0]
            assert (await handle.describe()).run_id == new_run != run_id
            # The case runs again: its workflow task completes and its state answers.
            state = await eventually(lambda: case_state(handle), timeout=30)
            assert state.case_id == case_id and state.timeline[0].kind == "opened"
            await eventually(lambda: events_of(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED), timeout=30)
            assert "nothing stuck: 1 running case(s) checked" in (await doctor(client, case_id)).stdout
            assert case_id not in (await doctor(client, code=None)).stdout
    finally:
        await stop(handle)


async def test_deep_finds_a_case_that_would_fail_replay_and_never_resets_it(env, settings):
    client = env.client
    case_id, handle = await written_by_stand_in(client, settings.task_queue)
    try:
        run_id = (await handle.describe()).run_id
        # Nothing is failing (no worker has tried it yet): a plain look finds nothing.
        assert "nothing stuck" in (await doctor(client, case_id)).stdout
        report = json.loads((await doctor(client, case_id, "--deep", "--json", code=10)).stdout)
        [found] = report["cases"]
        assert report["deep"] and found["state"] == "latent" and found["cause"] == "NON_DETERMINISTIC_ERROR"
        [good] = await events_of(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        assert found["reset_event_id"] == good and found["attempt"] == 0 and found["failing_since"] is None
        shown = (await doctor(client, case_id, "--deep", "--repair", "--yes", code=10)).stdout
        assert "latent (would fail replay)" in shown and "new run" not in shown
        assert (await handle.describe()).run_id == run_id
    finally:
        await stop(handle)


async def test_a_healthy_case_is_not_listed(env, worker, settings):
    handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    case_id = (await owned(handle)).case_id
    try:
        assert "nothing stuck: 1 running case(s) checked" in (await doctor(env.client, case_id)).stdout
        deep = await doctor(env.client, case_id, "--deep", "--json")
        assert json.loads(deep.stdout) == {"checked": 1, "deep": True, "cases": []}
        assert case_id not in (await doctor(env.client, code=None)).stdout
        repaired = await doctor(env.client, case_id, "--repair", "--yes")
        assert "new run" not in repaired.stdout and (await handle.describe()).run_id == handle.result_run_id
        missing = await doctor(env.client, "C-nobody", code=5)
        assert "case C-nobody not found" in missing.stderr
    finally:
        await stop(handle)


def lines_for(captured: list[dict[str, Any]], case_id: str) -> list[dict[str, Any]]:
    return [e for e in captured if e.get("event") == "workflow_task_failed" and e.get("case_id") == case_id]


async def test_worker_logs_one_line_per_failing_run_not_a_traceback_per_retry(env, settings):
    watch = logs.watch_task_failures()
    cases = [case_input(), case_input()]
    handles = []
    with structlog.testing.capture_logs() as captured:
        try:
            async with Worker(
                env.client, task_queue=settings.task_queue, workflows=[Buggy], interceptors=[logs.RunNames()]
            ):
                for inp in cases:
                    handles.append(await open_case(env.client, inp, task_queue_name=settings.task_queue))
                for handle in handles:
                    # The SDK reported the failure at least twice (first attempt and retry) ...
                    run_id = (await handle.describe()).run_id
                    await eventually(lambda run_id=run_id: _true(watch.failures(run_id) >= 2), timeout=30)
        finally:
            await stop(*handles)
    # ... and the log has one line per run, naming its case, with the traceback once.
    for inp, handle in zip(cases, handles, strict=True):
        [line] = lines_for(captured, inp.case_id)
        assert line["workflow_id"] == f"escalation-{inp.case_id}" and line["run_id"] == handle.result_run_id
        assert line["error"] == "RuntimeError" and line["message"] == "routing table missing"
        assert "escalations doctor" in line["hint"] and line["log_level"] == "warning"
        assert line["exc_info"][0] is RuntimeError
        assert "Dana Doe" not in str(line) and "dana@example.org" not in str(line)  # nothing of the customer's


async def test_a_nondeterministic_case_is_logged_once_with_its_case(env, settings):
    """Core reports a nondeterministic task by run id alone; forwarded into logging, the line names the case."""
    watch = logs.watch_task_failures()
    forwarding = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter,
        runtime=logs.temporal_runtime(),
    )
    case_id, handle = await written_by_stand_in(env.client, settings.task_queue)
    with structlog.testing.capture_logs() as captured:
        try:
            async with build_worker(forwarding, settings):
                await handle.signal("wake")
                await eventually(at_least(2, handle), timeout=30)
                run_id = (await handle.describe()).run_id
                # Core hands its log lines over in batches: wait for this one.
                await eventually(lambda: _true(watch.failures(run_id) >= 1), timeout=10)
        finally:
            await stop(handle)
    [line] = lines_for(captured, case_id)
    assert line["run_id"] == run_id and line["error"] == "NondeterminismError"
    assert line["message"].startswith("[TMPRL1100] Nondeterminism error")
    assert "exc_info" not in line


async def _true(value: bool) -> bool:
    return value


# ----- the last good point


@pytest.mark.parametrize("size", [1, 2, 7, 30])
async def test_newest_good_finds_what_trying_newest_first_would(size):
    for first_bad in range(size + 1):  # candidates before first_bad replay, the rest do not
        tried: list[int] = []

        async def good(i: int, tried: list[int] = tried, first_bad: int = first_bad) -> bool:
            tried.append(i)
            return i < first_bad

        expected = first_bad - 1 if first_bad else None
        assert await doctor_module.newest_good(list(range(size)), good) == expected
        assert len(tried) <= 2 + size.bit_length()


async def test_last_good_point_of_a_long_history_broken_in_the_middle():
    """A recorded case (about 30 workflow tasks) whose history says one activity had another name."""
    history = WorkflowHistory.from_json("full", (HISTORIES / "full_story.json").read_text())
    completed = [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    assert await doctor_module.last_good_point(history) == completed[-1]  # it all replays
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    broken = scheduled[len(scheduled) // 2].activity_task_scheduled_event_attributes
    broken.activity_type.name = "renamed_activity"
    # The task that scheduled it is the last one that replays: a reset there runs it again.
    assert await doctor_module.last_good_point(history) == broken.workflow_task_completed_event_id


def test_help_shows_the_doctor_and_its_exit_code():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    words = " ".join(top.stdout.split())  # as wrapped for the terminal
    assert "  doctor " in top.stdout and "escalations doctor --repair" in words
    assert "10 doctor found stuck cases" in words
    sub = runner.invoke(app, ["doctor", "--help"])
    words = " ".join(sub.stdout.split())
    assert sub.exit_code == 0 and "Examples: escalations doctor" in words and "10 stuck cases" in words
