"""Replay guards every change to the workflow code: recorded histories must replay without
non-determinism. Re-record after an intentional change with `python -m tests.test_replay`
(and keep the old files when running cases must still replay: use workflow.patched for those)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Replayer

from escalation.client import case_state, open_case
from escalation.client.converter import data_converter
from escalation.constants import workflow_id
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    Callback,
    CallbackOutcomeInput,
    EscalateInput,
    FollowUpResponseInput,
    NoteInput,
    Offer,
    OfferInput,
    OfferResponseInput,
    ReassignInput,
    ResolveInput,
    ScheduleCallbackInput,
    TimelineEntry,
)
from escalation.domain.rules import holder
from tests.cases import case_input, eventually, owned
from workflows import Escalation
from workflows.replay import replay_interceptors

HISTORIES = Path(__file__).parent / "histories"


async def drive_full_story(client: Client, task_queue: str) -> WorkflowHandle:
    """Opened, acknowledged, noted, refused offer, escalated, offer granted, resolved, reopened by a
    negative follow-up, resolved again, confirmed fixed: most of the workflow's paths in one case."""
    handle = await open_case(client, case_input("fast", case_id="REPLAY-1"), task_queue_name=task_queue)
    await owned(handle)
    te = TimelineEntry
    await handle.execute_update("acknowledge", AcknowledgeInput(actor="ana"), result_type=te)
    await handle.execute_update(
        "add_note", NoteInput(actor="ana", text="Very upset", sentiment="angry"), result_type=te
    )
    await handle.execute_update("escalate", EscalateInput(actor="ana", reason="needs_authority"), result_type=te)
    await owned(handle)
    await handle.execute_update(
        "propose_offer",
        OfferInput(actor="tara", kind="compensation", amount=Decimal("60"), description="Refund"),
        result_type=Offer,
    )
    await handle.execute_update(
        "record_offer_response",
        OfferResponseInput(actor="tara", offer_id="offer-1", answer="accepted"),
        result_type=Offer,
    )
    await handle.execute_update(
        "resolve",
        ResolveInput(actor="tara", resolution="Refunded", root_cause="billing_error", kb_article="KB-1"),
        result_type=te,
    )
    await eventually(lambda: _checkin_sent(handle, 0))
    await handle.execute_update("followup_response", FollowUpResponseInput(answer="not_fixed"), result_type=te)
    await owned(handle)
    await handle.execute_update(
        "resolve",
        ResolveInput(actor="tara", resolution="Mandate fixed", root_cause="process_failure", kb_missing=True),
        result_type=te,
    )
    await eventually(lambda: _checkin_sent(handle, 2))
    await handle.execute_update("followup_response", FollowUpResponseInput(answer="fixed"), result_type=te)
    await handle.result()
    return handle


async def drive_routing_story(client: Client, task_queue: str) -> WorkflowHandle:
    """Offered and accepted; a callback unanswered, then reached on its retry (announced to the customer);
    a second callback booked with another rep; the case reassigned to the other agent (looked up in the
    roster) and acknowledged by them (accepting the offer); resolved, which cancels the pending callback;
    confirmed fixed: the routing and callback paths in one case."""
    handle = await open_case(client, case_input("story", case_id="REPLAY-2"), task_queue_name=task_queue)
    te = TimelineEntry
    first = await eventually(lambda: _holder(handle))
    await handle.execute_update("accept", AcceptInput(actor=first), result_type=te)
    await handle.execute_update(
        "schedule_callback", ScheduleCallbackInput(actor=first, at="earliest"), result_type=Callback
    )
    for attempt, result in enumerate(("no_answer", "reached"), start=1):
        # Outcomes before the due time are refused.
        await eventually(lambda attempt=attempt: _callback_due(handle, attempt))
        await handle.execute_update(
            "record_callback_outcome",
            CallbackOutcomeInput(actor=first, callback_id="callback-1", outcome=result),
            result_type=Callback,
        )
    later = datetime.now(UTC) + timedelta(hours=2)
    await handle.execute_update(
        "schedule_callback", ScheduleCallbackInput(actor=first, at=later, owner="tara"), result_type=Callback
    )
    other = "ben" if first == "ana" else "ana"
    await handle.execute_update("reassign", ReassignInput(actor="tara", reason="shift ended", to=other), result_type=te)
    second = await eventually(lambda: _holder(handle, other_than=first))
    await handle.execute_update("acknowledge", AcknowledgeInput(actor=second), result_type=te)
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=second, resolution="Refunded", root_cause="billing_error", kb_article="KB-1"),
        result_type=te,
    )
    await eventually(lambda: _checkin_sent(handle, 0))
    await handle.execute_update("followup_response", FollowUpResponseInput(answer="fixed"), result_type=te)
    await handle.result()
    return handle


async def _callback_due(handle: WorkflowHandle, attempt: int) -> bool:
    s = await case_state(handle)
    return any(e.kind == "callback_due" and e.detail.get("attempt") == attempt for e in s.timeline)


async def _holder(handle: WorkflowHandle, other_than: str | None = None) -> str | None:
    held = holder(await case_state(handle))
    return held if held != other_than else None


STORIES = {"full_story": drive_full_story, "routing_story": drive_routing_story}


async def _checkin_sent(handle: WorkflowHandle, index: int) -> bool:
    s = await case_state(handle)
    return len(s.checkins) > index and s.checkins[index].sent_at is not None


def recorded(text: str) -> WorkflowHistory:
    """A recorded history under the workflow id it ran with: a new case checks its own id as it starts."""
    start = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    case_id = json.loads(base64.b64decode(start["input"]["payloads"][0]["data"]))["case_id"]
    return WorkflowHistory.from_json(workflow_id(case_id), text)


def replayer() -> Replayer:
    return Replayer(workflows=[Escalation], data_converter=data_converter, interceptors=replay_interceptors())


async def test_recorded_histories_replay():
    files = sorted(HISTORIES.glob("*.json"))
    assert files, "no recorded histories"
    for path in files:
        result = await replayer().replay_workflow(recorded(path.read_text()), raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.parametrize("story", sorted(STORIES))
async def test_fresh_history_replays(env, worker, settings, story):
    handle = await STORIES[story](env.client, settings.task_queue)
    history = await handle.fetch_history()
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None


async def _record(names: list[str], suffix: str = "") -> None:
    """Drive `names` on a dev server of their own and keep each history as `<name><suffix>.json`: signed for the
    reps they name, as every case is since identity, with the test policies, roster and keys."""
    import tempfile

    from tests.conftest import dev_server, make_settings
    from worker import build_worker

    env = await dev_server(dev_server_log_level="warn")
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), "record")
        async with build_worker(env.client, settings):
            for name in names:
                handle = await STORIES[name](env.client, settings.task_queue)
                history = await handle.fetch_history()
                path = HISTORIES / f"{name}{suffix}.json"
                path.write_text(history.to_json())
                print("recorded", path, file=sys.stderr)
    await env.shutdown()


if __name__ == "__main__":
    # `python -m tests.test_replay [--suffix -v3] [story ...]` records stories again; keep the files running cases
    # must still replay (full_story.json predates routing offers and credentials and guards the old paths), so
    # record under a new suffix rather than over them.
    args = sys.argv[1:]
    suffix = ""
    if args[:1] == ["--suffix"]:
        suffix, args = args[1], args[2:]
    asyncio.run(_record(args or sorted(STORIES), suffix))


def _with_values_from_before_the_bounds(text: str) -> str:
    """full_story as a case written before input had bounds could have recorded it: a 250-character customer
    name with a tab, an acknowledge note of 6,000 characters with an escape sequence, a two-line offer
    description. None of these is accepted from a caller today."""
    import base64

    history = json.loads(text)

    def rewrite(payload: dict, change) -> None:
        value = json.loads(base64.b64decode(payload["data"]))
        change(value)
        payload["data"] = base64.b64encode(json.dumps(value).encode()).decode()

    def customer(v: dict) -> None:
        v["customer"]["name"] = "Dana\tDoe " + "A" * 240

    def note(v: dict) -> None:
        v["note"] = "\x1b[31m" + "n" * 6000

    def description(v: dict) -> None:
        v["description"] = "Refund\nof the duplicate charge"

    changed = set()
    for event in history["events"]:
        if "workflowExecutionStartedEventAttributes" in event:
            rewrite(event["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0], customer)
            changed.add("start")
        accepted = event.get("workflowExecutionUpdateAcceptedEventAttributes")
        if accepted:
            request = accepted["acceptedRequest"]
            name = request["input"]["name"]
            fix = {"acknowledge": note, "propose_offer": description}.get(name)
            if fix and name not in changed:
                rewrite(request["input"]["args"]["payloads"][0], fix)
                changed.add(name)
    assert changed >= {"start", "acknowledge"}, changed
    return json.dumps(history)


async def test_histories_with_values_from_before_the_bounds_replay():
    """Bounds apply to what callers send now; a running case that recorded longer or odder values before them
    must replay, or every deploy would break it."""
    text = _with_values_from_before_the_bounds((HISTORIES / "full_story.json").read_text())
    await replayer().replay_workflow(recorded(text))
