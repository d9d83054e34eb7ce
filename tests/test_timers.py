"""SLA breaches and follow-up check-ins on the time-skipping test server: hours pass in milliseconds."""

from __future__ import annotations

import json
from datetime import timedelta

from escalation.client import case_state
from escalation.domain.models import AcknowledgeInput, FollowUpResponseInput, ResolveInput, TimelineEntry
from tests.cases import case_input, eventually, owned


def sent(settings, kind: str) -> list[dict]:
    path = settings.data_dir / "outbox.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [m for m in map(json.loads, lines) if m["kind"] == kind]


async def test_breach_at_every_tier_climbs_to_manager_then_alerts_the_escalation_contact(
    skip_env, skip_cases, settings
):
    handle = await skip_cases(case_input())
    state = await owned(handle)
    opened = state.opened_at
    # Acknowledge targets of the standard policy: agent 5m, team lead 10m, supervisor 15m, manager 30m.
    for minutes, tier in ((5, "team_lead"), (10, "supervisor"), (15, "manager")):
        await skip_env.sleep(timedelta(minutes=minutes, seconds=1))
        state = await owned(handle)
        assert state.tier == tier
        climb = [e for e in state.timeline if e.kind == "escalated"][-1]
        assert climb.detail["reason"] == "sla_breach" and climb.detail["to_tier"] == tier
        assert climb.actor == "system"
    breaches = [e for e in state.timeline if e.kind == "breached"]
    assert [e.tier for e in breaches] == ["agent", "team_lead", "supervisor"]
    # Each breach fires at its due instant (one timer, not a poll): only task latency after it.
    for breach, (start, minutes) in zip(
        breaches, ((opened, 5), (breaches[0].at, 10), (breaches[1].at, 15)), strict=True
    ):
        assert timedelta(0) <= breach.at - start - timedelta(minutes=minutes) < timedelta(seconds=1)
        assert breach.detail["due_at"] <= breach.at.isoformat()

    await skip_env.sleep(timedelta(minutes=30, seconds=1))

    async def alerted():
        s = await case_state(handle)
        return s if s.breaches == 4 and sent(settings, "top_breach") else None

    state = await eventually(alerted)
    assert state.tier == "manager" and state.escalations == 3
    alert = sent(settings, "top_breach")[0]
    assert alert["to"]["email"] == "head-of-service@example.com"
    assert "Charged twice" in alert["body"]  # the brief travels with it
    assert len(sent(settings, "owner_assigned")) == 4  # one brief per tier owner


async def test_acknowledging_stops_the_acknowledge_clock(skip_env, skip_cases, settings):
    handle = await skip_cases(case_input())
    await owned(handle)
    await handle.execute_update("acknowledge", AcknowledgeInput(actor="ana"), result_type=TimelineEntry)
    await skip_env.sleep(timedelta(minutes=30))
    state = await case_state(handle)
    assert state.tier == "agent" and state.breaches == 0
    # The resolve target (1h at agent) still runs.
    await skip_env.sleep(timedelta(minutes=31))
    state = await owned(handle)
    assert state.tier == "team_lead"
    assert [e.detail.get("clock") for e in state.timeline if e.kind == "breached"] == ["resolve"]


async def resolved_and_checked_in(skip_env, skip_cases, settings):
    """A case resolved at the agent tier whose first check-in (+1 day) has gone out."""
    handle = await skip_cases(case_input())
    state = await owned(handle)
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=state.owner.id, resolution="Refund issued", root_cause="billing_error", kb_article="KB-7"),
        result_type=TimelineEntry,
    )
    await skip_env.sleep(timedelta(days=1, seconds=1))

    async def checked_in():
        s = await case_state(handle)
        return s if s.checkins[0].sent_at and sent(settings, "followup_checkin") else None

    await eventually(checked_in)
    return handle, state.owner.id


async def test_negative_followup_reopens_at_the_resolving_tier(skip_env, skip_cases, settings):
    handle, resolver = await resolved_and_checked_in(skip_env, skip_cases, settings)
    assert sent(settings, "followup_checkin")[0]["channel"] == "email"

    entry = await handle.execute_update(
        "followup_response",
        FollowUpResponseInput(answer="not_fixed", comment="Charged twice again"),
        result_type=TimelineEntry,
    )
    assert entry.kind == "followup_answered" and entry.detail["answer"] == "not_fixed"
    state = await owned(handle)
    reopened = state.timeline[entry.seq]  # the entry right after the answer
    assert reopened.kind == "reopened" and reopened.detail["reason"] == "followup_negative"
    assert state.status == "open" and state.tier == "agent" and state.reopens == 1
    assert state.owner.id == resolver  # back to whoever resolved it
    assert state.checkins[1].cancelled

    # Second resolution; no answers this time: the case completes after the last check-in's window.
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=resolver, resolution="Card mandate fixed", root_cause="process_failure", kb_missing=True),
        result_type=TimelineEntry,
    )
    result = await handle.result()  # time skips through both check-ins and the response window
    assert result.outcome == "resolved" and result.reopens == 1
    assert [f.answer for f in result.followups] == ["not_fixed", None, None]
    assert result.kb_missing is True
    assert len(sent(settings, "followup_checkin")) == 3


async def test_positive_followup_completes_the_case(skip_env, skip_cases, settings):
    handle, _ = await resolved_and_checked_in(skip_env, skip_cases, settings)
    await handle.execute_update("followup_response", FollowUpResponseInput(answer="fixed"), result_type=TimelineEntry)
    result = await handle.result()
    assert result.outcome == "resolved"
    assert [f.answer for f in result.followups] == ["fixed"]
