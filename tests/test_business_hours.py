"""Business-hours clocks, waiting on the customer and quiet hours on the time-skipping test server.

The `office` test policy: the team works 09:00-18:00 New York time on weekdays, critical cases run
24x7, customers hear from us 08:00-20:00 on their own wall clock (the test customer is in Berlin).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from escalation.client import case_state, open_case
from escalation.constants import SA_SLA_DUE
from escalation.domain.models import (
    AcknowledgeInput,
    CustomerRepliedInput,
    ResolveInput,
    TimelineEntry,
    WaitOnCustomerInput,
)
from tests.cases import case_input, eventually, owned

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SECOND = timedelta(seconds=1)


def sent(settings, kind: str) -> list[dict]:
    path = settings.data_dir / "outbox.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [m for m in map(json.loads, lines) if m["kind"] == kind]


async def skip_to(env, weekday: int, at: time, zone: ZoneInfo = NY) -> datetime:
    """Move the test server's clock to the next `weekday` (Monday = 0) at `at` wall-clock time in `zone`."""
    now = await env.get_current_time()
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=(weekday - local.weekday()) % 7)
    target = datetime.combine(day, at, tzinfo=zone)
    if target <= local:
        target = datetime.combine(day + timedelta(days=7), at, tzinfo=zone)
    await env.sleep(target.astimezone(UTC) - now)
    return target


async def skip_until(env, instant: datetime) -> None:
    now = await env.get_current_time()
    if instant > now:
        await env.sleep(instant - now)


def close_to(actual: datetime | None, expected: datetime) -> bool:
    """Timers fire at their instant; allow only the task latency of a loaded machine."""
    return actual is not None and timedelta(0) <= actual - expected < 2 * SECOND


async def test_breach_on_friday_evening_lands_on_monday_morning(skip_env, skip_cases, settings):
    friday = await skip_to(skip_env, 4, time(17, 55))
    handle = await skip_cases(case_input("office"))
    state = await owned(handle)
    # 5 working minutes left on Friday, 5 more on Monday: 10 business minutes to acknowledge.
    monday = datetime.combine(friday.date() + timedelta(days=3), time(9, 5), tzinfo=NY)
    assert state.acknowledge_clock.due_at == monday.astimezone(UTC) + (state.opened_at - friday)
    assert state.sla_due_at == state.acknowledge_clock.due_at
    described = await handle.describe()
    assert described.search_attributes[SA_SLA_DUE][0] == state.sla_due_at

    await skip_until(skip_env, state.sla_due_at - SECOND)
    state = await case_state(handle)
    assert state.breaches == 0 and state.tier == "agent"  # the whole weekend passed without a breach

    await skip_env.sleep(3 * SECOND)
    state = await owned(handle)
    breach = next(e for e in state.timeline if e.kind == "breached")
    assert close_to(breach.at, state.stints[0].entered_at + (monday.astimezone(UTC) - friday.astimezone(UTC)))
    assert breach.at.astimezone(NY).strftime("%a %H:%M") == "Mon 09:05"
    assert state.tier == "team_lead"


async def test_waiting_on_the_customer_in_the_final_minutes_prevents_the_breach(skip_env, skip_cases, settings):
    await skip_to(skip_env, 1, time(10, 0))  # a Tuesday morning
    handle = await skip_cases(case_input("office"))
    await owned(handle)
    await handle.execute_update("acknowledge", AcknowledgeInput(actor="ana"), result_type=TimelineEntry)
    state = await case_state(handle)
    due = state.resolve_clock.due_at  # 1 business hour

    await skip_until(skip_env, due - timedelta(minutes=5))
    entry = await handle.execute_update(
        "wait_on_customer",
        WaitOnCustomerInput(actor="ana", reason="needs a photo of the invoice"),
        result_type=TimelineEntry,
    )
    assert entry.kind == "waiting_on_customer"
    state = await case_state(handle)
    assert state.waiting is not None and state.resolve_clock.paused_at is not None
    assert timedelta(minutes=4) < state.resolve_clock.remaining <= timedelta(minutes=5)
    assert state.sla_due_at is None  # nothing can breach while we wait on the customer

    await skip_env.sleep(timedelta(hours=3))  # long past the old due instant
    state = await case_state(handle)
    assert state.breaches == 0 and state.tier == "agent"

    replied = await handle.execute_update(
        "customer_replied",
        CustomerRepliedInput(actor="ana", channel="email", note="photo attached"),
        result_type=TimelineEntry,
    )
    state = await case_state(handle)
    assert state.waiting is None and state.pauses[0].ended_by == "ana"
    pause = state.pauses[0]
    # The due instant moved by exactly the business time the wait covered.
    assert state.resolve_clock.due_at - due == pause.business_paused
    assert timedelta(hours=3) <= pause.business_paused < timedelta(hours=3, seconds=2)
    assert state.paused_total == pause.ended_at - pause.started_at
    assert replied.detail["paused_business_seconds"] == pause.business_paused.total_seconds()
    assert state.sla_due_at == state.resolve_clock.due_at

    await skip_until(skip_env, state.resolve_clock.due_at + 2 * SECOND)
    state = await owned(handle)
    assert state.breaches == 1 and state.tier == "team_lead"
    breach = next(e for e in state.timeline if e.kind == "breached")
    assert breach.detail["clock"] == "resolve"
    assert close_to(breach.at, pause.ended_at + (due - pause.started_at))  # the 5 minutes it had left


async def test_wait_without_a_reply_resumes_at_the_policy_limit(skip_env, skip_cases, settings):
    await skip_to(skip_env, 0, time(9, 30))  # Monday
    handle = await skip_cases(case_input("office"))
    await owned(handle)
    await handle.execute_update("acknowledge", AcknowledgeInput(actor="ana"), result_type=TimelineEntry)
    await handle.execute_update(
        "wait_on_customer",
        WaitOnCustomerInput(actor="ana", reason="awaiting bank details", limit="4h"),
        result_type=TimelineEntry,
    )
    state = await case_state(handle)
    until = state.waiting.until
    assert until - state.waiting.started_at == timedelta(hours=4)
    await skip_until(skip_env, until + SECOND)

    async def expired():
        s = await case_state(handle)
        return s if s.waiting is None else None

    state = await eventually(expired)
    entry = next(e for e in state.timeline if e.kind == "wait_expired")
    assert entry.detail["then"] == "resume" and close_to(entry.at, until)
    assert state.resolve_clock.running and state.pauses[0].ended_by == "system"


async def test_a_check_in_due_at_night_goes_out_when_the_customers_window_opens(skip_env, skip_cases, settings):
    await skip_to(skip_env, 0, time(15, 0))  # Monday 15:00 New York = 21:00 in Berlin
    handle = await skip_cases(case_input("office"))
    state = await owned(handle)
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=state.owner.id, resolution="Refund issued", root_cause="billing_error", kb_article="KB-7"),
        result_type=TimelineEntry,
    )
    state = await case_state(handle)
    resolved_at = state.resolutions[0].resolved_at
    # 10 hours after resolving is about 07:00 in Berlin, before the 08:00 window opens.
    nominal = (resolved_at + timedelta(hours=10)).astimezone(BERLIN)
    assert nominal.hour == 7
    due = state.checkins[0].due_at
    assert due.astimezone(BERLIN) == datetime.combine(nominal.date(), time(8, 0), tzinfo=BERLIN)
    assert state.followup_ends_at == due + timedelta(days=1)

    await skip_until(skip_env, resolved_at + timedelta(hours=10, minutes=1))
    assert not sent(settings, "followup_checkin")  # 07:01 in Berlin: nothing goes out at night
    await skip_until(skip_env, due + SECOND)

    async def delivered():
        return sent(settings, "followup_checkin")

    message = (await eventually(delivered))[0]
    assert message["to"]["email"] == "dana@example.org"
    state = await case_state(handle)
    assert close_to(state.checkins[0].sent_at, due)


async def test_owners_hear_of_a_weekend_case_on_monday_unless_it_is_critical(skip_env, skip_cases, settings):
    saturday = await skip_to(skip_env, 5, time(12, 0))
    quiet = await skip_cases(case_input("office"))
    urgent = await skip_cases(case_input("office", severity="critical"))
    quiet_state, urgent_state = await owned(quiet), await owned(urgent)

    # Critical: 24x7 clock and the owner is told at once.
    assert urgent_state.acknowledge_clock.due_at - urgent_state.opened_at == timedelta(minutes=10)

    async def urgent_told():
        return [m for m in sent(settings, "owner_assigned") if m["case_id"] == urgent_state.case_id]

    await eventually(urgent_told)

    # High: the clock waits for Monday 09:00 and so does the owner's notification.
    monday = datetime.combine(saturday.date() + timedelta(days=2), time(9, 0), tzinfo=NY)
    assert quiet_state.acknowledge_clock.due_at == monday.astimezone(UTC) + timedelta(minutes=10)
    assert quiet_state.owner is not None
    await skip_until(skip_env, monday.astimezone(UTC) - timedelta(minutes=1))
    assert not [m for m in sent(settings, "owner_assigned") if m["case_id"] == quiet_state.case_id]
    await skip_until(skip_env, monday.astimezone(UTC) + SECOND)

    async def quiet_told():
        return [m for m in sent(settings, "owner_assigned") if m["case_id"] == quiet_state.case_id]

    await eventually(quiet_told)


async def test_ops_list_what_breaches_next_and_waiting_cases_drop_out(env, worker, settings):
    """On the real dev server: `SlaDueAt` in visibility follows the state, and a case waiting on the
    customer has no SLA due."""
    handles = [await open_case(env.client, case_input(), task_queue_name=settings.task_queue) for _ in range(2)]
    states = [await owned(h) for h in handles]
    waiting = handles[1]
    await waiting.execute_update("acknowledge", AcknowledgeInput(actor="ana"), result_type=TimelineEntry)
    await waiting.execute_update(
        "wait_on_customer", WaitOnCustomerInput(actor="ana", reason="meter photo"), result_type=TimelineEntry
    )
    horizon = (max(s.opened_at for s in states) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def listed():
        due = [
            w.id
            async for w in env.client.list_workflows(f'SlaDueAt < "{horizon}" AND TaskQueue = "{settings.task_queue}"')
        ]
        return due if len(due) == 1 else None

    due = await eventually(listed)
    assert due == [handles[0].id]
    first = await case_state(handles[0])
    described = await handles[0].describe()
    assert described.search_attributes[SA_SLA_DUE][0] == first.sla_due_at == first.acknowledge_clock.due_at


async def test_owner_notices_held_for_monday_are_dropped_when_the_case_closes_first(skip_env, skip_cases, settings):
    """A weekend case climbs to the manager and is closed on Saturday: the owners' notices held for Monday
    morning no longer concern anyone, so the case completes when it closes and nobody hears on Monday."""
    await skip_to(skip_env, 5, time(12, 0))  # Saturday noon
    handle = await skip_cases(case_input("office"))
    await owned(handle)
    await handle.execute_update(
        "escalate", {"actor": "ana", "reason": "needs_authority", "target_tier": "manager"}, result_type=TimelineEntry
    )
    state = await owned(handle)
    assert state.tier == "manager" and state.owner is not None
    await handle.execute_update(
        "close",
        {"actor": state.owner.id, "outcome": "customer_lost", "reason": "cancelled the contract"},
        result_type=TimelineEntry,
    )
    closed_at = (await case_state(handle)).closed_at
    result = await handle.result()
    assert result.outcome == "customer_lost"
    history = [e async for e in handle.fetch_history_events()]
    finished = history[-1].event_time.ToDatetime(UTC)
    assert finished - closed_at < timedelta(minutes=1)  # not Monday 09:00
    assert not [m for m in sent(settings, "owner_assigned") if m["case_id"] == state.case_id]
