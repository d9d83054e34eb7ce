"""Insight on a real server with visibility: each case keeps its pattern dimensions searchable at every step, a new
case learns the customer's earlier cases (the brief flags a repeat escalation) and is scored with the trained
model, and a high-risk case starts with a team lead; without a model nothing breaks."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.client import Client

import escalation.service.worker as worker_module
from activities.insight import VISIBILITY_TIMEOUT, InsightActivities, LookBackRequest
from escalation.client import EscalationClient, open_case
from escalation.domain.models import Journey, Tier
from escalation.insight.risk import RiskModel
from escalation.search import CaseSummary
from tests.cases import case_input, eventually
from tests.conftest import make_settings
from tests.test_risk import small_model
from worker import build_worker

pytestmark = pytest.mark.server


def write_model(path: Path, weights: dict[str, float], intercept: float = -3.0) -> RiskModel:
    model = small_model(weights, intercept)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model.dumps(), encoding="utf-8")
    return model


async def listed(esc: EscalationClient, flt: dict[str, Any], case_id: str) -> CaseSummary:
    """The case as `flt` lists it, once visibility has caught up."""

    async def found() -> CaseSummary | None:
        return next((c for c in await esc.list_cases(flt | {"include_closed": True}) if c.case_id == case_id), None)

    return await eventually(found, timeout=30)


async def owned(case, tier: Tier):
    async def check():
        s = await case.state()
        return s if s.owner is not None and s.owner.tier == tier else None

    return await eventually(check, timeout=30)


async def test_the_pattern_dimensions_are_searchable_at_each_step(env, tmp_path):
    client, esc = env.client, EscalationClient(env.client)
    settings = make_settings(tmp_path, "dims")
    tag = uuid.uuid4().hex[:8]
    category = f"billing_{tag}"
    inp = case_input("fast", category=category, channel="chat")
    case = esc.case(inp.case_id)
    async with build_worker(client, settings):
        await open_case(client, inp, task_queue_name=settings.task_queue)
        s = await owned(case, Tier.AGENT)
        first = await listed(esc, {"category": category, "channel": "chat", "highest_tier": "agent"}, inp.case_id)
        assert (first.escalations, first.granted, first.root_causes, first.kb_missing) == (0, None, [], None)
        assert first.risk is None  # no model in this worker's data directory

        await case.escalate({"actor": s.owner.id, "reason": "needs_authority"})
        lead = (await owned(case, Tier.TEAM_LEAD)).owner.id
        await listed(esc, {"category": category, "highest_tier": "team_lead", "min_escalations": 1}, inp.case_id)

        await case.acknowledge({"actor": lead})
        offer = await case.propose_offer({"actor": lead, "kind": "goodwill", "amount": "40", "description": "voucher"})
        await case.record_offer_response({"actor": lead, "offer_id": offer.id, "answer": "accepted"})
        await case.resolve(
            {
                "actor": lead,
                "resolution": "refunded the double charge",
                "root_cause": "billing_error",
                "kb_missing": True,
            }
        )
        done = await listed(
            esc,
            {"category": category, "root_cause": "billing_error", "kb_missing": True, "first_contact_resolved": False},
            inp.case_id,
        )
        assert done.granted == 40.0 and done.root_causes == ["billing_error"]

        async def checkin_sent():
            return any(c.sent_at for c in (await case.state()).checkins)

        await eventually(checkin_sent, timeout=30)
        await case.followup_response({"answer": "not_fixed", "checkin": 1})
        await listed(esc, {"category": category, "followup": "not_fixed"}, inp.case_id)
        # A filter that does not match leaves it out.
        assert not [c for c in await esc.list_cases({"category": category, "channel": "email"}) if c]


async def test_a_repeat_escalation_is_flagged_and_a_risky_case_starts_with_a_team_lead(env, tmp_path):
    client, esc = env.client, EscalationClient(env.client)
    settings = make_settings(tmp_path, "journey")
    customer = {**case_input().customer.model_dump(mode="json"), "id": f"cust-{uuid.uuid4().hex[:8]}"}
    model = write_model(settings.risk_model_path, {"category=outage": 4.0, "word=router": 1.0})
    async with build_worker(client, settings):
        earlier = case_input("fast", customer=customer, category="billing")
        await open_case(client, earlier, task_queue_name=settings.task_queue)
        s = await owned(esc.case(earlier.case_id), Tier.AGENT)
        assert s.journey is not None and s.journey.count == 0  # the customer's first case
        assert s.risk is not None and s.risk < 0.5 and s.risk_model == model.version
        await esc.case(earlier.case_id).escalate({"actor": s.owner.id, "reason": "customer_request"})
        await listed(esc, {"customer": customer["id"], "highest_tier": "team_lead"}, earlier.case_id)

        # The same customer again, about an outage: the model scores it high, the policy starts it at a team lead.
        again = case_input("risky", customer=customer, category="outage", summary="Router down again since Monday")
        await open_case(client, again, task_queue_name=settings.task_queue)
        s = await owned(esc.case(again.case_id), Tier.TEAM_LEAD)
        assert s.stints[0].reason == "risk" and s.risk is not None and s.risk >= 0.5
        assert s.journey is not None and s.journey.count == 1
        (before,) = s.journey.cases
        assert (before.case_id, before.category, before.highest_tier) == (earlier.case_id, "billing", Tier.TEAM_LEAD)
        brief = await esc.case(again.case_id).brief()
        assert "REPEAT ESCALATION: 1 earlier case of this customer in 90 days" in brief.text
        assert f"{earlier.case_id} (" in brief.text and "reached team_lead" in brief.text
        opened = s.timeline[0].detail
        assert opened["earlier_cases"] == 1 and opened["risk"] == s.risk and opened["risk_model"] == model.version
        await listed(esc, {"customer": customer["id"], "min_risk": 0.5}, again.case_id)


async def test_a_broken_model_file_opens_cases_unscored(env, tmp_path):
    client, esc = env.client, EscalationClient(env.client)
    settings = make_settings(tmp_path, "nomodel")
    settings.risk_model_path.parent.mkdir(parents=True, exist_ok=True)
    settings.risk_model_path.write_text("{not json", encoding="utf-8")
    async with build_worker(client, settings):
        inp = case_input("risky")
        await open_case(client, inp, task_queue_name=settings.task_queue)
        s = await owned(esc.case(inp.case_id), Tier.AGENT)
        assert s.risk is None and "risk" not in s.timeline[0].detail


class _Hung:
    """A client whose visibility never answers."""

    def list_workflows(self, query: str, limit: int | None = None):
        async def never():
            await asyncio.Event().wait()
            yield None

        return never()


async def test_a_visibility_that_does_not_answer_costs_the_journey_only(tmp_path):
    path = tmp_path / "risk-model.json"
    model = write_model(path, {"category=outage": 4.0})
    insight = InsightActivities(cast(Client, _Hung()), path)
    inp = case_input("risky", category="outage")
    req = LookBackRequest.of(inp, "run-1", datetime.now(UTC))
    started = time.monotonic()
    look = await insight.look_back(req)
    assert time.monotonic() - started < VISIBILITY_TIMEOUT + 1
    assert look.journey is None and look.risk is not None and look.risk_model == model.version


async def test_a_look_back_that_fails_opens_the_case_all_the_same(env, tmp_path, monkeypatch):
    class Failing(InsightActivities):
        async def _journey(self, req: LookBackRequest) -> Journey | None:
            raise RuntimeError("visibility exploded")

    monkeypatch.setattr(worker_module, "InsightActivities", Failing)
    client, esc = env.client, EscalationClient(env.client)
    settings = make_settings(tmp_path, "lookfails")
    write_model(settings.risk_model_path, {"category=outage": 4.0})
    async with build_worker(client, settings):
        inp = case_input("risky", category="outage")
        await open_case(client, inp, task_queue_name=settings.task_queue)
        s = await owned(esc.case(inp.case_id), Tier.AGENT)  # not routed on a risk it never learned
        assert s.journey is None and s.risk is None and "earlier_cases" not in s.timeline[0].detail
