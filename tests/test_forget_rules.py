"""Right to erasure, the rule (no server): `forget` leaves no name, contact detail or typed text in the case's
state or brief, keeps ids, codes, tiers and amounts, and is permitted by policy data (a supervisor or above)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest

from escalation.domain import rules as R
from escalation.domain.models import CustomerRepliedInput, ForgetInput, Tier, WaitOnCustomerInput
from escalation.domain.principal import Principal
from escalation.domain.rules.erasure import TOMBSTONE
from escalation.domain.rules.retention import require_room
from tests.test_rules import NOW, STANDARD, ack, answer, esc, make_input, note, offer, refused, resolution
from tests.test_rules import opened as opened_case

PLANTED = [
    "Dana Doe",
    "dana@example.org",
    "+49 30 1234567",
    "Charged twice for the November invoice",
    "Refund of the duplicate charge",
    "calling from the car",
    "lives above the shop",
    "needs the regional manager",
    "bank statement",
    "sent the statement",
    "credit note issued",
    "goodwill voucher for the trouble",
    "too little",
]
MIN = timedelta(minutes=1)


def rep(rep_id: str, tier: Tier) -> Principal:
    return Principal(id=rep_id, kind="rep", tier=tier)


def busy_case():
    """A case with a planted text in every place a person writes one."""
    state = opened_case()
    at = NOW
    steps = [
        (R.acknowledge, ack(note="calling from the car")),
        (R.add_note, note("lives above the shop")),
        (R.propose_offer, offer("20", description="goodwill voucher for the trouble")),
        (R.record_offer_response, answer("offer-1", accepted=False, note="too little")),
        (R.escalate, esc("needs_authority", detail="needs the regional manager")),
    ]
    for rule, cmd in steps:
        at += MIN
        state, _ = rule(state, STANDARD, cmd, at)
    at += MIN
    state, _ = R.wait_on_customer(state, STANDARD, WaitOnCustomerInput(actor="tara", reason="bank statement"), at)
    at += MIN
    state, _ = R.customer_replied(state, STANDARD, CustomerRepliedInput(actor="tara", note="sent the statement"), at)
    at += MIN
    state, _ = R.resolve(state, STANDARD, resolution("tara", resolution="credit note issued"), at)
    return state, at


def test_forget_leaves_no_personal_data_in_the_state_or_the_brief():
    state, at = busy_case()
    before = state.model_dump_json()
    assert all(text in before for text in PLANTED if not text.startswith("+49"))
    forgotten, effects = R.forget(state, STANDARD, ForgetInput(actor="sam", reference="GDPR-77"), at + MIN)
    shown = forgotten.model_dump_json() + R.build_brief(forgotten, STANDARD, at + MIN).model_dump_json()
    assert not [text for text in PLANTED if text in shown]
    assert effects == []
    c = forgotten.input.customer
    assert (c.id, c.name, c.email, c.phone) == ("cust-42", TOMBSTONE, None, None)
    # What the case runs on stays: tiers, codes, amounts, owners, the resolve and its root cause, the offer.
    assert forgotten.status == state.status and forgotten.tier == state.tier and forgotten.owner == state.owner
    assert forgotten.offers[0].amount == state.offers[0].amount and forgotten.offers[0].description == TOMBSTONE
    escalated = next(e for e in forgotten.timeline if e.kind == "escalated")
    assert escalated.detail["reason"] == "needs_authority" and escalated.detail["detail"] == TOMBSTONE
    assert forgotten.resolution is not None and forgotten.resolution.root_cause == state.resolution.root_cause
    last = forgotten.timeline[-1]
    assert (last.kind, last.actor, last.detail) == ("forgotten", "sam", {"reference": "GDPR-77"})
    require_room(state, forgotten)


def test_forget_is_permitted_from_supervisor_up_and_refused_below():
    state = opened_case()  # at agent
    cmd = ForgetInput(actor="ana")
    err = refused(
        partial(R.forget, by=rep("ana", Tier.AGENT)), state, STANDARD, cmd, NOW, field="actor", type="NotPermitted"
    )
    assert "supervisor" in str(err)
    refused(
        partial(R.forget, by=rep("tara", Tier.TEAM_LEAD)),
        state,
        STANDARD,
        ForgetInput(actor="tara"),
        NOW,
        field="actor",
    )
    done, _ = R.forget(state, STANDARD, ForgetInput(actor="sam"), NOW, by=rep("sam", Tier.SUPERVISOR))
    assert done.input.customer.name == TOMBSTONE
    service = Principal(id="privacy", kind="service", may=["forget"])
    done, _ = R.forget(state, STANDARD, ForgetInput(actor="privacy"), NOW, by=service)
    assert done.timeline[-1].actor == "privacy"
    crm = Principal(id="crm", kind="service", may=["open"])
    refused(partial(R.forget, by=crm), state, STANDARD, ForgetInput(actor="crm"), NOW, field="actor")


def test_forget_twice_is_taken_and_changes_nothing_more():
    state = opened_case(**{"summary": "Charged twice for the November invoice"})
    once, _ = R.forget(state, STANDARD, ForgetInput(actor="sam"), NOW)
    twice, _ = R.forget(once, STANDARD, ForgetInput(actor="sam"), NOW + MIN)
    assert twice.input == once.input and twice.timeline[-1].kind == "forgotten"


def test_the_forget_input_takes_a_reference_id_never_free_text():
    with pytest.raises(ValueError):
        ForgetInput(actor="sam", reference="the customer asked on the phone")
    assert make_input().customer.name == "Dana Doe"


def test_a_forgotten_case_hands_over_to_its_next_run():
    """Its next run's input (the forgotten one, with the carried state) reads back: no contact details left."""
    from escalation.client.converter import data_converter
    from escalation.domain.models import EscalationInput

    state, at = busy_case()
    forgotten, _ = R.forget(state, STANDARD, ForgetInput(actor="sam"), at)
    carried = forgotten.input.model_copy(update={"carried": {"state": forgotten.model_dump(mode="json")}})
    [payload] = data_converter.payload_converter.to_payloads([carried])
    [back] = data_converter.payload_converter.from_payloads([payload], [EscalationInput])
    assert back.customer.email is None and back.customer.name == TOMBSTONE
