"""Table-driven and scenario tests of the pure escalation rules (no Temporal server needed).

Every refusal is checked three ways: it is a `RuleViolation`, its `.field` names the offending input,
and the state handed in is left exactly as it was (the rules work on a copy).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from escalation.constants import ERR_INVALID_ARGUMENT, ERR_INVALID_STATE
from escalation.domain import rules as R
from escalation.domain.models import (
    AcknowledgeInput,
    CaseState,
    CloseInput,
    ContactChannel,
    DeEscalateInput,
    EscalateInput,
    EscalationInput,
    FollowUpAnswer,
    FollowUpResponseInput,
    NoteInput,
    OfferInput,
    OfferResponseInput,
    OfferStatus,
    Outcome,
    Owner,
    ResolveInput,
    RootCause,
    Sentiment,
    Status,
    Tier,
)
from escalation.domain.policy import Policy, load_policy_file
from escalation.domain.rules import Assign, RuleViolation, Send
from escalation.domain.rules.step import MessageKind
from tests.cases import case_input

TESTS = Path(__file__).parent
STANDARD = load_policy_file(TESTS / "policies" / "standard.toml")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPENING = "run-1"  # the workflow passes its first run id
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

A, TL, SV, MG = Tier.AGENT, Tier.TEAM_LEAD, Tier.SUPERVISOR, Tier.MANAGER


# ----- builders


def make_input(**overrides: Any) -> EscalationInput:
    return case_input("standard", **{"case_id": "C-1001", **overrides})


def policy_with(**overrides: Any) -> Policy:
    data = STANDARD.model_dump()
    data.update(overrides)
    return Policy.model_validate(data)


def three_tier_policy() -> Policy:
    """agent -> team_lead -> manager: no supervisor on this ladder."""
    data = STANDARD.model_dump()
    data["tiers"] = [t for t in data["tiers"] if t["name"] != SV]
    data["threat_tier"] = MG
    return Policy.model_validate(data)


def opened(policy: Policy = STANDARD, at: datetime = NOW, **overrides: Any) -> CaseState:
    state, _ = R.open_case(make_input(**overrides), policy, at, OPENING)
    return state


def ack(actor: str = "ana", note: str | None = None) -> AcknowledgeInput:
    return AcknowledgeInput(actor=actor, note=note)


def esc(reason: str, target: Tier | None = None, actor: str = "ana", detail: str | None = None) -> EscalateInput:
    return EscalateInput(actor=actor, reason=reason, target_tier=target, detail=detail)


def down(target: Tier | None = None, reason: str = "handled at a lower tier") -> DeEscalateInput:
    return DeEscalateInput(actor="tara", reason=reason, target_tier=target)


def note(text: str = "customer called again", sentiment: Sentiment | None = None, actor: str = "ana") -> NoteInput:
    return NoteInput(actor=actor, text=text, sentiment=sentiment)


def offer(
    amount: str,
    kind: str = "compensation",
    currency: str | None = None,
    actor: str = "ana",
    description: str = "refund of the duplicate charge",
) -> OfferInput:
    return OfferInput(actor=actor, kind=kind, amount=amount, currency=currency, description=description)


def answer(offer_id: str, accepted: bool = True, note: str | None = None) -> OfferResponseInput:
    return OfferResponseInput(actor="ana", offer_id=offer_id, answer="accepted" if accepted else "declined", note=note)


def resolution(actor: str = "ana", **kw: Any) -> ResolveInput:
    data: dict[str, Any] = {
        "actor": actor,
        "resolution": "refunded the duplicate charge",
        "root_cause": "billing_error",
        "kb_article": "KB-123",
    }
    data.update(kw)
    if data.get("kb_missing"):
        data.pop("kb_article", None)
    return ResolveInput.model_validate(data)


def closing(outcome: str, actor: str = "maya", reason: str = "customer cancelled the contract") -> CloseInput:
    return CloseInput(actor=actor, outcome=outcome, reason=reason)


def followup(ans: str, checkin: int | None = None, comment: str | None = None) -> FollowUpResponseInput:
    return FollowUpResponseInput(answer=ans, checkin=checkin, comment=comment)


def at_tier(tier: Tier, policy: Policy = STANDARD, at: datetime = NOW, **overrides: Any) -> CaseState:
    """A case opened at the first tier and escalated straight to `tier`."""
    state = opened(policy, at, **overrides)
    if tier != state.tier:
        state, _ = R.escalate(state, policy, esc("needs_authority", tier), at)
    assert state.tier == tier
    return state


def resolved_case(policy: Policy = STANDARD, tier: Tier = A, at: datetime = NOW, **overrides: Any) -> CaseState:
    state = at_tier(tier, policy, at, **overrides)
    state, _ = R.owner_assigned(state, policy, len(state.stints), owner(tier), at)
    state, _ = R.resolve(state, policy, resolution(actor=owner(tier).id), at)
    return state


OWNERS = {
    A: Owner(id="ana", name="Ana Alves", tier=A, email="ana@example.com"),
    TL: Owner(id="tara", name="Tara Teague", tier=TL, email="tara@example.com"),
    SV: Owner(id="sam", name="Sam Sato", tier=SV, email="sam@example.com", phone="+44 20 7946 0001"),
    MG: Owner(id="maya", name="Maya Meyer", tier=MG, email="maya@example.com", authority_limit=Decimal("10000")),
}


def owner(tier: Tier, **kw: Any) -> Owner:
    return OWNERS[tier].model_copy(update=kw)


def refused(fn: Callable[..., Any], state: CaseState, *args: Any, field: str, type: str | None = None) -> RuleViolation:
    """Call a rule that must refuse; check the field, the error type and that `state` was not touched."""
    before = state.model_dump()
    with pytest.raises(RuleViolation) as info:
        fn(state, *args)
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"{field}: ")
    if type is not None:
        assert info.value.type == type
    assert state.model_dump() == before, "a refused command changed its input state"
    return info.value


def assigns(effects: list[Any]) -> list[Assign]:
    return [e for e in effects if isinstance(e, Assign)]


def sends(effects: list[Any]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def kinds(state: CaseState) -> list[str]:
    return [e.kind for e in state.timeline]


# ----- open_case


def test_open_case_starts_at_first_tier_with_clocks_and_asks_for_an_owner():
    state, effects = R.open_case(make_input(), STANDARD, NOW, OPENING)
    assert state.status == Status.OPEN
    assert state.tier == A
    assert state.owner is None
    assert state.policy_name == "standard" and state.policy_version == "test-1"
    assert state.sentiment == Sentiment.UPSET
    assert state.opened_at == NOW
    assert state.acknowledge_clock.started_at == NOW
    assert state.acknowledge_clock.due_at == NOW + 5 * MIN
    assert state.resolve_clock.due_at == NOW + HOUR
    assert state.acknowledge_clock.running and state.resolve_clock.running
    assert [(s.tier, s.reason, s.entered_at, s.left_at) for s in state.stints] == [(A, "opened", NOW, None)]
    assert state.escalations == 0 and state.breaches == 0 and state.reopens == 0
    assert kinds(state) == ["opened"]
    first = state.timeline[0]
    assert first.seq == 1 and first.at == NOW and first.actor == "ana" and first.tier == A
    assert first.detail["channel"] == "call" and first.detail["threat"] is False
    assert first.detail["policy_version"] == "test-1"
    assert effects == [Assign(case_id="C-1001", tier=A, stint=1, skills=["billing"], language="en", request=1, at=NOW)]


def test_open_case_passes_the_customer_language_and_skills_to_routing():
    inp = make_input(
        skills=["billing", "mobile"], customer={"id": "c", "name": "Zé", "email": "ze@example.org", "language": "pt-BR"}
    )
    _, effects = R.open_case(inp, STANDARD, NOW, OPENING)
    (assign,) = assigns(effects)
    assert assign.language == "pt-BR" and assign.skills == ["billing", "mobile"]


@pytest.mark.parametrize("threat_tier", [SV, TL, MG])
def test_threat_opens_at_the_policy_threat_tier(threat_tier):
    policy = policy_with(threat_tier=threat_tier)
    state, effects = R.open_case(make_input(threat=True), policy, NOW, OPENING)
    assert state.tier == threat_tier
    assert state.stints[0].reason == "threat"
    assert state.escalations == 0
    tp = policy.tier(threat_tier)
    assert state.acknowledge_clock.due_at == NOW + tp.acknowledge_within
    assert state.resolve_clock.due_at == NOW + tp.resolve_within
    assert assigns(effects)[0].tier == threat_tier
    assert state.timeline[0].detail["threat"] is True


def test_open_case_keeps_the_sentiment_given():
    assert opened(sentiment="furious").sentiment == Sentiment.FURIOUS


# ----- acknowledge


def test_acknowledge_stops_the_acknowledge_clock_only():
    state = opened()
    new, effects = R.acknowledge(state, STANDARD, ack(note="on it"), NOW + 2 * MIN)
    assert effects == []
    assert new.acknowledged_by == "ana"
    assert new.acknowledge_clock.stopped_at == NOW + 2 * MIN
    assert not new.acknowledge_clock.running
    assert new.acknowledge_clock.breached_at is None
    assert new.resolve_clock.running
    assert R.next_deadline(new) == NOW + HOUR
    assert new.timeline[-1].kind == "acknowledged" and new.timeline[-1].detail == {"note": "on it"}
    # the input state is untouched by a successful command too
    assert state.acknowledged_by is None and state.acknowledge_clock.running


def test_acknowledge_twice_is_refused():
    state, _ = R.acknowledge(opened(), STANDARD, ack(), NOW + MIN)
    err = refused(R.acknowledge, state, STANDARD, ack("ben"), NOW + 2 * MIN, field="actor", type=ERR_INVALID_STATE)
    assert "already acknowledged" in err.reason and "ana" in err.reason


def test_acknowledge_is_needed_again_after_an_escalation():
    state, _ = R.acknowledge(opened(), STANDARD, ack(), NOW + MIN)
    state, _ = R.escalate(state, STANDARD, esc("complexity"), NOW + 2 * MIN)
    assert state.acknowledged_by is None and state.acknowledge_clock.running
    state, _ = R.acknowledge(state, STANDARD, ack("tara"), NOW + 3 * MIN)
    assert state.acknowledged_by == "tara"


def test_acknowledge_after_a_late_ack_breach_at_top_tier_is_still_recorded():
    state = at_tier(MG)
    state, _ = R.advance(state, STANDARD, NOW + 30 * MIN)
    assert state.acknowledge_clock.breached_at == NOW + 30 * MIN
    state, _ = R.acknowledge(state, STANDARD, ack("maya"), NOW + 40 * MIN)
    assert state.acknowledged_by == "maya"
    assert state.acknowledge_clock.stopped_at is None  # a breached clock stays breached


def test_acknowledge_on_a_resolved_case_is_refused():
    refused(R.acknowledge, resolved_case(), STANDARD, ack(), NOW + MIN, field="status", type=ERR_INVALID_STATE)


# ----- escalate


@pytest.mark.parametrize(
    ("start", "reason", "target", "overrides", "expected"),
    [
        (A, "complexity", None, {}, TL),
        (TL, "complexity", None, {}, SV),
        (SV, "complexity", None, {}, MG),
        (A, "needs_authority", None, {}, TL),
        # "get me a manager": the team lead stands in
        (A, "customer_request", None, {}, TL),
        (SV, "customer_request", None, {}, MG),
        (A, "customer_request", None, {"customer_request_tier": MG}, MG),
        (A, "customer_request", None, {"customer_request_tier": SV}, SV),
        # never down or sideways: the next tier up instead
        (SV, "customer_request", None, {"customer_request_tier": SV}, MG),
        (SV, "customer_request", None, {"customer_request_tier": TL}, MG),
        # threats jump to the threat tier
        (A, "threat", None, {}, SV),
        (TL, "threat", None, {}, SV),
        (SV, "threat", None, {}, MG),
        (A, "threat", None, {"threat_tier": MG}, MG),
        # explicit targets
        (A, "complexity", TL, {}, TL),
        (A, "customer_request", TL, {}, TL),
        (A, "needs_authority", SV, {}, SV),
        (A, "needs_authority", MG, {}, MG),
        (A, "threat", MG, {}, MG),
        (A, "threat", TL, {}, TL),
        (TL, "threat", MG, {}, MG),
        (A, "complexity", SV, {"skip_reasons": ["complexity"]}, SV),
    ],
)
def test_escalation_targets(start, reason, target, overrides, expected):
    policy = policy_with(**overrides)
    state = at_tier(start, policy)
    before = state.model_dump()
    new, effects = R.escalate(state, policy, esc(reason, target, actor="ana", detail="why"), NOW + MIN)
    assert state.model_dump() == before
    assert new.tier == expected
    assert new.status == Status.OPEN
    assert new.escalations == state.escalations + 1
    entry = new.timeline[-1]
    assert entry.kind == "escalated" and entry.actor == "ana"
    assert entry.tier == start  # logged at the tier it left
    assert entry.detail == {"from_tier": start.value, "to_tier": expected.value, "reason": reason, "detail": "why"}
    assert [a.tier for a in assigns(effects)] == [expected]
    assert assigns(effects)[0].stint == len(new.stints)
    assert new.stints[-2].left_at == NOW + MIN
    assert (new.stints[-1].tier, new.stints[-1].reason, new.stints[-1].entered_at) == (expected, reason, NOW + MIN)


def test_escalation_restarts_clocks_and_clears_owner():
    state = opened()
    state, _ = R.owner_assigned(state, STANDARD, 1, owner(A), NOW)
    state, _ = R.acknowledge(state, STANDARD, ack(), NOW + MIN)
    new, _ = R.escalate(state, STANDARD, esc("complexity"), NOW + 20 * MIN)
    assert new.owner is None and new.acknowledged_by is None
    assert new.acknowledge_clock.started_at == NOW + 20 * MIN
    assert new.acknowledge_clock.due_at == NOW + 30 * MIN  # team lead acknowledges within 10m
    assert new.resolve_clock.due_at == NOW + 20 * MIN + 2 * HOUR
    assert new.stints[0].owners == ["ana"]


@pytest.mark.parametrize(
    ("start", "reason", "target", "overrides", "field", "words"),
    [
        # skipping a tier without a skip reason
        (A, "complexity", SV, {}, "target_tier", "may only go to the next tier"),
        (A, "customer_request", MG, {}, "target_tier", "may only go to the next tier"),
        (TL, "complexity", MG, {}, "target_tier", "may only go to the next tier"),
        (A, "threat", MG, {"skip_reasons": []}, "target_tier", "may only go to the next tier"),
        # not above
        (TL, "needs_authority", A, {}, "target_tier", "not above"),
        (TL, "complexity", TL, {}, "target_tier", "not above"),
        (SV, "threat", TL, {}, "target_tier", "not above"),
        # at the top
        (MG, "complexity", None, {}, "reason", "top tier"),
        (MG, "threat", None, {}, "reason", "top tier"),
        (MG, "customer_request", None, {}, "reason", "top tier"),
        (MG, "needs_authority", MG, {}, "target_tier", "top tier"),
        # system reasons
        (A, "sla_breach", None, {}, "reason", "set by the system"),
        (A, "sla_breach", TL, {}, "reason", "set by the system"),
        (TL, "followup_negative", None, {}, "reason", "set by the system"),
    ],
)
def test_escalation_refusals(start, reason, target, overrides, field, words):
    policy = policy_with(**overrides)
    state = at_tier(start, policy)
    err = refused(R.escalate, state, policy, esc(reason, target), NOW + MIN, field=field)
    assert words in err.reason


def test_escalation_to_a_tier_missing_from_the_ladder_is_refused():
    policy = three_tier_policy()
    err = refused(R.escalate, opened(policy), policy, esc("needs_authority", SV), NOW, field="target_tier")
    assert "not on the ladder" in err.reason and "agent, team_lead, manager" in err.reason


def test_threat_on_a_ladder_whose_threat_tier_is_the_top():
    policy = three_tier_policy()
    state, _ = R.escalate(opened(policy), policy, esc("threat"), NOW)
    assert state.tier == MG


def test_manual_sla_breach_reason_lists_the_allowed_reasons():
    err = refused(R.escalate, opened(), STANDARD, esc("sla_breach"), NOW, field="reason")
    for r in ("complexity", "customer_request", "needs_authority", "threat"):
        assert r in err.reason


@pytest.mark.parametrize("make", [lambda: resolved_case(), lambda: closed_case()])
def test_escalate_requires_an_open_case(make):
    refused(R.escalate, make(), STANDARD, esc("complexity"), NOW + HOUR, field="status", type=ERR_INVALID_STATE)


# ----- de_escalate


@pytest.mark.parametrize(
    ("start", "target", "expected"),
    [(TL, None, A), (SV, None, TL), (MG, None, SV), (MG, A, A), (MG, TL, TL), (SV, A, A)],
)
def test_de_escalate(start, target, expected):
    state = at_tier(start)
    new, effects = R.de_escalate(state, STANDARD, down(target), NOW + MIN)
    assert new.tier == expected
    assert new.escalations == state.escalations  # going down is not an escalation
    assert new.timeline[-1].kind == "de_escalated"
    assert new.timeline[-1].detail["from_tier"] == start.value
    assert new.timeline[-1].detail["to_tier"] == expected.value
    assert new.timeline[-1].actor == "tara"
    assert [a.tier for a in assigns(effects)] == [expected]
    assert new.acknowledge_clock.due_at == NOW + MIN + STANDARD.tier(expected).acknowledge_within


@pytest.mark.parametrize(
    ("start", "target", "words"),
    [
        (A, None, "first tier"),
        (A, A, "first tier"),
        (TL, TL, "not below"),
        (TL, SV, "not below"),
        (SV, MG, "not below"),
    ],
)
def test_de_escalate_refusals(start, target, words):
    err = refused(R.de_escalate, at_tier(start), STANDARD, down(target), NOW + MIN, field="target_tier")
    assert words in err.reason


def test_de_escalate_to_a_tier_missing_from_the_ladder_is_refused():
    policy = three_tier_policy()
    state = at_tier(MG, policy)
    err = refused(R.de_escalate, state, policy, down(SV), NOW, field="target_tier")
    assert "not on the ladder" in err.reason


def test_de_escalate_on_resolved_case_is_refused():
    refused(R.de_escalate, resolved_case(tier=TL), STANDARD, down(), NOW + MIN, field="status")


# ----- add_note


def test_note_changes_sentiment_and_is_kept():
    state = opened()
    new, effects = R.add_note(state, STANDARD, note("threatened to go to the press", Sentiment.FURIOUS), NOW + MIN)
    assert effects == []
    assert new.sentiment == Sentiment.FURIOUS
    assert state.sentiment == Sentiment.UPSET
    assert len(new.notes) == 1 and new.notes[0] == new.timeline[-1]
    assert new.notes[0].detail == {"text": "threatened to go to the press", "sentiment": "furious"}
    calmer, _ = R.add_note(new, STANDARD, note("calmer now", Sentiment.CALM), NOW + 2 * MIN)
    assert calmer.sentiment == Sentiment.CALM
    same, _ = R.add_note(calmer, STANDARD, note("no mood change"), NOW + 3 * MIN)
    assert same.sentiment == Sentiment.CALM
    assert same.notes[-1].detail == {"text": "no mood change"}
    assert [n.detail["text"] for n in same.notes] == ["threatened to go to the press", "calmer now", "no mood change"]


def test_note_is_allowed_while_resolved_but_not_when_closed():
    state, _ = R.add_note(resolved_case(), STANDARD, note("customer thanked us"), NOW + HOUR)
    assert state.status == Status.RESOLVED and state.notes[-1].detail["text"] == "customer thanked us"
    refused(R.add_note, closed_case(), STANDARD, note(), NOW + HOUR, field="status", type=ERR_INVALID_STATE)


# ----- offers


def test_offer_within_the_limit_is_recorded():
    state = opened()
    new, effects = R.propose_offer(state, STANDARD, offer("20"), NOW + MIN)
    assert effects == []
    (o,) = new.offers
    assert (o.id, o.kind, o.amount, o.currency, o.tier, o.status, o.proposed_by, o.proposed_at) == (
        "offer-1",
        "compensation",
        Decimal("20"),
        "EUR",
        A,
        OfferStatus.PROPOSED,
        "ana",
        NOW + MIN,
    )
    entry = new.timeline[-1]
    assert entry.kind == "offer_proposed"
    assert entry.detail["limit"] == "25" and entry.detail["amount"] == "20" and entry.detail["offer_id"] == "offer-1"
    assert state.offers == []


def test_offer_exactly_at_the_limit_is_allowed():
    state, _ = R.propose_offer(opened(), STANDARD, offer("25.00", currency="EUR"), NOW)
    assert state.offers[0].amount == Decimal("25")


@pytest.mark.parametrize(
    ("amount", "lowest", "limit"),
    [
        ("25.01", "team_lead", "100"),
        ("30", "team_lead", "100"),
        ("100", "team_lead", "100"),
        ("101", "supervisor", "500"),
        ("600", "manager", "5000"),
    ],
)
def test_offer_over_the_limit_names_the_lowest_tier_and_lifetime_value(amount, lowest, limit):
    err = refused(R.propose_offer, opened(), STANDARD, offer(amount), NOW, field="amount")
    assert f"the lowest tier that may grant it is {lowest} (limit {limit})" in err.reason
    assert "customer lifetime value is 4200 EUR" in err.reason
    assert "needs_authority" in err.reason
    assert "agent authority limit of 25 EUR" in err.reason


def test_offer_no_tier_may_grant():
    err = refused(R.propose_offer, opened(), STANDARD, offer("5000.01"), NOW, field="amount")
    assert "no tier above agent in policy 'standard' may grant that much" in err.reason
    assert "customer lifetime value is 4200 EUR" in err.reason


def test_offer_limits_count_pending_and_accepted_but_not_declined():
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    # 20 pending + 10 = 30 > 25
    err = refused(R.propose_offer, state, STANDARD, offer("10", kind="goodwill"), NOW, field="amount")
    assert "total offered on this case to 30 EUR" in err.reason
    # 20 + 5 = 25 fits
    ok, _ = R.propose_offer(state, STANDARD, offer("5", kind="goodwill"), NOW)
    assert [o.id for o in ok.offers] == ["offer-1", "offer-2"]
    # declined offers free the room
    declined, _ = R.record_offer_response(state, STANDARD, answer("offer-1", accepted=False), NOW + MIN)
    freed, _ = R.propose_offer(declined, STANDARD, offer("25"), NOW + 2 * MIN)
    assert freed.offers[-1].id == "offer-2" and freed.offers[-1].amount == Decimal("25")
    # accepted ones still count
    accepted, _ = R.record_offer_response(state, STANDARD, answer("offer-1"), NOW + MIN)
    refused(R.propose_offer, accepted, STANDARD, offer("10"), NOW + 2 * MIN, field="amount")


def test_running_total_carries_across_tiers():
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-1"), NOW)
    state, _ = R.escalate(state, STANDARD, esc("needs_authority"), NOW)
    state, _ = R.propose_offer(state, STANDARD, offer("80"), NOW)  # 100 at team lead: fits
    err = refused(R.propose_offer, state, STANDARD, offer("0.01", kind="goodwill"), NOW, field="amount")
    assert "100.01" in err.reason and "supervisor" in err.reason


def test_owner_authority_limit_overrides_the_tier():
    state = opened()
    generous, _ = R.owner_assigned(state, STANDARD, 1, owner(A, authority_limit=Decimal("200")), NOW)
    new, _ = R.propose_offer(generous, STANDARD, offer("150"), NOW)
    assert new.timeline[-1].detail["limit"] == "200"
    refused(R.propose_offer, generous, STANDARD, offer("200.01"), NOW, field="amount")
    strict, _ = R.owner_assigned(state, STANDARD, 1, owner(A, authority_limit=Decimal("10")), NOW)
    err = refused(R.propose_offer, strict, STANDARD, offer("20"), NOW, field="amount")
    assert "limit of 10 EUR" in err.reason
    # a manager with her own limit above the tier's
    top = at_tier(MG)
    top, _ = R.owner_assigned(top, STANDARD, len(top.stints), owner(MG), NOW)
    big, _ = R.propose_offer(top, STANDARD, offer("8000", actor="maya"), NOW)
    assert big.offers[-1].amount == Decimal("8000")


def test_owner_limit_below_tier_limit_suggests_a_tier_above_the_current_one():
    """With a personal limit below the tier's, the hint must point up the ladder, not at the current or a lower
    tier (the case is at team_lead; 'escalate to agent' is impossible advice)."""
    state = at_tier(TL)
    state, _ = R.owner_assigned(state, STANDARD, 2, owner(TL, authority_limit=Decimal("10")), NOW)
    err = refused(R.propose_offer, state, STANDARD, offer("20", actor="tara"), NOW, field="amount")
    assert "lowest tier that may grant it is supervisor" in err.reason, err.reason


def test_unlimited_tier_grants_anything():
    data = STANDARD.model_dump()
    data["tiers"][-1]["authority_limit"] = None
    policy = Policy.model_validate(data)
    state = at_tier(MG, policy)
    state, _ = R.propose_offer(state, policy, offer("1000000"), NOW)
    assert "limit" not in state.timeline[-1].detail
    err = refused(R.propose_offer, at_tier(SV, policy), policy, offer("600"), NOW, field="amount")
    assert "the lowest tier that may grant it is manager (limit none)" in err.reason


@pytest.mark.parametrize("currency", ["USD", "GBP"])
def test_offer_in_another_currency_is_refused(currency):
    err = refused(R.propose_offer, opened(), STANDARD, offer("5", currency=currency), NOW, field="currency")
    assert "EUR" in err.reason and currency in err.reason


def test_zero_compensation_is_refused_but_zero_goodwill_is_fine():
    err = refused(R.propose_offer, opened(), STANDARD, offer("0"), NOW, field="amount")
    assert "goodwill" in err.reason
    state, _ = R.propose_offer(opened(), STANDARD, offer("0", kind="goodwill", description="priority line"), NOW)
    assert state.offers[0].amount == 0


def test_offer_input_rejects_bad_money():
    for bad in ("-1", "1.001", "NaN"):
        with pytest.raises(ValidationError):
            offer(bad)
    with pytest.raises(ValidationError):
        offer("1", currency="eur")


@pytest.mark.parametrize("make", [lambda: resolved_case(), lambda: closed_case()])
def test_offer_requires_an_open_case(make):
    refused(R.propose_offer, make(), STANDARD, offer("5"), NOW + HOUR, field="status", type=ERR_INVALID_STATE)


# ----- offer responses


def test_accepted_offer_is_confirmed_to_the_customer():
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    new, effects = R.record_offer_response(state, STANDARD, answer("offer-1", note="thanks"), NOW + MIN)
    o = new.offers[0]
    assert (o.status, o.answered_at, o.answer_note) == (OfferStatus.ACCEPTED, NOW + MIN, "thanks")
    assert new.timeline[-1].kind == "offer_accepted"
    (send,) = sends(effects)
    msg = send.message
    assert msg.kind == MessageKind.OFFER_CONFIRMATION
    assert msg.to.kind == "customer" and msg.to.id == "cust-42" and msg.to.email == "dana@example.org"
    assert msg.channel == ContactChannel.EMAIL
    assert msg.key == f"C-1001/{OPENING}/{new.timeline[-1].seq}/offer_confirmation/cust-42"
    assert "20 EUR" in msg.body and "offer-1" in msg.body
    assert state.offers[0].status == OfferStatus.PROPOSED


def test_confirmation_without_email_goes_to_the_preferred_channel():
    state = opened(customer={"id": "c9", "name": "Sol", "phone": "+1 555 0100", "preferred_channel": "sms"})
    state, _ = R.propose_offer(state, STANDARD, offer("5"), NOW)
    _, effects = R.record_offer_response(state, STANDARD, answer("offer-1"), NOW)
    assert sends(effects)[0].message.channel == ContactChannel.SMS


def test_declined_offer_sends_nothing():
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    new, effects = R.record_offer_response(state, STANDARD, answer("offer-1", accepted=False), NOW + MIN)
    assert effects == [] and new.offers[0].status == OfferStatus.DECLINED
    assert new.timeline[-1].kind == "offer_declined"


def test_unknown_offer_id_is_refused():
    err = refused(R.record_offer_response, opened(), STANDARD, answer("offer-1"), NOW, field="offer_id")
    assert "none yet" in err.reason
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    err = refused(R.record_offer_response, state, STANDARD, answer("offer-9"), NOW, field="offer_id")
    assert "offer-9" in err.reason and "offer-1" in err.reason


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("second", [True, False])
def test_answering_an_offer_twice_is_refused(first, second):
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-1", first), NOW)
    err = refused(
        R.record_offer_response,
        state,
        STANDARD,
        answer("offer-1", second),
        NOW + MIN,
        field="offer_id",
        type=ERR_INVALID_STATE,
    )
    assert "already" in err.reason


# ----- resolve


def test_resolve_stops_clocks_and_schedules_followups():
    state = opened()
    new, effects = R.resolve(state, STANDARD, resolution(), NOW + 30 * MIN)
    assert effects == []
    assert new.status == Status.RESOLVED
    r = new.resolution
    assert (r.resolution, r.root_cause, r.kb_article, r.kb_missing, r.resolved_by, r.resolved_at, r.tier) == (
        "refunded the duplicate charge",
        RootCause.BILLING_ERROR,
        "KB-123",
        False,
        "ana",
        NOW + 30 * MIN,
        A,
    )
    assert new.resolutions == [r]
    assert new.acknowledge_clock.stopped_at == NOW + 30 * MIN
    assert new.resolve_clock.stopped_at == NOW + 30 * MIN
    assert [(c.number, c.due_at, c.channel, c.sent_at) for c in new.checkins] == [
        (1, NOW + 30 * MIN + DAY, ContactChannel.EMAIL, None),
        (2, NOW + 30 * MIN + 7 * DAY, ContactChannel.EMAIL, None),
    ]
    assert new.followup_ends_at == NOW + 30 * MIN + 9 * DAY
    assert new.timeline[-1].kind == "resolved"
    assert new.timeline[-1].detail == {
        "resolution": "refunded the duplicate charge",
        "root_cause": "billing_error",
        "kb_article": "KB-123",
    }
    assert R.next_deadline(new) == NOW + 30 * MIN + DAY


def test_resolve_with_kb_missing():
    new, _ = R.resolve(opened(), STANDARD, resolution(kb_missing=True), NOW)
    assert new.resolution.kb_missing and new.resolution.kb_article is None
    assert new.timeline[-1].detail["kb_missing"] is True


def test_resolve_input_needs_a_kb_article_or_kb_missing():
    base = {"actor": "ana", "resolution": "fixed", "root_cause": "other"}
    with pytest.raises(ValidationError) as info:
        ResolveInput.model_validate(base)
    assert "kb_article" in str(info.value) and "kb_missing" in str(info.value)
    with pytest.raises(ValidationError):
        ResolveInput.model_validate({**base, "kb_article": "KB-1", "kb_missing": True})
    with pytest.raises(ValidationError):
        ResolveInput.model_validate({**base, "kb_article": "   "})
    assert ResolveInput.model_validate({**base, "kb_missing": True}).kb_missing


def test_resolve_twice_is_refused():
    err = refused(R.resolve, resolved_case(), STANDARD, resolution(), NOW + MIN, field="status", type=ERR_INVALID_STATE)
    assert "already resolved" in err.reason


def test_pending_offer_blocks_resolve():
    state, _ = R.propose_offer(opened(), STANDARD, offer("20"), NOW)
    err = refused(R.resolve, state, STANDARD, resolution(), NOW + MIN, field="offers", type=ERR_INVALID_STATE)
    assert "offer-1" in err.reason and "record_offer_response" in err.reason
    answered, _ = R.record_offer_response(state, STANDARD, answer("offer-1"), NOW + MIN)
    done, _ = R.resolve(answered, STANDARD, resolution(), NOW + 2 * MIN)
    assert done.status == Status.RESOLVED


def test_resolve_on_closed_case_is_refused():
    refused(R.resolve, closed_case(), STANDARD, resolution(), NOW + HOUR, field="status", type=ERR_INVALID_STATE)


# ----- follow-ups


def test_checkins_go_out_at_their_offsets():
    state = resolved_case()
    quiet, effects = R.advance(state, STANDARD, NOW + DAY - timedelta(seconds=1))
    assert effects == [] and quiet.model_dump() == state.model_dump()

    s1, effects = R.advance(state, STANDARD, NOW + DAY)
    assert s1.status == Status.RESOLVED
    assert s1.checkins[0].sent_at == NOW + DAY and s1.checkins[1].sent_at is None
    (send,) = sends(effects)
    msg = send.message
    assert msg.kind == MessageKind.FOLLOWUP_CHECKIN and msg.to.kind == "customer" and msg.to.id == "cust-42"
    assert msg.channel == ContactChannel.EMAIL
    assert "refunded the duplicate charge" in msg.body and "check-in 1" in msg.body
    assert s1.timeline[-1].kind == "followup_sent" and s1.timeline[-1].detail == {"checkin": 1, "channel": "email"}
    assert msg.key == f"C-1001/{OPENING}/{s1.timeline[-1].seq}/followup_checkin/cust-42"
    assert R.next_deadline(s1) == NOW + 7 * DAY

    s2, effects = R.advance(s1, STANDARD, NOW + 7 * DAY)
    assert [c.sent_at for c in s2.checkins] == [NOW + DAY, NOW + 7 * DAY]
    assert s2.checkins[0].expired  # unanswered when the next one went out
    assert len(sends(effects)) == 1
    assert R.next_deadline(s2) == NOW + 9 * DAY


def test_checkins_use_the_customers_preferred_channel():
    state = resolved_case(customer={"id": "c9", "name": "Sol", "phone": "+1 555 0100", "preferred_channel": "sms"})
    assert {c.channel for c in state.checkins} == {ContactChannel.SMS}
    _, effects = R.advance(state, STANDARD, NOW + DAY)
    assert sends(effects)[0].message.channel == ContactChannel.SMS


def test_negative_answer_reopens_at_the_resolving_tier():
    state = resolved_case(tier=TL)
    state, _ = R.advance(state, STANDARD, NOW + DAY)
    before_escalations = state.escalations
    new, effects = R.followup_response(
        state, STANDARD, followup("not_fixed", comment="charged again"), NOW + DAY + HOUR
    )
    assert new.status == Status.OPEN
    assert new.tier == TL
    assert new.reopens == 1
    assert new.escalations == before_escalations
    assert new.resolution is None and len(new.resolutions) == 1
    assert new.checkins[0].answer == FollowUpAnswer.NOT_FIXED and new.checkins[0].comment == "charged again"
    assert new.checkins[1].cancelled and new.followup_ends_at is None
    assert new.stints[-1].reason == "followup_negative" and new.stints[-1].tier == TL
    reopened = new.timeline[-1]
    assert reopened.kind == "reopened" and reopened.actor == "customer"
    assert reopened.detail["reason"] == "followup_negative" and reopened.detail["detail"] == "charged again"
    assert [e.kind for e in new.timeline[-2:]] == ["followup_answered", "reopened"]
    (assign,) = assigns(effects)
    assert assign.tier == TL and assign.prefer == "tara" and assign.stint == len(new.stints)
    assert new.acknowledge_clock.started_at == NOW + DAY + HOUR
    assert new.acknowledge_clock.due_at == NOW + DAY + HOUR + 10 * MIN
    assert R.next_deadline(new) == NOW + DAY + HOUR + 10 * MIN
    # and it can be resolved again, with a fresh set of check-ins numbered on
    again, _ = R.resolve(new, STANDARD, resolution(actor="tara"), NOW + 2 * DAY)
    assert [c.number for c in again.checkins] == [1, 2, 3, 4]
    assert [c.due_at for c in again.checkins[2:]] == [NOW + 3 * DAY, NOW + 9 * DAY]
    assert len(again.resolutions) == 2


def test_positive_answer_closes_the_case():
    state, _ = R.advance(resolved_case(), STANDARD, NOW + DAY)
    new, effects = R.followup_response(state, STANDARD, followup("fixed", checkin=1), NOW + DAY + HOUR)
    assert effects == []
    assert new.status == Status.CLOSED and new.outcome == Outcome.RESOLVED
    assert new.closed_at == NOW + DAY + HOUR
    assert new.close_reason == "customer confirmed the fix works"
    assert new.checkins[1].cancelled and new.checkins[0].answer == FollowUpAnswer.FIXED
    assert new.stints[-1].left_at == NOW  # time at the tier stopped at the resolution
    assert new.timeline[-1].kind == "closed" and new.timeline[-1].actor == "customer"
    assert R.next_deadline(new) is None


def test_positive_answer_without_stop_on_positive_keeps_following_up():
    policy = policy_with(followups={"offsets": ["1d", "7d"], "response_window": "2d", "stop_on_positive": False})
    state, _ = R.advance(resolved_case(policy), policy, NOW + DAY)
    state, _ = R.followup_response(state, policy, followup("fixed"), NOW + DAY + HOUR)
    assert state.status == Status.RESOLVED
    state, effects = R.advance(state, policy, NOW + 7 * DAY)
    assert len(sends(effects)) == 1 and state.checkins[1].sent_at == NOW + 7 * DAY
    assert not state.checkins[0].expired  # it was answered
    state, _ = R.advance(state, policy, NOW + 9 * DAY)
    assert state.status == Status.CLOSED and state.outcome == Outcome.RESOLVED


def test_no_answer_closes_when_the_last_response_window_passes():
    state = resolved_case()
    state, _ = R.advance(state, STANDARD, NOW + DAY)
    state, _ = R.advance(state, STANDARD, NOW + 7 * DAY)
    waiting, effects = R.advance(state, STANDARD, NOW + 9 * DAY - timedelta(seconds=1))
    assert waiting.status == Status.RESOLVED and effects == []
    done, effects = R.advance(state, STANDARD, NOW + 9 * DAY)
    assert effects == []
    assert done.status == Status.CLOSED and done.outcome == Outcome.RESOLVED
    assert done.closed_at == NOW + 9 * DAY
    assert done.close_reason == "follow-up completed without a complaint"
    assert all(c.expired for c in done.checkins)
    assert done.timeline[-1].actor == "system"
    assert R.next_deadline(done) is None


def test_a_late_advance_sends_the_due_checkins_then_closes():
    done, effects = R.advance(resolved_case(), STANDARD, NOW + 30 * DAY)
    assert len(sends(effects)) == 2
    assert done.status == Status.CLOSED


@pytest.mark.parametrize(
    ("make", "cmd", "field"),
    [
        (lambda: opened(), followup("fixed"), "status"),
        (lambda: resolved_case(), followup("fixed"), "checkin"),  # nothing sent yet
        (lambda: R.advance(resolved_case(), STANDARD, NOW + DAY)[0], followup("fixed", checkin=2), "checkin"),
        (
            lambda: R.followup_response(
                R.advance(resolved_case(), STANDARD, NOW + DAY)[0],
                policy_with(followups={"offsets": ["1d", "7d"], "response_window": "2d", "stop_on_positive": False}),
                followup("fixed"),
                NOW + DAY,
            )[0],
            followup("not_fixed"),
            "checkin",
        ),  # answered already
    ],
)
def test_followup_answer_refusals(make, cmd, field):
    refused(R.followup_response, make(), STANDARD, cmd, NOW + 2 * DAY, field=field)


def test_followup_answer_before_any_checkin_names_the_first_one():
    err = refused(R.followup_response, resolved_case(), STANDARD, followup("fixed"), NOW + HOUR, field="checkin")
    assert "no check-in has been sent" in err.reason and "2026-03-03 09:00" in err.reason


def _reopened_and_resolved_again() -> CaseState:
    state = resolved_case()
    state, _ = R.advance(state, STANDARD, NOW + DAY)
    state, _ = R.advance(state, STANDARD, NOW + 7 * DAY)  # check-in 1 expires unanswered
    state, _ = R.followup_response(state, STANDARD, followup("not_fixed", checkin=2), NOW + 7 * DAY)
    state, _ = R.resolve(state, STANDARD, resolution(), NOW + 8 * DAY)
    assert state.status == Status.RESOLVED
    return state


def test_checkin_from_an_earlier_resolution_cannot_close_the_new_one():
    """Check-in 1 belonged to the first resolution and expired; the fix it asked about was declared broken.
    Answering it after the second resolution must not close the case (cancelling the new check-ins)."""
    state = _reopened_and_resolved_again()
    err = refused(
        R.followup_response, state, STANDARD, followup("fixed", checkin=1), NOW + 8 * DAY + HOUR, field="checkin"
    )
    assert "has not been sent" in err.reason or "no check-in" in err.reason


def test_answer_after_a_second_resolution_waits_for_its_own_checkin():
    state = _reopened_and_resolved_again()
    err = refused(R.followup_response, state, STANDARD, followup("fixed"), NOW + 8 * DAY + HOUR, field="checkin")
    assert "no check-in has been sent" in err.reason, err.reason


# ----- close


def closed_case() -> CaseState:
    state = at_tier(MG)
    state, _ = R.close(state, STANDARD, closing("customer_lost"), NOW + 10 * MIN)
    return state


@pytest.mark.parametrize(
    ("tier", "outcome", "close_lost_tiers", "allowed"),
    [
        (MG, "customer_lost", [MG], True),
        (MG, "legal", [MG], True),
        (SV, "customer_lost", [MG], False),
        (A, "customer_lost", [MG], False),
        (SV, "legal", [MG], False),
        (SV, "customer_lost", [SV, MG], True),
        (TL, "legal", [SV, MG], False),
        (MG, "customer_lost", None, True),  # None: the top tier only
        (SV, "customer_lost", None, False),
        (MG, "customer_lost", [], False),
    ],
)
def test_who_may_close_as_lost(tier, outcome, close_lost_tiers, allowed):
    policy = policy_with(close_lost_tiers=close_lost_tiers)
    state = at_tier(tier, policy)
    if allowed:
        new, effects = R.close(state, policy, closing(outcome), NOW + HOUR)
        assert effects == []
        assert new.status == Status.CLOSED and new.outcome == outcome
        assert new.closed_at == NOW + HOUR and new.close_reason == "customer cancelled the contract"
        assert new.stints[-1].left_at == NOW + HOUR
        assert new.acknowledge_clock.stopped_at == NOW + HOUR and new.resolve_clock.stopped_at == NOW + HOUR
        assert new.timeline[-1].kind == "closed"
        assert new.timeline[-1].detail == {"outcome": outcome, "reason": "customer cancelled the contract"}
        assert R.next_deadline(new) is None
    else:
        err = refused(R.close, state, policy, closing(outcome), NOW + HOUR, field="outcome")
        expected = "escalate it first" if policy.close_lost_allowed else "lets no tier close a case"
        assert expected in err.reason


def test_close_as_resolved_needs_a_resolution():
    err = refused(R.close, opened(), STANDARD, closing("resolved"), NOW, field="outcome", type=ERR_INVALID_STATE)
    assert "resolve it first" in err.reason
    refused(R.close, at_tier(MG), STANDARD, closing("resolved"), NOW, field="outcome")
    new, _ = R.close(resolved_case(), STANDARD, closing("resolved", actor="ana", reason="customer happy"), NOW + HOUR)
    assert new.status == Status.CLOSED and new.outcome == Outcome.RESOLVED
    assert all(c.cancelled for c in new.checkins) and new.followup_ends_at is None


def test_resolved_case_at_the_top_may_still_be_closed_as_legal():
    state = resolved_case(tier=MG)
    new, _ = R.close(state, STANDARD, closing("legal"), NOW + HOUR)
    assert new.outcome == Outcome.LEGAL and all(c.cancelled for c in new.checkins)


def _closed_with_offer() -> CaseState:
    state = at_tier(MG)
    state, _ = R.propose_offer(state, STANDARD, offer("20"), NOW)
    state, _ = R.close(state, STANDARD, closing("customer_lost"), NOW + MIN)
    return state


CLOSED_REFUSALS = [
    ("acknowledge", R.acknowledge, ack()),
    ("escalate", R.escalate, esc("complexity")),
    ("escalate_threat", R.escalate, esc("threat")),
    ("de_escalate", R.de_escalate, down()),
    ("add_note", R.add_note, note()),
    ("propose_offer", R.propose_offer, offer("5")),
    ("record_offer_response", R.record_offer_response, answer("offer-1")),
    ("resolve", R.resolve, resolution()),
    ("close_lost", R.close, closing("customer_lost")),
    ("close_resolved", R.close, closing("resolved")),
    ("followup_response", R.followup_response, followup("not_fixed")),
]


@pytest.mark.parametrize(("name", "fn", "cmd"), CLOSED_REFUSALS, ids=[c[0] for c in CLOSED_REFUSALS])
@pytest.mark.parametrize("how", ["lost", "confirmed", "silent"])
def test_every_action_on_a_closed_case_is_refused(name, fn, cmd, how):
    if how == "lost":
        state = _closed_with_offer()
    elif how == "confirmed":
        state, _ = R.advance(resolved_case(), STANDARD, NOW + DAY)
        state, _ = R.followup_response(state, STANDARD, followup("fixed"), NOW + DAY)
    else:
        state, _ = R.advance(resolved_case(), STANDARD, NOW + 30 * DAY)
    assert state.status == Status.CLOSED
    refused(fn, state, STANDARD, cmd, NOW + 40 * DAY, field="status", type=ERR_INVALID_STATE)


def test_advance_and_routing_answers_leave_a_closed_case_alone():
    state = closed_case()
    new, effects = R.advance(state, STANDARD, NOW + 100 * DAY)
    assert effects == [] and new.model_dump() == state.model_dump()
    new, effects = R.owner_assigned(state, STANDARD, len(state.stints), owner(MG), NOW + HOUR)
    assert effects == [] and new.model_dump() == state.model_dump()


# ----- advance: SLA breaches


def test_acknowledge_breach_climbs_one_tier():
    state = opened()
    state, _ = R.owner_assigned(state, STANDARD, 1, owner(A), NOW)
    quiet, effects = R.advance(state, STANDARD, NOW + 5 * MIN - timedelta(seconds=1))
    assert effects == [] and quiet.model_dump() == state.model_dump()
    new, effects = R.advance(state, STANDARD, NOW + 5 * MIN)
    assert new.tier == TL and new.breaches == 1 and new.escalations == 1
    breached, escalated = new.timeline[-2:]
    assert breached.kind == "breached" and breached.tier == A and breached.actor == "system"
    assert breached.detail == {"clock": "acknowledge", "due_at": (NOW + 5 * MIN).isoformat(), "owner": "ana"}
    assert escalated.kind == "escalated" and escalated.actor == "system"
    assert escalated.detail["reason"] == "sla_breach"
    assert (escalated.detail["from_tier"], escalated.detail["to_tier"]) == ("agent", "team_lead")
    assert [a.tier for a in assigns(effects)] == [TL] and sends(effects) == []
    assert new.stints[0].left_at == NOW + 5 * MIN and new.stints[-1].reason == "sla_breach"
    assert new.acknowledge_clock.started_at == NOW + 5 * MIN
    assert new.acknowledge_clock.due_at == NOW + 15 * MIN
    assert R.next_deadline(new) == NOW + 15 * MIN


def test_resolve_breach_after_acknowledge_climbs_too():
    state, _ = R.acknowledge(opened(), STANDARD, ack(), NOW + MIN)
    assert R.advance(state, STANDARD, NOW + 30 * MIN)[1] == []
    new, _ = R.advance(state, STANDARD, NOW + HOUR)
    assert new.tier == TL and new.breaches == 1
    assert new.timeline[-2].detail["clock"] == "resolve"
    assert "resolve target at agent missed" in new.timeline[-1].detail["detail"]


def test_breaches_at_every_tier_climb_to_manager_and_then_page_the_escalation_contact():
    state = opened()
    t = NOW
    tiers = []
    for _ in range(3):
        t = R.next_deadline(state)
        state, effects = R.advance(state, STANDARD, t)
        tiers.append(state.tier)
        assert len(assigns(effects)) == 1 and sends(effects) == []
    assert tiers == [TL, SV, MG]
    assert t == NOW + 5 * MIN + 10 * MIN + 15 * MIN
    assert state.escalations == 3 and state.breaches == 3

    # at the top: the acknowledge breach pages the escalation contact and stays put
    due = R.next_deadline(state)
    assert due == t + 30 * MIN
    top, effects = R.advance(state, STANDARD, due)
    assert top.tier == MG and top.breaches == 4 and top.escalations == 3
    assert assigns(effects) == []
    (send,) = sends(effects)
    msg = send.message
    assert msg.kind == MessageKind.TOP_BREACH
    assert msg.to.kind == "escalation_contact"
    assert msg.to.id == "head-of-service@example.com" and msg.to.email == "head-of-service@example.com"
    assert "acknowledge target missed at manager" in msg.subject
    assert "Charged twice" in msg.body  # the brief goes along
    assert msg.key == f"C-1001/{OPENING}/{top.timeline[-1].seq}/top_breach/head-of-service@example.com"
    assert top.timeline[-1].kind == "breached"
    assert top.acknowledge_clock.breached_at == due and top.resolve_clock.running

    due2 = R.next_deadline(top)
    assert due2 == t + 8 * HOUR
    final, effects = R.advance(top, STANDARD, due2)
    assert final.breaches == 5 and final.tier == MG
    assert "resolve target missed at manager" in sends(effects)[0].message.subject
    assert R.next_deadline(final) is None
    again, effects = R.advance(final, STANDARD, due2 + DAY)
    assert effects == [] and again.model_dump() == final.model_dump()


def test_both_clocks_missed_at_the_top_send_two_pages():
    state = at_tier(MG)
    new, effects = R.advance(state, STANDARD, NOW + DAY)
    assert new.breaches == 2
    assert [s.message.subject.split("] ")[1].split(" ")[0] for s in sends(effects)] == ["acknowledge", "resolve"]
    assert len({s.message.key for s in sends(effects)}) == 2


def test_a_late_advance_climbs_one_tier_and_restarts_clocks_then():
    new, _ = R.advance(opened(), STANDARD, NOW + 10 * HOUR)
    assert new.tier == TL and new.breaches == 1
    assert new.acknowledge_clock.started_at == NOW + 10 * HOUR


def test_custom_escalation_contact():
    policy = policy_with(escalation_contact="oncall@example.net")
    _, effects = R.advance(at_tier(MG, policy), policy, NOW + 30 * MIN)
    assert sends(effects)[0].message.to.id == "oncall@example.net"


def test_advance_while_resolved_does_not_breach():
    state = resolved_case()
    new, _ = R.advance(state, STANDARD, NOW + 2 * HOUR)
    assert new.breaches == 0 and new.tier == A


# ----- next_deadline


def test_next_deadline_values():
    state = opened()
    assert R.next_deadline(state) == NOW + 5 * MIN
    acked, _ = R.acknowledge(state, STANDARD, ack(), NOW + MIN)
    assert R.next_deadline(acked) == NOW + HOUR
    threat = opened(threat=True)
    assert R.next_deadline(threat) == NOW + 15 * MIN
    resolved, _ = R.resolve(acked, STANDARD, resolution(), NOW + 2 * MIN)
    assert R.next_deadline(resolved) == NOW + 2 * MIN + DAY
    assert R.next_deadline(closed_case()) is None


def test_next_deadline_without_followups_is_the_resolution_itself():
    policy = policy_with(followups={"offsets": [], "response_window": "1d"})
    state = resolved_case(policy)
    assert state.checkins == [] and R.next_deadline(state) == NOW
    done, _ = R.advance(state, policy, NOW)
    assert done.status == Status.CLOSED and done.outcome == Outcome.RESOLVED


# ----- owner_assigned


def test_owner_assigned_records_and_notifies_the_owner():
    state = opened()
    new, effects = R.owner_assigned(state, STANDARD, 1, owner(A), NOW + MIN)
    assert new.owner == owner(A) and new.stints[0].owners == ["ana"]
    assert new.timeline[-1].kind == "assigned" and new.timeline[-1].detail == {
        "owner": "ana",
        "owner_name": "Ana Alves",
    }
    (send,) = sends(effects)
    msg = send.message
    assert msg.kind == MessageKind.OWNER_ASSIGNED and msg.to.kind == "owner" and msg.to.id == "ana"
    assert msg.channel == ContactChannel.EMAIL
    assert "Charged twice" in msg.body and "high escalation" in msg.subject
    assert state.owner is None


def test_owner_without_email_gets_an_sms():
    _, effects = R.owner_assigned(opened(), STANDARD, 1, Owner(id="pat", name="Pat", tier=A, phone="+1 555 0199"), NOW)
    assert sends(effects)[0].message.channel == ContactChannel.SMS


def test_nobody_available_notifies_the_tier_queue():
    new, effects = R.owner_assigned(opened(), STANDARD, 1, None, NOW)
    assert new.owner is None and new.timeline[-1].kind == "unassigned"
    msg = sends(effects)[0].message
    assert msg.kind == MessageKind.UNASSIGNED and msg.to.kind == "team" and msg.to.id == "team-agent"


def test_owner_assigned_ignores_a_stale_stint():
    state, _ = R.escalate(opened(), STANDARD, esc("complexity"), NOW + MIN)
    assert len(state.stints) == 2
    for stale in (1, 0, 3):
        new, effects = R.owner_assigned(state, STANDARD, stale, owner(A), NOW + 2 * MIN)
        assert effects == [] and new.model_dump() == state.model_dump()
    new, _ = R.owner_assigned(state, STANDARD, 2, owner(TL), NOW + 2 * MIN)
    assert new.owner.id == "tara"


# ----- build_brief


def _storied_case() -> CaseState:
    state = opened()
    state, _ = R.owner_assigned(state, STANDARD, 1, owner(A), NOW)
    state, _ = R.acknowledge(state, STANDARD, ack(), NOW + MIN)
    state, _ = R.add_note(state, STANDARD, note("second time this happens", Sentiment.ANGRY), NOW + 2 * MIN)
    state, _ = R.propose_offer(state, STANDARD, offer("20"), NOW + 3 * MIN)
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-1"), NOW + 4 * MIN)
    state, _ = R.escalate(state, STANDARD, esc("customer_request", detail="wants a manager"), NOW + 10 * MIN)
    state, _ = R.owner_assigned(state, STANDARD, 2, owner(TL), NOW + 11 * MIN)
    state, _ = R.propose_offer(
        state, STANDARD, offer("50", kind="goodwill", actor="tara", description="three months free"), NOW + 20 * MIN
    )
    return state


def test_brief_tells_the_whole_story():
    state = _storied_case()
    brief = R.build_brief(state, STANDARD, NOW + HOUR)
    assert brief.case_id == "C-1001" and brief.tier == TL and brief.owner == "tara"
    assert brief.problem == "Charged twice for the November invoice"
    assert brief.wants == "Refund of the duplicate charge"
    assert brief.customer == "Dana Doe" and brief.customer_value == Decimal("4200")
    assert brief.customer_time_zone == "Europe/Berlin"
    assert brief.sentiment == Sentiment.ANGRY
    assert brief.threat is False
    assert [(o.amount, o.status, o.tier) for o in brief.offers] == [
        (Decimal("20"), OfferStatus.ACCEPTED, A),
        (Decimal("50"), OfferStatus.PROPOSED, TL),
    ]
    assert brief.granted_total == Decimal("20") and brief.currency == "EUR"
    assert brief.notes == ["2026-03-02 09:02 ana: second time this happens"]
    assert brief.previous_owners == ["ana"]
    assert brief.time_open_seconds == 3600
    assert brief.time_by_tier_seconds == {"agent": 600.0, "team_lead": 3000.0}
    assert any("escalated agent -> team_lead by ana: customer_request (wants a manager)" in t for t in brief.tried)
    assert any("ana offered compensation 20 EUR" in t for t in brief.tried)
    text = brief.text
    for piece in (
        "Problem: Charged twice for the November invoice",
        "Wants: Refund of the duplicate charge",
        "compensation 20 EUR (accepted, agent)",
        "goodwill 50 EUR (proposed, team_lead): three months free",
        "granted so far: 20 EUR",
        "second time this happens",
        "Previous owners: ana",
        "lifetime value 4200 EUR",
        "now at team_lead",
    ):
        assert piece in text, piece


def test_brief_marks_threats_and_leaves_out_the_current_owner():
    state, _ = R.escalate(opened(), STANDARD, esc("threat"), NOW)
    state, _ = R.owner_assigned(state, STANDARD, 2, owner(SV), NOW)
    brief = R.build_brief(state, STANDARD, NOW)
    assert brief.threat and "THREAT" in brief.text
    assert brief.previous_owners == [] and "Previous owners" not in brief.text
    assert R.build_brief(opened(threat=True), STANDARD, NOW).threat


def test_brief_of_a_fresh_case():
    brief = R.build_brief(opened(), STANDARD, NOW)
    assert brief.offers == [] and brief.notes == [] and brief.previous_owners == []
    assert brief.granted_total == 0 and brief.owner is None and "Offers:" not in brief.text


# ----- outcome


def test_outcome_of_an_open_case_is_refused():
    refused(lambda s, p: R.outcome(s, p), opened(), STANDARD, field="status", type=ERR_INVALID_STATE)


def test_outcome_fields():
    state = _storied_case()
    state, _ = R.record_offer_response(state, STANDARD, answer("offer-2", accepted=False), NOW + 30 * MIN)
    state, _ = R.resolve(
        state, STANDARD, resolution(actor="tara", kb_missing=True, root_cause="agent_error"), NOW + HOUR
    )
    state, _ = R.advance(state, STANDARD, NOW + HOUR + DAY)
    state, _ = R.followup_response(state, STANDARD, followup("fixed", comment="all good"), NOW + 2 * DAY)
    out = R.outcome(state, STANDARD)
    assert out.case_id == "C-1001"
    assert out.outcome == Outcome.RESOLVED
    assert out.final_tier == TL and out.highest_tier == TL
    assert out.policy_version == "test-1"
    assert [(o.amount, o.status) for o in out.offers_granted] == [(Decimal("20"), OfferStatus.ACCEPTED)]
    assert out.granted_total == Decimal("20") and out.currency == "EUR"
    assert out.opened_at == NOW and out.first_resolved_at == NOW + HOUR and out.closed_at == NOW + 2 * DAY
    assert out.seconds_to_first_resolution == 3600
    assert out.seconds_open == 2 * 86400
    assert (out.escalations, out.breaches, out.reopens) == (1, 0, 0)
    assert out.root_cause == RootCause.AGENT_ERROR and out.kb_missing
    assert [(f.number, f.answer, f.comment, f.sent_at) for f in out.followups] == [
        (1, FollowUpAnswer.FIXED, "all good", NOW + HOUR + DAY)
    ]


def test_outcome_after_climb_down_and_reopen():
    state = opened()
    state, _ = R.escalate(state, STANDARD, esc("threat"), NOW)
    state, _ = R.de_escalate(state, STANDARD, down(A), NOW + HOUR)
    state, _ = R.resolve(state, STANDARD, resolution(), NOW + 2 * HOUR)
    state, _ = R.advance(state, STANDARD, NOW + 2 * HOUR + DAY)
    state, _ = R.followup_response(state, STANDARD, followup("not_fixed"), NOW + 2 * HOUR + DAY)
    state, _ = R.advance(state, STANDARD, NOW + 2 * HOUR + DAY + 5 * MIN)  # ack breach: up to team lead
    state, _ = R.resolve(
        state, STANDARD, resolution(actor="tara", kb_missing=False, root_cause="product_defect"), NOW + 3 * DAY
    )
    state, _ = R.advance(state, STANDARD, NOW + 20 * DAY)
    out = R.outcome(state, STANDARD)
    assert out.final_tier == TL and out.highest_tier == SV
    assert (out.escalations, out.breaches, out.reopens) == (2, 1, 1)
    assert out.first_resolved_at == NOW + 2 * HOUR
    assert out.root_cause == RootCause.PRODUCT_DEFECT
    assert out.kb_missing is False
    assert [f.number for f in out.followups] == [1, 3, 4]  # check-in 2 was cancelled by the reopen
    assert out.offers_granted == [] and out.granted_total == 0


def test_outcome_of_a_lost_case():
    out = R.outcome(_closed_with_offer(), STANDARD)
    assert out.outcome == Outcome.CUSTOMER_LOST and out.final_tier == MG and out.highest_tier == MG
    assert out.first_resolved_at is None and out.seconds_to_first_resolution is None and out.root_cause is None
    assert out.offers_granted == [] and out.followups == []


# ----- refusal errors


def test_rule_violation_defaults_to_invalid_argument():
    err = refused(R.propose_offer, opened(), STANDARD, offer("5", currency="USD"), NOW, field="currency")
    assert err.type == ERR_INVALID_ARGUMENT


def test_naming_the_tier_the_policy_routes_a_reason_to_is_not_a_skip():
    policy = policy_with(customer_request_tier=MG, skip_reasons=[])
    by_default, _ = R.escalate(opened(policy), policy, esc("customer_request"), NOW)
    named, _ = R.escalate(opened(policy), policy, esc("customer_request", target=MG), NOW)
    assert by_default.tier == named.tier == MG
    refused(R.escalate, opened(policy), policy, esc("complexity", target=MG), NOW, field="target_tier")
