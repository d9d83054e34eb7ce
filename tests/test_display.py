"""How a case reads in the Temporal UI (escalation.domain.rules.display): the summary and the current details,
from the pure rules, without a server. Ids, tiers, amounts and times; never the customer's name, contact
details or anybody's free text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation.domain import rules as R
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    CaseState,
    EscalateInput,
    FollowUpResponseInput,
    NoteInput,
    OfferInput,
    Owner,
    ResolveInput,
    ScheduleCallbackInput,
    Tier,
    WaitOnCustomerInput,
)
from escalation.domain.policy import load_policy_file
from escalation.domain.rules import Routed, RuleViolation
from escalation.domain.rules.display import current_details, deadline_summary, static_summary
from tests.cases import case_input

TESTS = Path(__file__).parent
ROUTING = load_policy_file(TESTS / "policies" / "routing.toml")
STANDARD = load_policy_file(TESTS / "policies" / "standard.toml")
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)  # a Tuesday
SAM = Owner(id="sam", name="Sam Sato", tier=Tier.SUPERVISOR, email="sam@example.com", time_zone="Europe/London")


def opened(policy=ROUTING, **overrides: Any) -> CaseState:
    state, _ = R.open_case(case_input(policy.name, case_id="C-7", **overrides), policy, NOW, "run-1")
    return state


def offered_to_sam(**overrides: Any) -> CaseState:
    """A threat case (it starts at supervisor) that routing offered to sam, who has yet to accept."""
    state = opened(threat=True, **overrides)
    answer = Routed(stint=len(state.stints), request=state.route_requests, owner=SAM, starts_at=NOW)
    state, _ = R.owner_found(state, ROUTING, answer, NOW)
    return state


def owned_by_sam(**overrides: Any) -> CaseState:
    state, _ = R.accept(offered_to_sam(**overrides), ROUTING, AcceptInput(actor="sam"), NOW)
    return state


def test_the_summary_names_the_case_its_category_severity_and_channel_only():
    inp = case_input("standard", case_id="C-1001")
    assert static_summary(inp) == "Case C-1001 · billing · high severity · came in by call"


def test_a_case_offered_to_a_rep_shows_the_offer_and_when_it_expires():
    details = current_details(offered_to_sam(), ROUTING, NOW)
    assert details.startswith("**open** at **supervisor**, offered to `sam` until 2026-03-03 09:02 UTC")
    assert "- next: offer to sam expires at 2026-03-03 09:02 UTC" in details


def test_a_case_nobody_owns_says_so_and_what_comes_next():
    state = opened(threat=True)
    answer = Routed(stint=len(state.stints), request=state.route_requests, owner=None, reason="nobody", starts_at=NOW)
    state, _ = R.owner_found(state, ROUTING, answer, NOW)
    details = current_details(state, ROUTING, NOW)  # nobody at supervisor: the case climbed to manager
    assert details.startswith("**open** at **manager**, no owner")
    assert "- next: acknowledge target at manager at 2026-03-03 10:00 UTC" in details


def test_an_owned_case_shows_its_owner_id_and_never_a_name():
    details = current_details(owned_by_sam(), ROUTING, NOW)
    assert details.startswith("**open** at **supervisor**, owner `sam`\n\n- next: ")  # a blank line: a markdown list
    assert "Sam Sato" not in details and "Dana Doe" not in details and "(overdue)" not in details


def test_a_deadline_passed_is_overdue_and_a_missed_target_at_the_top_is_marked():
    state = owned_by_sam()
    due = R.next_deadline(state)
    assert due is not None
    assert "(overdue)" in current_details(state, ROUTING, due + timedelta(minutes=1))
    # At the top of the ladder nothing climbs: a missed target is owed, and marked.
    top = opened(policy=STANDARD)
    top, _ = R.escalate(top, STANDARD, EscalateInput(actor="ana", reason="needs_authority", target_tier="manager"), NOW)
    later = NOW + timedelta(days=30)
    top, _ = R.advance(top, STANDARD, later)
    details = current_details(top, STANDARD, later)
    assert details.startswith("**open** at **manager**, no owner")
    assert "- **SLA BREACHED**: target missed at " in details and "nobody owns the case" in details


def test_offer_callbacks_wait_and_follow_up_show_without_their_text():
    state = owned_by_sam()
    state, _ = R.acknowledge(state, ROUTING, AcknowledgeInput(actor="sam"), NOW)
    cmd = OfferInput(actor="sam", kind="goodwill", amount="20", description="Voucher for the trouble")
    state, _ = R.propose_offer(state, ROUTING, cmd, NOW)
    booked = ScheduleCallbackInput.model_validate({"actor": "sam", "at": "earliest", "notes": "ask about the invoice"})
    state, _ = R.schedule_callback(state, ROUTING, booked, NOW, owner=None)
    details = current_details(state, ROUTING, NOW)
    assert "- offer `offer-1`: goodwill 20 EUR, proposed" in details
    assert "- callbacks pending: 1, next `callback-1` at " in details and "by `sam`" in details
    assert "Voucher" not in details and "invoice" not in details

    wait = WaitOnCustomerInput(actor="sam", reason="bank statement", limit="2d")
    waiting, _ = R.wait_on_customer(state, ROUTING, wait, NOW)
    text = current_details(waiting, ROUTING, NOW)
    assert "- waiting on the customer since 2026-03-03 09:00 UTC until 2026-03-05 09:00 UTC" in text
    assert "- resolve clock paused with " in text and "bank statement" not in text
    # The wait's end as the timer's summary: what it is, not the reason typed for it.
    acked, _ = R.acknowledge(owned_by_sam(), ROUTING, AcknowledgeInput(actor="sam"), NOW)
    waiting, _ = R.wait_on_customer(acked, ROUTING, wait, NOW)
    deadline = R.next_deadline(waiting)
    assert deadline is not None and R.describe_deadline(waiting, deadline) == "waiting on the customer (bank statement)"
    assert deadline_summary(waiting, deadline) == "the wait on the customer ends"

    solved = ResolveInput(actor="sam", resolution="Refunded the charge", root_cause="billing_error", kb_missing=True)
    resolved, _ = R.resolve(owned_by_sam(), ROUTING, solved, NOW)
    text = current_details(resolved, ROUTING, NOW)
    assert text.startswith("**resolved** at **supervisor**, owner `sam`")
    assert "- next follow-up check-in: 1 at 2026-03-04 09:00 UTC" in text and "Refunded" not in text


# ----- no personal data, whatever the case holds

MARK = "Ψ"  # in every generated text: one that shows up anywhere is a leak
words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=30).map(lambda t: MARK + t)


@st.composite
def personal(draw: st.DrawFn) -> dict[str, str]:
    local = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12))
    return {
        "name": draw(words),
        "email": f"{local}.{draw(st.integers(10, 99))}@example.org",
        "phone": "+49 " + draw(st.text(alphabet="0123456789", min_size=6, max_size=12)),
        "summary": draw(words),
        "desired_outcome": draw(words),
    }


steps = st.lists(
    st.sampled_from(["ack", "offer", "note", "wait", "callback", "tick", "resolve", "deadline", "reopen"]),
    max_size=8,
)


def _apply(state: CaseState, step: str, text: str, now: datetime) -> tuple[CaseState, datetime]:
    try:
        if step == "ack":
            state, _ = R.acknowledge(state, ROUTING, AcknowledgeInput(actor="sam", note=text), now)
        elif step == "offer":
            cmd = OfferInput(actor="sam", kind="compensation", amount="15", description=text[:100])
            state, _ = R.propose_offer(state, ROUTING, cmd, now)
        elif step == "note":
            state, _ = R.add_note(state, ROUTING, NoteInput(actor="sam", text=text), now)
        elif step == "wait":
            state, _ = R.wait_on_customer(state, ROUTING, WaitOnCustomerInput(actor="sam", reason=text), now)
        elif step == "callback":
            cmd = ScheduleCallbackInput.model_validate({"actor": "sam", "at": "earliest", "notes": text})
            state, _ = R.schedule_callback(state, ROUTING, cmd, now, owner=None)
        elif step == "resolve":
            cmd = ResolveInput(actor="sam", resolution=text, root_cause="billing_error", kb_missing=True)
            state, _ = R.resolve(state, ROUTING, cmd, now)
        elif step == "reopen":
            cmd = FollowUpResponseInput(answer="not_fixed", comment=text)
            state, _ = R.followup_response(state, ROUTING, cmd, now)
        elif step in ("tick", "deadline"):
            due = R.next_deadline(state) if step == "deadline" else None
            now = max(now, due) if due is not None else now + timedelta(minutes=37)
            state, _ = R.advance(state, ROUTING, now)
    except RuleViolation:
        pass
    return state, now


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(person=personal(), texts=st.lists(words, min_size=8, max_size=8), plan=steps, threat=st.booleans())
def test_no_name_contact_detail_or_free_text_ever_shows(person, texts, plan, threat):
    customer = {"id": "cust-9", "name": person["name"], "email": person["email"], "phone": person["phone"]}
    inp = case_input(
        "routing",
        case_id="C-9",
        customer=customer,
        summary=person["summary"],
        desired_outcome=person["desired_outcome"],
        threat=threat,
    )
    state, _ = R.open_case(inp, ROUTING, NOW, "run-1")
    answer = Routed(stint=len(state.stints), request=state.route_requests, owner=SAM, starts_at=NOW)
    state, _ = R.owner_found(state, ROUTING, answer, NOW)
    now = NOW
    shown = [static_summary(inp), current_details(state, ROUTING, now)]
    for step, text in zip(plan, texts, strict=False):
        state, now = _apply(state, step, text, now)
        shown.append(current_details(state, ROUTING, now))
    for text in shown:
        assert MARK not in text, text
        assert person["email"] not in text and "@" not in text, text
        assert person["phone"] not in text and "+49" not in text, text
        assert SAM.name not in text, text
