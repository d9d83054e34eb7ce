"""What a case tells the pattern questions, as pure rules: the opened event the report and the risk model learn
from, where high-risk cases start, the brief's repeat warning and the searchable dimensions (no personal data)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escalation.constants import SA_CATEGORY, SA_CHANNEL, SA_HIGHEST_TIER, SEARCH_ATTRIBUTES
from escalation.domain import rules as R
from escalation.domain.bands import value_band
from escalation.domain.models import (
    EarlierCase,
    EscalateInput,
    FollowUpAnswer,
    FollowUpResponseInput,
    ForgetInput,
    Journey,
    LookBack,
    OfferInput,
    OfferResponseInput,
    ResolveInput,
    Tier,
)
from escalation.domain.policy import Policy, RiskRouting, load_policy_file
from escalation.domain.rules.dimensions import dimensions
from tests.cases import case_input

TESTS = Path(__file__).resolve().parent
STANDARD = load_policy_file(TESTS / "policies" / "standard.toml")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def opened(policy: Policy = STANDARD, look: LookBack | None = None, **overrides):
    state, _ = R.open_case(case_input(**overrides), policy, NOW, "opening-1", look=look)
    return state


def test_the_opened_event_carries_what_the_report_and_the_model_learn_from():
    state = opened(look=LookBack(journey=Journey(count=2), risk=0.42, risk_model="m-1"), sentiment="furious")
    d = state.timeline[0].detail
    assert state.timeline[0].kind == "opened"
    assert d["category"] == "billing" and d["channel"] == "call" and d["customer_id"] == "cust-42"
    assert d["customer_value"] == "4200" and d["value_band"] == "1k_10k"
    assert d["language"] == "en" and d["sentiment"] == "furious"
    assert d["summary"].startswith("Charged twice") and d["desired_outcome"].startswith("Refund")
    assert d["earlier_cases"] == 2 and d["risk"] == 0.42 and d["risk_model"] == "m-1"
    assert (state.risk, state.risk_model, state.journey.count) == (0.42, "m-1", 2)


def test_a_case_that_learned_nothing_opens_as_before():
    state = opened()
    d = state.timeline[0].detail
    assert "risk" not in d and "earlier_cases" not in d
    assert state.risk is None and state.journey is None and state.tier == Tier.AGENT


@pytest.mark.parametrize(
    ("lifetime", "band"),
    [("0", "under_1k"), ("999.99", "under_1k"), ("1000", "1k_10k"), ("10000", "10k_100k"), ("250000", "100k_plus")],
)
def test_value_bands(lifetime, band):
    assert value_band(Decimal(lifetime)) == band


RISKY = STANDARD.model_copy(update={"risk_routing": RiskRouting(at_least=0.6, tier=Tier.TEAM_LEAD)})


def test_a_high_risk_case_starts_with_a_team_lead():
    state = opened(RISKY, LookBack(risk=0.61))
    assert state.tier == Tier.TEAM_LEAD and state.stints[0].reason == "risk"


@pytest.mark.parametrize("risk", [None, 0.0, 0.59])
def test_a_case_below_the_risk_threshold_or_unscored_starts_at_the_first_tier(risk):
    assert opened(RISKY, LookBack(risk=risk)).tier == Tier.AGENT


def test_a_threat_goes_to_the_threat_tier_whatever_its_risk():
    assert opened(RISKY, LookBack(risk=0.99), threat=True).tier == Tier.SUPERVISOR


def test_risk_routing_must_name_a_tier_of_the_ladder():
    data = STANDARD.model_dump() | {"risk_routing": {"at_least": 0.5, "tier": "team_lead"}}
    data["tiers"] = [t for t in data["tiers"] if t["name"] != "team_lead"]
    with pytest.raises(ValueError, match=r"risk_routing\.tier"):
        Policy.model_validate(data)
    with pytest.raises(ValueError, match="at_least"):
        Policy.model_validate(STANDARD.model_dump() | {"risk_routing": {"at_least": 1.5, "tier": "team_lead"}})


def test_the_brief_flags_a_repeat_escalation_and_lists_the_earlier_cases():
    earlier = EarlierCase(
        case_id="C-0991",
        opened_at=NOW - timedelta(days=20),
        category="billing",
        status="closed",
        highest_tier=Tier.MANAGER,
        granted=Decimal("50.00"),
        followup=FollowUpAnswer.NOT_FIXED,
    )
    state = opened(look=LookBack(journey=Journey(count=3, cases=[earlier]), risk=0.8))
    brief = R.build_brief(state, STANDARD, NOW)
    lines = brief.text.splitlines()
    assert lines[1] == "REPEAT ESCALATION: 3 earlier cases of this customer in 90 days"
    assert "Escalation risk at opening: 80%" in brief.text
    assert "C-0991 (2026-11-03" in brief.text
    assert "billing, reached manager, granted 50.00 EUR, follow-up said not_fixed, closed" in brief.text
    assert brief.earlier_cases == 3 and brief.risk == 0.8


def test_a_first_escalation_is_not_flagged():
    text = R.build_brief(opened(look=LookBack(journey=Journey(count=0))), STANDARD, NOW).text
    assert "REPEAT" not in text and "Earlier cases" not in text


def test_forgetting_erases_the_free_text_of_the_opened_event():
    state = opened()
    state, _ = R.forget(state, STANDARD, ForgetInput(actor="sam", reference="GDPR-1"), NOW)
    d = state.timeline[0].detail
    assert d["summary"] == d["desired_outcome"] == "[forgotten]"
    assert d["category"] == "billing" and d["customer_id"] == "cust-42"  # codes and ids stay


def test_the_dimensions_follow_the_case():
    s = opened(look=LookBack(risk=0.3))
    dims = dimensions(s, STANDARD)
    assert dims == {
        "Category": "billing",
        "Channel": "call",
        "HighestTier": "agent",
        "Escalations": 0,
        "GrantedTotal": None,
        "RootCause": None,
        "KbMissing": None,
        "FirstContactResolved": None,
        "FollowUpAnswer": None,
        "EscalationRisk": 0.3,
    }
    assert set(dims) <= set(SEARCH_ATTRIBUTES)
    s, _ = R.escalate(s, STANDARD, EscalateInput(actor="ana", reason="needs_authority"), NOW)
    s, _ = R.propose_offer(s, STANDARD, OfferInput(actor="ana", kind="goodwill", amount="40", description="v"), NOW)
    s, _ = R.record_offer_response(
        s, STANDARD, OfferResponseInput(actor="ana", offer_id=s.offers[0].id, answer="accepted"), NOW
    )
    s, _ = R.resolve(
        s, STANDARD, ResolveInput(actor="ana", resolution="refund", root_cause="billing_error", kb_missing=True), NOW
    )
    dims = dimensions(s, STANDARD)
    assert dims["HighestTier"] == "team_lead" and dims["Escalations"] == 1 and dims["GrantedTotal"] == 40.0
    assert dims["RootCause"] == ["billing_error"] and dims["KbMissing"] is True
    assert dims["FirstContactResolved"] is False
    later = NOW + timedelta(days=1, minutes=1)
    s, _ = R.advance(s, STANDARD, later)  # the first check-in goes out
    checkin = next(c for c in s.checkins if c.sent_at is not None)
    s, _ = R.followup_response(
        s, STANDARD, FollowUpResponseInput(checkin=checkin.number, answer="not_fixed", comment="again"), later
    )
    assert dimensions(s, STANDARD)["FollowUpAnswer"] == "not_fixed"


def test_a_case_resolved_where_it_opened_is_first_contact_resolved():
    s = opened()
    s, _ = R.resolve(
        s, STANDARD, ResolveInput(actor="ana", resolution="fixed", root_cause="other", kb_article="KB-7"), NOW
    )
    dims = dimensions(s, STANDARD)
    assert dims["FirstContactResolved"] is True and dims["KbMissing"] is False


_words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=3, max_size=30)


@given(name=_words, summary=_words, wants=_words)
def test_the_dimensions_never_carry_personal_data(name, summary, wants):
    s = opened(customer={**case_input().customer.model_dump(), "name": name}, summary=summary, desired_outcome=wants)
    values = [str(v) for v in dimensions(s, STANDARD).values() if v is not None]
    for secret in (name, summary, wants, "dana@example.org", "+49 30 1234567"):
        assert all(secret not in v for v in values) or secret in {"billing", "call", "agent", "0"}
    assert {SA_CATEGORY, SA_CHANNEL, SA_HIGHEST_TIER} <= set(dimensions(s, STANDARD))
