"""The README's pattern queries ("Pattern queries"), run as written with the `temporal` CLI against a dev server of
this module's own, where cases stand in each: each query must run and find exactly the cases it names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from escalation.client import EscalationClient, open_case
from escalation.domain.models import Tier
from tests.cases import case_input, eventually
from tests.conftest import dev_server, make_settings
from tests.test_insight_cases import owned, write_model
from tests.test_saved_views import each_finds_exactly, saved_views
from worker import build_worker

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- pattern-queries -->"


def test_the_readme_names_the_pattern_queries():
    queries = saved_views((ROOT / "README.md").read_text(encoding="utf-8"), MARKER)
    assert set(queries) == {
        "escalated for billing errors without a kb article this week",
        "reached a manager",
        "resolved at first contact",
        "not fixed, says the customer",
        "came in by chat and climbed twice or more",
        "more than 100 granted",
        "high escalation risk, still open",
    }


@pytest_asyncio.fixture(scope="module")
async def patterns_env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await dev_server()
    yield environment
    await environment.shutdown()


async def test_each_pattern_query_finds_exactly_its_cases(patterns_env, tmp_path):
    client = patterns_env.client
    esc = EscalationClient(client)
    settings = make_settings(tmp_path, "patterns")
    write_model(settings.risk_model_path, {"category=outage": 5.0})  # outages score ~0.88, the rest ~0.05
    tag = uuid.uuid4().hex[:6]
    names = ("billing", "manager", "first", "notfixed", "chat", "risky")
    ids = {name: f"C-{name}-{tag}" for name in names}

    async def opened(name: str, **overrides):
        await open_case(client, case_input("fast", case_id=ids[name], **overrides), task_queue_name=settings.task_queue)
        case = esc.case(ids[name])
        return case, (await owned(case, Tier.SUPERVISOR if overrides.get("threat") else Tier.AGENT)).owner.id

    async def climb(case, actor: str, to: Tier, **extra) -> str:
        await case.escalate({"actor": actor, "reason": "needs_authority", "target_tier": to.value} | extra)
        owner = (await owned(case, to)).owner.id
        await case.acknowledge({"actor": owner})
        return owner

    async with build_worker(client, settings):
        # Billing error, climbed once, resolved without a KB article.
        case, agent = await opened("billing")
        lead = await climb(case, agent, Tier.TEAM_LEAD)
        await case.resolve({"actor": lead, "resolution": "refund", "root_cause": "billing_error", "kb_missing": True})
        # Straight to a manager.
        case, agent = await opened("manager", category="account")
        await climb(case, agent, Tier.MANAGER)
        # Resolved where it opened, with an article.
        case, agent = await opened("first", category="device")
        await case.resolve({"actor": agent, "resolution": "reset", "root_cause": "other", "kb_article": "KB-9"})
        # Resolved, then "not fixed" (it reopens).
        case, agent = await opened("notfixed", category="delivery")
        await case.resolve({"actor": agent, "resolution": "resent", "root_cause": "delivery", "kb_article": "KB-3"})

        async def checkin_sent(case=case):
            return any(c.sent_at for c in (await case.state()).checkins)

        await eventually(checkin_sent, timeout=30)
        await case.followup_response({"answer": "not_fixed", "checkin": 1})
        # By chat, climbed twice, 150 granted at the supervisor.
        case, agent = await opened("chat", channel="chat", category="cancellation")
        lead = await climb(case, agent, Tier.TEAM_LEAD)
        sup = await climb(case, lead, Tier.SUPERVISOR)
        offer = await case.propose_offer(
            {"actor": sup, "kind": "compensation", "amount": "150", "description": "refund"}
        )
        await case.record_offer_response({"actor": sup, "offer_id": offer.id, "answer": "accepted"})
        # An outage: the model scores it high.
        await opened("risky", category="outage")

        expected = {
            "escalated for billing errors without a kb article this week": {ids["billing"]},
            "reached a manager": {ids["manager"]},
            "resolved at first contact": {ids["first"]},
            "not fixed, says the customer": {ids["notfixed"]},
            "came in by chat and climbed twice or more": {ids["chat"]},
            "more than 100 granted": {ids["chat"]},
            "high escalation risk, still open": {ids["risky"]},
        }
        queries = saved_views((ROOT / "README.md").read_text(encoding="utf-8"), MARKER)
        await each_finds_exactly(queries, expected, client)
