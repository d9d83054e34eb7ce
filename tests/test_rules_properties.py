"""Property tests of the pure rules: random policies and random command sequences at increasing times.

After every command (accepted or refused) the invariants below must hold. The command mix covers every
public rule, including ones that will often be refused (system reasons, unknown offers, stale routing
answers), because refusals have invariants too: they never touch the state handed in. Policies come with
business calendars (or none), waits on the customer with limits, and offers that must be accepted in
time, so the features are exercised together: clocks count the tier's working time and each wait moves
the resolve target by exactly the working time it covered, whatever escalations, offers and
reassignments happen around it. (Callbacks have their own sequence property in test_callbacks.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from escalation.domain import rules as R
from escalation.domain.models import (
    MANUAL_REASONS,
    AcceptInput,
    AcknowledgeInput,
    AssignmentStatus,
    CaseState,
    CloseInput,
    CustomerRepliedInput,
    DeEscalateInput,
    EscalateInput,
    EscalationInput,
    EscalationReason,
    FollowUpResponseInput,
    NoteInput,
    OfferInput,
    OfferResponseInput,
    OfferStatus,
    Outcome,
    Owner,
    ReassignInput,
    ResolveInput,
    Sentiment,
    Status,
    Tier,
    WaitOnCustomerInput,
)
from escalation.domain.policy import Policy, load_policy_file
from escalation.domain.rules import Routed, RuleViolation
from escalation.domain.rules.brief import committed_total
from escalation.domain.rules.sla import sla_due

TESTS = Path(__file__).parent
STANDARD = load_policy_file(TESTS / "policies" / "standard.toml")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPENING = "run-1"  # the workflow passes its first run id
ORDER = list(Tier)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----- strategies


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    ladder = draw(st.lists(st.sampled_from(ORDER), min_size=1, max_size=4, unique=True))
    ladder.sort(key=ORDER.index)
    tiers: list[dict[str, Any]] = []
    limit: Decimal | None = draw(st.sampled_from([Decimal("0"), Decimal("10"), Decimal("25"), Decimal("100")]))
    for i, name in enumerate(ladder):
        if i:
            if limit is not None and draw(st.integers(0, 5)) == 0:
                limit = None  # no limit from here up
            elif limit is not None:
                limit += draw(st.sampled_from([Decimal("0"), Decimal("15"), Decimal("75"), Decimal("400")]))
        ack = draw(st.integers(1, 90))
        res = ack + draw(st.integers(0, 600))
        tiers.append(
            {
                "name": name.value,
                "acknowledge_within": f"{ack}m",
                "resolve_within": f"{res}m",
                "authority_limit": None if limit is None else str(limit),
            }
        )
    offsets = sorted(set(draw(st.lists(st.integers(1, 14 * 24 * 60), max_size=3))))
    pause_limit = draw(st.none() | st.integers(1, 3 * 24 * 60))
    accept_within = draw(st.none() | st.integers(1, 30))
    data = {
        "name": "generated",
        "version": "gen-1",
        "tiers": tiers,
        "threat_tier": draw(st.sampled_from(ladder)).value,
        "customer_request_tier": draw(st.none() | st.sampled_from(ladder).map(lambda t: t.value)),
        "skip_reasons": draw(st.lists(st.sampled_from(sorted(MANUAL_REASONS)), unique=True)),
        "close_lost_tiers": draw(st.none() | st.lists(st.sampled_from(ladder).map(lambda t: t.value), unique=True)),
        "followups": {
            "offsets": [f"{m}m" for m in offsets],
            "response_window": f"{draw(st.integers(1, 4 * 24 * 60))}m",
            "stop_on_positive": draw(st.booleans()),
        },
        # Business hours (or wall-clock time), waiting on the customer, offers that must be accepted.
        "calendars": CALENDARS,
        "calendar": draw(st.sampled_from([None, "office", "nights", "always"])),
        "pause": {
            "limit": None if pause_limit is None else f"{pause_limit}m",
            "on_limit": draw(st.sampled_from(["resume", "close"])),
        },
        "routing": {"accept_within": None if accept_within is None else f"{accept_within}m"},
    }
    return Policy.model_validate(data)


CALENDARS = {
    "office": {
        "time_zone": "America/New_York",
        "hours": {d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    },
    "nights": {
        "time_zone": "Europe/Berlin",
        "hours": {d: ["22:00-06:00+1"] for d in ("mon", "tue", "wed", "thu")},
        "closed_dates": ["2026-03-04"],
    },
    "always": {"always_open": True},
}


tiers_or_none = st.none() | st.sampled_from(ORDER)
amounts = st.sampled_from(
    ["0", "0.01", "5", "10", "20", "24.99", "25", "50", "75", "100", "250", "499.99", "500", "1000", "5000", "6000"]
)
minutes = st.integers(0, 240)

_time = [
    st.tuples(st.just("tick"), st.integers(0, 10 * 24 * 60)),
    st.tuples(st.just("deadline")),
]
_likely = [
    st.tuples(st.just("respond"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("resolve"), st.booleans()),
    st.tuples(st.just("followup"), st.sampled_from(["fixed", "not_fixed"]), st.none()),
]
commands = st.one_of(
    *_time,
    *_time,
    *_likely,
    st.tuples(st.just("ack"), st.sampled_from(["ana", "ben"])),
    st.tuples(st.just("escalate"), st.sampled_from(list(EscalationReason)), tiers_or_none),
    st.tuples(st.just("de_escalate"), tiers_or_none),
    st.tuples(st.just("note"), st.none() | st.sampled_from(list(Sentiment))),
    st.tuples(
        st.just("offer"),
        st.sampled_from(["compensation", "goodwill"]),
        amounts,
        st.sampled_from([None, None, None, "EUR", "USD"]),
    ),
    st.tuples(st.just("respond"), st.integers(1, 5), st.booleans()),
    st.tuples(st.just("resolve"), st.booleans()),
    st.tuples(st.just("close"), st.sampled_from(list(Outcome))),
    st.tuples(st.just("followup"), st.sampled_from(["fixed", "not_fixed"]), st.none() | st.integers(1, 6)),
    st.tuples(
        st.just("assign"),
        st.integers(-1, 0),
        st.sampled_from([None, Decimal("10"), Decimal("200"), Decimal("10000")]),
        st.booleans(),
    ),
    # waiting on the customer
    st.tuples(st.just("wait"), st.none() | st.integers(1, 4 * 24 * 60)),
    st.tuples(st.just("replied")),
    # routing: an answer to the latest (or an older) request, offers accepted, cases reassigned
    st.tuples(
        st.just("route"),
        st.sampled_from([None, "ana", "ben"]),
        st.sampled_from([0, 0, 90, 3 * 24 * 60]),
        st.integers(-1, 0),
    ),
    st.tuples(st.just("accept"), st.sampled_from(["ana", "ben"])),
    st.tuples(st.just("reassign"), st.sampled_from([None, "ana", "ben"]), st.sampled_from([None, "ana", "ben"])),
)
steps = st.lists(st.tuples(minutes, commands), min_size=5, max_size=50)


def case_input(threat: bool) -> EscalationInput:
    return EscalationInput.model_validate(
        {
            "case_id": "C-prop",
            "customer": {"id": "cust-1", "name": "Dana Doe", "email": "dana@example.org", "lifetime_value": "1200"},
            "channel": "chat",
            "category": "billing",
            "skills": ["billing"],
            "summary": "Charged twice",
            "desired_outcome": "Refund",
            "threat": threat,
            "opened_by": "ana",
        }
    )


# ----- running a sequence


@dataclass
class Run:
    policy: Policy
    state: CaseState
    now: datetime
    log: list[str] = field(default_factory=list)
    accepted: int = 0
    refusals: int = 0
    answered: set[tuple[int, int]] = field(default_factory=set)  # routing requests answered already


def limit_in_force(state: CaseState, policy: Policy) -> Decimal | None:
    if state.owner is not None and state.owner.authority_limit is not None:
        return state.owner.authority_limit
    return policy.tier(state.tier).authority_limit


def call(run: Run, cmd: tuple) -> tuple[str, Any]:
    """Run one command against run.state; returns ('ok', (state, effects)) or ('refused', RuleViolation)."""
    s, p, now = run.state, run.policy, run.now
    kind = cmd[0]
    try:
        match cmd:
            case ("tick", _) | ("deadline",):
                return "ok", R.advance(s, p, now)
            case ("ack", actor):
                return "ok", R.acknowledge(s, p, AcknowledgeInput(actor=actor), now)
            case ("escalate", reason, target):
                return "ok", R.escalate(s, p, EscalateInput(actor="ana", reason=reason, target_tier=target), now)
            case ("de_escalate", target):
                return "ok", R.de_escalate(
                    s, p, DeEscalateInput(actor="tara", reason="calmer", target_tier=target), now
                )
            case ("note", sentiment):
                return "ok", R.add_note(s, p, NoteInput(actor="ana", text="called again", sentiment=sentiment), now)
            case ("offer", okind, amount, currency):
                cmd_in = OfferInput(actor="ana", kind=okind, amount=amount, currency=currency, description="refund")
                return "ok", R.propose_offer(s, p, cmd_in, now)
            case ("respond", n, yes):
                cmd_in = OfferResponseInput(
                    actor="ana", offer_id=f"offer-{n}", answer="accepted" if yes else "declined"
                )
                return "ok", R.record_offer_response(s, p, cmd_in, now)
            case ("resolve", kb_missing):
                cmd_in = ResolveInput(
                    actor="ana",
                    resolution="fixed it",
                    root_cause="other",
                    kb_article=None if kb_missing else "KB-1",
                    kb_missing=kb_missing,
                )
                return "ok", R.resolve(s, p, cmd_in, now)
            case ("close", outcome):
                return "ok", R.close(s, p, CloseInput(actor="maya", outcome=outcome, reason="done"), now)
            case ("followup", answer, checkin):
                return "ok", R.followup_response(s, p, FollowUpResponseInput(answer=answer, checkin=checkin), now)
            case ("wait", limit):
                cmd_in = WaitOnCustomerInput(
                    actor="ana",
                    reason="needs the meter reading",
                    limit=None if limit is None else timedelta(minutes=limit),
                )
                return "ok", R.wait_on_customer(s, p, cmd_in, now)
            case ("replied",):
                return "ok", R.customer_replied(s, p, CustomerRepliedInput(actor="ana", channel="email"), now)
            case ("route", rep, starts_in, offset):
                if (len(s.stints), s.route_requests) in run.answered:
                    offset = -1  # routing answers each request once: a repeat is as stale as an old one
                routed = Routed(
                    stint=len(s.stints),
                    request=s.route_requests + offset,
                    load=0,
                    owner=None
                    if rep is None
                    else Owner(id=rep, name=rep.title(), tier=s.tier, email=f"{rep}@example.com"),
                    starts_at=now + timedelta(minutes=starts_in) if starts_in else None,
                    reason="nobody free" if rep is None else None,
                )
                return "ok", R.owner_found(s, p, routed, now)
            case ("accept", actor):
                return "ok", R.accept(s, p, AcceptInput(actor=actor), now)
            case ("reassign", to, from_owner):
                cmd_in = ReassignInput(actor="tara", reason="rebalancing", to=to, from_owner=from_owner)
                return "ok", R.reassign(s, p, cmd_in, now)
            case ("assign", offset, limit, nobody):
                if (len(s.stints), s.route_requests) in run.answered:
                    offset = -1  # answered already (by either routing)
                stint = len(s.stints) + offset
                who = (
                    None
                    if nobody
                    else Owner(
                        id=f"rep-{s.tier.value}",
                        name="Rep",
                        tier=s.tier,
                        email="rep@example.com",
                        authority_limit=limit,
                    )
                )
                return "ok", R.owner_assigned(s, p, stint, who, now)
    except RuleViolation as err:
        return "refused", err
    raise AssertionError(f"unknown command {kind}")


def upward_moves(state: CaseState, policy: Policy) -> int:
    moves = [e for e in state.timeline if e.kind in ("escalated", "de_escalated", "reopened")]
    return sum(policy.rank(Tier(e.detail["to_tier"])) > policy.rank(Tier(e.detail["from_tier"])) for e in moves)


def check_invariants(state: CaseState, policy: Policy) -> None:
    ladder = policy.ladder
    # the tier is always on the ladder, and so is every stint
    assert state.tier in ladder
    assert all(st_.tier in ladder for st_ in state.stints)
    assert state.stints and state.stints[-1].tier == state.tier
    assert all(st_.left_at is not None for st_ in state.stints[:-1])
    # the timeline: 1..n, times never go back
    assert [e.seq for e in state.timeline] == list(range(1, len(state.timeline) + 1))
    assert all(a.at <= b.at for a, b in pairwise(state.timeline))
    assert all(e.tier in ladder for e in state.timeline)
    # counters agree with the story
    assert state.escalations == upward_moves(state, policy)
    assert state.breaches == sum(e.kind == "breached" for e in state.timeline)
    assert state.reopens == sum(e.kind == "reopened" for e in state.timeline)
    for e in state.timeline:
        if e.kind == "escalated":
            assert policy.rank(Tier(e.detail["to_tier"])) > policy.rank(Tier(e.detail["from_tier"]))
        if e.kind == "de_escalated":
            assert policy.rank(Tier(e.detail["to_tier"])) < policy.rank(Tier(e.detail["from_tier"]))
    # the clocks belong to the current tier and count its business time; only waiting on the customer
    # moves the resolve target, by exactly the working time each wait covered
    tp = policy.tier(state.tier)
    cal = policy.calendar_for(state.tier, state.input.severity)
    ack, res = state.acknowledge_clock, state.resolve_clock
    assert ack is not None and res is not None
    entered = state.stints[-1].entered_at
    assert ack.started_at == res.started_at == entered
    assert ack.paused_at is None and ack.remaining is None
    assert ack.due_at == cal.add(entered, tp.acknowledge_within)
    covered = sum(
        (p.business_paused or timedelta(0) for p in state.pauses if p.ended_at is not None and p.started_at >= entered),
        timedelta(0),
    )
    if res.paused_at is not None:
        assert res.live and res.remaining is not None and state.waiting is not None
        assert cal.business_between(entered, res.paused_at) - covered + res.remaining == tp.resolve_within
    else:
        assert res.remaining is None
        assert cal.business_between(entered, res.due_at) - covered == tp.resolve_within
    assert state.sla_due_at == sla_due(state)
    # waiting on the customer: one open wait at most, only on an open case, and it holds the resolve clock
    assert all(p.ended_at is not None for p in state.pauses[:-1])
    assert state.paused_total == sum((p.ended_at - p.started_at for p in state.pauses if p.ended_at), timedelta(0))
    if state.waiting is not None:
        assert state.status == Status.OPEN
        assert res.paused_at is not None or not res.live
    # routing: at most one open offer, the latest, to nobody who owns the case, on an open case only
    offered = [a for a in state.assignments if a.status == AssignmentStatus.OFFERED]
    assert offered == ([state.assignments[-1]] if offered else [])
    if offered:
        assert state.status == Status.OPEN and state.owner is None
        assert offered[0].accept_by > offered[0].offered_at
    assert R.holder(state) == (state.owner.id if state.owner else offered[0].rep.id if offered else None)
    # offers: sequential ids, one currency
    assert [o.id for o in state.offers] == [f"offer-{i}" for i in range(1, len(state.offers) + 1)]
    assert all(o.currency == policy.currency for o in state.offers)
    assert all((o.answered_at is None) == (o.status == OfferStatus.PROPOSED) for o in state.offers)
    # status-specific facts
    if state.status == Status.OPEN:
        assert state.outcome is None and state.closed_at is None and state.resolution is None
        assert all(c.sent_at is not None or c.cancelled for c in state.checkins)
    elif state.status == Status.RESOLVED:
        assert state.resolution is not None and state.resolution.tier == state.tier
        assert not any(o.status == OfferStatus.PROPOSED for o in state.offers)
        assert not state.acknowledge_clock.running and not state.resolve_clock.running
        assert state.followup_ends_at is not None
    else:
        assert state.outcome is not None and state.closed_at is not None
        assert not state.acknowledge_clock.running and not state.resolve_clock.running
        assert all(c.sent_at is not None or c.cancelled for c in state.checkins)
        assert R.next_deadline(state) is None
        out = R.outcome(state, policy)
        assert out.escalations == state.escalations and out.reopens == state.reopens
        assert policy.rank(out.highest_tier) >= policy.rank(out.final_tier)
        assert out.granted_total == sum(
            (o.amount for o in state.offers if o.status == OfferStatus.ACCEPTED), Decimal("0")
        )
    assert [c.number for c in state.checkins] == list(range(1, len(state.checkins) + 1))
    assert len(state.resolutions) >= state.reopens
    # the brief can always be built
    R.build_brief(state, policy, state.timeline[-1].at)


def run_sequence(policy: Policy, threat: bool, plan: Iterable[tuple[int, tuple]] | Callable[[Run], Any]) -> Run:
    state, _ = R.open_case(case_input(threat), policy, NOW, OPENING)
    run = Run(policy, state, NOW)
    check_invariants(state, policy)
    for gap, cmd in plan if not callable(plan) else iter(lambda: plan(run), None):
        run.now += timedelta(minutes=gap)
        if cmd[0] == "tick":
            run.now += timedelta(minutes=cmd[1])
        elif cmd[0] == "deadline":
            due = R.next_deadline(run.state)
            if due is not None and due > run.now:
                run.now = due
        if cmd[0] == "wait" and (due := R.next_deadline(run.state)) is not None and due <= run.now:
            # The workflow's loop acts on a deadline the moment it passes, before a later command:
            # a wait can only stop a clock that is still counting down.
            run.state, _ = R.advance(run.state, policy, run.now)
            check_invariants(run.state, policy)
        before = run.state.model_dump()
        was_closed = run.state.status == Status.CLOSED
        limit = limit_in_force(run.state, policy)
        verdict, result = call(run, cmd)
        run.log.append(f"{run.now:%m-%d %H:%M} {cmd} -> {verdict} {result if verdict == 'refused' else ''}")
        note(run.log[-1])  # printed with a failing example
        # no command ever changes the state handed in, accepted or refused
        assert run.state.model_dump() == before, f"{cmd} mutated its input"
        if verdict == "refused":
            run.refusals += 1
            assert isinstance(result.field, str) and result.field
            assert str(result).startswith(f"{result.field}: ")
            if was_closed:
                assert result.field == "status"
            continue
        new, effects = result
        run.accepted += 1
        if cmd[0] in ("route", "assign") and new is not run.state:
            run.answered.add((len(run.state.stints), run.state.route_requests))
        if was_closed:
            # only advance and routing answers are accepted on a closed case, and they change nothing
            assert cmd[0] in ("tick", "deadline", "assign", "route"), cmd
            assert effects == [] and new.model_dump() == before
        # append-only story
        assert new.timeline[: len(run.state.timeline)] == run.state.timeline
        if cmd[0] == "offer":
            # the case's committed total stays within the limit in force when the offer was made
            # (a gesture without money needs no authority)
            assert limit is None or committed_total(new) <= limit or new.offers[-1].amount == 0, (
                committed_total(new),
                limit,
            )
            assert new.offers[-1].tier == run.state.tier
        if cmd[0] in ("tick", "deadline"):
            # advance acts on everything due: doing it again at the same instant is a no-op
            due = R.next_deadline(new)
            assert due is None or due > run.now
            again, more = R.advance(new, policy, run.now)
            assert more == [] and again.model_dump() == new.model_dump()
        run.state = new
        check_invariants(new, policy)
    event(f"final status: {run.state.status.value}")
    event(f"accepted commands: {'0-4' if run.accepted < 5 else '5-9' if run.accepted < 10 else '10+'}")
    for what, seen in (
        ("offer accepted", any(o.status == OfferStatus.ACCEPTED for o in run.state.offers)),
        ("check-in sent", any(c.sent_at for c in run.state.checkins)),
        ("reopened", run.state.reopens > 0),
        ("breached", run.state.breaches > 0),
        ("reached top tier", run.state.tier == policy.top_tier and len(policy.ladder) > 1),
        ("waited on the customer", bool(run.state.pauses)),
        ("a wait covered working time", any(p.business_paused for p in run.state.pauses)),
        ("a wait ran out", any(e.kind == "wait_expired" for e in run.state.timeline)),
        ("offer accepted by a rep", any(a.status == AssignmentStatus.ACCEPTED for a in run.state.assignments)),
        ("offer expired", any(a.status == AssignmentStatus.EXPIRED for a in run.state.assignments)),
        ("reassigned", any(e.kind == "reassigned" for e in run.state.timeline)),
    ):
        if seen:
            event(what)
    return run


# ----- properties


@SETTINGS
@given(policy=policies(), threat=st.booleans(), plan=steps)
def test_random_sequences_keep_the_invariants(policy, threat, plan):
    run_sequence(policy, threat, plan)


@SETTINGS
@given(threat=st.booleans(), plan=steps)
def test_random_sequences_on_the_standard_policy(threat, plan):
    run_sequence(STANDARD, threat, plan)


# Commands that make sense in each status, so guided runs get deep into a case's life.
_by_status = {
    Status.OPEN: st.one_of(
        st.tuples(st.just("ack"), st.sampled_from(["ana", "ben"])),
        st.tuples(st.just("escalate"), st.sampled_from(sorted(MANUAL_REASONS)), tiers_or_none),
        st.tuples(st.just("de_escalate"), st.none()),
        st.tuples(st.just("note"), st.none() | st.sampled_from(list(Sentiment))),
        st.tuples(st.just("offer"), st.sampled_from(["compensation", "goodwill"]), amounts, st.none()),
        st.tuples(st.just("offer"), st.just("goodwill"), st.sampled_from(["0", "1", "5", "10"]), st.none()),
        st.tuples(st.just("offer"), st.just("goodwill"), st.sampled_from(["0", "1", "5", "10"]), st.none()),
        st.tuples(st.just("respond"), st.integers(1, 3), st.booleans()),
        st.tuples(st.just("respond"), st.just(1), st.booleans()),
        st.tuples(st.just("resolve"), st.booleans()),
        st.tuples(st.just("resolve"), st.booleans()),
        st.tuples(
            st.just("assign"), st.just(0), st.sampled_from([None, Decimal("10"), Decimal("200")]), st.just(False)
        ),
        st.tuples(st.just("deadline")),
        st.tuples(st.just("tick"), st.integers(0, 120)),
        st.tuples(st.just("wait"), st.none() | st.integers(1, 24 * 60)),
        st.tuples(st.just("replied")),
        st.tuples(st.just("route"), st.sampled_from(["ana", "ben"]), st.sampled_from([0, 0, 90]), st.just(0)),
        st.tuples(st.just("accept"), st.sampled_from(["ana", "ben"])),
        st.tuples(st.just("reassign"), st.none() | st.sampled_from(["ana", "ben"]), st.none()),
    ),
    Status.RESOLVED: st.one_of(
        st.tuples(st.just("deadline")),
        st.tuples(st.just("deadline")),
        st.tuples(st.just("followup"), st.sampled_from(["fixed", "not_fixed"]), st.none()),
        st.tuples(st.just("followup"), st.just("not_fixed"), st.none() | st.integers(1, 6)),
        st.tuples(st.just("note"), st.none()),
        st.tuples(st.just("close"), st.sampled_from(list(Outcome))),
    ),
    Status.CLOSED: commands,
}


@SETTINGS
@given(policy=policies(), threat=st.booleans(), data=st.data(), length=st.integers(5, 60))
def test_guided_sequences_keep_the_invariants(policy, threat, data, length):
    """Like the random sequences, but commands are mostly drawn from what makes sense in the current status
    (with some arbitrary ones mixed in), so runs reach follow-ups, reopens and second resolutions."""
    left = [length]

    def next_step(run: Run) -> tuple[int, tuple] | None:
        if left[0] == 0:
            return None
        left[0] -= 1
        pool = commands if data.draw(st.integers(0, 9), label="wild") == 0 else _by_status[run.state.status]
        return data.draw(minutes, label="gap"), data.draw(pool, label="command")

    run_sequence(policy, threat, next_step)


@SETTINGS
@given(policy=policies(), plan=steps, outcome=st.sampled_from([Outcome.CUSTOMER_LOST, Outcome.LEGAL]))
def test_a_closed_case_stays_closed_and_refuses_everything(policy, plan, outcome):
    state, _ = R.open_case(case_input(False), policy, NOW, OPENING)
    state, _ = _climb(state, policy)  # the top tier may close as lost unless close_lost_tiers says otherwise
    if not policy.may_close_as(outcome, state.tier):
        policy = Policy.model_validate({**policy.model_dump(), "close_lost_tiers": None})
    state, _ = R.close(state, policy, CloseInput(actor="maya", outcome=outcome, reason="gone"), NOW)
    assert state.status == Status.CLOSED
    frozen = state.model_dump()
    run = Run(policy, state, NOW)
    for gap, cmd in plan:
        run.now += timedelta(minutes=gap + (cmd[1] if cmd[0] == "tick" else 0))
        verdict, result = call(run, cmd)
        if verdict == "refused":
            assert result.field == "status", result
        else:
            assert cmd[0] in ("tick", "deadline", "assign", "route")
            new, effects = result
            assert effects == [] and new.model_dump() == frozen
        assert run.state.model_dump() == frozen


def _climb(state: CaseState, policy: Policy) -> tuple[CaseState, list]:
    while state.tier != policy.top_tier:
        state, _ = R.escalate(state, policy, EscalateInput(actor="ana", reason="complexity"), NOW)
    return state, []


@SETTINGS
@given(policy=policies(), threat=st.booleans(), ticks=st.lists(st.integers(0, 24 * 60), max_size=30))
def test_only_time_passing_climbs_to_the_top_and_stays(policy, threat, ticks):
    """With nobody acting, breaches take the case up one tier per deadline, never down, never past the top."""
    state, _ = R.open_case(case_input(threat), policy, NOW, OPENING)
    now = NOW
    ranks = [policy.rank(state.tier)]
    for minutes_ in ticks:
        due = R.next_deadline(state)
        now = max(now + timedelta(minutes=minutes_), due or now)
        state, effects = R.advance(state, policy, now)
        ranks.append(policy.rank(state.tier))
        check_invariants(state, policy)
        assert state.status == Status.OPEN
        for e in effects:
            if isinstance(e, R.Send):
                assert e.message.to.id == policy.escalation_contact
                assert state.tier == policy.top_tier
    assert all(b - a in (0, 1) for a, b in pairwise(ranks))
    assert state.breaches >= state.escalations == ranks[-1] - ranks[0]


@SETTINGS
@given(
    policy=policies(),
    amounts_=st.lists(st.tuples(amounts, st.sampled_from(["accepted", "declined", None])), max_size=12),
)
def test_offers_never_commit_more_than_the_limit(policy, amounts_):
    state, _ = R.open_case(case_input(False), policy, NOW, OPENING)
    limit = policy.tier(state.tier).authority_limit
    for amount, reply in amounts_:
        try:
            state, _ = R.propose_offer(
                state, policy, OfferInput(actor="ana", kind="goodwill", amount=amount, description="voucher"), NOW
            )
        except RuleViolation as err:
            assert err.field == "amount"
            assert limit is not None and committed_total(state) + Decimal(amount) > limit
            continue
        if reply is not None:
            state, _ = R.record_offer_response(
                state, policy, OfferResponseInput(actor="ana", offer_id=state.offers[-1].id, answer=reply), NOW
            )
        assert limit is None or committed_total(state) <= limit
