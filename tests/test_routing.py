"""Routing: the choice (pure, with hypothesis), offers, acceptance timeouts, no_capacity and reassignment
as rules; then on real servers: least-loaded choice from real visibility counts, skills and language,
accept and reassign on the dev server, timeouts handing the case on with time skipping, and cases of a
rep the roster marks inactive being reassigned."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from temporalio.client import WorkflowUpdateFailedError

from escalation.client import case_state, open_case
from escalation.constants import ERR_INVALID_STATE, SA_OWNER
from escalation.domain import rules as R
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    AssignmentStatus,
    CaseState,
    EscalateInput,
    ReassignInput,
    ResolveInput,
    Tier,
    TimelineEntry,
)
from escalation.domain.policy import Policy, load_policy_file
from escalation.domain.roster import Roster, RosterError, load_roster
from escalation.domain.rules import Routed
from escalation.domain.rules.routing import choose
from escalation.domain.rules.step import Assign, MessageKind
from escalation.search import holding_query
from escalation.service.roster_watch import reassign_inactive
from tests.cases import case_input, eventually
from tests.test_rules import OPENING, STANDARD, assigns, kinds, refused, sends

TESTS = Path(__file__).parent
ROUTING = load_policy_file(TESTS / "policies" / "routing.toml")
NY = ZoneInfo("America/New_York")
TUESDAY_10_NY = datetime(2026, 3, 3, 10, 0, tzinfo=NY).astimezone(UTC)
NOW = TUESDAY_10_NY
MIN = timedelta(minutes=1)
A, TL, SV, MG = Tier.AGENT, Tier.TEAM_LEAD, Tier.SUPERVISOR, Tier.MANAGER


def roster(*reps: dict[str, Any], calendars: dict[str, Any] | None = None) -> Roster:
    return Roster.model_validate({"calendars": calendars or {}, "reps": list(reps)})


def rep(rep_id: str, tier: str = "agent", **kw: Any) -> dict[str, Any]:
    return {
        "id": rep_id,
        "name": rep_id.title(),
        "tier": tier,
        "skills": ["billing"],
        "languages": ["en"],
        "email": f"{rep_id}@example.com",
        **kw,
    }


def ask(tier: Tier = A, skills: tuple[str, ...] = ("billing",), language: str = "en", **kw: Any) -> Assign:
    return Assign(case_id="C-1", tier=tier, stint=1, skills=list(skills), language=language, **kw)


def chosen(r: Roster, loads: dict[str, int] | None = None, now: datetime = NOW, **kw: Any) -> str | None:
    owner = choose(r, ask(**kw), loads, now).owner
    return owner.id if owner else None


OFFICE_NY = {
    "time_zone": "America/New_York",
    "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
}
NIGHTS = {"time_zone": "America/New_York", "hours": {d: ["22:00-06:00+1"] for d in ("mon", "tue", "wed", "thu", "fri")}}


# ----- the choice


@pytest.mark.parametrize(
    ("skills", "language", "expected", "reason"),
    [
        (("billing",), "en", "ana", None),
        (("billing", "mobile"), "en", "ben", None),
        (("billing",), "de-AT", "ben", None),  # the language's main subtag
        (("billing",), "fr", None, "no active agent with billing speaks 'fr'"),
        (("legal",), "en", None, "no active agent with legal speaks 'en'"),
    ],
)
def test_skills_and_language_decide_who_qualifies(skills, language, expected, reason):
    r = roster(
        rep("ana"),
        rep("ben", skills=["billing", "mobile"], languages=["en", "de"]),
        rep("cy", skills=["billing", "mobile"], languages=["fr"], active=False),
    )
    routed = choose(r, ask(skills=skills, language=language), {"ana": 0, "ben": 5}, NOW)
    assert (routed.owner.id if routed.owner else None) == expected
    assert routed.reason == reason


def test_least_loaded_wins_and_equal_loads_spread_stably():
    r = roster(rep("ana"), rep("ben"), rep("dee"))
    assert chosen(r, {"ana": 3, "ben": 1, "dee": 2}) == "ben"
    assert chosen(r, {"ana": 0, "ben": 1, "dee": 2}) == "ana"
    spread = {choose(r, ask().model_copy(update={"case_id": f"C-{i}"}), {}, NOW).owner.id for i in range(40)}
    assert spread == {"ana", "ben", "dee"}
    assert chosen(r, {}) == chosen(r, {})


def test_reps_at_their_cap_are_skipped_and_a_full_tier_says_so():
    r = roster(rep("ana", max_cases=2), rep("ben", max_cases=5))
    assert chosen(r, {"ana": 1, "ben": 4}) == "ana"
    assert chosen(r, {"ana": 2, "ben": 4}) == "ben"
    routed = choose(r, ask(), {"ana": 2, "ben": 5}, NOW)
    assert (
        routed.owner is None
        and routed.reason == "every qualified agent is at their limit of open cases (ana 2/2, ben 5/5)"
    )
    # Unknown loads (a server that cannot count): nobody is treated as full.
    assert choose(r, ask(), None, NOW).owner is not None and choose(r, ask(), None, NOW).load is None


def test_someone_working_now_beats_a_less_loaded_rep_off_shift():
    r = roster(
        rep("ana", calendar="office"), rep("nia", calendar="nights"), calendars={"office": OFFICE_NY, "nights": NIGHTS}
    )
    routed = choose(r, ask(), {"ana": 7, "nia": 0}, NOW)  # Tuesday 10:00 in New York
    assert routed.owner.id == "ana" and routed.starts_at == NOW and routed.load == 7
    assert routed.owner.time_zone == "America/New_York"


def test_when_nobody_works_the_soonest_to_start_is_chosen():
    r = roster(
        rep("ana", calendar="office"), rep("nia", calendar="nights"), calendars={"office": OFFICE_NY, "nights": NIGHTS}
    )
    saturday_noon = datetime(2026, 3, 7, 12, 0, tzinfo=NY).astimezone(UTC)
    routed = choose(r, ask(), {}, saturday_noon)
    assert routed.owner.id == "ana"
    assert routed.starts_at == datetime(2026, 3, 9, 9, 0, tzinfo=NY).astimezone(UTC)  # Monday 09:00 (DST has begun)
    friday_20 = datetime(2026, 3, 6, 20, 0, tzinfo=NY).astimezone(UTC)
    assert choose(r, ask(), {}, friday_20).owner.id == "nia"  # the night shift starts at 22:00


def test_the_preferred_rep_wins_when_free_and_working():
    r = roster(rep("ana"), rep("ben"), rep("dee", calendar="office"), calendars={"office": OFFICE_NY})
    assert chosen(r, {"ana": 9, "ben": 0}, prefer="ana") == "ana"
    assert chosen(r, {"ana": 0, "ben": 0, "dee": 0}, now=NOW - timedelta(hours=12), prefer="dee") != "dee"  # off shift
    r = roster(rep("ana", max_cases=1), rep("ben"))
    assert chosen(r, {"ana": 1}, prefer="ana") == "ben"  # full


def test_reps_already_asked_are_not_asked_again():
    r = roster(rep("ana"), rep("ben"))
    assert chosen(r, {}, exclude=["ana"]) == "ben"
    routed = choose(r, ask(exclude=["ana", "ben"]), {}, NOW)
    assert routed.owner is None and routed.reason == "every qualified agent (ana, ben) was asked already"


IDS = ["a1", "a2", "a3", "a4", "a5", "a6"]
# Mostly qualified agents, so that most examples have rivals to choose between.
reps_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(IDS),
            "tier": st.sampled_from(["agent", "agent", "agent", "team_lead"]),
            "skills": st.sampled_from([["billing"], ["billing", "mobile"]]),
            "languages": st.sampled_from([["en"], ["en", "de"]]),
            "max_cases": st.none() | st.integers(1, 3),
            "active": st.sampled_from([True, True, True, False]),
            "calendar": st.sampled_from([None, None, "office", "nights"]),
        }
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda d: d["id"],
)


@hsettings(max_examples=300, deadline=None)
@given(
    reps=reps_strategy,
    loads=st.none() | st.dictionaries(st.sampled_from(IDS), st.integers(0, 4)),
    skills=st.sampled_from([[], ["billing"], ["mobile"]]),
    language=st.sampled_from(["en", "en", "de"]),
    exclude=st.lists(st.sampled_from(["a1", "a2", "a3"]), unique=True),
    prefer=st.none() | st.sampled_from(["a1", "a4"]),
    hours=st.integers(0, 24 * 7),
)
def test_choice_properties(reps, loads, skills, language, exclude, prefer, hours):
    r = Roster.model_validate(
        {"calendars": {"office": OFFICE_NY, "nights": NIGHTS}, "reps": [{**d, "name": d["id"]} for d in reps]}
    )
    now = NOW + timedelta(hours=hours)
    req = ask(skills=tuple(skills), language=language, exclude=exclude, prefer=prefer)
    routed = choose(r, req, loads, now)
    assert choose(r, req, loads, now) == routed  # the same answer every time (stable per case)

    def load(rep_id: str) -> int:
        return (loads or {}).get(rep_id, 0)

    free = [
        x
        for x in r.qualified(A, skills, language)
        if x.id not in exclude and (loads is None or x.max_cases is None or load(x.id) < x.max_cases)
    ]
    if not free:
        assert routed.owner is None and routed.reason
        return
    got = r.rep(routed.owner.id)
    assert got in free  # qualified, not asked already, room under the cap
    start = {x.id: r.calendar_of(x).next_open(now) for x in free}
    assert start[got.id] == min(start.values())  # working now, else the soonest to start
    # when their own calendar has them working; None without one (always working)
    assert routed.starts_at == (start[got.id] if got.calendar is not None else None)
    rivals = [x for x in free if start[x.id] == start[got.id]]
    if prefer in [x.id for x in rivals]:
        assert got.id == prefer
    else:
        assert load(got.id) == min(load(x.id) for x in rivals)  # least loaded among them


# ----- the roster file


def test_roster_calendars_by_name_or_per_rep_and_zones(tmp_path):
    path = tmp_path / "roster.toml"
    path.write_text(
        """
[calendars.office]
time_zone = "America/New_York"
hours = { mon = ["09:00-17:00"] }
holidays = { country = "US" }

[[reps]]
id = "ana"
name = "Ana"
tier = "agent"
calendar = "office"
max_cases = 4

[[reps]]
id = "kai"
name = "Kai"
tier = "agent"
time_zone = "Asia/Tokyo"
calendar = { time_zone = "Asia/Tokyo", hours = { tue = ["22:00-06:00+1"] } }
""",
        encoding="utf-8",
    )
    r = load_roster(path)
    assert r.owner(r.rep("ana")).time_zone == "America/New_York" and r.rep("ana").max_cases == 4
    assert r.owner(r.rep("kai")).time_zone == "Asia/Tokyo"
    assert datetime(2026, 7, 4).date() in r.calendars["office"].holiday_dates  # resolved when the file loads
    assert not r.calendar_of(r.rep("ana")).is_open(datetime(2026, 1, 19, 15, 0, tzinfo=UTC))  # MLK day, Monday 10:00


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[[reps]]\nid = "ana"\nname = "A"\ntier = "agent"\ncalendar = "nope"\n', "no calendar named 'nope'"),
        ('[[reps]]\nid = "ana"\nname = "A"\ntier = "agent"\nmax_cases = 0\n', "max_cases"),
        ('[[reps]]\nid = "ana"\nname = "A"\ntier = "agent"\ntime_zone = "Mars/Base"\n', "IANA"),
        (
            '[calendars.x]\nholidays = { country = "ZZ" }\nalways_open = true\n[[reps]]\nid = "ana"\nname = "A"\n'
            'tier = "agent"\ncalendar = "x"\n',
            "calendars.x",
        ),
    ],
)
def test_roster_mistakes_name_the_field(tmp_path, body, words):
    path = tmp_path / "roster.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RosterError) as err:
        load_roster(path)
    assert words in str(err.value)


# ----- offers, timeouts and no_capacity (rules)


def routed_to(
    state: CaseState,
    rep_id: str | None,
    *,
    tier: Tier | None = None,
    starts_at: datetime | None = None,
    load: int | None = 0,
    reason: str | None = None,
) -> Routed:
    """The routing answer to the case's latest request."""
    owner = None
    if rep_id is not None:
        owner = {"id": rep_id, "name": rep_id.title(), "tier": tier or state.tier, "email": f"{rep_id}@example.com"}
    return Routed.model_validate(
        {
            "stint": len(state.stints),
            "request": state.route_requests,
            "owner": owner,
            "load": load,
            "starts_at": starts_at,
            "reason": reason,
        }
    )


def opened(policy: Policy = ROUTING, at: datetime = NOW, **overrides: Any) -> CaseState:
    state, _ = R.open_case(case_input(policy.name, case_id="C-1", **overrides), policy, at, OPENING)
    return state


def offered(rep_id: str = "ana", at: datetime = NOW, **overrides: Any) -> CaseState:
    state = opened(at=at, **overrides)
    state, _ = R.owner_found(state, ROUTING, routed_to(state, rep_id), at)
    return state


def test_an_offer_waits_for_acceptance_and_is_shown_in_the_timeline():
    state = opened()
    state, effects = R.owner_found(state, ROUTING, routed_to(state, "ana", load=2), NOW)
    pending = state.pending_assignment
    assert state.owner is None and pending.rep.id == "ana" and pending.accept_by == NOW + 2 * MIN
    assert kinds(state)[-1] == "assignment_offered" and state.timeline[-1].detail["load"] == 2
    [msg] = sends(effects)
    assert msg.message.kind == MessageKind.CASE_OFFERED and msg.message.to.id == "ana" and msg.not_before is None
    assert "Accept by" in msg.message.body and "Charged twice" in msg.message.body  # the brief comes with it
    assert R.next_deadline(state) == NOW + 2 * MIN
    assert R.holder(state) == "ana"


def test_the_offered_rep_accepts_and_owns_the_case():
    state = offered()
    state, _ = R.accept(state, ROUTING, AcceptInput(actor="ana", note="on it"), NOW + MIN)
    assert state.owner.id == "ana" and state.pending_assignment is None
    assert state.assignments[-1].status == AssignmentStatus.ACCEPTED and state.stints[-1].owners == ["ana"]
    assert state.timeline[-1].kind == "assignment_accepted" and state.timeline[-1].detail["waited_seconds"] == 60
    assert R.next_deadline(state) == state.acknowledge_clock.due_at


def test_acknowledging_the_case_offered_to_you_accepts_it():
    state, _ = R.acknowledge(offered(), ROUTING, AcknowledgeInput(actor="ana"), NOW + MIN)
    assert state.owner.id == "ana" and kinds(state)[-2:] == ["assignment_accepted", "acknowledged"]


@pytest.mark.parametrize(
    ("make", "actor", "words", "type_"),
    [
        (offered, "ben", "offered to ana, not ben", "InvalidArgument"),
        (opened, "ana", "not offered to anyone", ERR_INVALID_STATE),
    ],
)
def test_accept_refusals_change_nothing(make, actor, words, type_):
    err = refused(R.accept, make(), ROUTING, AcceptInput(actor=actor), NOW, field="actor", type=type_)
    assert words in str(err)


def test_an_unaccepted_offer_goes_to_the_next_rep_then_the_next_tier_with_no_capacity():
    state = offered("ana")
    state, effects = R.advance(state, ROUTING, NOW + 2 * MIN)
    assert state.assignments[-1].status == AssignmentStatus.EXPIRED and kinds(state)[-1] == "assignment_expired"
    [again] = assigns(effects)
    assert again.exclude == ["ana"] and again.request == state.route_requests == 2 and again.tier == A
    state, _ = R.owner_found(state, ROUTING, routed_to(state, "ben"), NOW + 2 * MIN)
    state, effects = R.advance(state, ROUTING, NOW + 4 * MIN)
    assert assigns(effects)[0].exclude == ["ana", "ben"]
    # Nobody left at agent: straight up a tier, no silent wait.
    state, effects = R.owner_found(
        state,
        ROUTING,
        routed_to(state, None, reason="every qualified agent (ana, ben) was asked already"),
        NOW + 4 * MIN,
    )
    climb = state.timeline[-1]
    assert state.tier == TL and climb.kind == "escalated" and climb.detail["reason"] == "no_capacity"
    assert "asked already" in climb.detail["detail"] and state.escalations == 1
    assert assigns(effects)[0].tier == TL and assigns(effects)[0].exclude == []


def test_nobody_free_at_the_top_tier_alerts_the_queue_and_the_escalation_contact():
    state, _ = R.escalate(opened(threat=True), ROUTING, EscalateInput(actor="sam", reason="complexity"), NOW)
    assert state.tier == MG
    state, effects = R.owner_found(
        state,
        ROUTING,
        routed_to(state, None, reason="every qualified manager is at their limit of open cases (maya 3/3)"),
        NOW,
    )
    assert state.tier == MG and state.timeline[-1].kind == "unassigned"
    assert state.timeline[-1].detail["reason"] == "no_capacity"
    assert {s.message.kind for s in sends(effects)} == {MessageKind.UNASSIGNED, MessageKind.NO_CAPACITY}


def test_a_routing_failure_is_not_mistaken_for_no_capacity():
    state = opened()
    failed = routed_to(state, None, reason="routing failed: roster unreadable").model_copy(update={"failed": True})
    state, _ = R.owner_found(state, ROUTING, failed, NOW)
    assert state.tier == A and state.timeline[-1].kind == "unassigned"


def test_answers_to_an_older_request_are_ignored():
    state = offered("ana")
    stale = routed_to(state, "ben")
    state, _ = R.advance(state, ROUTING, NOW + 2 * MIN)  # expired: request 2 is out
    same, effects = R.owner_found(state, ROUTING, stale, NOW + 2 * MIN)
    assert same is state and effects == []


def test_without_an_acceptance_timeout_the_chosen_rep_owns_the_case_at_once():
    state, _ = R.open_case(case_input("standard", case_id="C-1"), STANDARD, NOW, OPENING)
    state, effects = R.owner_found(state, STANDARD, routed_to(state, "ana"), NOW)
    assert state.owner.id == "ana" and state.assignments == [] and kinds(state)[-1] == "assigned"
    assert sends(effects)[0].message.kind == MessageKind.OWNER_ASSIGNED


def test_an_offer_to_a_rep_off_shift_counts_from_their_start_and_reaches_them_then():
    start = NOW + timedelta(hours=10)
    state = opened()
    state, effects = R.owner_found(state, ROUTING, routed_to(state, "nia", starts_at=start), NOW)
    assert state.pending_assignment.accept_by == start + 2 * MIN
    assert sends(effects)[0].not_before == start
    assert state.timeline[-1].detail["starts_at"] == start.isoformat()
    urgent = opened(severity="critical")
    _, effects = R.owner_found(urgent, ROUTING, routed_to(urgent, "nia", starts_at=start), NOW)
    assert sends(effects)[0].not_before is None  # critical: they hear at once


def test_reassign_takes_the_case_from_its_owner_and_routes_it_again():
    state, _ = R.accept(offered("ana"), ROUTING, AcceptInput(actor="ana"), NOW)
    state, effects = R.reassign(state, ROUTING, ReassignInput(actor="tara", reason="ana is off sick", to="ben"), NOW)
    assert state.owner is None and state.timeline[-1].kind == "reassigned"
    assert state.timeline[-1].detail == {"from_owner": "ana", "to": "ben", "reason": "ana is off sick"}
    [req] = assigns(effects)
    assert req.prefer == "ben" and req.exclude == ["ana"] and req.tier == A
    assert state.acknowledge_clock.due_at == NOW + timedelta(hours=1)  # the tier's clocks keep running


def test_reassign_withdraws_an_open_offer():
    state, _ = R.reassign(offered("ana"), ROUTING, ReassignInput(actor="tara", reason="wrong queue"), NOW)
    assert state.assignments[-1].status == AssignmentStatus.WITHDRAWN and state.pending_assignment is None


def test_an_offer_notice_held_for_the_reps_start_goes_stale_when_the_offer_is_withdrawn():
    state = opened()
    state, effects = R.owner_found(state, ROUTING, routed_to(state, "nia", starts_at=NOW + timedelta(hours=10)), NOW)
    [notice] = [s.message for s in sends(effects)]
    assert notice.kind == MessageKind.CASE_OFFERED and not R.message_obsolete(state, notice)
    accepted, _ = R.accept(state, ROUTING, AcceptInput(actor="nia"), NOW + MIN)
    assert not R.message_obsolete(accepted, notice)  # still theirs
    moved, _ = R.reassign(state, ROUTING, ReassignInput(actor="tara", reason="nia is away"), NOW + MIN)
    assert R.message_obsolete(moved, notice)


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (ReassignInput(actor="roster", reason="inactive", from_owner="ben"), "from_owner"),
        (ReassignInput(actor="tara", reason="x", to="ana"), "to"),
    ],
)
def test_reassign_refusals_change_nothing(cmd, field):
    refused(R.reassign, offered("ana"), ROUTING, cmd, NOW, field=field)


def test_resolving_withdraws_the_offer_and_its_deadline():
    state, _ = R.resolve(
        offered("ana"), ROUTING, ResolveInput(actor="tara", resolution="done", root_cause="other", kb_missing=True), NOW
    )
    assert state.assignments[-1].status == AssignmentStatus.WITHDRAWN
    assert R.holder(state) is None


# ----- on the real dev server: visibility counts


# The roster watch acts by its own credential: the roster gives it `reassign`.
ROSTER_WATCH = {"id": "roster", "name": "Roster watch", "may": ["reassign"]}


def write_roster(path: Path, reps: list[dict[str, Any]], services: Iterable[dict[str, Any]] = ()) -> Path:
    """A roster file for one test; rep ids are unique per test so other tests' cases never count."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v) if isinstance(v, int) else f'"{v}"'

    blocks = [
        f"[[{table}]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in r.items())
        for table, entries in (("reps", reps), ("services", services))
        for r in entries
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


@pytest.fixture
def team(settings, tmp_path):
    """Two agents, a team lead and a supervisor with fresh ids and a skill no other test uses."""
    tag = uuid.uuid4().hex[:6]
    skill = f"skill-{tag}"
    names = {k: f"{k}-{tag}" for k in ("ana", "ben", "tara", "sam")}
    reps = [
        rep(names["ana"], skills=[skill, "billing"], languages=["en", "pt"]),
        rep(names["ben"], skills=[skill, "billing", "mobile"], languages=["en", "de"], max_cases=2),
        rep(names["tara"], "team_lead", skills=[skill, "billing", "mobile"], languages=["en", "de"]),
        rep(names["sam"], "supervisor", skills=[skill, "billing", "mobile"], languages=["en", "de", "pt"]),
    ]
    settings.roster_path = write_roster(tmp_path / "roster.toml", reps, [ROSTER_WATCH])
    return names, skill


async def held_by(handle) -> str | None:
    """The rep the case is offered to or owned by, once routing has answered."""
    s = await case_state(handle)
    return R.holder(s)


async def count(env, rep_id: str) -> int:
    return (await env.client.count_workflows(holding_query([rep_id]))).count


async def test_least_loaded_rep_is_chosen_from_real_visibility_counts(env, team, worker, settings):
    names, skill = team
    ana, ben = names["ana"], names["ben"]
    opened_cases = []

    async def new_case(**kw):
        handle = await open_case(
            env.client, case_input("routing", skills=[skill], opened_by=ana, **kw), task_queue_name=settings.task_queue
        )
        opened_cases.append(handle)
        return await eventually(lambda: held_by(handle))

    first = await new_case()
    await eventually(lambda: count(env, first))  # visibility sees it before the next case is routed
    second = await new_case()
    assert second != first  # the other agent had nothing
    await eventually(lambda: count(env, second))
    third = await new_case()
    assert third in (ana, ben)
    await eventually(lambda: _equals(count(env, third), 2))
    # ben is capped at 2 open cases: whatever the spread, the next case goes to ana when ben is full.
    if third == ben:
        assert await new_case() == ana
    else:
        assert await new_case() == ben  # ana 2, ben 1
        await eventually(lambda: _equals(count(env, ben), 2))
        assert await new_case() == ana  # ben is full; ana takes a third
    # A resolved case no longer counts: ben's load drops, and ben is chosen again.
    ben_cases = [h for h in opened_cases if await held_by(h) == ben]
    # Offered to ben: he takes it up (acknowledging accepts it) before he may resolve it.
    await ben_cases[0].execute_update("acknowledge", AcknowledgeInput(actor=ben), result_type=TimelineEntry)
    await ben_cases[0].execute_update(
        "resolve",
        ResolveInput(actor=ben, resolution="Refunded", root_cause="billing_error", kb_missing=True),
        result_type=TimelineEntry,
    )
    await eventually(lambda: _equals(count(env, ben), 1))
    assert await new_case() == ben
    state = await case_state(opened_cases[-1])
    assert state.assignments[-1].load == 1  # the count routing saw is in the case


async def _equals(value, expected) -> bool:
    return await value == expected


@pytest.mark.parametrize(
    ("skills", "language", "who"),
    [
        (["billing"], "pt", "ana"),  # only ana speaks Portuguese
        (["mobile"], "de", "ben"),  # only ben has the skill
        (["mobile"], "pt", "sam"),  # no agent or team lead has both: no_capacity twice, to the supervisor
    ],
)
async def test_skills_and_language_route_to_the_matching_rep(env, team, worker, settings, skills, language, who):
    names, skill = team
    inp = case_input("routing", skills=[skill, *skills], opened_by=names["ana"])
    inp.customer.language = language
    handle = await open_case(env.client, inp, task_queue_name=settings.task_queue)
    holder = await eventually(lambda: held_by(handle))
    assert holder == names[who]
    state = await case_state(handle)
    climbs = [e.detail for e in state.timeline if e.kind == "escalated"]
    assert len(climbs) == (2 if who == "sam" else 0)
    assert all(c["reason"] == "no_capacity" and "speaks 'pt'" in c["detail"] for c in climbs)


async def test_accept_and_reassign_on_the_dev_server(env, team, worker, settings):
    names, skill = team
    handle = await open_case(
        env.client,
        case_input("routing", skills=[skill, "mobile"], opened_by=names["ana"]),
        task_queue_name=settings.task_queue,
    )
    ben = await eventually(lambda: held_by(handle))
    assert ben == names["ben"]
    before = await case_state(handle)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update("accept", AcceptInput(actor=names["ana"]), result_type=TimelineEntry)
    assert "offered to" in caught.value.cause.message and caught.value.cause.type == "InvalidArgument"
    assert (await case_state(handle)).model_dump() == before.model_dump()

    entry = await handle.execute_update("accept", AcceptInput(actor=ben), result_type=TimelineEntry)
    assert entry.kind == "assignment_accepted"
    assert (await case_state(handle)).owner.id == ben

    async def owner_attribute():
        return (await handle.describe()).search_attributes.get(SA_OWNER) == [ben]

    await eventually(owner_attribute)
    await handle.execute_update(
        "reassign", ReassignInput(actor=names["tara"], reason="ben went home"), result_type=TimelineEntry
    )
    # Nobody else at agent has the mobile skill: the case does not wait, it goes to the team lead.
    assert await eventually(lambda: _is(held_by(handle), names["tara"]))
    state = await case_state(handle)
    assert [e.kind for e in state.timeline if e.kind in ("reassigned", "escalated")] == ["reassigned", "escalated"]


async def _is(value, expected):
    got = await value
    return got if got == expected else None


async def test_cases_of_a_rep_marked_inactive_are_reassigned(env, team, worker, settings):
    names, skill = team
    inp = case_input("routing", skills=[skill], opened_by=names["ana"])
    inp.customer.language = "pt"
    handle = await open_case(env.client, inp, task_queue_name=settings.task_queue)
    ana = await eventually(lambda: held_by(handle))
    assert ana == names["ana"]
    await handle.execute_update("accept", AcceptInput(actor=ana), result_type=TimelineEntry)
    await eventually(lambda: _equals(count(env, ana), 1))

    text = settings.roster_path.read_text().replace(f'id = "{ana}"\n', f'id = "{ana}"\nactive = false\n')
    settings.roster_path.write_text(text)
    moved = await reassign_inactive(env.client, load_roster(settings.roster_path))
    assert moved == [handle.id]
    assert await reassign_inactive(env.client, load_roster(settings.roster_path)) == []  # a repeat is harmless
    # Only ana speaks Portuguese at agent: the case goes up to the supervisor who does (no team lead does).
    assert await eventually(lambda: _is(held_by(handle), names["sam"]))
    state = await case_state(handle)
    reassigned = next(e for e in state.timeline if e.kind == "reassigned")
    assert reassigned.actor == "roster" and reassigned.detail["from_owner"] == ana
    assert [e.detail["reason"] for e in state.timeline if e.kind == "escalated"] == ["no_capacity", "no_capacity"]


# ----- time skipping: acceptance timeouts


async def test_unaccepted_offers_go_to_the_next_rep_then_up_a_tier(skip_env, skip_cases, settings):
    handle = await skip_cases(case_input("routing"))
    first = await eventually(lambda: held_by(handle))
    assert first in ("ana", "ben")
    await skip_env.sleep(2 * MIN + timedelta(seconds=1))
    second = await eventually(lambda: _is(held_by(handle), "ben" if first == "ana" else "ana"))
    await skip_env.sleep(2 * MIN + timedelta(seconds=1))
    assert await eventually(lambda: _is(held_by(handle), "tara"))
    state = await case_state(handle)
    story = [
        (e.kind, e.detail.get("rep") or e.detail.get("reason"))
        for e in state.timeline
        if e.kind.startswith("assignment") or e.kind == "escalated"
    ]
    assert story == [
        ("assignment_offered", first),
        ("assignment_expired", first),
        ("assignment_offered", second),
        ("assignment_expired", second),
        ("escalated", "no_capacity"),
        ("assignment_offered", "tara"),
    ]
    offers = [e for e in state.timeline if e.kind == "assignment_offered"]
    expiries = [e for e in state.timeline if e.kind == "assignment_expired"]
    # Each timeout fires at its instant; the last offer (to tara) is still open.
    for offer, expiry in zip(offers[:-1], expiries, strict=True):
        assert timedelta(minutes=2) <= expiry.at - offer.at < timedelta(minutes=2, seconds=2)
    assert state.tier == "team_lead" and state.breaches == 0
    await handle.execute_update("accept", AcceptInput(actor="tara"), result_type=TimelineEntry)
    assert (await case_state(handle)).owner.id == "tara"
