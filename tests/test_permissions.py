"""Who may act, in the pure rules: the roster names the principal, the policy's permissions decide, authority
belongs to the person. No server: the rules are plain functions (the server tests are in test_identity_cases.py).

Every refusal is a `RuleViolation` of type NotPermitted naming the field, and leaves the state handed in as it
was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.constants import ERR_NOT_PERMITTED
from escalation.domain import rules as R
from escalation.domain.models import (
    AcknowledgeInput,
    CaseState,
    CloseInput,
    EscalateInput,
    FollowUpResponseInput,
    NoteInput,
    OfferInput,
    ReassignInput,
    ResolveInput,
    Tier,
)
from escalation.domain.policy import Permission, Policy, load_policy_file
from escalation.domain.principal import Identity, NotIdentified, Principal, Service
from escalation.domain.roster import Roster, load_roster
from escalation.domain.rules import RuleViolation
from escalation.domain.rules.permission import rank
from tests.cases import case_input

TESTS = Path(__file__).parent
STANDARD = load_policy_file(TESTS / "policies" / "standard.toml")  # limits: agent 25, team_lead 100, sv 500, mg 5000
ROSTER = load_roster(TESTS / "roster.toml")  # ana, ben: agent; tara: team_lead; sam: supervisor; maya: manager (10000)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
A, TL, SV, MG = Tier.AGENT, Tier.TEAM_LEAD, Tier.SUPERVISOR, Tier.MANAGER
REP_OF = {A: "ana", TL: "tara", SV: "sam", MG: "maya"}


def who(rep_id: str, via: str | None = None, roster: Roster = ROSTER) -> Principal:
    return roster.identify(Identity(subject=rep_id, acting_service=via))


def owned(tier: Tier, owner: str | None = None, policy: Policy = STANDARD) -> CaseState:
    """A case at `tier` whose owner is `owner` (the tier's rep of the test roster unless named)."""
    state, _ = R.open_case(case_input("standard", case_id="C-1001"), policy, NOW, "run-1")
    if tier != state.tier:
        state, _ = R.escalate(
            state, policy, EscalateInput(actor="ana", reason="needs_authority", target_tier=tier), NOW
        )
    rep = ROSTER.rep(owner or REP_OF[tier])
    assert rep is not None
    state, _ = R.owner_assigned(state, policy, len(state.stints), ROSTER.owner(rep), NOW)
    assert state.tier == tier and state.owner is not None
    return state


def refused(rule: Any, state: CaseState, cmd: Any, by: Principal, policy: Policy = STANDARD) -> RuleViolation:
    before = state.model_dump()
    with pytest.raises(RuleViolation) as caught:
        rule(state, policy, cmd, NOW, by=by)
    assert state.model_dump() == before
    return caught.value


def note(actor: str) -> NoteInput:
    return NoteInput(actor=actor, text="customer called again")


def resolution(actor: str) -> ResolveInput:
    return ResolveInput(actor=actor, resolution="refunded", root_cause="billing_error", kb_article="KB-1")


def offer(actor: str, amount: str) -> OfferInput:
    return OfferInput(actor=actor, kind="compensation", amount=amount, description="refund of the fee")


# ----- the roster names who acts


def test_an_active_rep_is_the_principal_with_the_rosters_tier_and_limit():
    maya = who("maya")
    assert (maya.id, maya.kind, maya.tier, maya.authority_limit, maya.via) == ("maya", "rep", MG, Decimal(10000), None)
    assert who("ana").authority_limit is None  # the tier's limit applies


@pytest.mark.parametrize(
    ("identity", "reason"),
    [
        (Identity(subject="eve"), "'eve' is not a rep or service of the roster"),
        (Identity(subject="system"), "'system' is the case itself"),
        (Identity(subject="customer"), "a customer credential must name its case"),
        (Identity(subject="ana", case_id="C-1"), "only a customer credential names a case"),
        (Identity(subject="ana", acting_service="roster"), "service 'roster' may not act for reps"),
        (Identity(subject="ana", acting_service="nope"), "'nope' is not a rep or service of the roster"),
    ],
)
def test_who_the_roster_does_not_know_is_nobody(identity, reason):
    with pytest.raises(NotIdentified, match=reason):
        ROSTER.identify(identity)


def test_an_inactive_rep_can_no_longer_act():
    roster = ROSTER.model_copy(update={"reps": [r.model_copy(update={"active": r.id != "ben"}) for r in ROSTER.reps]})
    with pytest.raises(NotIdentified, match="rep 'ben' is inactive"):
        roster.identify(Identity(subject="ben"))


def test_a_service_acting_for_a_rep_is_recorded_beside_them():
    roster = ROSTER.model_copy(
        update={"services": [*ROSTER.services, Service(id="crm", name="CRM", acts_for_reps=True)]}
    )
    tara = who("tara", via="crm", roster=roster)
    assert (tara.id, tara.tier, tara.via) == ("tara", TL, "crm")
    state = owned(TL)
    new, _ = R.add_note(state, STANDARD, note("tara"), NOW, by=tara)
    assert (new.timeline[-1].actor, new.timeline[-1].via) == ("tara", "crm")


def test_the_roster_refuses_reserved_ids_and_unknown_service_commands():
    with pytest.raises(ValueError, match="'customer' is reserved"):
        Roster.model_validate({"reps": [{"id": "customer", "name": "x", "tier": "agent"}]})
    with pytest.raises(ValueError, match="unknown command"):
        Roster.model_validate({"services": [{"id": "crm", "name": "CRM", "may": ["refund_everything"]}]})
    with pytest.raises(ValueError, match="not an email address"):
        Roster.model_validate({"reps": [{"id": "x", "name": "x", "tier": "agent", "email": "nope"}]})


# ----- the policy's permissions


def test_actor_must_be_who_the_credential_names():
    err = refused(R.add_note, owned(A), note("maya"), who("ana"))
    assert err.field == "actor" and err.type == ERR_NOT_PERMITTED
    assert "'maya' is not who sent this: the credential names ana (agent)" in str(err)


def test_owner_and_higher_tiers_may_act_a_lower_tier_may_not():
    state = owned(SV)
    for rep in ("sam", "maya"):
        new, _ = R.add_note(state, STANDARD, note(rep), NOW, by=who(rep))
        assert new.timeline[-1].actor == rep
    err = refused(R.add_note, state, note("tara"), who("tara"))
    assert str(err) == (
        "actor: tara (team_lead) may not add note on case C-1001 at supervisor: only its owner (sam) or a rep at "
        "supervisor or above may"
    )


def test_acting_on_another_reps_case_is_recorded_as_an_override():
    new, _ = R.add_note(owned(A), STANDARD, note("maya"), NOW, by=who("maya"))
    assert new.timeline[-1].detail["override_of"] == "ana"
    mine, _ = R.add_note(owned(A), STANDARD, note("ana"), NOW, by=who("ana"))
    assert "override_of" not in mine.timeline[-1].detail


def test_only_the_owner_or_a_higher_tier_resolves():
    state = owned(A, owner="ana")
    refused(R.resolve, state, resolution("ben"), who("ben"))  # the same tier, not the owner
    R.resolve(state, STANDARD, resolution("ana"), NOW, by=who("ana"))
    R.resolve(state, STANDARD, resolution("tara"), NOW, by=who("tara"))


def test_reassigning_needs_a_team_lead_even_for_the_owner():
    state = owned(A, owner="ana")
    err = refused(R.reassign, state, ReassignInput(actor="ana", reason="going home"), who("ana"))
    assert "it needs a team_lead or above" in str(err)
    R.reassign(state, STANDARD, ReassignInput(actor="tara", reason="rebalancing"), NOW, by=who("tara"))


def test_a_service_may_do_what_the_roster_gives_it_and_nothing_else():
    roster_watch = who("roster")
    state = owned(A, owner="ana")
    R.reassign(
        state, STANDARD, ReassignInput(actor="roster", reason="ana is inactive", from_owner="ana"), NOW, by=roster_watch
    )
    err = refused(R.add_note, state, note("roster"), roster_watch)
    assert str(err) == "actor: service roster may not add note (the roster gives it: reassign)"


def test_permissions_are_policy_data():
    strict = Policy.model_validate(
        STANDARD.model_dump() | {"permissions": {"add_note": Permission(owner=True, others="none")}}
    )
    state = owned(A, owner="ana")
    R.add_note(state, strict, note("ana"), NOW, by=who("ana"))
    err = refused(R.add_note, state, note("maya"), who("maya"), policy=strict)
    assert "only its owner (ana) may" in str(err)
    with pytest.raises(ValueError, match="unknown command"):
        Policy.model_validate(STANDARD.model_dump() | {"permissions": {"refund": {}}})


def test_only_the_customer_of_the_case_answers_a_checkin():
    state = owned(A, owner="ana")
    state, _ = R.resolve(state, STANDARD, resolution("ana"), NOW, by=who("ana"))
    answer = FollowUpResponseInput(answer="fixed")
    err = refused(R.followup_response, state, answer, who("maya"))
    assert "only the customer answers a check-in" in str(err)
    other = Principal(id="customer", kind="customer", case_id="C-2")
    assert "is for case C-2, not C-1001" in str(refused(R.followup_response, state, answer, other))
    one = Principal(id="customer", kind="customer", case_id="C-1001", checkin=1)
    err = refused(R.followup_response, state, FollowUpResponseInput(answer="fixed", checkin=2), one)
    assert err.field == "checkin"
    customer = Principal(id="customer", kind="customer", case_id="C-1001")
    assert "a customer cannot add note" in str(refused(R.add_note, state, note("customer"), customer))


def test_closing_as_lost_is_a_managers_decision_even_on_a_managers_case():
    state = owned(MG, owner="sam")  # the owner, so the table lets him close; not as lost
    lost = CloseInput(actor="sam", outcome="customer_lost", reason="cancelled the contract")
    err = refused(R.close, state, lost, who("sam"))
    assert "only a manager or above" in str(err)
    R.close(state, STANDARD, lost.model_copy(update={"actor": "maya"}), NOW, by=who("maya"))


# ----- authority belongs to the person


def test_an_offer_is_within_the_acting_reps_own_authority_not_the_case_tiers():
    state = owned(MG, owner="maya")  # a manager's case: 5,000 for the tier, 10,000 for maya herself
    R.propose_offer(state, STANDARD, offer("maya", "6000"), NOW, by=who("maya"))
    # An agent adding a note at a manager's case is refused anyway; give them the right and check the money.
    open_to_all = Policy.model_validate(
        STANDARD.model_dump() | {"permissions": {"propose_offer": Permission(others="none", owner=True)}}
    )
    case = owned(MG, owner="ben")  # ben (agent) owns a manager-tier case: the case tier's limit is not his
    err = refused(R.propose_offer, case, offer("ben", "6000"), who("ben"), policy=open_to_all)
    assert "above ben's (agent) authority limit of 25" in str(err)
    assert "customer lifetime value is 4200" in str(err)
    R.propose_offer(case, open_to_all, offer("ben", "25"), NOW, by=who("ben"))


def test_a_refusal_names_the_lowest_tier_that_may_grant_it_or_the_owner_who_can():
    state = owned(A, owner="ana")
    err = refused(R.propose_offer, state, offer("ana", "300"), who("ana"))
    assert "the lowest tier that may grant it is supervisor (limit 500)" in str(err)
    sup_case = owned(SV, owner="sam")
    err = refused(R.propose_offer, sup_case, offer("maya", "12000"), who("maya"))
    assert "no tier above manager" in str(err)
    # ben (agent, 25) on tara's agent-tier case: tara (team_lead, 100) may grant 50 herself
    err = refused(R.propose_offer, owned(A, owner="tara"), offer("ben", "50"), who("ben"))
    assert "above ben's (agent) authority limit of 25 EUR; the case's owner tara (team_lead) may grant it" in str(err)


# ----- properties


TIERS = [A, TL, SV, MG]


@settings(max_examples=200, deadline=None)
@given(
    case_tier=st.sampled_from(TIERS),
    actor_tier=st.sampled_from(TIERS),
    is_owner=st.booleans(),
    command=st.sampled_from(["add_note", "resolve", "reassign", "acknowledge"]),
)
def test_the_default_permissions_hold_for_every_tier(case_tier, actor_tier, is_owner, command):
    owner = REP_OF[case_tier] if not is_owner else REP_OF[actor_tier]
    state = owned(case_tier, owner=owner)
    rep = REP_OF[actor_tier]
    cmd: Any = {
        "add_note": note(rep),
        "resolve": resolution(rep),
        "reassign": ReassignInput(actor=rep, reason="rebalancing"),
        "acknowledge": AcknowledgeInput(actor=rep),
    }[command]
    mine = state.owner is not None and state.owner.id == rep
    expected = {
        "add_note": mine or rank(actor_tier) >= rank(case_tier),
        "acknowledge": mine or rank(actor_tier) >= rank(case_tier),
        "resolve": mine or rank(actor_tier) > rank(case_tier),
        "reassign": rank(actor_tier) >= rank(TL) and (mine or rank(actor_tier) >= rank(case_tier)),
    }[command]
    before = state.model_dump()
    try:
        getattr(R, command)(state, STANDARD, cmd, NOW, by=who(rep))
        allowed = True
    except RuleViolation as err:
        allowed = err.type != ERR_NOT_PERMITTED  # refused for another reason (state), not for who acts
        assert state.model_dump() == before
    assert allowed == expected


@settings(max_examples=200, deadline=None)
@given(
    case_tier=st.sampled_from(TIERS),
    actor_tier=st.sampled_from(TIERS),
    cents=st.integers(min_value=1, max_value=2_000_000),
)
def test_no_offer_ever_exceeds_the_acting_reps_own_limit(case_tier, actor_tier, cents):
    rep = REP_OF[actor_tier]
    state = owned(case_tier, owner=rep)  # the rep owns it, so only the money decides
    amount = Decimal(cents) / 100
    principal = who(rep)
    limit = principal.authority_limit or STANDARD.tier(actor_tier).authority_limit
    assert limit is not None
    try:
        new, _ = R.propose_offer(state, STANDARD, offer(rep, str(amount)), NOW, by=principal)
        assert new.offers[-1].amount <= limit
    except RuleViolation as err:
        assert amount > limit and err.field == "amount"


def test_commands_before_identity_replay_as_they_were():
    """No sender (a history from before credentials): the owner's or the case tier's limit, no permission check."""
    state = owned(MG, owner="maya")
    new, _ = R.propose_offer(state, STANDARD, offer("anyone", "9000"), NOW + timedelta(seconds=1))
    assert new.offers[-1].proposed_by == "anyone"


def test_the_brief_says_who_did_what_through_which_service_and_on_whose_case():
    roster = ROSTER.model_copy(
        update={"services": [*ROSTER.services, Service(id="crm", name="CRM", acts_for_reps=True)]}
    )
    state = owned(A, owner="ana")
    state, _ = R.escalate(
        state, STANDARD, EscalateInput(actor="tara", reason="complexity"), NOW, by=who("tara", via="crm", roster=roster)
    )
    text = R.build_brief(state, STANDARD, NOW).text
    assert "-> team_lead by tara through crm (on ana's case): complexity" in text


def _offered_to(rep_id: str) -> tuple[CaseState, Policy]:
    """A case at agent offered to `rep_id`, who has not accepted it yet (the routing test policy)."""
    policy = load_policy_file(TESTS / "policies" / "routing.toml")
    state, _ = R.open_case(case_input("routing", case_id="C-1001"), policy, NOW, "run-1")
    rep = ROSTER.rep(rep_id)
    assert rep is not None
    routed = R.Routed(stint=len(state.stints), request=state.route_requests, owner=ROSTER.owner(rep))
    state, _ = R.owner_found(state, policy, routed, NOW)
    assert state.owner is None and state.pending_assignment is not None
    return state, policy


def test_the_rep_a_case_is_offered_to_may_take_it_up_but_not_resolve_it_before_accepting():
    state, policy = _offered_to("ben")
    new, _ = R.acknowledge(state, policy, AcknowledgeInput(actor="ben"), NOW, by=who("ben"))
    assert new.owner is not None and new.owner.id == "ben"
    err = refused(R.resolve, state, resolution("ben"), who("ben"), policy=policy)
    assert "only its owner or a rep above agent may" in str(err)
    noted, _ = R.add_note(state, policy, note("ana"), NOW, by=who("ana"))
    assert noted.timeline[-1].detail["override_of"] == "ben"  # another agent, on the case offered to ben


def test_at_the_top_of_the_ladder_a_rep_of_the_top_tier_may_resolve_a_case_nobody_owns():
    state, _ = R.open_case(case_input("standard", case_id="C-1001"), STANDARD, NOW, "run-1")
    state, _ = R.escalate(state, STANDARD, EscalateInput(actor="ana", reason="needs_authority", target_tier=MG), NOW)
    assert state.tier == MG and state.owner is None
    R.resolve(state, STANDARD, resolution("maya"), NOW, by=who("maya"))


def test_the_rep_who_makes_a_call_records_its_outcome_and_others_are_an_override():
    from escalation.domain.models import CallbackOutcomeInput, ScheduleCallbackInput

    state = owned(TL, owner="tara")
    ana = ROSTER.rep("ana")
    assert ana is not None
    state, _ = R.schedule_callback(
        state,
        STANDARD,
        ScheduleCallbackInput(actor="tara", at=NOW + timedelta(minutes=5), owner="ana"),
        NOW,
        owner=ROSTER.owner(ana),
        by=who("tara"),
    )
    due = NOW + timedelta(minutes=6)
    made, _ = R.record_callback_outcome(
        state,
        STANDARD,
        CallbackOutcomeInput(actor="ana", callback_id="callback-1", outcome="reached"),
        due,
        by=who("ana"),
    )
    assert made.callbacks[0].attempts[-1].by == "ana"
    other, _ = R.record_callback_outcome(
        state,
        STANDARD,
        CallbackOutcomeInput(actor="sam", callback_id="callback-1", outcome="reached"),
        due,
        by=who("sam"),
    )
    assert other.timeline[-1].detail["override_of"] == "ana"
    err = refused(
        R.record_callback_outcome,
        state,
        CallbackOutcomeInput(actor="ben", callback_id="callback-1", outcome="reached"),
        who("ben"),
    )
    assert "only the caller (ana) or a rep at team_lead or above may" in str(err)


def test_reserved_ids_are_reserved_whatever_their_case():
    with pytest.raises(ValueError, match="'System' is reserved"):
        Roster.model_validate({"reps": [{"id": "System", "name": "x", "tier": "agent"}]})


def test_a_service_closes_a_case_as_lost_only_when_the_roster_says_so():
    state = owned(MG, owner="maya")
    lost = CloseInput(actor="crm", outcome="legal", reason="lawyer's letter")
    anything = Principal(id="crm", kind="service", may=["*"])
    assert "does not give it close_lost" in str(refused(R.close, state, lost, anything))
    R.close(state, STANDARD, lost, NOW, by=Principal(id="crm", kind="service", may=["close", "close_lost"]))


def test_a_services_own_key_names_that_service_only():
    roster = ROSTER.model_copy(
        update={
            "services": [
                *ROSTER.services,
                Service(id="crm", name="CRM", acts_for_reps=True, may=["add_note"], kids=["crm-1"]),
            ]
        }
    )
    assert roster.identify(Identity(subject="tara", acting_service="crm", key_id="crm-1")).via == "crm"
    assert roster.identify(Identity(subject="crm", key_id="crm-1")).kind == "service"
    for forged in (
        Identity(subject="maya", key_id="crm-1"),  # a rep alone
        Identity(subject="roster", key_id="crm-1"),  # another service
        Identity(subject="customer", case_id="C-1", key_id="crm-1"),  # a customer
    ):
        with pytest.raises(NotIdentified, match="key 'crm-1' is service crm's: it may name only crm"):
            roster.identify(forged)
    assert roster.identify(Identity(subject="maya", key_id="idp-7")).id == "maya"  # keys no service owns: as before
