"""A new case's history holds what its guarantees need and no more (issue 18): one patch for every behaviour
patched so far, its policy read in the opening task, and one timer per deadline, kept while commands leave
the deadline where it was. Cases recorded before all this replay as they ran (tests/test_replay.py)."""

from __future__ import annotations

import json
from collections import Counter

import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from escalation.client import Case, EscalationClient
from tests.cases import case_input, owned
from workflows.escalation import CURRENT_PATCH


@pytest_asyncio.fixture
async def esc(env, worker, settings) -> EscalationClient:
    return EscalationClient(env.client, task_queue=settings.task_queue)


async def events(case: Case) -> list[HistoryEvent]:
    return list((await case.handle.fetch_history()).events)


def kinds(history: list[HistoryEvent]) -> Counter[str]:
    return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history)


def patches(history: list[HistoryEvent]) -> list[str]:
    found = []
    for e in history:
        marker = e.marker_recorded_event_attributes
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and marker.marker_name == "core_patch":
            found.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


async def test_a_new_case_checks_one_patch_and_reads_its_policy_in_the_opening_task(esc):
    case = await esc.open(case_input("fast"))
    state = await owned(case.handle)
    await case.acknowledge({"actor": state.owner.id})
    history = await events(case)
    assert patches(history) == [CURRENT_PATCH]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert "load_policy" not in scheduled and scheduled  # routing and the events still run as activities
    assert (await case.state()).policy_version == "test-fast-1"


async def test_commands_that_leave_the_deadline_keep_its_timer(esc):
    case = await esc.open(case_input("fast"))
    state = await owned(case.handle)
    agent = state.owner.id
    await case.acknowledge({"actor": agent})  # the deadline moves: acknowledge target -> resolve target
    before = kinds(await events(case))
    for text in ("Customer calmer", "Refund requested", "Waiting on billing"):
        await case.add_note({"actor": agent, "text": text})
    after = kinds(await events(case))
    assert after["WORKFLOW_EXECUTION_UPDATE_COMPLETED"] == before["WORKFLOW_EXECUTION_UPDATE_COMPLETED"] + 3
    # Before: every command cancelled the timer and started it again for the same instant.
    assert (after["TIMER_STARTED"], after["TIMER_CANCELED"]) == (before["TIMER_STARTED"], before["TIMER_CANCELED"])
    # A command that moves the deadline starts the new timer and cancels the old one, once.
    await case.resolve({"actor": agent, "resolution": "Refunded", "root_cause": "billing_error", "kb_missing": True})
    moved = kinds(await events(case))
    assert moved["TIMER_STARTED"] == after["TIMER_STARTED"] + 1
    assert moved["TIMER_CANCELED"] == after["TIMER_CANCELED"] + 1
