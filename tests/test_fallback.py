"""The pure fallback rules: which route a message takes after its channel failed for good."""

from __future__ import annotations

from datetime import timedelta

import pytest

from escalation.domain import rules as R
from escalation.domain.models import ContactChannel, Tier
from escalation.domain.rules.step import Message, MessageKind, Recipient
from tests.test_rules import NOW, STANDARD, opened, owner, resolved_case, sends

EMAIL, SMS, CALL = ContactChannel.EMAIL, ContactChannel.SMS, ContactChannel.CALL
LATER = NOW + timedelta(days=1, seconds=1)


def customer(**kw) -> dict:
    return {
        "id": "cust-42",
        "name": "Dana Doe",
        "email": "dana@example.org",
        "phone": "+49 30 1234567",
        "time_zone": "Europe/Berlin",
        "lifetime_value": "4200",
        **kw,
    }


def checked_in(**customer_fields):
    """A resolved case whose first check-in went out (to the customer's preferred channel)."""
    state = resolved_case(customer=customer(**customer_fields))
    state, effects = R.advance(state, STANDARD, LATER)
    [send] = sends(effects)
    return state, send.message


def fail(state, message: Message, *, permanent: bool = True, error: str = "HTTP 400 Bad Request: unknown number"):
    before = state.model_dump()
    state2, effects = R.delivery_failed(state, STANDARD, message, error, LATER, permanent=permanent)
    assert state.model_dump() == before  # the rule worked on a copy
    return state2, state2.timeline[-1], [s.message for s in sends(effects)]


def test_a_customer_message_moves_through_the_channels_in_the_customers_order_then_stops():
    state, sms = checked_in(preferred_channel="sms")
    assert sms.channel == SMS and sms.kind == MessageKind.FOLLOWUP_CHECKIN

    state, entry, [email] = fail(state, sms)
    assert entry.kind == "delivery_failed" and entry.actor == "system"
    assert entry.detail == {
        "key": sms.key,
        "message_kind": "followup_checkin",
        "to": "cust-42",
        "channel": "sms",
        "error": "HTTP 400 Bad Request: unknown number",
        "permanent": True,
        "fallback_to": "cust-42",
        "fallback_channel": "email",
    }
    assert email.channel == EMAIL and email.attempted == [SMS] and email.to == sms.to
    assert (email.subject, email.body) == (sms.subject, sms.body)  # the customer reads the same words
    assert email.key == f"{state.case_id}/{state.opening_id}/{entry.seq}/followup_checkin/cust-42" != sms.key

    state, entry, [call] = fail(state, email, error="550 mailbox unavailable")
    assert call.channel == CALL and call.attempted == [SMS, EMAIL]
    assert entry.detail["fallback_channel"] == "call"

    state, entry, more = fail(state, call)
    assert more == [] and "fallback_to" not in entry.detail and "fallback_channel" not in entry.detail
    assert [e.kind for e in state.timeline].count("delivery_failed") == 3
    assert state.status == "resolved"  # the case goes on


def test_a_customer_with_one_way_to_reach_them_gets_no_fallback():
    state, email = checked_in(phone=None)
    state, entry, more = fail(state, email)
    assert more == [] and entry.detail["channel"] == "email"


def test_the_preference_order_decides_and_channels_without_details_are_skipped():
    state, call = checked_in(preferred_channel="call")
    _, _, [email] = fail(state, call)
    assert email.channel == EMAIL  # call, then email, then sms (the order contact_channels gives)
    _, _, [sms] = fail(state, email)
    assert sms.channel == SMS and sms.attempted == [CALL, EMAIL]


def test_an_unreachable_owner_is_reported_to_the_team_queue_which_is_the_last_resort():
    state = opened()
    state, effects = R.owner_assigned(state, STANDARD, 1, owner(Tier.AGENT), NOW)
    [assigned] = [s.message for s in sends(effects)]
    assert assigned.to.kind == "owner" and assigned.channel == EMAIL

    state, entry, [team] = fail(state, assigned, error="550 5.1.1 mailbox disabled")
    assert entry.detail["fallback_to"] == "team-agent" and entry.detail["fallback_channel"] == "email"
    assert team.to.kind == "team" and team.to.tier == Tier.AGENT and team.to.email is None
    assert team.kind == MessageKind.OWNER_ASSIGNED and team.attempted == [EMAIL]
    assert team.subject == f"[Ana Alves unreachable] {assigned.subject}"
    assert team.body.startswith("Ana Alves could not be reached by email (550 5.1.1 mailbox disabled).")
    assert team.body.endswith(assigned.body)  # the brief still reaches someone

    state, entry, more = fail(state, team)
    assert more == [] and "fallback_to" not in entry.detail


def test_a_top_breach_alert_that_cannot_reach_the_escalation_contact_goes_to_the_top_tier_team():
    alert = Message(
        key="C-1001/run-1/9/top_breach/head-of-service@example.com",
        case_id="C-1001",
        kind=MessageKind.TOP_BREACH,
        channel=EMAIL,
        subject="[C-1001] resolve target missed",
        body="brief",
        to=Recipient(
            kind="escalation_contact",
            id="head-of-service@example.com",
            name="escalation contact",
            email="head-of-service@example.com",
        ),
    )
    state = opened()
    _, entry, [team] = fail(state, alert, permanent=False, error="timed out after a day of retries")
    assert team.to.id == f"team-{state.tier.value}" and "permanent" not in entry.detail
    assert team.subject.startswith("[escalation contact unreachable]")


@pytest.mark.parametrize("permanent", [True, False])
def test_given_up_after_retries_falls_back_as_well(permanent):
    state, sms = checked_in(preferred_channel="sms")
    _, entry, [email] = fail(state, sms, permanent=permanent)
    assert email.channel == EMAIL and entry.detail.get("permanent") is (True if permanent else None)
