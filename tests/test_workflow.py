"""The Escalation workflow end to end on a real Temporal dev server, worker and activities."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from escalation.client import CaseAlreadyOpen, case_handle, case_state, open_case
from escalation.constants import WORKFLOW_TYPE, workflow_id
from escalation.domain.models import (
    AcknowledgeInput,
    Brief,
    Callback,
    CloseInput,
    EscalateInput,
    FollowUpResponseInput,
    NoteInput,
    Offer,
    OfferInput,
    OfferResponseInput,
    ResolveInput,
    ScheduleCallbackInput,
    TimelineEntry,
    WaitOnCustomerInput,
)
from tests.cases import case_input, eventually, owned
from worker import build_worker


def outbox(settings, name: str = "outbox.jsonl") -> list[dict]:
    path = settings.data_dir / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def update(handle, name: str, arg, result_type=TimelineEntry):
    return await handle.execute_update(name, arg, result_type=result_type)


async def test_full_lifecycle_agent_resolves_without_escalation(env, worker, settings):
    handle = await open_case(env.client, case_input("fast"), task_queue_name=settings.task_queue)
    state = await owned(handle)
    assert state.tier == "agent" and state.owner is not None
    owner = state.owner.id

    await update(handle, "acknowledge", AcknowledgeInput(actor=owner))
    await update(handle, "add_note", NoteInput(actor=owner, text="Customer calmer after apology", sentiment="upset"))
    offer = await update(
        handle,
        "propose_offer",
        OfferInput(
            actor=owner, kind="compensation", amount=Decimal("20"), description="Refund of the duplicate charge"
        ),
        Offer,
    )
    assert offer.id == "offer-1" and offer.status == "proposed"
    answered = await update(
        handle, "record_offer_response", OfferResponseInput(actor=owner, offer_id="offer-1", answer="accepted"), Offer
    )
    assert answered.status == "accepted"
    resolved = await update(
        handle,
        "resolve",
        ResolveInput(
            actor=owner, resolution="Duplicate charge refunded", root_cause="billing_error", kb_article="KB-1042"
        ),
    )
    assert resolved.kind == "resolved"

    async def first_checkin_sent():
        s = await case_state(handle)
        return s if s.checkins and s.checkins[0].sent_at else None

    await eventually(first_checkin_sent)
    await update(handle, "followup_response", FollowUpResponseInput(answer="fixed", comment="All good"))

    result = await handle.result()
    assert result.outcome == "resolved"
    assert result.final_tier == "agent" and result.highest_tier == "agent"
    assert result.escalations == 0 and result.breaches == 0 and result.reopens == 0
    assert result.granted_total == Decimal("20")
    assert result.root_cause == "billing_error" and result.kb_missing is False
    assert result.followups[0].answer == "fixed"
    assert result.policy_version == "test-fast-1"

    kinds = [m["kind"] for m in outbox(settings)]
    assert kinds.count("owner_assigned") == 1
    assert "offer_confirmation" in kinds and "followup_checkin" in kinds
    events = outbox(settings, "events.jsonl")
    types = [e["type"] for e in events]
    assert types[0] == "escalation.opened" and types[-1] == "escalation.closed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # once each, in order


async def test_threat_goes_straight_to_supervisor(env, worker, settings):
    handle = await open_case(env.client, case_input(threat=True), task_queue_name=settings.task_queue)
    state = await owned(handle)
    assert state.tier == "supervisor"
    assert state.owner is not None and state.owner.id == "sam"

    other = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    await owned(other)
    entry = await update(
        other, "escalate", EscalateInput(actor="ana", reason="threat", detail="Customer threatens to go to the press")
    )
    assert entry.detail["to_tier"] == "supervisor"
    state = await owned(other)
    assert state.tier == "supervisor"
    assert "THREAT" in (await other.query("brief", result_type=Brief)).text


async def test_customer_asking_for_a_manager_gets_the_team_lead(env, worker, settings):
    handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    await owned(handle)
    await update(handle, "escalate", EscalateInput(actor="ana", reason="customer_request", detail="wants a manager"))
    state = await owned(handle)
    assert state.tier == "team_lead" and state.owner.id == "tara"


async def test_over_authority_offer_refused_then_granted_one_tier_up(env, worker, settings):
    handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    before = await owned(handle)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await update(
            handle,
            "propose_offer",
            OfferInput(actor="ana", kind="goodwill", amount=Decimal("80"), description="Two months free"),
            Offer,
        )
    message = str(caught.value.cause)
    assert "amount" in message and "team_lead" in message and "4200" in message
    assert caught.value.cause.type == "InvalidArgument"
    assert (await case_state(handle)).model_dump() == before.model_dump()

    await update(handle, "escalate", EscalateInput(actor="ana", reason="needs_authority"))
    state = await owned(handle)
    assert state.tier == "team_lead"
    offer = await update(
        handle,
        "propose_offer",
        OfferInput(actor="tara", kind="goodwill", amount=Decimal("80"), description="Two months free"),
        Offer,
    )
    assert offer.tier == "team_lead" and offer.status == "proposed"


async def test_duplicate_start_is_refused(env, worker, settings):
    inp = case_input()
    handle = await open_case(env.client, inp, task_queue_name=settings.task_queue)
    await owned(handle)
    with pytest.raises(CaseAlreadyOpen, match="already open"):
        await open_case(env.client, inp, task_queue_name=settings.task_queue)
    runs = [w async for w in env.client.list_workflows(f"WorkflowId = '{workflow_id(inp.case_id)}'")]
    assert len(runs) <= 1  # visibility may lag; never two
    assert (await handle.describe()).run_id == handle.result_run_id


# Bad input: (update, payload sent as plain JSON like any SDK would, words the error must contain).
BAD_UPDATES = [
    ("acknowledge", {"actor": ""}, ["actor"]),
    ("acknowledge", {"actor": "ana", "extra": 1}, ["extra"]),
    ("escalate", {"actor": "ana", "reason": "because"}, ["reason"]),
    ("escalate", {"actor": "ana", "reason": "complexity", "target_tier": "boss"}, ["target_tier"]),
    ("escalate", {"actor": "ana", "reason": "sla_breach"}, ["reason", "set by the system"]),
    ("escalate", {"actor": "ana", "reason": "complexity", "target_tier": "manager"}, ["target_tier", "next tier"]),
    ("de_escalate", {"actor": "ana", "reason": "calmer"}, ["target_tier", "first tier"]),
    (
        "propose_offer",
        {"actor": "ana", "kind": "compensation", "amount": "-5", "description": "x"},
        ["amount", "negative"],
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "compensation", "amount": "30", "description": "x"},
        ["amount", "team_lead", "lifetime value"],
    ),
    (
        "propose_offer",
        {"actor": "ana", "kind": "compensation", "amount": "5", "currency": "USD", "description": "x"},
        ["currency", "EUR"],
    ),
    ("record_offer_response", {"actor": "ana", "offer_id": "offer-9", "answer": "accepted"}, ["offer_id", "offer-9"]),
    ("resolve", {"actor": "ana", "resolution": "done", "root_cause": "billing_error"}, ["kb_article"]),
    ("close", {"actor": "ana", "outcome": "customer_lost", "reason": "left"}, ["outcome", "manager"]),
    ("close", {"actor": "ana", "outcome": "resolved", "reason": "done"}, ["outcome", "resolve it first"]),
    ("followup_response", {"answer": "not_fixed"}, ["status", "follow-up"]),
    ("add_note", {"actor": "ana"}, ["text"]),
    ("wait_on_customer", {"actor": "ana"}, ["reason"]),
    ("wait_on_customer", {"actor": "ana", "reason": "needs photo", "limit": "0s"}, ["limit", "longer than zero"]),
    ("wait_on_customer", {"actor": "ana", "reason": "needs photo", "limit": "soon"}, ["limit"]),
    ("customer_replied", {"actor": "ana"}, ["status", "not waiting on the customer"]),
]


@pytest.mark.parametrize("name,payload,words", BAD_UPDATES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_UPDATES)])
async def test_bad_update_is_rejected_and_changes_nothing(env, worker, settings, name, payload, words):
    handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    before = await owned(handle)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(name, payload)
    message = str(caught.value.cause)
    assert caught.value.cause.type in ("InvalidArgument", "InvalidState")
    assert caught.value.cause.non_retryable
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    after = await case_state(handle)
    assert after.model_dump() == before.model_dump()


async def test_actions_on_a_closed_case_and_resolve_twice_are_refused(env, worker, settings):
    handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    owner = (await owned(handle)).owner.id
    fix = ResolveInput(actor=owner, resolution="Refunded", root_cause="billing_error", kb_missing=True)
    await update(handle, "resolve", fix)
    before = await case_state(handle)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await update(handle, "resolve", fix)
    assert caught.value.cause.message.startswith("status: ") and "already resolved" in caught.value.cause.message
    assert caught.value.cause.type == "InvalidState"
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await update(handle, "wait_on_customer", WaitOnCustomerInput(actor=owner, reason="needs photo"))
    assert caught.value.cause.message.startswith("status: ") and "resolved" in caught.value.cause.message
    assert (await case_state(handle)).model_dump() == before.model_dump()
    await update(handle, "close", CloseInput(actor=owner, outcome="resolved", reason="customer confirmed by phone"))
    result = await handle.result()
    assert result.outcome == "resolved" and result.kb_missing is True
    closed = await case_state(handle)  # queries keep working on a completed case
    # A completed case takes no more updates: the server refuses them before any worker sees them.
    with pytest.raises(RPCError, match="already completed"):
        await update(handle, "acknowledge", AcknowledgeInput(actor=owner))
    assert (await case_state(handle)).model_dump() == closed.model_dump()


async def test_a_message_that_cannot_be_delivered_is_recorded_and_the_case_goes_on(env, settings):
    class Refusing:
        async def deliver(self, message):
            raise ApplicationError(f"mailbox {message.to.id} does not exist", type="Permanent", non_retryable=True)

    async with build_worker(env.client, settings, delivery=Refusing()):
        handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)

        async def failures_recorded():
            s = await case_state(handle)
            failed = [e for e in s.timeline if e.kind == "delivery_failed"]
            return failed if len(failed) == 2 else None

        # The owner cannot be reached, so the team queue is told; that is refused too, and then it ends.
        owner, team = await eventually(failures_recorded)
        assert owner.detail["message_kind"] == "owner_assigned" and "does not exist" in owner.detail["error"]
        assert owner.detail["permanent"] is True and owner.detail["fallback_to"] == "team-agent"
        assert team.detail["to"] == "team-agent" and "fallback_to" not in team.detail
        entry = await update(handle, "acknowledge", AcknowledgeInput(actor="ana"))
        assert entry.kind == "acknowledged"


async def test_unknown_policy_fails_the_case_with_a_clear_error(env, worker, settings):
    handle = await open_case(env.client, case_input("no-such-policy"), task_queue_name=settings.task_queue)
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    message = str(caught.value.cause)
    assert "unknown policy 'no-such-policy'" in message and "standard" in message


async def test_start_input_that_breaks_the_contract_fails_the_case_not_the_worker(env, worker, settings):
    raw = case_input().model_dump(mode="json")
    raw["customer"]["time_zone"] = "Mars/Olympus"
    handle = await env.client.start_workflow(
        WORKFLOW_TYPE, raw, id=workflow_id(raw["case_id"]), task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    message = str(caught.value.cause)
    assert "customer.time_zone" in message and "IANA" in message
    assert caught.value.cause.type == "InvalidArgument"


async def test_worker_restarted_mid_case_carries_on(env, settings):
    async with build_worker(env.client, settings):
        handle = await open_case(env.client, case_input("fast"), task_queue_name=settings.task_queue)
        await owned(handle)
        await update(handle, "acknowledge", AcknowledgeInput(actor="ana"))
    # First worker gone; a new one (fresh cache) picks the case up from its history.
    async with build_worker(env.client, settings, max_cached_workflows=0):
        await update(handle, "escalate", EscalateInput(actor="ana", reason="complexity"))
        state = await owned(handle)
        assert state.tier == "team_lead" and state.acknowledged_by is None
        await update(
            handle,
            "resolve",
            ResolveInput(actor="tara", resolution="Fixed the tariff", root_cause="process_failure", kb_missing=True),
        )
        await update(handle, "close", CloseInput(actor="tara", outcome="resolved", reason="confirmed on the call"))
        result = await handle.result()
    assert result.outcome == "resolved" and result.final_tier == "team_lead" and result.escalations == 1


async def test_closed_case_id_can_be_opened_again_and_its_news_is_not_dropped(env, worker, settings):
    inp = case_input()
    handle = await open_case(env.client, inp, task_queue_name=settings.task_queue)
    await owned(handle)
    await update(handle, "escalate", EscalateInput(actor="ana", reason="threat"))
    await owned(handle)
    await update(handle, "escalate", EscalateInput(actor="sam", reason="complexity"))
    await owned(handle)
    await update(handle, "close", CloseInput(actor="maya", outcome="legal", reason="lawyer letter received"))
    assert (await handle.result()).outcome == "legal"
    first_events = len(outbox(settings, "events.jsonl"))

    again = await open_case(env.client, inp, task_queue_name=settings.task_queue)
    assert again.result_run_id != handle.result_run_id
    state = await owned(case_handle(env.client, inp.case_id))
    assert state.tier == "agent" and state.opening_id == again.result_run_id

    # The second opening's owner is told and its events recorded, although timeline numbers repeat.
    async def four_assignments():
        found = [m for m in outbox(settings) if m["kind"] == "owner_assigned"]
        return found if len(found) >= 4 else None

    assignments = await eventually(four_assignments)
    assert len(assignments) == 4 and len({m["key"] for m in assignments}) == 4

    async def second_opening_recorded():
        return len(outbox(settings, "events.jsonl")) > first_events

    await eventually(second_opening_recorded)
    opened = [e for e in outbox(settings, "events.jsonl") if e["type"] == "escalation.opened"]
    assert len(opened) == 2 and opened[0]["id"] != opened[1]["id"]


async def test_written_notices_go_by_the_preferred_channel_first(env, worker, settings):
    """Offer confirmations and callback notices go by SMS to a customer who prefers SMS, although they
    have an email address too (a customer who prefers calls hears in writing by email, as before)."""
    texter = {
        "id": "cust-sms",
        "name": "Sam Texter",
        "email": "sam@example.org",
        "phone": "+49 30 7654321",
        "preferred_channel": "sms",
    }
    caller = texter | {"id": "cust-call", "preferred_channel": "call"}
    for customer, written in ((texter, "sms"), (caller, "email")):
        handle = await open_case(env.client, case_input(customer=customer), task_queue_name=settings.task_queue)
        agent = (await owned(handle)).owner.id
        await update(
            handle,
            "propose_offer",
            OfferInput(actor=agent, kind="goodwill", amount=Decimal("10"), description="Voucher"),
            Offer,
        )
        await update(
            handle,
            "record_offer_response",
            OfferResponseInput(actor=agent, offer_id="offer-1", answer="accepted"),
            Offer,
        )
        await update(handle, "schedule_callback", ScheduleCallbackInput(actor=agent, at="earliest"), Callback)

        async def told(handle=handle):
            sent = {
                m["kind"]: m
                for m in outbox(settings)
                if m["case_id"] == handle.id.removeprefix("escalation-") and m["to"]["kind"] == "customer"
            }
            return sent if {"offer_confirmation", "callback_scheduled"} <= set(sent) else None

        sent = await eventually(told)
        for kind in ("offer_confirmation", "callback_scheduled"):
            assert (sent[kind]["channel"], sent[kind]["to"]["id"]) == (written, customer["id"]), kind
