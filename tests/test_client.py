"""The typed client against a real dev server and worker: every update and query, typed errors carrying
the validator's words, idempotent open, visibility filters, waiting for the outcome."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from temporalio.service import RPCError, RPCStatusCode

from escalation.client import Case, EscalationClient
from escalation.client.errors import (
    CaseAlreadyOpen,
    CaseClosed,
    CaseNotFound,
    InvalidArgument,
    InvalidState,
    NamespaceNotFound,
    NoWorker,
    UnknownPolicy,
    Unreachable,
    translate,
)
from escalation.config import Settings
from escalation.domain.models import (
    AcknowledgeInput,
    Brief,
    CaseState,
    EscalateInput,
    Offer,
    OfferInput,
    TimelineEntry,
)
from escalation.search import CaseFilter
from tests.cases import case_input, eventually


@pytest_asyncio.fixture
async def esc(env, worker, settings) -> EscalationClient:
    return EscalationClient(env.client, task_queue=settings.task_queue)


async def owned(case: Case) -> CaseState:
    async def check():
        s = await case.state()
        return s if s.owner is not None and s.owner.id in s.stints[-1].owners else None

    return await eventually(check)


async def test_drive_a_case_through_every_update_and_query(esc):
    case = await esc.open(case_input("fast"))
    assert case.opened and case.workflow_id == f"escalation-{case.case_id}"
    agent = (await owned(case)).owner.id

    entry = await case.acknowledge(AcknowledgeInput(actor=agent, note="on it"))
    assert isinstance(entry, TimelineEntry) and entry.kind == "acknowledged"
    assert (await case.add_note({"actor": agent, "text": "Customer calmer", "sentiment": "upset"})).kind == "note"
    with pytest.raises(InvalidArgument) as refused:
        await case.propose_offer({"actor": agent, "kind": "compensation", "amount": "80", "description": "Refund"})
    assert refused.value.field == "amount"
    assert refused.value.message.startswith("amount: 80 EUR") and "team_lead" in refused.value.message
    await case.escalate(EscalateInput(actor=agent, reason="needs_authority", detail="refund above my limit"))
    lead = (await owned(case)).owner.id
    assert (await case.state()).tier == "team_lead"
    offer = await case.propose_offer(OfferInput(actor=lead, kind="compensation", amount="80", description="Refund"))
    assert isinstance(offer, Offer) and offer.id == "offer-1" and offer.amount == 80
    answered = await case.record_offer_response({"actor": lead, "offer_id": offer.id, "answer": "accepted"})
    assert answered.status == "accepted"
    assert (await case.wait_on_customer({"actor": lead, "reason": "bank statement"})).kind == "waiting_on_customer"
    assert (await case.state()).waiting is not None
    assert (await case.customer_replied({"actor": lead, "channel": "email"})).kind == "customer_replied"
    await case.de_escalate({"actor": lead, "reason": "agent can follow up"})
    assert (await case.state()).tier == "agent"
    brief = await case.brief()
    assert isinstance(brief, Brief) and brief.tier == "agent" and "Refund" in brief.text
    await case.resolve({"actor": agent, "resolution": "Refunded", "root_cause": "billing_error", "kb_missing": True})

    async def checkin_sent():
        s = await case.state()
        return s.checkins and s.checkins[0].sent_at

    await eventually(checkin_sent)
    assert (await case.followup_response({"answer": "fixed", "comment": "all good"})).kind == "followup_answered"
    outcome = await case.outcome()
    assert outcome.outcome == "resolved" and outcome.highest_tier == "team_lead" and outcome.granted_total == 80

    # A completed case takes no more commands, in words a person understands; its state still reads.
    with pytest.raises(CaseClosed, match="has completed"):
        await case.add_note({"actor": agent, "text": "late"})
    assert (await esc.case(case.case_id).state()).status == "closed"


async def test_open_is_idempotent_by_case_id_unless_told_otherwise(esc):
    inp = case_input()
    first = await esc.open(inp)
    again = await esc.open(inp.model_dump(mode="json"))
    assert first.opened and not again.opened and again.workflow_id == first.workflow_id
    with pytest.raises(CaseAlreadyOpen, match=f"case {inp.case_id} is already open"):
        await esc.open(inp, if_open="fail")
    # Only one case was started.
    assert [e.kind for e in (await owned(again)).timeline].count("opened") == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"customer": {"id": "c", "name": "N", "email": "n@example.org", "time_zone": "Mars/Olympus"}},
            r"EscalationInput: customer\.time_zone: 'Mars/Olympus' is not an IANA time zone",
        ),
        ({"currncy": "EUR"}, r"currncy: is not a known field \(check the spelling\)"),
        ({"carried": {"state": {}}}, r"carried: internal to the workflow"),
    ],
)
async def test_bad_input_is_refused_before_anything_starts(esc, payload, message):
    raw = case_input().model_dump(mode="json", exclude_none=True) | payload
    with pytest.raises(InvalidArgument, match=message):
        await esc.open(raw)
    with pytest.raises(CaseNotFound, match=f"case {raw['case_id']} not found"):
        await esc.case(raw["case_id"]).state()


async def test_refusals_are_typed_and_change_nothing(esc):
    case = await esc.open(case_input())
    agent = (await owned(case)).owner.id
    await case.acknowledge({"actor": agent})
    before = await case.state()

    with pytest.raises(InvalidState, match=f"actor: already acknowledged at agent by {agent}") as twice:
        await case.acknowledge({"actor": agent})
    assert twice.value.type == "InvalidState" and twice.value.field == "actor"
    with pytest.raises(InvalidArgument, match="NoteInput: text: is required; txt: is not a known field"):
        await case.add_note({"actor": agent, "txt": "typo"})
    with pytest.raises(InvalidArgument, match="target_tier: the case is already at the first tier"):
        await case.de_escalate({"actor": agent, "reason": "calm"})
    await case.propose_offer({"actor": agent, "kind": "goodwill", "amount": "0", "description": "voucher"})
    with pytest.raises(InvalidState, match="offers: offer-1 still await"):
        await case.resolve({"actor": agent, "resolution": "x", "root_cause": "other", "kb_missing": True})
    with pytest.raises(InvalidArgument, match="outcome: only manager may close a case as customer_lost"):
        await case.close({"actor": agent, "outcome": "customer_lost", "reason": "gone"})
    with pytest.raises(InvalidArgument, match="offer_id: no offer 'offer-9'"):
        await case.record_offer_response({"actor": agent, "offer_id": "offer-9", "answer": "accepted"})
    with pytest.raises(InvalidState, match="not waiting on the customer"):
        await case.customer_replied({"actor": agent})
    with pytest.raises(InvalidState, match="follow-up answers are taken only"):
        await case.followup_response({"answer": "fixed"})
    after = await case.state()
    assert [e.kind for e in after.timeline] == [e.kind for e in before.timeline] + ["offer_proposed"]


async def test_unknown_case_and_unknown_policy(esc):
    missing = esc.case("C-does-not-exist")
    with pytest.raises(CaseNotFound, match="case C-does-not-exist not found"):
        await missing.acknowledge({"actor": "ana"})
    with pytest.raises(CaseNotFound):
        await missing.brief()
    # The workers refuse the policy in the case's first task: `open` reports that instead of a case already gone.
    with pytest.raises(UnknownPolicy, match="unknown policy 'no-such-policy'"):
        await esc.open(case_input("no-such-policy"))
    started = await esc.open(case_input("no-such-policy"), wait=0)  # not waiting: the outcome says it
    with pytest.raises(UnknownPolicy, match="unknown policy 'no-such-policy'"):
        await started.outcome()


async def test_list_and_count_filter_through_visibility(esc):
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    plain = await esc.open(case_input(customer=_customer(customer), severity="low"))
    threat = await esc.open(case_input(customer=_customer(customer), threat=True, severity="critical"))
    await owned(plain)
    sam = (await owned(threat)).owner.id

    async def listed(**flt):
        return sorted(c.case_id for c in await esc.list_cases({"customer": customer, **flt}))

    both = sorted([plain.case_id, threat.case_id])
    assert await eventually(lambda: _eq(listed(), both))
    assert await listed(tier="supervisor") == [threat.case_id]
    assert await listed(tier="agent", severity="low") == [plain.case_id]
    assert await listed(owner=sam) == [threat.case_id]
    assert await listed(status="open") == both
    # SLA due: both cases' acknowledge targets are hours away in the standard policy.
    soon = datetime.now(UTC) + timedelta(minutes=1)
    assert await listed(due_before=soon) == []
    assert await listed(due_before=soon + timedelta(hours=1)) == both  # agent 5m, supervisor 15m
    assert await esc.count_cases(CaseFilter(customer=customer)) == 2
    [summary] = await esc.list_cases({"customer": customer, "tier": "supervisor"})
    assert summary.owner == sam and summary.severity == "critical" and summary.execution == "running"
    assert summary.sla_due_at is not None and summary.sla_due_at > soon

    agent = (await plain.state()).owner.id
    await plain.acknowledge({"actor": agent})
    await plain.resolve({"actor": agent, "resolution": "x", "root_cause": "other", "kb_missing": True})
    await plain.close({"actor": agent, "outcome": "resolved", "reason": "confirmed"})
    await plain.outcome()
    assert await eventually(lambda: _eq(listed(), [threat.case_id]))  # running only by default
    assert await listed(include_closed=True) == both
    assert await listed(status="closed") == [plain.case_id]


async def test_filters_are_checked(esc):
    with pytest.raises(InvalidArgument, match="tier: Input should be 'agent'"):
        await esc.list_cases({"tier": "boss"})
    with pytest.raises(InvalidArgument, match="owner: String should match pattern"):
        await esc.list_cases({"owner": 'x" OR WorkflowType != "'})
    with pytest.raises(InvalidArgument, match="due_before: give a time zone"):
        await esc.count_cases({"due_before": "2026-11-24T09:00:00"})


async def test_unreachable_server_is_a_typed_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(Unreachable, match=f"cannot connect to Temporal at 127.0.0.1:{port}"):
        await EscalationClient.connect(Settings(address=f"127.0.0.1:{port}"))


def _customer(customer_id: str) -> dict:
    return {"id": customer_id, "name": "Dana Doe", "email": "dana@example.org", "time_zone": "Europe/Berlin"}


async def _eq(awaitable, expected):
    got = await awaitable
    assert got == expected, got
    return True


async def test_a_namespace_that_does_not_exist_is_a_connection_setting_not_a_missing_case(env):
    other = await EscalationClient.connect(
        Settings(address=env.client.service_client.config.target_host, namespace=f"nope-{uuid.uuid4().hex[:6]}")
    )
    calls = [
        other.open(case_input()),
        other.case("C-1").state(),
        other.case("C-1").acknowledge({"actor": "ana"}),
        other.list_cases({"tier": "agent"}),
        other.count_cases(),
    ]
    for call in calls:
        with pytest.raises(NamespaceNotFound, match=r"Namespace nope-\w+ is not found: check the namespace") as caught:
            await call
        assert isinstance(caught.value, Unreachable)  # the CLI's "bad connection settings"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.CANCELLED, "query timed out before a worker could process it"),  # what the dev server says
        (RPCStatusCode.DEADLINE_EXCEEDED, "Timeout expired"),
    ],
)
def test_a_case_no_worker_answers_for_is_said_so(status, message):
    """A query on a case whose task queue has no worker waits ~30 s on the server, then fails like this."""
    err = translate(RPCError(message, status, b""), "C-1")
    assert isinstance(err, NoWorker) and isinstance(err, Unreachable)
    assert str(err).startswith("no worker answered for case C-1 in time: is a worker running on the case's task queue?")
    assert type(translate(RPCError(message, status, b""))) is not RPCError  # never raw, case or not


async def test_an_update_no_worker_takes_gives_up_with_a_typed_error(env, settings):
    """No worker polls the case's task queue: the server admits the update and would wait for ever."""
    lonely = EscalationClient(env.client, task_queue=f"{settings.task_queue}-nobody", update_timeout=1.0)
    case = await lonely.open(case_input("fast"), wait=0.5)
    assert case.opened and case.still_opening  # no worker has loaded its policy
    try:
        with pytest.raises(NoWorker) as caught:
            await case.acknowledge(AcknowledgeInput(actor="ana"))
        assert "no worker took 'acknowledge'" in str(caught.value) and "task queue" in str(caught.value)
    finally:
        await case.handle.terminate("test finished")
