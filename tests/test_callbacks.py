"""Callbacks: the rules tested directly (times on the customer's clock, refusals, reminders, retries,
hand-over of a missed window, cancellation, hypothesis over random command sequences), then on real
servers: a supervisor callback reached, no answer retried then escalated, a missed window handed to the
next rep, reschedule and cancel, a callback across a DST change, and bad inputs refused.

The `routing` test policy calls customers 08:00-20:00 on their own clock (the test customer is in
Berlin), reminds 15 minutes before, retries after an hour, gives up after two attempts and escalates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from temporalio.client import WorkflowUpdateFailedError
from typer.testing import CliRunner

from escalation.cli import app
from escalation.client import case_state, open_case
from escalation.constants import ERR_INVALID_STATE
from escalation.domain import rules as R
from escalation.domain.models import (
    AcknowledgeInput,
    Callback,
    CallbackOutcomeInput,
    CallbackStatus,
    CancelCallbackInput,
    CaseState,
    CloseInput,
    Owner,
    RescheduleCallbackInput,
    ResolveInput,
    ScheduleCallbackInput,
    Tier,
    TimelineEntry,
)
from escalation.domain.policy import Policy
from escalation.domain.rules import Routed, RuleViolation
from escalation.domain.rules.callback import deadlines as callback_deadlines
from escalation.domain.rules.callback import local
from escalation.domain.rules.step import Assign, MessageKind
from tests.cases import case_input, eventually
from tests.test_business_hours import close_to, sent, skip_to, skip_until
from tests.test_cli import cli_fixture, worker_logs_stay_out_of_cli_output  # noqa: F401  (fixtures)
from tests.test_cli import state as cli_state
from tests.test_routing import ROUTING, held_by
from tests.test_rules import OPENING, assigns, kinds, refused, sends

TESTS = Path(__file__).parent
BERLIN, LONDON, NY = ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=BERLIN).astimezone(UTC)  # a Tuesday, 10:00 for the customer
MIN, HOUR, SECOND = timedelta(minutes=1), timedelta(hours=1), timedelta(seconds=1)
SV, MG = Tier.SUPERVISOR, Tier.MANAGER
SAM = Owner(id="sam", name="Sam Sato", tier=SV, email="sam@example.com", time_zone="Europe/London")
SOL = Owner(id="sol", name="Sol Serrano", tier=SV, email="sol@example.com", time_zone="America/New_York")


# ----- builders


def supervised(policy: Policy = ROUTING, at: datetime = NOW, **overrides: Any) -> CaseState:
    """A threat case at supervisor, accepted and acknowledged by sam (so only the resolve clock runs)."""
    state, _ = R.open_case(case_input(policy.name, case_id="C-7", threat=True, **overrides), policy, at, OPENING)
    answer = Routed(stint=len(state.stints), request=state.route_requests, owner=SAM, starts_at=at)
    state, _ = R.owner_found(state, policy, answer, at)
    state, _ = R.acknowledge(state, policy, AcknowledgeInput(actor="sam"), at)
    return state


def book(at: Any = "earliest", **kw: Any) -> ScheduleCallbackInput:
    return ScheduleCallbackInput.model_validate({"actor": "sam", "at": at, **kw})


def scheduled(
    state: CaseState,
    at: Any = "earliest",
    now: datetime = NOW,
    found: Owner | None = None,
    policy: Policy = ROUTING,
    **kw: Any,
) -> tuple[CaseState, list]:
    return R.schedule_callback(state, policy, book(at, **kw), now, owner=found)


def outcome(result: str, callback_id: str = "callback-1", actor: str = "sam") -> CallbackOutcomeInput:
    return CallbackOutcomeInput(actor=actor, callback_id=callback_id, outcome=result)


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time for the customer in March 2026, as a naive datetime (how a person enters it)."""
    return datetime(2026, 3, day, hour, minute)


def utc(naive: datetime, zone: ZoneInfo = BERLIN) -> datetime:
    return naive.replace(tzinfo=zone).astimezone(UTC)


# ----- scheduling


def test_a_time_without_offset_is_the_customers_wall_clock_and_shows_on_both_clocks():
    state, effects = scheduled(supervised(), berlin(3, 15), found=SOL, owner="sol", notes="refund questions")
    cb = state.callbacks[0]
    assert cb.id == "callback-1" and cb.status == CallbackStatus.SCHEDULED and cb.owner.id == "sol"
    assert cb.due_at == utc(berlin(3, 15)) == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    assert cb.customer_time.isoformat() == "2026-03-03T15:00:00+01:00"
    assert cb.owner_time.isoformat() == "2026-03-03T09:00:00-05:00"  # Sol's New York clock
    assert cb.window == 30 * MIN and cb.remind_at == cb.due_at - 15 * MIN and cb.phone == "+49 30 1234567"
    entry = state.timeline[-1]
    assert entry.kind == "callback_scheduled" and entry.detail["customer_time"] == "2026-03-03T15:00:00+01:00"
    to_owner, to_customer = (s for s in sends(effects))
    assert to_owner.message.to.id == "sol" and to_owner.message.kind == MessageKind.CALLBACK_SCHEDULED
    assert "09:00 EST your time = Tue 03 Mar 2026 15:00 CET for the customer" in to_owner.message.body
    assert to_customer.message.to.kind == "customer" and to_customer.message.channel == "email"
    assert "Tue 03 Mar 2026 15:00 CET" in to_customer.message.body
    assert callback_deadlines(state) == [cb.remind_at, cb.due_at, cb.closes_at]
    assert R.describe_deadline(state, cb.remind_at) == "reminder for callback-1"


def test_the_case_owner_calls_when_nobody_is_named_and_an_instant_with_offset_is_taken_as_is():
    at = datetime(2026, 3, 3, 16, 30, tzinfo=UTC)
    state, _ = scheduled(supervised(), at)
    cb = state.callbacks[0]
    assert cb.owner == SAM and cb.due_at == at and cb.owner_time.isoformat() == "2026-03-03T16:30:00+00:00"


def test_earliest_is_the_next_opening_of_the_customers_contact_window():
    evening = utc(berlin(3, 21))
    state, _ = scheduled(supervised(at=evening), "earliest", now=evening)
    assert state.callbacks[0].customer_time.isoformat() == "2026-03-04T08:00:00+01:00"
    state, _ = scheduled(supervised(), "earliest")
    assert state.callbacks[0].due_at == NOW and state.callbacks[0].remind_at is None  # open now: no reminder


def no_phone_customer() -> dict[str, Any]:
    return {"id": "c9", "name": "Ines", "email": "ines@example.org", "time_zone": "Europe/Berlin"}


@pytest.mark.parametrize(
    ("make", "at", "kw", "found", "field", "words"),
    [
        (supervised, berlin(3, 9), {}, None, "at", "is in the past"),
        (supervised, datetime(2026, 3, 3, 8, 0, tzinfo=UTC), {}, None, "at", "is in the past"),
        (
            supervised,
            berlin(3, 21),
            {},
            None,
            "at",
            "outside the customer's contact window (daily 08:00-20:00, "
            "Europe/Berlin); the window next opens Wed 04 Mar 2026 08:00 CET",
        ),
        (supervised, berlin(31, 10) + timedelta(days=3), {}, None, "at", "more than 30 days ahead"),
        (supervised, datetime(2026, 3, 29, 2, 30), {}, None, "at", "does not exist in Europe/Berlin"),
        (supervised, "earliest", {"owner": "zed"}, None, "owner", "'zed' is not an active rep"),
        (supervised, "earliest", {"window": "0s"}, None, "window", "longer than zero"),
        (supervised, "earliest", {"window": "2d"}, None, "window", "at most"),
        (lambda: supervised(customer=no_phone_customer()), "earliest", {}, None, "phone", "no phone number"),
        (
            lambda: R.open_case(case_input("routing", case_id="C-8"), ROUTING, NOW, OPENING)[0],
            "earliest",
            {},
            None,
            "owner",
            "has no owner yet",
        ),
    ],
)
def test_bad_callbacks_are_refused_with_the_field_and_change_nothing(make, at, kw, found, field, words):
    err = refused(R.schedule_callback, make(), ROUTING, book(at, **kw), NOW, found, field=field)
    assert words in str(err), str(err)


def test_outcome_reschedule_and_cancel_need_a_pending_callback():
    state, _ = scheduled(supervised(), berlin(3, 15))
    err = refused(R.record_callback_outcome, state, ROUTING, outcome("reached", "callback-9"), NOW, field="callback_id")
    assert "no callback 'callback-9' on case C-7 (callbacks: callback-1)" in str(err)
    done, _ = R.cancel_callback(
        state, ROUTING, CancelCallbackInput(actor="sam", callback_id="callback-1", reason="customer called in"), NOW
    )
    for rule, cmd in (
        (R.record_callback_outcome, outcome("reached")),
        (R.reschedule_callback, RescheduleCallbackInput(actor="sam", callback_id="callback-1", at="earliest")),
        (R.cancel_callback, CancelCallbackInput(actor="sam", callback_id="callback-1", reason="again")),
    ):
        err = refused(rule, done, ROUTING, cmd, NOW, field="callback_id", type=ERR_INVALID_STATE)
        assert "is cancelled" in str(err) and "customer called in" in str(err)


# ----- time passing, outcomes


def test_reminder_then_due_then_reached():
    state, _ = scheduled(supervised(), berlin(3, 15))
    cb = state.callbacks[0]
    state, effects = R.advance(state, ROUTING, cb.remind_at)
    assert kinds(state)[-1] == "callback_reminder" and sends(effects)[0].message.kind == MessageKind.CALLBACK_REMINDER
    assert sends(effects)[0].not_before is None  # the caller hears at once, whatever the tier's hours
    assert R.next_deadline(state) == cb.due_at
    state, effects = R.advance(state, ROUTING, cb.due_at)
    assert kinds(state)[-1] == "callback_due" and sends(effects)[0].message.kind == MessageKind.CALLBACK_DUE
    assert R.next_deadline(state) == cb.closes_at
    state, _ = R.record_callback_outcome(state, ROUTING, outcome("reached"), cb.due_at + 5 * MIN)
    cb = state.callbacks[0]
    assert cb.status == CallbackStatus.COMPLETED and cb.end_reason == "reached" and len(cb.attempts) == 1
    assert R.next_deadline(state) == state.resolve_clock.due_at  # the callback's deadlines are gone


def test_no_answer_is_retried_inside_the_window_then_the_customer_hears_in_writing_and_the_case_escalates():
    late = utc(berlin(3, 19, 30))
    state, _ = scheduled(supervised(at=late), "earliest", now=late)
    state, _ = R.record_callback_outcome(state, ROUTING, outcome("no_answer"), late + 5 * MIN)
    cb = state.callbacks[0]
    # +1h is 20:35, after the window closes: the retry waits for 08:00 the next morning.
    assert cb.status == CallbackStatus.SCHEDULED and cb.customer_time.isoformat() == "2026-03-04T08:00:00+01:00"
    assert state.timeline[-1].detail["next_attempt_at"] == cb.due_at.isoformat() and not cb.due_told
    assert "callback-1 attempt 1 by sam: no_answer" in R.build_brief(state, ROUTING, late).text  # the next owner knows
    state, effects = R.record_callback_outcome(state, ROUTING, outcome("voicemail"), cb.due_at + MIN)
    cb = state.callbacks[0]
    assert cb.status == CallbackStatus.FAILED and [a.outcome for a in cb.attempts] == ["no_answer", "voicemail"]
    written = [s.message for s in sends(effects) if s.message.kind == MessageKind.CALLBACK_UNREACHABLE]
    assert len(written) == 1 and written[0].channel == "email" and "tried to call you 2 times" in written[0].body
    climb = next(e for e in state.timeline if e.kind == "escalated")
    assert state.tier == MG and climb.detail["reason"] == "customer_unreachable"
    assert assigns(effects)[0].tier == MG


def test_an_outcome_before_the_callback_is_due_is_refused_naming_the_callback_its_due_time_and_now():
    state, _ = scheduled(supervised(), berlin(5, 15))  # booked on Tuesday for Thursday 15:00
    err = refused(
        R.record_callback_outcome, state, ROUTING, outcome("reached"), NOW, field="callback_id", type=ERR_INVALID_STATE
    )
    assert str(err) == (
        "callback_id: callback-1 is not due yet: attempt 1 is due 2026-03-05 14:00 UTC (Thu 05 Mar "
        "2026 15:00 CET for the customer) and it is 2026-03-03 09:00 UTC now; record the outcome once "
        "the call has been made, or move the callback with reschedule_callback"
    )
    due = state.callbacks[0].due_at
    refused(R.record_callback_outcome, state, ROUTING, outcome("no_answer"), due - SECOND, field="callback_id")
    state, _ = R.record_callback_outcome(state, ROUTING, outcome("no_answer"), due)  # from its due time on
    retry = state.callbacks[0].due_at
    assert retry == due + HOUR
    # The retry is an attempt of its own: its outcome waits for its time too.
    err = refused(R.record_callback_outcome, state, ROUTING, outcome("reached"), due + 5 * MIN, field="callback_id")
    assert "attempt 2 is due 2026-03-05 15:00 UTC" in str(err)
    assert R.record_callback_outcome(state, ROUTING, outcome("reached"), retry)[0].callbacks[0].status == "completed"


def test_an_early_unanswered_try_in_an_older_history_retries_after_the_booked_time_not_before_it():
    state, _ = scheduled(supervised(), berlin(3, 15))
    state, _ = R.record_callback_outcome(
        state,
        ROUTING,
        outcome("no_answer"),
        NOW,  # tried at 10:00
        not_early=False,
    )
    assert state.callbacks[0].customer_time.isoformat() == "2026-03-03T16:00:00+01:00"


def test_unreachable_customer_reassigns_the_case_when_the_policy_says_so():
    policy = Policy.model_validate(
        {
            **ROUTING.model_dump(),
            "callbacks": {**ROUTING.callbacks.model_dump(), "on_unreachable": "reassign", "max_attempts": 1},
        }
    )
    state, _ = scheduled(supervised(policy), policy=policy)
    state, effects = R.record_callback_outcome(state, policy, outcome("no_answer"), NOW)
    assert state.tier == SV and state.owner is None and kinds(state)[-1] == "reassigned"
    assert assigns(effects)[0].exclude == ["sam"] and assigns(effects)[0].tier == SV


def test_a_wrong_number_ends_the_callback_and_asks_the_customer_for_theirs():
    state, _ = scheduled(supervised())
    state, effects = R.record_callback_outcome(state, ROUTING, outcome("wrong_number"), NOW)
    assert state.callbacks[0].status == CallbackStatus.FAILED and state.tier == SV
    assert "reply with the number" in sends(effects)[0].message.body


def callback_routed(req: Assign, owner: Owner | None, reason: str | None = None) -> Routed:
    return Routed(stint=req.stint, request=req.request, callback_id=req.callback_id, owner=owner, reason=reason)


def test_a_missed_window_is_a_breach_and_the_next_rep_takes_the_callback_now():
    state, _ = scheduled(supervised(), berlin(3, 15))
    cb = state.callbacks[0]
    state, effects = R.advance(state, ROUTING, cb.remind_at)
    state, effects = R.advance(state, ROUTING, cb.due_at)
    state, effects = R.advance(state, ROUTING, cb.closes_at)
    breach = state.timeline[-1]
    assert breach.kind == "breached" and breach.detail["clock"] == "callback" and state.breaches == 1
    [req] = assigns(effects)
    assert req.callback_id == "callback-1" and req.tier == SV and req.exclude == ["sam"]
    assert state.callbacks[0].handing_over and R.next_deadline(state) == state.resolve_clock.due_at

    later = cb.closes_at + SECOND
    state, effects = R.owner_found(state, ROUTING, callback_routed(req, SOL), later)
    cb = state.callbacks[0]
    assert cb.owner.id == "sol" and cb.due_at == later and cb.due_told and not cb.handing_over
    assert state.timeline[-1].kind == "callback_reassigned" and state.owner.id == "sam"  # the case stays with sam
    to_sol, to_customer = sends(effects)
    assert to_sol.message.to.id == "sol" and to_sol.message.kind == MessageKind.CALLBACK_DUE
    # The customer was promised 15:00: they hear of the new caller and time, in their window (open now).
    assert to_customer.message.to.kind == "customer" and to_customer.not_before is None
    assert to_customer.message.subject == "Your callback has moved (case C-7)"
    assert to_customer.message.body == (
        "Hello Dana Doe,\n\nWe did not call you on Tue 03 Mar 2026 15:00 CET as "
        "promised; we are sorry. Sol Serrano will now call you on Tue 03 Mar 2026 "
        "15:30 CET.\n\nReference: case C-7."
    )
    assert (to_customer.about, to_customer.announces) == ("callback-1", cb.due_at)
    assert R.next_deadline(state) == later + 30 * MIN

    # Sol lets it pass too, and nobody else is left: the callback is missed, the customer told.
    state, effects = R.advance(state, ROUTING, later + 30 * MIN)
    [req] = assigns(effects)
    assert req.exclude == ["sam", "sol"] and state.breaches == 2
    state, effects = R.owner_found(
        state,
        ROUTING,
        callback_routed(req, None, "every qualified supervisor (sam, sol) was asked already"),
        later + HOUR,
    )
    assert state.callbacks[0].status == CallbackStatus.MISSED and kinds(state)[-1] == "callback_missed"
    assert {s.message.to.kind for s in sends(effects)} == {"team", "customer"}
    state, _ = R.resolve(
        state, ROUTING, ResolveInput(actor="sam", resolution="x", root_cause="other", kb_missing=True), later + HOUR
    )
    state, _ = R.close(state, ROUTING, CloseInput(actor="sam", outcome="resolved", reason="done"), later + HOUR)
    result = R.outcome(state, ROUTING)
    assert result.breaches == 2 and result.callbacks_missed == 2


def customer_notes(effects: list) -> list:
    return [s for s in sends(effects) if s.message.to.kind == "customer"]


def test_a_retry_after_no_answer_tells_the_customer_the_new_time_on_their_clock():
    state, _ = scheduled(supervised(), berlin(3, 15))
    due = state.callbacks[0].due_at
    state, effects = R.record_callback_outcome(state, ROUTING, outcome("voicemail"), due + 2 * MIN)
    [told] = customer_notes(effects)
    assert told.message.kind == MessageKind.CALLBACK_SCHEDULED and told.not_before is None  # 15:02: window open
    assert told.message.subject == "Your callback has moved (case C-7)"
    assert told.message.body == (
        "Hello Dana Doe,\n\nWe tried to call you but could not reach you. Sam Sato will "
        "now call you on Tue 03 Mar 2026 16:02 CET.\n\nReference: case C-7."
    )
    assert (told.about, told.announces) == ("callback-1", state.callbacks[0].due_at)
    # The last attempt used up: no new time to announce (the customer hears they could not be reached).
    _, effects = R.record_callback_outcome(state, ROUTING, outcome("no_answer"), state.callbacks[0].due_at)
    assert [s.message.kind for s in customer_notes(effects)] == [MessageKind.CALLBACK_UNREACHABLE]
    # Histories recorded before retries were announced replay without the message.
    _, effects = R.record_callback_outcome(
        scheduled(supervised(), berlin(3, 15))[0], ROUTING, outcome("no_answer"), due, announce_moves=False
    )
    assert customer_notes(effects) == []


def test_a_callback_handed_over_at_night_is_announced_when_the_customers_window_opens():
    evening = utc(berlin(3, 19))
    state, _ = scheduled(supervised(at=evening), berlin(3, 19, 40), now=evening, window="30m")
    cb = state.callbacks[0]
    state, effects = R.advance(state, ROUTING, cb.closes_at)  # 20:10: missed, the window for calls has closed
    [req] = assigns(effects)
    state, effects = R.owner_found(state, ROUTING, callback_routed(req, SOL), cb.closes_at + SECOND)
    moved = state.callbacks[0]
    assert moved.customer_time.isoformat() == "2026-03-04T08:00:00+01:00"  # the next morning, their clock
    [told] = customer_notes(effects)
    assert told.not_before == moved.due_at  # held until their contact window opens, not sent at night
    assert told.message.body == (
        "Hello Dana Doe,\n\nWe did not call you on Tue 03 Mar 2026 19:40 CET as "
        "promised; we are sorry. Sol Serrano will now call you on Wed 04 Mar 2026 08:00 "
        "CET.\n\nReference: case C-7."
    )
    # Moved again before it went: the held notice is dropped and only the latest time reaches them.
    again, later = R.reschedule_callback(
        state,
        ROUTING,
        RescheduleCallbackInput(actor="sam", callback_id="callback-1", at=berlin(4, 9)),
        cb.closes_at + MIN,
        owner=None,
    )
    assert R.message_obsolete(again, told.message, about=told.about, announces=told.announces)
    [latest] = customer_notes(later)
    assert "Sol Serrano will now call you on Wed 04 Mar 2026 09:00 CET." in latest.message.body
    # Older histories handed over without a word to the customer.
    _, effects = R.owner_found(
        R.advance(
            scheduled(supervised(at=evening), berlin(3, 19, 40), now=evening, window="30m")[0], ROUTING, cb.closes_at
        )[0],
        ROUTING,
        callback_routed(req, SOL),
        cb.closes_at + SECOND,
        announce_moves=False,
    )
    assert customer_notes(effects) == []


def test_moving_a_callback_the_customer_never_heard_of_just_tells_them_when_it_comes():
    late = utc(berlin(3, 21))
    state, _ = scheduled(supervised(at=late), berlin(4, 15), now=late)  # its confirmation waits for 08:00
    state, effects = R.reschedule_callback(
        state,
        ROUTING,
        RescheduleCallbackInput(actor="sam", callback_id="callback-1", at=berlin(4, 16), owner="sol"),
        late + MIN,
        owner=SOL,
    )
    [told] = customer_notes(effects)
    assert told.message.subject == "We will call you back (case C-7)"
    assert "Sol Serrano will call you on Wed 04 Mar 2026 16:00 CET." in told.message.body


def test_several_callbacks_each_keep_their_own_deadlines_and_reschedule_and_cancel_move_them():
    state = supervised()
    for hour in (15, 16, 17):
        state, _ = scheduled(state, berlin(3, hour))
    assert [c.id for c in state.callbacks] == ["callback-1", "callback-2", "callback-3"]
    assert sorted(callback_deadlines(state)) == sorted(
        utc(berlin(3, h)) + d for h in (15, 16, 17) for d in (-15 * MIN, timedelta(0), 30 * MIN)
    )
    state, effects = R.reschedule_callback(
        state,
        ROUTING,
        RescheduleCallbackInput(actor="sam", callback_id="callback-1", at=berlin(3, 18), owner="sol"),
        NOW,
        owner=SOL,
    )
    moved = state.callbacks[0]
    assert moved.due_at == utc(berlin(3, 18)) and moved.owner.id == "sol" and moved.status == CallbackStatus.SCHEDULED
    assert state.timeline[-1].detail["from_owner"] == "sam"
    assert {s.message.to.id for s in sends(effects)} == {"sol", "cust-42"}
    state, _ = R.cancel_callback(
        state, ROUTING, CancelCallbackInput(actor="sam", callback_id="callback-2", reason="customer called us"), NOW
    )
    assert state.callbacks[1].status == CallbackStatus.CANCELLED
    assert R.next_deadline(state) == utc(berlin(3, 17)) - 15 * MIN  # callback-3's reminder comes first now
    state, effects = R.resolve(
        state, ROUTING, ResolveInput(actor="sam", resolution="x", root_cause="other", kb_missing=True), NOW + MIN
    )
    assert [c.status for c in state.callbacks] == ["cancelled"] * 3
    assert kinds(state)[-1] == "callbacks_cancelled" and state.timeline[-1].detail["callback_ids"] == [
        "callback-1",
        "callback-3",
    ]
    # Both callers, and the customer, who was promised those calls.
    assert {s.message.to.id for s in sends(effects) if s.message.kind == MessageKind.CALLBACK_CANCELLED} == {
        "sol",
        "sam",
        "cust-42",
    }
    assert callback_deadlines(state) == []


def test_two_callbacks_of_one_caller_called_off_together_send_two_messages_with_their_own_keys():
    state = supervised()
    for hour in (15, 16):
        state, _ = scheduled(state, berlin(3, hour))
    _, effects = R.resolve(
        state, ROUTING, ResolveInput(actor="sam", resolution="x", root_cause="other", kb_missing=True), NOW + MIN
    )
    told = [
        s.message
        for s in sends(effects)
        if s.message.kind == MessageKind.CALLBACK_CANCELLED and s.message.to.kind == "owner"
    ]
    assert [m.to.id for m in told] == ["sam", "sam"]
    assert "callback-1" in told[0].body + told[0].subject and "callback-2" in told[1].body + told[1].subject
    # Receivers dedupe on the key: the second message must not look like a repeat of the first.
    assert told[1].key == f"{told[0].key}/2"


# ----- properties over random command sequences

COMMANDS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "schedule",
                "reached",
                "no_answer",
                "voicemail",
                "wrong_number",
                "cancel",
                "reschedule",
                "advance",
                "handover",
                "nobody",
            ]
        ),
        st.integers(0, 4),
        st.integers(1, 300),
        st.integers(0, 26 * 60),
    ),
    max_size=25,
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(COMMANDS)
def test_callback_invariants(commands):
    state, now = supervised(), NOW
    last_request: Assign | None = None
    for op, index, step_minutes, offset in commands:
        now += timedelta(minutes=step_minutes)
        callback_id = f"callback-{index}"
        if op == "schedule":
            cmd = book(now + timedelta(minutes=offset))
        elif op in ("reached", "no_answer", "voicemail", "wrong_number"):
            cmd = outcome(op, callback_id)
        elif op == "cancel":
            cmd = CancelCallbackInput(actor="sam", callback_id=callback_id, reason="changed plans")
        elif op == "reschedule":
            cmd = RescheduleCallbackInput(actor="sam", callback_id=callback_id, at=now + timedelta(minutes=offset))
        rule = {"schedule": R.schedule_callback, "cancel": R.cancel_callback, "reschedule": R.reschedule_callback}.get(
            op, R.record_callback_outcome
        )
        before = state.model_dump()
        try:
            if op == "advance":
                state, effects = R.advance(state, ROUTING, now)
            elif op in ("handover", "nobody"):
                if last_request is None:
                    continue
                owner = SOL if op == "handover" else None
                answer = Routed(
                    stint=last_request.stint,
                    request=last_request.request,
                    callback_id=last_request.callback_id,
                    owner=owner,
                    reason=None if owner else "nobody",
                )
                state, effects = R.owner_found(state, ROUTING, answer, now)
            else:
                state, effects = rule(state, ROUTING, cmd, now)
        except RuleViolation:
            assert state.model_dump() == before
            continue
        found = [e for e in assigns(effects) if e.callback_id]
        last_request = found[-1] if found else last_request
        if state.status != "open":
            break
        window = ROUTING.customer_window("Europe/Berlin")
        for cb in state.callbacks:
            assert len(cb.attempts) <= ROUTING.callbacks.max_attempts
            if cb.status == CallbackStatus.SCHEDULED:
                assert window.is_open(cb.due_at)  # every attempt, retry and hand-over lands in the window
                assert cb.customer_time == cb.due_at and cb.customer_time.utcoffset() in (HOUR, 2 * HOUR)
                assert not cb.handing_over or cb.closes_at <= now
            else:
                assert cb.ended_at is not None and cb.remind_at is None
        missed = [e for e in state.timeline if e.kind == "breached" and e.detail["clock"] == "callback"]
        assert len(missed) == sum(len(c.missed_by) for c in state.callbacks)  # each missed window is a breach
        assert all(d > now for d in callback_deadlines(state)) or op != "advance"


# ----- on real servers


@pytest.fixture
def settings(settings):
    """Two supervisors in different time zones (sam in London, sol in New York)."""
    settings.roster_path = TESTS / "roster_callbacks.toml"
    return settings


async def supervisor_case(open_, **overrides: Any):
    """A threat case (supervisor tier), acknowledged (and so accepted) by whichever supervisor it was offered to."""
    handle = await open_(case_input("routing", threat=True, **overrides))
    sup = await eventually(lambda: held_by(handle))
    await handle.execute_update("acknowledge", AcknowledgeInput(actor=sup), result_type=TimelineEntry)
    return handle, sup


async def schedule(handle, **kw: Any) -> Callback:
    return await handle.execute_update(
        "schedule_callback", ScheduleCallbackInput.model_validate(kw), result_type=Callback
    )


async def record(handle, callback_id: str, result: str, actor: str) -> Callback:
    return await handle.execute_update(
        "record_callback_outcome",
        CallbackOutcomeInput(actor=actor, callback_id=callback_id, outcome=result),
        result_type=Callback,
    )


def entries(state: CaseState, kind: str) -> list[TimelineEntry]:
    return [e for e in state.timeline if e.kind == kind]


async def test_a_supervisor_callback_is_reminded_due_and_reached(skip_env, skip_cases, settings):
    tuesday = await skip_to(skip_env, 1, time(10, 0), BERLIN)
    handle, sup = await supervisor_case(skip_cases)
    at = datetime.combine(tuesday.date(), time(15, 0))  # the customer's 15:00
    cb = await schedule(handle, actor=sup, at=at.isoformat(), owner="sol", notes="explain the refund")
    assert cb.owner.id == "sol" and cb.customer_time.hour == 15
    assert cb.owner_time.isoformat() == cb.due_at.astimezone(NY).isoformat()
    assert await eventually(lambda: _messages(settings, "callback_scheduled", 2))

    await skip_until(skip_env, cb.due_at - 15 * MIN + SECOND)
    [reminder] = await eventually(lambda: _messages(settings, "callback_reminder", 1))
    assert reminder["to"]["id"] == "sol" and "explain the refund" in reminder["body"]
    await skip_until(skip_env, cb.due_at + SECOND)
    [_due] = await eventually(lambda: _messages(settings, "callback_due", 1))
    done = await record(handle, cb.id, "reached", "sol")
    assert done.status == "completed"
    state = await case_state(handle)
    assert close_to(entries(state, "callback_reminder")[0].at, cb.due_at - 15 * MIN)
    assert close_to(entries(state, "callback_due")[0].at, cb.due_at)
    assert entries(state, "callback_outcome")[0].detail["outcome"] == "reached" and state.breaches == 0


async def _messages(settings, kind: str, at_least: int) -> list[dict] | None:
    found = sent(settings, kind)
    return found if len(found) >= at_least else None


async def test_no_answer_is_retried_then_the_case_escalates(skip_env, skip_cases, settings):
    await skip_to(skip_env, 2, time(10, 0), BERLIN)
    handle, sup = await supervisor_case(skip_cases)
    cb = await schedule(handle, actor=sup, at="earliest")
    await eventually(lambda: _messages(settings, "callback_due", 1))
    retry = await record(handle, cb.id, "no_answer", sup)
    assert retry.status == "scheduled" and retry.due_at - cb.due_at >= HOUR
    # The customer hears the new time, on their own clock.
    [moved] = await eventually(lambda: _to_customer(settings, "Your callback has moved"))
    sup_name = {"sam": "Sam Sato", "sol": "Sol Serrano"}[sup]
    assert moved["channel"] == "email" and moved["body"] == (
        f"Hello Dana Doe,\n\nWe tried to call you but could not reach you. {sup_name} will now call you on "
        f"{local(retry.due_at, 'Europe/Berlin')}.\n\nReference: case {moved['case_id']}."
    )
    await skip_until(skip_env, retry.due_at + SECOND)
    await eventually(lambda: _messages(settings, "callback_due", 2))
    failed = await record(handle, cb.id, "voicemail", sup)
    assert failed.status == "failed"
    [written] = await eventually(lambda: _messages(settings, "callback_unreachable", 1))
    assert written["to"]["kind"] == "customer" and written["channel"] == "email"
    assert await eventually(lambda: _is_holder(handle, "maya"))
    state = await case_state(handle)
    assert state.tier == "manager" and entries(state, "escalated")[-1].detail["reason"] == "customer_unreachable"


async def _to_customer(settings, subject: str) -> list[dict] | None:
    return [
        m
        for m in sent(settings, "callback_scheduled")
        if m["to"]["kind"] == "customer" and m["subject"].startswith(subject)
    ] or None


async def _is_holder(handle, rep_id: str) -> bool:
    return await held_by(handle) == rep_id


async def test_a_missed_window_goes_to_the_next_rep_and_counts_as_a_breach(skip_env, skip_cases, settings):
    await skip_to(skip_env, 3, time(10, 0), BERLIN)
    handle, sup = await supervisor_case(skip_cases)
    cb = await schedule(handle, actor=sup, at="earliest", owner="sam", window="20m")
    await skip_until(skip_env, cb.due_at + 20 * MIN + SECOND)

    async def handed_over():
        s = await case_state(handle)
        return s if s.callbacks[0].owner.id == "sol" else None

    state = await eventually(handed_over)
    breach = entries(state, "breached")[0]
    assert breach.detail["clock"] == "callback" and close_to(breach.at, cb.due_at + 20 * MIN)
    assert state.breaches == 1 and entries(state, "callback_reassigned")[0].detail["from_owner"] == "sam"
    take_over = await eventually(lambda: _to(settings, "callback_due", "sol"))
    assert "did not make this callback" in take_over[0]["body"]
    done = await record(handle, cb.id, "reached", "sol")
    assert done.status == "completed" and done.missed_by == ["sam"]


async def _to(settings, kind: str, rep_id: str) -> list[dict] | None:
    return [m for m in sent(settings, kind) if m["to"]["id"] == rep_id] or None


async def test_a_callback_missed_in_the_evening_moves_to_the_next_rep_and_the_customer_hears_in_the_morning(
    skip_env, skip_cases, settings
):
    """The issue's case: a call promised for the evening, its window missed; the next supervisor takes it when
    the customer's contact window next opens, and the customer is told so then, not at night, nor never."""
    tuesday = await skip_to(skip_env, 1, time(19, 0), BERLIN)
    handle, sup = await supervisor_case(skip_cases)
    at = datetime.combine(tuesday.date(), time(19, 40))  # the customer's 19:40
    cb = await schedule(handle, actor=sup, at=at.isoformat(), owner="sam", window="30m")
    await eventually(lambda: _to_customer(settings, "We will call you back"))  # confirmed at once (19:00)
    await skip_until(skip_env, cb.closes_at + SECOND)  # 20:10: missed; the customer's window has closed

    async def handed_over():
        s = await case_state(handle)
        return s if s.callbacks[0].owner.id == "sol" else None

    state = await eventually(handed_over)
    moved = state.callbacks[0]
    assert moved.customer_time.replace(tzinfo=None) == datetime.combine(tuesday.date() + timedelta(days=1), time(8))
    assert await _to_customer(settings, "Your callback has moved") is None  # held: not at night

    await skip_until(skip_env, moved.due_at + SECOND)  # 08:00 the next morning
    [told] = await eventually(lambda: _to_customer(settings, "Your callback has moved"))
    assert told["to"]["id"] == "cust-42" and told["channel"] == "email"
    assert told["body"] == (
        f"Hello Dana Doe,\n\nWe did not call you on {local(cb.due_at, 'Europe/Berlin')} as "
        f"promised; we are sorry. Sol Serrano will now call you on "
        f"{local(moved.due_at, 'Europe/Berlin')}.\n\nReference: case {state.case_id}."
    )
    assert entries(await case_state(handle), "callback_reassigned")[0].detail["owner"] == "sol"


async def test_an_outcome_for_a_callback_booked_two_days_ahead_is_refused(cli, tmp_path):
    inp = case_input("routing", threat=True)
    path = tmp_path / "case.json"
    path.write_text(inp.model_dump_json(exclude_none=True))
    await cli("open", str(path))
    sup = await eventually(lambda: _cli_holder(cli, inp.case_id))
    await cli("accept", inp.case_id, "-a", sup)
    day = (datetime.now(BERLIN) + timedelta(days=2)).date()
    await cli("callback", "schedule", inp.case_id, "-a", sup, "--at", f"{day}T12:00")
    before = await cli_state(cli, inp.case_id)
    due = before.callbacks[0].due_at
    refused_ = await cli("callback", "outcome", inp.case_id, "callback-1", "reached", "-a", sup, code=4)
    message = " ".join(refused_.stderr.split())
    assert (
        f"error: callback_id: callback-1 is not due yet: attempt 1 is due {due:%Y-%m-%d %H:%M} UTC "
        f"({local(due, 'Europe/Berlin')} for the customer) and it is "
    ) in message, message
    assert " UTC now; record the outcome once the call has been made" in message
    after = await cli_state(cli, inp.case_id)
    assert after.callbacks == before.callbacks and after.timeline == before.timeline


async def test_reschedule_and_cancel_and_resolving_cancels_the_rest(skip_env, skip_cases, settings):
    monday = await skip_to(skip_env, 0, time(10, 0), BERLIN)
    handle, sup = await supervisor_case(skip_cases)
    day = monday.date()
    first = await schedule(handle, actor=sup, at=datetime.combine(day, time(12, 0)).isoformat())
    second = await schedule(handle, actor=sup, at=datetime.combine(day, time(13, 0)).isoformat())
    third = await schedule(handle, actor=sup, at=datetime.combine(day, time(14, 0)).isoformat())
    moved = await handle.execute_update(
        "reschedule_callback",
        RescheduleCallbackInput(actor=sup, callback_id=first.id, at=datetime.combine(day, time(16, 0))),
        result_type=Callback,
    )
    assert moved.customer_time.hour == 16
    cancelled = await handle.execute_update(
        "cancel_callback",
        CancelCallbackInput(actor=sup, callback_id=second.id, reason="customer rang us first"),
        result_type=Callback,
    )
    assert cancelled.status == "cancelled"

    await skip_until(skip_env, third.due_at + SECOND)
    due = await eventually(lambda: _messages(settings, "callback_due", 1))
    case_id = (await case_state(handle)).case_id
    assert [m["subject"] for m in due] == [f"[{case_id}] call the customer now ({third.id})"]  # not the moved one
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=sup, resolution="Refunded", root_cause="billing_error", kb_missing=True),
        result_type=TimelineEntry,
    )
    state = await case_state(handle)
    assert [c.status for c in state.callbacks] == ["cancelled", "cancelled", "cancelled"]
    assert entries(state, "callbacks_cancelled")[0].detail["callback_ids"] == [first.id, third.id]
    await skip_until(skip_env, moved.due_at + HOUR)
    assert len(sent(settings, "callback_due")) == 1  # nothing fires for a cancelled callback


def next_dst_change(zone: ZoneInfo, after: datetime) -> date:
    """The first day after `after` on which the zone's UTC offset changes."""
    day = after.astimezone(zone).date()
    for _ in range(400):
        nxt = day + timedelta(days=1)
        if datetime.combine(nxt, time(12), zone).utcoffset() != datetime.combine(day, time(12), zone).utcoffset():
            return nxt
        day = nxt
    raise AssertionError("no DST change within a year")


async def test_a_callback_across_a_dst_change_lands_on_the_customers_wall_clock(skip_env, skip_cases, settings):
    change = next_dst_change(BERLIN, await skip_env.get_current_time())
    before = datetime.combine(change - timedelta(days=1), time(12, 0), BERLIN)
    await skip_until(skip_env, before.astimezone(UTC))
    handle, sup = await supervisor_case(skip_cases)
    at = datetime.combine(change, time(10, 0))  # "tomorrow at 10" for the customer, after the clocks change
    cb = await schedule(handle, actor=sup, at=at.isoformat(), owner="sol")
    assert cb.customer_time.replace(tzinfo=None) == at
    assert cb.due_at - before == timedelta(hours=22) - (cb.customer_time.utcoffset() - before.utcoffset())
    assert cb.owner_time.isoformat() == cb.due_at.astimezone(NY).isoformat()

    await skip_until(skip_env, cb.due_at + SECOND)
    state = await eventually(lambda: _has(handle, "callback_due"))
    fired = entries(state, "callback_due")[0].at
    assert close_to(fired, cb.due_at) and fired.astimezone(BERLIN).strftime("%H:%M") == "10:00"


async def _has(handle, kind: str):
    s = await case_state(handle)
    return s if entries(s, kind) else None


def _tonight(now: datetime) -> str:
    """22:00 for the customer, after `now`: outside their contact window."""
    local = now.astimezone(BERLIN)
    day = local.date() if local.hour < 22 else local.date() + timedelta(days=1)
    return datetime.combine(day, time(22, 0), BERLIN).isoformat()


BAD = [
    ("schedule_callback", {"at": "2020-01-01T10:00:00Z"}, ["at", "is in the past"]),
    ("schedule_callback", {"at": "TONIGHT"}, ["at", "outside the customer's contact window", "earliest"]),
    ("schedule_callback", {"at": "earliest", "owner": "zed"}, ["owner", "'zed' is not an active rep"]),
    ("schedule_callback", {"at": "earliest", "owner": "old"}, ["owner", "'old' is not an active rep"]),  # inactive
    ("schedule_callback", {"at": "soon"}, ["at"]),
    ("record_callback_outcome", {"callback_id": "callback-9", "outcome": "reached"}, ["callback_id", "callback-9"]),
    ("record_callback_outcome", {"callback_id": "callback-1", "outcome": "maybe"}, ["outcome"]),
    ("reschedule_callback", {"callback_id": "callback-9", "at": "earliest"}, ["callback_id", "callback-9"]),
    ("cancel_callback", {"callback_id": "callback-1"}, ["reason"]),
]


@pytest.mark.parametrize(("name", "payload", "words"), BAD, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD)])
async def test_bad_callback_commands_are_refused_and_change_nothing(env, worker, settings, name, payload, words):
    handle, sup = await supervisor_case(lambda inp: open_case(env.client, inp, task_queue_name=settings.task_queue))
    await schedule(handle, actor=sup, at="earliest")
    before = await case_state(handle)
    if payload.get("at") == "TONIGHT":
        payload = {**payload, "at": _tonight(datetime.now(UTC))}
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(name, {"actor": sup, **payload})
    cause = caught.value.cause
    assert cause.type == "InvalidArgument" and cause.non_retryable
    for word in words:
        assert word in cause.message, f"{word!r} not in {cause.message!r}"
    assert (await case_state(handle)).model_dump() == before.model_dump()


# ----- from the `escalations` CLI (dev server)


def _zone_in_contact_hours(now: datetime) -> ZoneInfo:
    """A customer's zone where it is daytime now, well inside the routing policy's 08:00-20:00 window, so a
    callback booked 'earliest' is due at once and its outcome may be recorded straight away."""
    for name in (
        "Europe/Berlin",
        "America/New_York",
        "America/Los_Angeles",
        "Pacific/Auckland",
        "Asia/Tokyo",
        "Asia/Kolkata",
    ):
        if 9 <= now.astimezone(ZoneInfo(name)).hour < 19:
            return ZoneInfo(name)
    raise AssertionError(f"no zone with daytime at {now}")


async def test_callbacks_driven_from_the_cli(cli, tmp_path):
    zone = _zone_in_contact_hours(datetime.now(UTC))
    customer = {**case_input("routing").customer.model_dump(mode="json"), "time_zone": zone.key}
    inp = case_input("routing", threat=True, customer=customer)
    path = tmp_path / "case.json"
    path.write_text(inp.model_dump_json(exclude_none=True))
    await cli("open", str(path))
    sup = await eventually(lambda: _cli_holder(cli, inp.case_id))
    assert "assignment_accepted" in (await cli("accept", inp.case_id, "-a", sup)).stdout

    booked = (
        await cli(
            "callback",
            "schedule",
            inp.case_id,
            "-a",
            sup,
            "--at",
            "earliest",
            "--owner",
            "sol",
            "--notes",
            "explain the refund",
        )
    ).stdout
    assert booked.startswith("callback-1 scheduled: sol calls") and "customer's time" in booked
    retry = (await cli("callback", "outcome", inp.case_id, "callback-1", "no_answer", "-a", "sol")).stdout
    assert retry.startswith("callback-1 scheduled") and "attempt 2" in retry
    tomorrow = (datetime.now(zone) + timedelta(days=1)).date()
    moved = (
        await cli("callback", "reschedule", inp.case_id, "callback-1", "-a", sup, "--at", f"{tomorrow}T10:00")
    ).stdout
    offset = datetime.combine(tomorrow, time(10, 0), zone).strftime("%z")
    assert f"{tomorrow} 10:00 {offset} customer's time" in moved  # 10:00 on the customer's clock
    refused_ = await cli("callback", "outcome", inp.case_id, "callback-9", "reached", "-a", "sol", code=3)
    assert "callback_id: no callback 'callback-9'" in refused_.output
    past = await cli("callback", "schedule", inp.case_id, "-a", sup, "--at", "2020-01-01T10:00:00Z", code=3)
    assert "at: " in past.output and "is in the past" in past.output
    assert (
        "cancelled"
        in (
            await cli("callback", "cancel", inp.case_id, "callback-1", "-a", sup, "--reason", "customer called in")
        ).stdout
    )
    shown = (await cli("show", inp.case_id)).stdout
    assert "Callbacks\n  callback-1 cancelled: sol calls" in shown
    s = await cli_state(cli, inp.case_id)
    assert [a.outcome for a in s.callbacks[0].attempts] == ["no_answer"]


async def _cli_holder(cli, case_id: str) -> str | None:
    return R.holder(await cli_state(cli, case_id))


def test_cli_help_covers_routing_and_callback_commands():
    runner = CliRunner()
    for args in (
        ["accept"],
        ["reassign"],
        ["callback", "schedule"],
        ["callback", "outcome"],
        ["callback", "reschedule"],
        ["callback", "cancel"],
    ):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Example" in result.stdout, args


# ----- a long case hands over to a new run with its wait, open offer and callback (dev server)

CARRY_POLICY = """
name = "carry"
version = "test-carry-1"
threat_tier = "supervisor"
[routing]
accept_within = "8s"
[callbacks]
window = "1m"
remind_before = "2s"
[pause]
limit = "1d"
[[tiers]]
name = "supervisor"
acknowledge_within = "1h"
resolve_within = "2h"
[[tiers]]
name = "manager"
acknowledge_within = "1h"
resolve_within = "2h"
[followups]
offsets = ["1d"]
"""


async def test_continue_as_new_carries_the_wait_the_open_offer_and_the_callback(short_history_env, settings, tmp_path):
    """Waiting on the customer, an offer not yet accepted and a callback not yet due, when the case continues
    as new: the new run keeps all three, and each deadline fires at its instant in the new run."""
    from escalation.client import Case, execute_update
    from escalation.domain.models import CustomerRepliedInput, NoteInput, WaitOnCustomerInput
    from worker import build_worker

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "carry.toml").write_text(CARRY_POLICY, encoding="utf-8")
    settings.policy_dir = tmp_path / "policies"
    client = short_history_env.client
    async with build_worker(client, settings):
        handle = await open_case(client, case_input("carry", threat=True), task_queue_name=settings.task_queue)
        first = await eventually(lambda: held_by(handle))
        other = "sol" if first == "sam" else "sam"
        await execute_update(
            handle,
            "wait_on_customer",
            WaitOnCustomerInput(actor="maya", reason="bank statement"),
            result_type=TimelineEntry,
        )
        at = datetime.now(UTC) + 6 * SECOND
        await execute_update(
            handle,
            "schedule_callback",
            ScheduleCallbackInput(actor="maya", at=at, owner=other, notes="explain the refund"),
            result_type=Callback,
        )
        before = await case_state(handle)
        first_run = (await handle.describe()).run_id
        case = Case(handle, handle.id.removeprefix("escalation-"))  # resends a note refused while the case moves
        for i in range(60):
            await case.add_note(NoteInput(actor="maya", text=f"note {i}"))
            if (await handle.describe()).run_id != first_run:
                break
        assert (await handle.describe()).run_id != first_run, "the case did not continue as new"

        carried = await case_state(handle)
        assert carried.pauses == before.pauses and carried.resolve_clock == before.resolve_clock
        assert carried.resolve_clock.paused_at is not None and carried.sla_due_at == carried.acknowledge_clock.due_at
        assert carried.assignments == before.assignments and carried.pending_assignment.rep.id == first
        assert carried.callbacks == before.callbacks and carried.callbacks[0].status == "scheduled"

        # In the new run: the offer expires and goes to the other supervisor; the callback is reminded and due.
        offer = before.pending_assignment
        expired = await eventually(lambda: _has(handle, "assignment_expired"), timeout=30)
        assert abs(entries(expired, "assignment_expired")[0].at - offer.accept_by) < 2 * SECOND
        cb = before.callbacks[0]
        done = await eventually(lambda: _has(handle, "callback_due"), timeout=30)
        assert abs(entries(done, "callback_reminder")[0].at - cb.remind_at) < 2 * SECOND
        assert abs(entries(done, "callback_due")[0].at - cb.due_at) < 2 * SECOND
        assert await eventually(lambda: _is_holder(handle, other))  # routing answers after the expiry

        # The customer replies: the resolve clock runs again with exactly the time it had left.
        entry = await case.customer_replied(CustomerRepliedInput(actor="maya"))
        resumed = await case_state(handle)
        assert resumed.resolve_clock.due_at == entry.at + before.resolve_clock.remaining
        assert resumed.waiting is None and resumed.sla_due_at == min(
            resumed.acknowledge_clock.due_at, resumed.resolve_clock.due_at
        )
        await handle.terminate("test finished")


# ----- what the customer hears when a callback is called off


def confirmation(effects: list) -> Any:
    return next(
        s
        for s in sends(effects)
        if s.message.kind == MessageKind.CALLBACK_SCHEDULED and s.message.to.kind == "customer"
    )


def test_a_held_confirmation_is_dropped_when_its_callback_is_cancelled_or_moved_and_no_cancellation_follows():
    late = datetime(2026, 3, 3, 21, 0, tzinfo=BERLIN).astimezone(UTC)  # the customer's window has closed
    state = supervised(at=late)
    state, effects = scheduled(state, berlin(4, 15), now=late)
    held = confirmation(effects)
    assert held.not_before == datetime(2026, 3, 4, 8, 0, tzinfo=BERLIN).astimezone(UTC)
    assert held.about == "callback-1" and held.announces == state.callbacks[0].due_at
    assert not R.message_obsolete(state, held.message, about=held.about, announces=held.announces)

    moved, moved_effects = R.reschedule_callback(
        state,
        ROUTING,
        RescheduleCallbackInput(actor="sam", callback_id="callback-1", at=berlin(4, 16)),
        late,
        owner=SAM,
    )
    assert R.message_obsolete(moved, held.message, about=held.about, announces=held.announces)  # the old time
    fresh = confirmation(moved_effects)
    assert not R.message_obsolete(moved, fresh.message, about=fresh.about, announces=fresh.announces)

    called_off, effects = R.cancel_callback(
        state,
        ROUTING,
        CancelCallbackInput(actor="sam", callback_id="callback-1", reason="customer emailed the answer"),
        late + MIN,
    )
    assert R.message_obsolete(called_off, held.message, about=held.about, announces=held.announces)
    # The promise never reached the customer, so there is nothing to call off with them.
    assert [s.message.to.kind for s in sends(effects)] == ["owner"]


def test_resolving_tells_the_customer_the_promised_calls_will_not_come():
    state = supervised()
    state, _ = scheduled(state, berlin(3, 15))  # booked at 10:00, inside the window: confirmed at once
    later = datetime(2026, 3, 3, 21, 0, tzinfo=BERLIN).astimezone(UTC)
    state, _ = scheduled(state, berlin(4, 15), now=later)  # booked at night: its confirmation is still held
    state, effects = R.resolve(
        state, ROUTING, ResolveInput(actor="sam", resolution="x", root_cause="other", kb_missing=True), later + MIN
    )
    told = [s.message for s in sends(effects) if s.message.to.kind == "customer"]
    assert len(told) == 1 and told[0].kind == MessageKind.CALLBACK_CANCELLED
    assert "15:00" in told[0].body and "Wed" not in told[0].body  # only the call they were told about
