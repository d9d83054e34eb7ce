"""Hostile input against a live case: every bad start input and update argument is refused with the field and
the reason, leaves the case's state as it was, never makes a workflow task fail, and the case takes a normal
command afterwards. Real dev server and worker; arguments go in raw (dicts, raw payloads), as a client we did
not write would send them, so nothing is checked before the worker does."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from escalation.client import Case, case_state, open_case
from escalation.client.converter import MAX_INPUT_BYTES
from escalation.client.credentials import use_credential
from escalation.client.errors import InvalidState
from escalation.constants import WORKFLOW_TYPE, workflow_id
from escalation.domain.models import EscalateInput, NoteInput, TimelineEntry
from escalation.identity import Signer
from tests.cases import case_input, eventually, owned
from tests.conftest import IDENTITY

BIG = "x" * 1_500_000
ASTRAL = "\U0001f600" * 4000  # the longest note there is, in bytes: 4 per character


def raw_payload(data: bytes) -> RawValue:
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))


# (update, argument as sent, words the refusal must contain: the field first, then the reason)
BAD_UPDATES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("acknowledge", {"actor": "ana", "note": BIG}, ("note", "over the limit of 131,072 bytes")),
    ("acknowledge", {"actor": "ana", "note": "n" * 4001}, ("note", "4,001 characters, over the limit of 4,000")),
    ("acknowledge", {"actor": 5}, ("actor", "valid string")),
    ("acknowledge", {"actor": "a" * 201}, ("actor", "201 characters, over the limit of 200")),
    ("acknowledge", None, ("AcknowledgeInput", "must be an object")),
    ("acknowledge", [1, 2], ("AcknowledgeInput", "must be an object")),
    ("add_note", {"actor": "ana", "text": ""}, ("text", "must not be empty")),
    ("add_note", {"actor": "ana", "text": "fine\x1b[2J\x1b[31mPAY NOW"}, ("text", "control character (U+001B)")),
    ("add_note", {"actor": "ana\nFROM: manager", "text": "x"}, ("actor", "control character (U+000A)")),
    ("add_note", {"actor": "ana", "text": "a\x00b"}, ("text", "control character (U+0000)")),
    ("add_note", {"actor": "ana", "text": "x", "sentiment": "ecstatic"}, ("sentiment", "furious")),
    ("add_note", {"actor": "ana", "txt": "x"}, ("txt", "not a known field")),
    ("add_note", raw_payload(b"\xff\xfe{not json"), ("NoteInput", "")),
    ("add_note", raw_payload(b'{"actor": "ana", "text": "x"'), ("NoteInput", "")),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "1e309", "description": "voucher"},
        ("amount", "more than 12 digits"),
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "1" * 30, "description": "voucher"},
        ("amount", "more than 12 digits"),
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "-5", "description": "voucher"},
        ("amount", "negative"),
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "NaN", "description": "voucher"},
        ("amount", "finite"),
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "1.001", "description": "voucher"},
        ("amount", "decimal places"),
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "5", "currency": "euro", "description": "voucher"},
        ("currency", "pattern"),
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "goodwill", "amount": "5", "description": "voucher\r\nBcc: all"},
        ("description", "control character"),
    ),
    ("propose_offer", {"actor": "ana", "kind": "bribe", "amount": "5", "description": "x"}, ("kind", "goodwill")),
    ("record_offer_response", {"actor": "ana", "offer_id": "", "answer": "accepted"}, ("offer_id", "pattern")),
    ("wait_on_customer", {"actor": "ana", "reason": "docs", "limit": "99999999999999d"}, ("limit", "at most 366 days")),
    ("wait_on_customer", {"actor": "ana", "reason": "docs", "limit": "-5m"}, ("limit", "must be positive")),
    ("wait_on_customer", {"actor": "ana", "reason": "docs", "limit": 1e300}, ("limit", "at most 366 days")),
    ("wait_on_customer", {"actor": "ana", "reason": "docs", "limit": "P99999999D"}, ("limit", "")),
    ("wait_on_customer", {"actor": "ana", "reason": "r" * 4001}, ("reason", "over the limit of 4,000")),
    ("customer_replied", {"actor": "ana", "channel": "pigeon"}, ("channel", "")),
    ("escalate", {"actor": "ana", "reason": "customer_request", "target_tier": "ceo"}, ("target_tier", "manager")),
    ("escalate", {"actor": "ana", "reason": "sla_breach"}, ("reason", "")),
    ("de_escalate", {"actor": "ana", "reason": "calm \u202eevil"}, ("reason", "control character (U+202E)")),
    ("resolve", {"actor": "ana", "resolution": "done", "root_cause": "aliens", "kb_missing": True}, ("root_cause", "")),
    (
        "resolve",
        {"actor": "ana", "resolution": "done", "root_cause": "other", "kb_article": "k" * 501},
        ("kb_article", "501 characters, over the limit of 500"),
    ),
    ("close", {"actor": "ana", "outcome": "won", "reason": "x"}, ("outcome", "")),
    ("followup_response", {"answer": "fixed", "checkin": 10**30}, ("checkin", "less than or equal to 100")),
    ("followup_response", {"answer": "fixed", "comment": "c" * 4001}, ("comment", "over the limit of 4,000")),
    ("accept", {"actor": "ana", "note": "ok\x07"}, ("note", "control character (U+0007)")),
    ("reassign", {"actor": "ana", "reason": "x", "to": "r" * 500}, ("to", "pattern")),
    ("schedule_callback", {"actor": "ana", "at": "9999-12-31T23:59:59"}, ("at", "years 2000 to 2999")),
    ("schedule_callback", {"actor": "ana", "at": "0001-01-01T00:00:00+14:00"}, ("at", "")),
    ("schedule_callback", {"actor": "ana", "at": "earliest", "window": "P99999999D"}, ("window", "")),
    ("schedule_callback", {"actor": "ana", "at": "earliest", "phone": "12"}, ("phone", "not a phone number")),
    (
        "schedule_callback",
        {"actor": "ana", "at": "earliest", "phone": "1" * 10_000},
        ("phone", "10,000 characters"),
    ),
    (
        "reschedule_callback",
        {"actor": "ana", "callback_id": "../../etc/passwd", "at": "earliest"},
        ("callback_id", "pattern"),
    ),
    ("record_callback_outcome", {"actor": "ana", "callback_id": "callback-1", "outcome": "maybe"}, ("outcome", "")),
]


@pytest.fixture(scope="module")
def hostile_settings(tmp_path_factory):
    from tests.conftest import make_settings

    return make_settings(tmp_path_factory.mktemp("hostile"), "hostile")


@pytest.fixture(scope="module")
async def live_case(env, hostile_settings):
    from worker import build_worker

    async with build_worker(env.client, hostile_settings):
        handle = await open_case(env.client, case_input("standard"), task_queue_name=hostile_settings.task_queue)
        await owned(handle)
        yield handle


async def failed_tasks(handle: WorkflowHandle) -> list[str]:
    events = [e async for e in handle.fetch_history_events()]
    return [
        e.workflow_task_failed_event_attributes.failure.message
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


@pytest.mark.parametrize("update,arg,words", BAD_UPDATES, ids=[f"{u}-{i}" for i, (u, _, _) in enumerate(BAD_UPDATES)])
async def test_bad_update_is_refused_naming_the_field_and_changes_nothing(live_case, update, arg, words):
    before = (await case_state(live_case)).model_dump_json()
    # A caller with a valid credential for ana (a customer's, for followup_response) sends the argument as it is.
    signer = Signer.from_settings(IDENTITY)
    assert signer is not None
    with pytest.raises(WorkflowUpdateFailedError) as caught, use_credential(signer.mint("ana")):
        await live_case.execute_update(update, args=[arg], result_type=dict)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == "InvalidArgument" and cause.non_retryable, (cause.type, cause.message)
    for word in words:
        assert word in cause.message, (word, cause.message)
    assert len(cause.message) < 2000  # the refusal never echoes a huge value
    assert (await case_state(live_case)).model_dump_json() == before
    assert await failed_tasks(live_case) == []
    # ... and the case still takes a normal command.
    note = await live_case.execute_update(
        "add_note", NoteInput(actor="ana", text="still here"), result_type=TimelineEntry
    )
    assert note.kind == "note"


async def test_update_with_no_or_two_arguments_is_refused(live_case):
    for args in ([], [{"actor": "ana"}, {"actor": "ben"}]):
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await live_case.execute_update("acknowledge", args=args, result_type=dict)
        assert caught.value.cause.type == "InvalidArgument"
        assert "acknowledge takes one argument" in caught.value.cause.message
    assert await failed_tasks(live_case) == []


def _start_input(**changes: Any) -> dict[str, Any]:
    raw = case_input("standard").model_dump(mode="json", exclude_none=True)
    for path, value in changes.items():
        target = raw
        *parents, leaf = path.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return raw


BAD_STARTS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    (_start_input(**{"customer.lifetime_value": "1e309"}), ("customer.lifetime_value", "more than 12 digits")),
    (_start_input(**{"customer.lifetime_value": "9" * 30}), ("customer.lifetime_value", "more than 12 digits")),
    (_start_input(skills=["s" * 90] * 20_000), ("skills", "over the limit of 131,072 bytes")),
    (_start_input(skills=["billing"] * 21), ("skills", "21 items, over the limit of 20")),
    (_start_input(summary="s" * 4001), ("summary", "4,001 characters")),
    (_start_input(**{"customer.name": "Dana\r\nBcc: everyone@example.org"}), ("customer.name", "control character")),
    (_start_input(**{"customer.time_zone": "Europe/" + "x" * 5000}), ("customer.time_zone", "5,007 characters")),
    (_start_input(**{"customer.email": "a" * 300 + "@example.org"}), ("customer.email", "over the limit of 254")),
    (_start_input(carried={"state": {}}), ("carried", "set only by the workflow")),
]


@pytest.mark.parametrize("raw,words", BAD_STARTS, ids=[w[0] for _, w in BAD_STARTS])
async def test_bad_start_input_fails_the_case_at_once_naming_the_field(env, worker, settings, raw, words):
    handle = await env.client.start_workflow(
        WORKFLOW_TYPE, raw, id=workflow_id(raw["case_id"]), task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 20)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidArgument", cause
    for word in words:
        assert word in cause.message, (word, cause.message)
    assert await failed_tasks(handle) == []


async def test_start_payload_that_is_not_json_fails_the_case_at_once(env, worker, settings):
    case_id = f"C-{uuid.uuid4().hex[:10]}"
    handle = await env.client.start_workflow(
        WORKFLOW_TYPE, raw_payload(b"\xff{"), id=workflow_id(case_id), task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 20)
    assert caught.value.cause.type == "InvalidArgument" and "EscalationInput" in caught.value.cause.message
    assert await failed_tasks(handle) == []


async def test_a_case_under_another_workflow_id_fails_at_once(env, worker, settings):
    raw = _start_input()
    handle = await env.client.start_workflow(
        WORKFLOW_TYPE, raw, id=f"case-{raw['case_id']}", task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await asyncio.wait_for(handle.result(), 20)
    message = caught.value.cause.message
    assert caught.value.cause.type == "InvalidArgument"
    assert "workflow id" in message and f"escalation-{raw['case_id']}" in message


async def test_maximal_notes_keep_the_state_under_its_bound(env, worker, settings):
    """Maximal notes past the timeline's budget: the state stays under its bound, the older notes leave the
    state (they went out as events), and the case still takes commands."""
    from escalation.domain.rules.retention import STATE_BYTES

    handle = await open_case(env.client, case_input("standard"), task_queue_name=settings.task_queue)
    await owned(handle)
    case = Case(handle, handle.id.removeprefix("escalation-"))
    refused = None
    for _ in range(60):
        try:
            await case.add_note(NoteInput(actor="ana", text=ASTRAL))
        except InvalidState as err:
            refused = err
            break
    state = await case_state(handle)
    size = len(state.model_dump_json().encode())
    assert size <= STATE_BYTES + MAX_INPUT_BYTES, size
    # Notes beyond the timeline's budget went out as events and left the state.
    assert state.timeline_earlier > 0
    if refused is not None:
        assert "the most" in str(refused) or "over the" in str(refused)
    await case.escalate(EscalateInput(actor="ana", reason="customer_request"))
    assert await failed_tasks(handle) == []


async def test_a_stream_of_maximal_updates_cannot_keep_a_case_from_continuing_or_its_deadline_from_firing(
    short_history_env, settings
):
    """With the server suggesting continue-as-new every 60 events, 600 maximal notes sent 20 at a time: the
    case hands over to new runs between them (callers retry the moment it takes), every note is applied once,
    and the 3-second acknowledge target at team lead still breaches and climbs."""
    from worker import build_worker

    env = short_history_env
    async with build_worker(env.client, settings):
        handle = await open_case(env.client, case_input("brisk"), task_queue_name=settings.task_queue)
        await owned(handle)
        case = Case(handle, handle.id.removeprefix("escalation-"))
        await case.escalate(EscalateInput(actor="ana", reason="customer_request"))  # to team lead: 3 s to ack
        sent = 0
        gate = asyncio.Semaphore(20)

        async def note(i: int) -> None:
            nonlocal sent
            async with gate:
                # sam (supervisor) may note at team lead and, after the breach, at supervisor
                await case.add_note(NoteInput(actor="sam", text=f"{i:04d} " + "y" * 3990))
                sent += 1

        await asyncio.gather(*(note(i) for i in range(600)))
        assert sent == 600

        async def climbed():
            s = await case_state(handle)
            return s if s.tier == "supervisor" else None

        state = await eventually(climbed, timeout=30)
        assert any(e.kind == "breached" for e in state.timeline) or state.breaches >= 1
        runs = 0
        async for _ in env.client.list_workflows(f"WorkflowId = '{handle.id}'"):
            runs += 1
        assert runs > 3, runs
        # Every note exactly once, across all runs: the events file has each number once.
        lines = (settings.data_dir / "events.jsonl").read_text().splitlines()
        events = {e["id"]: e for e in map(json.loads, lines)}  # at least once: receivers dedupe on the id
        numbers = [e["detail"]["text"][:4] for e in events.values() if e["type"] == "escalation.note"]
        assert sorted(numbers) == [f"{i:04d}" for i in range(600)]
        latest = env.client.get_workflow_handle(handle.id)
        assert await failed_tasks(latest) == []
