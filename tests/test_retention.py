"""The state a case carries has a fixed upper size, whatever callers send (escalation.domain.rules.retention).

Pure rules, as the workflow runs them: a command is dry-run, refused if the rules or `require_room` say so,
and adopted otherwise. Every argument is as large as the contract allows, in the widest characters there
are (4 bytes each in UTF-8)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation.client.converter import MAX_INPUT_BYTES
from escalation.domain import rules as R
from escalation.domain.carry import CarriedCase
from escalation.domain.models import (
    TEXT_CHARS,
    CaseState,
    CustomerRepliedInput,
    DeEscalateInput,
    EscalateInput,
    NoteInput,
    OfferInput,
    OfferResponseInput,
    WaitOnCustomerInput,
)
from escalation.domain.rules import RuleViolation
from escalation.domain.rules.retention import STATE_BYTES, TIMELINE_KEPT, require_room, size
from tests.cases import case_input
from tests.test_rules_properties import NOW, OPENING, STANDARD

WIDE = "\U0001f621" * TEXT_CHARS  # a maximal text, 16 KB in UTF-8
LINE = "\U0001f621" * 500
BOUND = STATE_BYTES + MAX_INPUT_BYTES
PAYLOAD_LIMIT = 2 * 1024 * 1024  # what Temporal refuses
# What continue-as-new carries besides the state: the answers to the last 1,000 updates (workflows.once).
CARRIED_BOUND = BOUND + 160 * 1024


def commands(n: int) -> list[tuple[Any, Any]]:
    actor = "a" * 200
    return [
        (R.add_note, NoteInput(actor=actor, text=WIDE)),
        (R.wait_on_customer, WaitOnCustomerInput(actor=actor, reason=WIDE)),
        (R.customer_replied, CustomerRepliedInput(actor=actor, note=WIDE)),
        (R.escalate, EscalateInput(actor=actor, reason="customer_request", detail=WIDE)),
        (R.de_escalate, DeEscalateInput(actor=actor, reason=WIDE)),
        (R.propose_offer, OfferInput(actor=actor, kind="goodwill", amount=Decimal("1"), description=LINE)),
        (R.record_offer_response, OfferResponseInput(actor=actor, offer_id=f"offer-{n}", answer="declined", note=WIDE)),
    ]


def run(state: CaseState, rule: Any, cmd: Any, minutes: int) -> CaseState:
    """One command the way the workflow takes it: refused (state unchanged) or adopted."""
    now = NOW + timedelta(minutes=minutes)
    try:
        after, _ = rule(state, STANDARD, cmd, now)
        require_room(state, after)
    except RuleViolation:
        return state
    return after


def carried(state: CaseState) -> int:
    return size(
        CarriedCase(
            state=state,
            policy=STANDARD.model_dump(mode="json"),
            published=0,
            answered={str(i): {"entry": [i, "note", NOW.isoformat(), "a" * 200, "agent"]} for i in range(1000)},
        )
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), min_size=50, max_size=200))
def test_random_maximal_commands_keep_the_state_under_its_bound(picks):
    state, _ = R.open_case(case_input("standard"), STANDARD, NOW, OPENING)
    for minutes, (which, n) in enumerate(picks, start=1):
        rule, cmd = commands(n)[which]
        state = run(state, rule, cmd, minutes)
        assert size(state) <= BOUND
        assert len(state.timeline) <= TIMELINE_KEPT
    assert carried(state) <= CARRIED_BOUND < PAYLOAD_LIMIT


def test_a_thousand_maximal_notes_keep_the_state_under_its_bound_and_number_on():
    state, _ = R.open_case(case_input("standard"), STANDARD, NOW, OPENING)
    for i in range(1000):
        state = run(state, R.add_note, NoteInput(actor="ana", text=WIDE), i)
    assert size(state) <= BOUND
    assert state.timeline[-1].seq == state.timeline_earlier + len(state.timeline)
    assert [e.seq for e in state.timeline] == list(range(state.timeline_earlier + 1, state.timeline[-1].seq + 1))
    brief = R.build_brief(state, STANDARD, NOW + timedelta(days=3))
    assert f"{state.timeline_earlier} earlier entries are in the case's events" in brief.text


def test_a_full_case_refuses_more_text_naming_why_and_changes_nothing():
    state, _ = R.open_case(case_input("standard"), STANDARD, NOW, OPENING)
    for i in range(400):  # each wait keeps its reason in the state: the case fills up
        waited = run(state, R.wait_on_customer, WaitOnCustomerInput(actor="ana", reason=WIDE), 2 * i)
        if waited is state:
            break
        state = run(waited, R.customer_replied, CustomerRepliedInput(actor="ana"), 2 * i + 1)
    after, _ = R.wait_on_customer(
        state, STANDARD, WaitOnCustomerInput(actor="ana", reason=WIDE), NOW + timedelta(days=1)
    )
    try:
        require_room(state, after)
    except RuleViolation as err:
        assert err.field == "case" and "close it and open a new case" in str(err)
    else:
        raise AssertionError("a full case took more text")
    assert size(state) <= BOUND
    assert carried(state) <= CARRIED_BOUND < PAYLOAD_LIMIT
