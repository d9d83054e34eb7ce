"""What a rep, a customer or a caller reads: the customer's reason for an answer to an offer in every brief
and hand-off, durations that never read as zero, a reassignment to a rep of another tier refused, and a
brief whose "open for" counts to the moment it is asked. The rules directly, then on the dev server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from escalation.client import open_case
from escalation.domain import rules as R
from escalation.domain.formatting import duration, duration_in_days
from escalation.domain.models import (
    AcknowledgeInput,
    Brief,
    Callback,
    EscalateInput,
    Offer,
    OfferInput,
    OfferResponseInput,
    Owner,
    ReassignInput,
    ScheduleCallbackInput,
    Tier,
    TimelineEntry,
    WaitOnCustomerInput,
)
from escalation.domain.policy import Policy
from escalation.domain.rules import Routed
from escalation.domain.rules.callback import local
from escalation.domain.rules.step import MessageKind
from tests.cases import case_input, eventually, owned
from tests.test_callbacks import SAM, book, supervised
from tests.test_cli import cli_fixture, worker_logs_stay_out_of_cli_output  # noqa: F401  (fixtures)
from tests.test_cli import state as cli_state
from tests.test_routing import ROUTING, held_by
from tests.test_rules import (
    HOUR,
    MIN,
    NOW,
    OPENING,
    STANDARD,
    TL,
    ack,
    answer,
    esc,
    offer,
    opened,
    owner,
    refused,
    sends,
)

SECOND = timedelta(seconds=1)
REASON = "wants a full refund, not a voucher"


def outbox(settings) -> list[dict[str, Any]]:
    path = settings.data_dir / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ----- the customer's reason with their answer to an offer


def declined_and_handed_on() -> tuple[Any, list]:
    state = opened()
    state, _ = R.owner_assigned(state, STANDARD, 1, owner("agent"), NOW)
    state, _ = R.acknowledge(state, STANDARD, ack(), NOW)
    state, _ = R.propose_offer(state, STANDARD, offer("20", kind="goodwill", description="Voucher"), NOW + MIN)
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-1", accepted=False, note=REASON), NOW + 2 * MIN)
    state, _ = R.escalate(state, STANDARD, esc("needs_authority"), NOW + 3 * MIN)
    return R.owner_assigned(state, STANDARD, 2, owner(TL), NOW + 4 * MIN)


def test_the_customers_reason_for_declining_is_in_the_brief_and_the_hand_off():
    state, effects = declined_and_handed_on()
    assert state.offers[0].answer_note == REASON
    brief = R.build_brief(state, STANDARD, NOW + 5 * MIN)
    assert brief.offers[0].answer_note == REASON
    assert "2026-03-02 09:02 UTC customer declined offer-1: wants a full refund, not a voucher" in brief.tried
    assert "  - goodwill 20 EUR (declined, agent): Voucher; customer said: wants a full refund, not a voucher" in (
        brief.text.splitlines()
    )
    [handoff] = [s.message for s in sends(effects) if s.message.kind == MessageKind.OWNER_ASSIGNED]
    assert handoff.to.id == "tara"
    assert "  - 2026-03-02 09:02 UTC customer declined offer-1: wants a full refund, not a voucher" in (
        handoff.body.splitlines()
    )


def test_an_accepted_offer_keeps_its_note_and_an_answer_without_one_reads_as_before():
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    state, _ = R.propose_offer(state, STANDARD, offer("5", kind="goodwill", description="Voucher"), NOW)
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-1", note="accepted on the phone"), NOW)
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-2", accepted=False), NOW)
    tried = R.build_brief(state, STANDARD, NOW).tried
    assert tried[-2:] == [
        "2026-03-02 09:00 UTC customer accepted offer-1: accepted on the phone",
        "2026-03-02 09:00 UTC customer declined offer-2",
    ]


# ----- durations in messages


def test_a_duration_above_zero_never_reads_as_zero():
    cases = {
        0: "0s",
        0.4: "under 1s",
        15: "15s",
        59: "59s",
        60: "1m",
        90: "1m30s",
        150: "2m30s",
        3600: "1h",
        3660: "1h01m",
        5400: "1h30m",
        86400: "1d",
        90000: "1d01h",
        2 * 86400 + 4 * 3600 + 59: "2d04h",
    }
    assert {s: duration(timedelta(seconds=s)) for s in cases} == cases
    assert duration(-15) == "15s" and duration(timedelta(seconds=-0.2)) == "under 1s"
    assert duration_in_days(timedelta(days=30)) == "30 days" and duration_in_days(timedelta(days=1)) == "1 day"
    assert duration_in_days(timedelta(hours=12)) == "12h"


def with_(policy: Policy, **overrides: Any) -> Policy:
    return Policy.model_validate({**policy.model_dump(), **overrides})


def test_every_duration_people_read_keeps_seconds():
    # The caller's message about a callback with a 15-second window (it read "within 0 min").
    state, effects = R.schedule_callback(supervised(), ROUTING, book("earliest", window="15s"), NOW + MIN, owner=None)
    [to_caller] = [s.message for s in sends(effects) if s.message.to.id == SAM.id]
    assert "for the customer; within 15s\n" in to_caller.body
    # An offer to accept within 15 seconds.
    quick = with_(ROUTING, routing={"accept_within": "15s"})
    state, _ = R.open_case(case_input("routing", case_id="C-9"), quick, NOW, OPENING)
    routed = Routed(stint=1, request=state.route_requests, owner=Owner(id="ana", name="Ana", tier=Tier.AGENT))
    _, effects = R.owner_found(state, quick, routed, NOW)
    assert sends(effects)[0].message.subject.startswith("[C-9] accept within 15s: ")
    # A wait longer than the policy allows, in seconds.
    short = with_(STANDARD, pause={"limit": "45s"})
    err = refused(
        R.wait_on_customer,
        opened(short),
        short,
        WaitOnCustomerInput(actor="ana", reason="photo", limit="50s"),
        NOW,
        field="limit",
    )
    assert (
        str(err) == "limit: 50s is longer than policy 'standard' allows (45s); leave it out to wait the policy's limit"
    )
    # A callback horizon of hours, and a brief of a case open for 15 seconds.
    near = with_(ROUTING, callbacks={**ROUTING.callbacks.model_dump(), "horizon": "12h"})
    err = refused(R.schedule_callback, supervised(near), near, book(NOW + 24 * HOUR), NOW, None, field="at")
    assert "is more than 12h ahead; policy 'routing' books callbacks up to 12h ahead" in str(err)
    brief = R.build_brief(opened(), STANDARD, NOW + 15 * SECOND)
    assert "Open for 15s; by tier: agent 15s" in brief.text


# ----- reassigning to a rep of another tier


def test_reassigning_to_a_rep_of_another_tier_is_refused_naming_both_tiers():
    state = opened()
    state, _ = R.escalate(state, STANDARD, esc("threat"), NOW)
    state, _ = R.escalate(state, STANDARD, esc("complexity"), NOW)
    state, _ = R.owner_assigned(state, STANDARD, len(state.stints), owner("manager"), NOW)
    ben = Owner(id="ben", name="Ben Brown", tier=Tier.AGENT)
    err = refused(
        R.reassign, state, STANDARD, ReassignInput(actor="maya", reason="shift over", to="ben"), NOW, ben, field="to"
    )
    assert str(err) == (
        "to: ben is a rep at agent and case C-1001 is at manager; name a rep at manager, leave `to` "
        "out to let routing choose, or move the case to agent first (escalate / de_escalate)"
    )
    # A rep of the case's tier, or one the roster does not know (a preference routing may not follow), is fine.
    mo = Owner(id="mo", name="Mo", tier=Tier.MANAGER)
    moved, _ = R.reassign(state, STANDARD, ReassignInput(actor="maya", reason="shift over", to="mo"), NOW, mo)
    assert moved.timeline[-1].detail["to"] == "mo"
    R.reassign(state, STANDARD, ReassignInput(actor="maya", reason="shift over", to="zed"), NOW, None)


# ----- how long a case has been open, when asked


def test_time_open_counts_to_the_moment_asked():
    brief = R.build_brief(opened(), STANDARD, NOW + 15 * MIN)
    assert brief.time_open_seconds == 900 and "Open for 15m;" in brief.text


# ----- on the dev server


async def test_the_next_tier_reads_why_the_customer_declined(env, worker, settings):
    handle = await open_case(env.client, case_input("standard"), task_queue_name=settings.task_queue)
    agent = (await owned(handle)).owner.id
    await handle.execute_update("acknowledge", AcknowledgeInput(actor=agent), result_type=TimelineEntry)
    await handle.execute_update(
        "propose_offer",
        OfferInput(actor=agent, kind="goodwill", amount=Decimal("20"), description="Voucher"),
        result_type=Offer,
    )
    answered = await handle.execute_update(
        "record_offer_response",
        OfferResponseInput(actor=agent, offer_id="offer-1", answer="declined", note=REASON),
        result_type=Offer,
    )
    assert answered.answer_note == REASON
    await handle.execute_update(
        "escalate", EscalateInput(actor=agent, reason="needs_authority"), result_type=TimelineEntry
    )
    state = await owned(handle)
    declined = next(e for e in state.timeline if e.kind == "offer_declined")
    line = f"{declined.at:%Y-%m-%d %H:%M UTC} customer declined offer-1: wants a full refund, not a voucher"

    async def handed_off() -> list[dict] | None:
        return [m for m in outbox(settings) if m["kind"] == "owner_assigned" and m["to"]["id"] == "tara"] or None

    [handoff] = await eventually(handed_off)
    assert f"  - {line}" in handoff["body"].splitlines()
    brief = await handle.query("brief", result_type=Brief)
    assert line in brief.tried and brief.offers[0].answer_note == REASON
    assert "(declined, agent): Voucher; customer said: wants a full refund, not a voucher" in brief.text


async def test_a_fifteen_second_callback_window_is_announced_as_fifteen_seconds(env, worker, settings):
    handle = await open_case(env.client, case_input("routing", threat=True), task_queue_name=settings.task_queue)
    sup = await eventually(lambda: held_by(handle))
    await handle.execute_update("acknowledge", AcknowledgeInput(actor=sup), result_type=TimelineEntry)
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    cb = await handle.execute_update(
        "schedule_callback", ScheduleCallbackInput(actor=sup, at=f"{day}T12:00", window="15s"), result_type=Callback
    )

    async def booked() -> list[dict] | None:
        return [m for m in outbox(settings) if m["kind"] == "callback_scheduled" and m["to"]["id"] == sup] or None

    [to_caller] = await eventually(booked)
    when = [line for line in to_caller["body"].splitlines() if line.startswith("When: ")]
    assert when == [
        f"When: {local(cb.due_at, cb.owner.time_zone or 'UTC')} your time = "
        f"{local(cb.due_at, 'Europe/Berlin')} for the customer; within 15s"
    ]


async def test_reassigning_a_manager_case_to_an_agent_is_refused(cli, tmp_path, settings):
    inp = case_input("standard", threat=True)
    path = tmp_path / "case.json"
    path.write_text(inp.model_dump_json(exclude_none=True))
    await cli("open", str(path))
    await cli("escalate", inp.case_id, "-a", "sam", "--reason", "complexity")

    async def with_maya():
        s = await cli_state(cli, inp.case_id)
        return s if s.tier == "manager" and s.owner and s.owner.id == "maya" else None

    before = await eventually(with_maya)
    refused_ = await cli("reassign", inp.case_id, "-a", "maya", "--reason", "shift over", "--to", "ben", code=3)
    message = " ".join(refused_.stderr.split())
    assert (
        f"error: to: ben is a rep at agent and case {inp.case_id} is at manager; name a rep at manager, leave "
        "`to` out to let routing choose"
    ) in message, message
    after = await cli_state(cli, inp.case_id)
    assert after.owner == before.owner and after.timeline == before.timeline
    assert not [m for m in outbox(settings) if m["kind"] in ("no_capacity", "unassigned")]  # nobody was paged


async def test_the_brief_counts_time_open_to_when_it_is_asked(env, worker, settings):
    handle = await open_case(env.client, case_input("standard"), task_queue_name=settings.task_queue)
    state = await owned(handle)

    async def asked_while_quiet() -> Brief | None:
        last_task = (await handle.fetch_history()).events[-1].event_time.ToDatetime(tzinfo=UTC)
        asked = datetime.now(UTC)
        brief = await handle.query("brief", result_type=Brief)
        # Counted to the question, not to the case's last workflow task (its history has been quiet since).
        assert brief.time_open_seconds >= (asked - state.opened_at).total_seconds() - 0.5, (
            brief.time_open_seconds,
            last_task,
            asked,
        )
        assert f"Open for {duration(brief.time_open_seconds)}" in brief.text
        return brief if asked - last_task > 3 * SECOND else None

    await eventually(asked_while_quiet, timeout=20)
