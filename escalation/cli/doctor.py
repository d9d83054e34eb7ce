"""`escalations doctor`: find the cases whose workflow task keeps failing, say why, and reset each to the
last point its history replays cleanly with today's code.

A case is stuck when its pending workflow task is on a second attempt or later, or a workflow task failed
since the last one that completed: the server retries it for ever and the case does nothing meanwhile
(no SLA breach, no offer, no update answered). The usual cause is a nondeterministic replay: a worker
crashed or restarted and the code no longer makes the commands the history recorded.

The last good point is the newest completed workflow task whose history, cut right after that task
started, replays without error. A reset there keeps the events up to that start, runs the rest again with
today's code and, as by default, applies again the signals and updates received after it. `deep` also
replays the full history of every open case, to find cases that run now but would fail their next
replay (after a worker restart or a cache eviction); they are reported, never reset.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from escalation.client.converter import data_converter, header_codec
from escalation.client.errors import EscalationError, translate
from escalation.constants import WORKFLOW_TYPE, workflow_id
from escalation.logs import REPLAY_NAMESPACE, case_of, core_failure_message, first_line, quiet_replays

P = TypeVar("P")

QUERY = f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
CONCURRENCY = 8  # cases looked at (and histories replayed) at a time
STUCK_ATTEMPT = 2  # a pending workflow task on this attempt or later has failed (or timed out) before
# A task that only timed out is a worker that died mid-task until it has gone on for longer than a restart
# takes (sticky queue and task timeouts, 10 s each): resetting such a case would redo work for nothing.
TIMEOUT_GRACE = timedelta(minutes=1)
# Failed tasks that are part of normal work, not a failing case: the marker a reset leaves, and a task the
# server refused because new events came in while it ran (the next one sees them).
_ROUTINE = {
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
}


class Finding(BaseModel):
    """A case the doctor found: stuck (its workflow task is failing now) or, with deep, latent (it runs,
    but its history no longer replays with this code)."""

    case_id: str
    workflow_id: str
    run_id: str
    state: Literal["stuck", "latent"]
    cause: str  # NON_DETERMINISTIC_ERROR, WORKFLOW_WORKER_UNHANDLED_FAILURE, WORKFLOW_TASK_TIMED_OUT ...
    message: str  # first line of the failure
    failing_since: datetime | None = None  # the first failure since the last completed task
    attempt: int = 0  # of the pending workflow task (0: none pending)
    reset_event_id: int | None = None  # last good point: a WorkflowTaskCompleted event; None: none replays
    reset_command: str | None = None
    new_run_id: str | None = None  # set once repaired


class Report(BaseModel):
    checked: int  # running cases looked at
    deep: bool
    cases: list[Finding]


class NotStuck(EscalationError):
    """The case is no longer stuck (or no longer on that run): it is left as it is."""

    type = "NotStuck"


# ----- finding


async def diagnose(
    client: Client, case_ids: Sequence[str] = (), *, deep: bool = False, concurrency: int = CONCURRENCY
) -> Report:
    """Every running case (or only `case_ids`), CONCURRENCY at a time; a case that completes meanwhile is skipped."""
    runs = await _running(client, case_ids)
    limit = asyncio.Semaphore(concurrency)

    async def one(wid: str, rid: str) -> Finding | None:
        async with limit:
            return await examine(client, wid, rid, deep=deep)

    found = await asyncio.gather(*(one(wid, rid) for wid, rid in runs))
    return Report(checked=len(runs), deep=deep, cases=[f for f in found if f is not None])


async def _running(client: Client, case_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(workflow id, run id) of the running cases asked for; all of them from visibility when none are named."""
    try:
        if not case_ids:
            return [(ex.id, ex.run_id) async for ex in client.list_workflows(QUERY)]
        runs = []
        for case_id in case_ids:
            try:
                desc = await client.get_workflow_handle(workflow_id(case_id)).describe()
            except RPCError as err:
                raise translate(err, case_id) from None
            if desc.status == WorkflowExecutionStatus.RUNNING:
                runs.append((desc.id, desc.run_id))
        return runs
    except RPCError as err:
        raise translate(err) from None


async def examine(client: Client, wid: str, rid: str, *, deep: bool = False) -> Finding | None:
    """The finding for one run of a case, or None when it is healthy (or no longer running)."""
    handle = client.get_workflow_handle(wid, run_id=rid)
    try:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        raw = desc.raw_description
        attempt = raw.pending_workflow_task.attempt if raw.HasField("pending_workflow_task") else 0
        history = None
        if attempt:  # a healthy case mostly waits with no task pending: its history is not fetched
            history = await handle.fetch_history()
            failing = _failing(history.events)
            if failing is not None and (
                _recorded_failure(failing[1])
                or (attempt >= STUCK_ATTEMPT and _failing_for(failing[0]) >= TIMEOUT_GRACE)
            ):
                since, last = failing
                cause, message = _describe(last)
                return await _finding(
                    client, history, rid, "stuck", cause, message, since.event_time.ToDatetime(tzinfo=UTC), attempt
                )
        if not deep:
            return None
        history = history or await handle.fetch_history()
    except RPCError as err:
        raise translate(err, case_of(wid)) from None
    failure = await _replay_failure(history, client.data_converter)
    if failure is None:
        return None
    cause, message = failure
    return await _finding(client, history, rid, "latent", cause, message, None, attempt)


def _failing(events: Sequence[HistoryEvent]) -> tuple[HistoryEvent, HistoryEvent] | None:
    """(first, last) workflow task failure or timeout since the last completed workflow task, if any."""
    first: HistoryEvent | None = None
    last: HistoryEvent | None = None
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            first = last = None
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT or (
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            and e.workflow_task_failed_event_attributes.cause not in _ROUTINE
        ):
            first, last = first or e, e
    return None if first is None or last is None else (first, last)


def _failing_for(since: HistoryEvent) -> timedelta:
    return datetime.now(UTC) - since.event_time.ToDatetime(tzinfo=UTC)


def _recorded_failure(event: HistoryEvent) -> bool:
    return event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED


def _describe(event: HistoryEvent) -> tuple[str, str]:
    """(cause, first line of the message) of a failed or timed-out workflow task event."""
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        attrs = event.workflow_task_failed_event_attributes
        cause = WorkflowTaskFailedCause.Name(attrs.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
        return cause, first_line(attrs.failure.message) or "(no message)"
    kind = TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)
    return "WORKFLOW_TASK_TIMED_OUT", (
        f"timed out ({kind.removeprefix('TIMEOUT_TYPE_')}): a worker took the "
        "task and did not finish it (crashed, stuck or too slow)"
    )


async def _finding(
    client: Client,
    history: WorkflowHistory,
    run_id: str,
    state: Literal["stuck", "latent"],
    cause: str,
    message: str,
    since: datetime | None,
    attempt: int,
) -> Finding:
    good = await last_good_point(history, client.data_converter)
    found = Finding(
        case_id=case_of(history.workflow_id) or history.workflow_id,
        workflow_id=history.workflow_id,
        run_id=run_id,
        state=state,
        cause=cause,
        message=message,
        failing_since=since,
        attempt=attempt,
        reset_event_id=good,
    )
    if good is not None:
        found.reset_command = reset_command(found, client.namespace)
    return found


# ----- replaying


@functools.cache
def _replayer(converter: DataConverter = data_converter) -> Replayer:
    """A replayer decoding with `converter` (the client's: its codec decrypts the payloads)."""
    from workflows import Escalation  # the workflow code the workers run now
    from workflows.replay import replay_interceptors

    quiet_replays()
    # Core would write each failing replay to stderr; its result is all that is wanted here.
    runtime = Runtime(telemetry=TelemetryConfig(logging=None))
    return Replayer(
        workflows=[Escalation],
        data_converter=converter,
        header_codec_behavior=header_codec(converter),
        namespace=REPLAY_NAMESPACE,
        runtime=runtime,
        interceptors=replay_interceptors(),
    )


async def _replay_failure(
    history: WorkflowHistory, converter: DataConverter = data_converter
) -> tuple[str, str] | None:
    """(cause, first line of the message) when the history does not replay with this code, else None."""
    try:
        result = await _replayer(converter).replay_workflow(history, raise_on_replay_failure=False)
    except Exception as err:  # the history could not be replayed at all (not a workflow task failing)
        return "REPLAY_ERROR", first_line(f"{type(err).__name__}: {err}")
    failure = result.replay_failure
    if failure is None:
        return None
    cause = (
        "NON_DETERMINISTIC_ERROR" if isinstance(failure, NondeterminismError) else "WORKFLOW_WORKER_UNHANDLED_FAILURE"
    )
    return cause, first_line(core_failure_message(str(failure))) or type(failure).__name__


def _cut(history: WorkflowHistory, last_event_id: int) -> WorkflowHistory:
    return WorkflowHistory(history.workflow_id, [e for e in history.events if e.event_id <= last_event_id])


async def last_good_point(history: WorkflowHistory, converter: DataConverter = data_converter) -> int | None:
    """The newest WorkflowTaskCompleted event whose history, cut right after its task started, replays."""
    points = [
        (e.event_id, e.workflow_task_completed_event_attributes.started_event_id)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]

    async def replays(point: tuple[int, int]) -> bool:
        return await _replay_failure(_cut(history, point[1]), converter) is None

    best = await newest_good(points, replays)
    return None if best is None else best[0]


async def newest_good(candidates: Sequence[P], good: Callable[[P], Awaitable[bool]]) -> P | None:
    """The newest (last) candidate that is good, trying the newest first (a case usually breaks in its last
    task), then halving: a prefix of a history that replays makes every shorter one replay too (replay only
    compares what is in the history), so this finds the point that trying them one by one, newest first,
    would, in a handful of replays instead of one per task. Only a candidate seen good is returned."""
    if not candidates or await good(candidates[-1]):
        return candidates[-1] if candidates else None
    best, lo, hi = None, 0, len(candidates) - 1  # candidates[hi:] are bad
    while lo < hi:
        mid = (lo + hi) // 2
        if await good(candidates[mid]):
            best, lo = candidates[mid], mid + 1
        else:
            hi = mid
    return best


# ----- repairing


def reset_reason(finding: Finding) -> str:
    return f"escalations doctor: {finding.cause}; back to the last workflow task that replays"


def reset_command(finding: Finding, namespace: str) -> str:
    """The `temporal` CLI command that does what `escalations doctor --repair` does for this case."""
    ns = "" if namespace == "default" else f" --namespace {namespace}"
    return (
        f"temporal workflow reset{ns} --workflow-id {finding.workflow_id} --run-id {finding.run_id} "
        f'--event-id {finding.reset_event_id} --reason "{reset_reason(finding)}"'
    )


async def repair(client: Client, finding: Finding) -> str:
    """Reset a stuck case to its last good point; returns the new run id. The case is examined again first:
    one that is no longer stuck on the same run raises NotStuck and is left alone."""
    now = await examine(client, finding.workflow_id, finding.run_id)
    if now is None or now.state != "stuck":
        raise NotStuck(f"case {finding.case_id} is no longer stuck (run {finding.run_id}); not reset")
    if now.reset_event_id is None:
        raise NotStuck(
            f"case {finding.case_id}: no reset helps, no earlier workflow task of run {finding.run_id} "
            "replays with this code; fix the workflow code the workers run"
        )
    request = ResetWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=now.workflow_id, run_id=now.run_id),
        reason=reset_reason(now),
        workflow_task_finish_event_id=now.reset_event_id,
        request_id=str(uuid.uuid4()),
    )
    try:
        response = await client.workflow_service.reset_workflow_execution(request)
    except RPCError as err:
        raise translate(err, finding.case_id) from None
    finding.reset_event_id = now.reset_event_id
    finding.new_run_id = response.run_id
    return response.run_id
