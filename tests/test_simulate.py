"""`escalations simulate`: the seeded mix of cases (pure: the same scripts for a seed, steps the rules allow, the
signal the report and the risk model should find), and a small run through the real workflow whose events
file then holds every planned case's events."""

from __future__ import annotations

import ast
import asyncio
import json
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from escalation.cli import app
from escalation.config import Settings
from escalation.dev import mix, simulate
from escalation.dev.simulate import Slots
from escalation.domain.bands import value_band
from escalation.domain.models import EscalationReason, FollowUpAnswer, OfferKind, Outcome, RootCause, Sentiment
from escalation.domain.policy import load_policy_file
from tests.conftest import IDENTITY, make_settings
from tests.test_demo import uncapped_demo_roster
from worker import build_worker

CONFIG = Path(__file__).resolve().parent.parent / "config"
DEMO = load_policy_file(CONFIG / "policies" / "demo.toml")
FOLLOWUPS = 'offsets = ["15s", "30s"]\nresponse_window = "20s"'


def rate(scripts: list[mix.CaseScript]) -> float:
    return sum(s.escalations > 0 for s in scripts) / len(scripts)


# ----- the plan (pure)


def test_a_seed_gives_the_same_scripts_and_another_seed_others():
    assert mix.plan(80, 7, DEMO) == mix.plan(80, 7, DEMO)
    assert mix.plan(80, 7, DEMO) != mix.plan(80, 8, DEMO)
    # A longer run begins with the same cases as a shorter one of the same seed.
    assert mix.plan(120, 7, DEMO)[:80] == mix.plan(80, 7, DEMO)


@pytest.mark.parametrize(
    ("n", "prefix", "field"),
    [
        (0, "SIM", "n:"),
        (mix.MAX_CASES + 1, "SIM", "n:"),
        (5, "", "prefix:"),
        (5, "a b", "prefix:"),
        (5, "x" * 41, "prefix:"),
    ],
)
def test_a_plan_refuses_bad_sizes_and_prefixes_naming_the_field(n, prefix, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        mix.plan(n, 1, DEMO, prefix=prefix)


def _walk(script: mix.CaseScript) -> None:
    """Replay a script against the ladder as the rules see it: every step is one the case allows."""
    ladder = DEMO.ladder
    tier = DEMO.threat_target if script.opening.threat else ladder[0]
    committed = Decimal("0")
    status = "open"
    taken = False
    for action in script.actions:
        match action:
            case mix.Take():
                assert status == "open"
                taken = True
            case mix.LeaveToBreach():
                assert status == "open" and not taken and tier != ladder[-1]
                tier = ladder[ladder.index(tier) + 1]
            case mix.Escalate(to=to, reason=reason):
                assert (
                    status == "open"
                    and taken
                    and reason
                    in (
                        EscalationReason.CUSTOMER_REQUEST,
                        EscalationReason.NEEDS_AUTHORITY,
                        EscalationReason.COMPLEXITY,
                    )
                )
                assert to == ladder[ladder.index(tier) + 1]
                tier, taken = to, False
            case mix.Offer(amount=amount, kind=kind, accepted=accepted):
                assert status == "open" and taken
                limit = DEMO.tier(tier).authority_limit
                assert limit is not None and committed + amount <= limit, (script.case_id, tier, amount)
                assert amount > 0 or kind == OfferKind.GOODWILL
                committed += amount if accepted else 0
            case mix.Note():
                assert status == "open" and taken
            case mix.Resolve():
                assert status == "open" and taken
                status = "resolved"
            case mix.FollowUp(answer=answer):
                assert status == "resolved"
                status, taken = ("closed", False) if answer == FollowUpAnswer.FIXED else ("open", False)
            case mix.Close(outcome=outcome):
                assert status == "open" and taken and DEMO.may_close_as(outcome, tier)
                status = "closed"
    assert status in ("resolved", "closed") and status == script.ends


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**31 - 1), n=st.integers(min_value=1, max_value=60))
def test_every_script_is_one_the_rules_allow(seed, n):
    scripts = mix.plan(n, seed, DEMO, prefix="P")
    assert len({s.case_id for s in scripts}) == n
    assert all(s.case_id.startswith(f"P-{seed}-") for s in scripts)
    for script in scripts:
        _walk(script)
        assert script.opening.policy == "demo" and script.opening.opened_by in ("ana", "ben")
        assert script.opening.skills == [mix.CATEGORIES[script.opening.category].skill]


def test_the_mix_carries_the_signal_the_report_and_the_risk_model_should_find():
    scripts = mix.plan(2000, 11, DEMO)
    by_category = {c: [s for s in scripts if s.opening.category == c] for c in mix.CATEGORIES}
    assert all(len(cases) > 100 for cases in by_category.values())
    # Cancellations and outages climb far more often than account questions; 20 to 50 % climb overall.
    assert rate(by_category["cancellation"]) > rate(by_category["account"]) + 0.25
    assert rate(by_category["outage"]) > rate(by_category["delivery"]) + 0.15
    assert 0.2 < rate(scripts) < 0.5
    by_sentiment = {m: [s for s in scripts if s.opening.sentiment == m] for m in Sentiment}
    assert rate(by_sentiment[Sentiment.FURIOUS]) > rate(by_sentiment[Sentiment.CALM]) + 0.2
    # Words in the summary go with climbing.
    heated = [s for s in scripts if any(h in s.opening.summary for h in mix.HEATED)]
    assert rate(heated) > rate(scripts) + 0.3
    # Threats are rare and start higher up; customers are lost now and then, mostly over cancellations.
    threats = [s for s in scripts if s.opening.threat]
    assert 0.005 < len(threats) / len(scripts) < 0.05
    lost = [s for s in scripts if isinstance(s.actions[-1], mix.Close)]
    assert all(s.actions[-1].outcome == Outcome.CUSTOMER_LOST for s in lost)  # type: ignore[union-attr]
    assert Counter(s.opening.category for s in lost).most_common(1)[0][0] == "cancellation"
    # Policy gaps are mostly resolved without a knowledge-base article, product defects mostly with one.
    resolves = [a for s in scripts for a in s.actions if isinstance(a, mix.Resolve)]

    def missing(cause: RootCause) -> float:
        of = [r for r in resolves if r.root_cause == cause]
        return sum(r.kb_article is None for r in of) / len(of)

    assert missing(RootCause.POLICY_GAP) > 0.5 > 0.2 > missing(RootCause.PRODUCT_DEFECT)
    # Every value band, language and channel shows up; some customers come back, some follow-ups reopen.
    assert {value_band(s.opening.customer.lifetime_value) for s in scripts} == {
        "under_1k",
        "1k_10k",
        "10k_100k",
        "100k_plus",
    }
    assert {s.opening.customer.language for s in scripts} == {"en", "de"}
    assert {s.opening.channel.value for s in scripts} == {"call", "chat", "email", "sms"}
    per_customer = Counter(s.opening.customer.id for s in scripts)
    assert 0.1 < sum(n - 1 for n in per_customer.values()) / len(scripts) < 0.35
    actions = Counter(type(a).__name__ for s in scripts for a in s.actions)
    assert actions["LeaveToBreach"] > 50 and actions["Close"] > 20
    answers = Counter(a.answer for s in scripts for a in s.actions if isinstance(a, mix.FollowUp))
    assert answers[FollowUpAnswer.NOT_FIXED] > 50 and answers[FollowUpAnswer.FIXED] > 500
    reasons = Counter(a.reason for s in scripts for a in s.actions if isinstance(a, mix.Escalate))
    assert set(reasons) == {
        EscalationReason.CUSTOMER_REQUEST,
        EscalationReason.NEEDS_AUTHORITY,
        EscalationReason.COMPLEXITY,
    }


def test_offers_above_a_tier_below_go_with_needs_authority():
    """A case escalated for authority gets an offer the tier below could not have made."""
    scripts = mix.plan(500, 3, DEMO)
    checked = 0
    for s in scripts:
        for i, action in enumerate(s.actions):
            if isinstance(action, mix.Escalate) and action.reason == EscalationReason.NEEDS_AUTHORITY:
                after = [a for a in s.actions[i + 1 :] if isinstance(a, mix.Offer)]
                below = DEMO.tier(DEMO.ladder[DEMO.ladder.index(action.to) - 1]).authority_limit
                if after:
                    assert below is not None and after[0].amount > below
                    checked += 1
    assert checked > 10


def test_simulate_refuses_bad_options_before_connecting():
    runner = CliRunner()
    for args, words in (
        (["simulate", "0"], "cases"),
        (["simulate", "5", "--concurrency", "0"], "--concurrency"),
        (["simulate", "5", "--seed", "-1"], "--seed"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and words in result.output, result.output
    result = runner.invoke(app, ["simulate", "5", "--prefix", "no spaces"])
    assert result.exit_code == 3 and "prefix:" in result.output
    result = runner.invoke(app, ["simulate", "5", "--policy", "nope"])
    assert result.exit_code == 7 and "unknown policy 'nope'" in result.output


async def test_a_case_back_from_waiting_for_a_follow_up_gets_the_next_slot_before_new_cases():
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def case(name: str, returning: bool) -> None:
        await slots.acquire(returning=returning)
        order.append(name)
        await slots.release()

    new = [asyncio.create_task(case(f"new-{i}", False)) for i in range(3)]
    await asyncio.sleep(0)
    back = asyncio.create_task(case("back", True))
    await asyncio.sleep(0)
    await slots.release()
    await asyncio.gather(*new, back)
    assert order == ["back", "new-0", "new-1", "new-2"]
    assert slots.free == 1


# ----- through the real workflow


@pytest.fixture
def worker_logs_to_stderr():
    """The runner swaps sys.stdout while a command runs; the in-process worker's logs keep their own stream."""
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.configure(**saved)


@pytest_asyncio.fixture
async def demo_worker(env, tmp_path, monkeypatch):
    """A worker with the demo policies and roster (its caps on open cases left out: other tests' cases on this
    shared server are held by reps of the same names), writing the events file under tmp_path."""
    roster = uncapped_demo_roster(tmp_path)
    # The demo policy with its follow-up check-ins sooner, so the run takes half a minute instead of one.
    policies = tmp_path / "policies"
    policies.mkdir()
    demo = (CONFIG / "policies" / "demo.toml").read_text()
    assert FOLLOWUPS in demo
    (policies / "demo.toml").write_text(demo.replace(FOLLOWUPS, 'offsets = ["4s", "12s"]\nresponse_window = "15s"'))
    settings = Settings(
        task_queue=f"simulate-test-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        policy_dir=policies,
        roster_path=roster,
        identity=IDENTITY,
    )
    monkeypatch.setenv("ESCALATIONS_ROSTER", str(roster))
    async with build_worker(env.client, settings):
        yield settings


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_small_simulation_drives_every_case_and_each_leaves_its_events(env, demo_worker, worker_logs_to_stderr):
    settings = demo_worker
    prefix = f"T{uuid.uuid4().hex[:6]}"
    # Seed 3227's twelve cases have every kind of step: a breach, a threat, a reopen, a lost customer, all three
    # reasons, offers accepted and declined, and customers who come back.
    scripts = mix.plan(12, 3227, DEMO, prefix=prefix, openers=["ana", "ben"])
    steps = {type(a).__name__ for s in scripts for a in s.actions}
    assert steps == {"Take", "LeaveToBreach", "Note", "Escalate", "Offer", "Resolve", "FollowUp", "Close"}
    base = ["--address", env.client.service_client.config.target_host, "--namespace", env.client.namespace]
    args = [*base, "--task-queue", settings.task_queue, "--policy-dir", str(settings.policy_dir)]
    args += ["simulate", "12", "--seed", "3227", "--prefix", prefix, "--concurrency", "12", "--json"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["driven"] == 12 and summary["failed"] == 0 and summary["failures"] == []
    # The same seed again opens nothing twice.
    again = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert again.exit_code == 0 and json.loads(again.stdout) | {"seconds": 0} == summary | {
        "driven": 0,
        "skipped": 12,
        "seconds": 0,
    }

    def by_case() -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for event in _events(settings.events_path):
            found.setdefault(event["case_id"], []).append(event)
        return found

    closing = {s.case_id for s in scripts if s.ends == "closed"}

    def arrived(events: dict[str, list[dict]], script: mix.CaseScript) -> bool:
        kinds = Counter(e["type"] for e in events.get(script.case_id, []))
        resolves = sum(isinstance(a, mix.Resolve) for a in script.actions)
        return kinds["escalation.resolved"] >= resolves and (
            script.case_id not in closing or kinds["escalation.closed"] == 1
        )

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:  # an event is written by an activity just after the step that made it
        events = by_case()
        if all(arrived(events, s) for s in scripts):
            break
        assert loop.time() < deadline, [s.case_id for s in scripts if not arrived(events, s)]
        await asyncio.sleep(0.5)

    for script in scripts:
        case = events[script.case_id]
        kinds = Counter(e["type"] for e in case)
        opened = next(e for e in case if e["type"] == "escalation.opened")
        # Opened as planned (the same seed gives the same case).
        assert opened["detail"]["category"] == script.opening.category
        assert opened["detail"]["summary"] == script.opening.summary
        assert opened["detail"]["customer_id"] == script.opening.customer.id
        resolves = [a for a in script.actions if isinstance(a, mix.Resolve)]
        assert kinds["escalation.resolved"] == len(resolves), script.case_id
        assert [e["detail"]["root_cause"] for e in case if e["type"] == "escalation.resolved"] == [
            r.root_cause.value for r in resolves
        ]
        offers = [a for a in script.actions if isinstance(a, mix.Offer)]
        assert kinds["escalation.offer_accepted"] == sum(o.accepted for o in offers)
        assert kinds["escalation.offer_declined"] == sum(not o.accepted for o in offers)
        answers = [a.answer.value for a in script.actions if isinstance(a, mix.FollowUp)]
        assert [e["detail"]["answer"] for e in case if e["type"] == "escalation.followup_answered"] == answers
        assert kinds["escalation.reopened"] == answers.count("not_fixed")
        # Every planned climb happened (the system may have made some itself first, never fewer).
        assert kinds["escalation.escalated"] >= script.escalations, script.case_id
        if any(isinstance(a, mix.LeaveToBreach) for a in script.actions):
            assert any(e["detail"].get("reason") == "sla_breach" for e in case if e["type"] == "escalation.escalated")
        if script.case_id in closing:
            closed = next(e for e in case if e["type"] == "escalation.closed")
            last = script.actions[-1]
            expected = last.outcome.value if isinstance(last, mix.Close) else "resolved"
            assert closed["detail"]["outcome"] == expected


async def test_a_run_with_no_worker_on_the_task_queue_stops_at_once_and_says_so(env, monkeypatch):
    monkeypatch.setattr(simulate, "OPEN_WAIT", 1.0)
    base = ["--address", env.client.service_client.config.target_host, "--namespace", env.client.namespace]
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    args = [*base, "--task-queue", queue, "simulate", "3", "--prefix", f"N{uuid.uuid4().hex[:6]}", "--concurrency", "1"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 8, result.output
    assert f"is a worker running on task queue '{queue}'" in result.output
    assert "The run stopped after 0 of 3 cases." in result.output


def test_the_plan_is_pure():
    """mix.py imports the standard library and the domain only: no temporalio, no I/O."""
    tree = ast.parse((Path(mix.__file__)).read_text())
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    ours = {m for m in imported if m.split(".")[0] == "escalation"}
    assert ours and all(m.startswith("escalation.domain") for m in ours), ours
    assert not {m for m in imported if m.split(".")[0] in ("temporalio", "asyncio", "os", "pathlib", "time")}


def test_make_run_trains_the_risk_model_on_the_simulated_history(tmp_path):
    """After its simulation, `make run` fits the risk model where the worker reads it; too little history leaves
    the cases unscored, without an error."""
    from escalation.dev.simulate import _train_demo_model
    from escalation.insight.risk import RiskModel
    from tests.test_risk import generated_events
    from tests.test_themes import write_events

    settings = make_settings(tmp_path, "train")
    settings.data_dir.mkdir(parents=True)
    write_events(settings.events_path, generated_events(cases=40))
    _train_demo_model(settings)  # 40 cases: too few
    assert not settings.risk_model_path.exists()
    write_events(settings.events_path, generated_events())
    _train_demo_model(settings)
    assert RiskModel.load(settings.risk_model_path).metrics.roc_auc > 0.5
