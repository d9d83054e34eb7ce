"""Business-time rules of a case, tested directly: waiting on the customer, calendars per tier and
severity, messages held until working hours or the customer's contact window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from escalation.constants import ERR_INVALID_STATE
from escalation.domain import rules as R
from escalation.domain.models import CustomerRepliedInput, Status, WaitOnCustomerInput
from escalation.domain.policy import Policy, PolicyError, load_policy_file
from escalation.domain.rules import Send
from tests.cases import case_input
from tests.test_rules import (
    MIN,
    OPENING,
    STANDARD,
    ack,
    answer,
    closing,
    esc,
    make_input,
    offer,
    owner,
    refused,
    resolution,
    sends,
)

OFFICE = load_policy_file(Path(__file__).parent / "policies" / "office.toml")
NY = ZoneInfo("America/New_York")
TUESDAY_10 = datetime(2026, 3, 3, 10, 0, tzinfo=NY).astimezone(UTC)
SATURDAY_NOON = datetime(2026, 3, 7, 12, 0, tzinfo=NY).astimezone(UTC)
HOUR = timedelta(hours=1)


def wait(reason: str = "needs a photo of the invoice", limit: str | None = None) -> WaitOnCustomerInput:
    return WaitOnCustomerInput(actor="ana", reason=reason, limit=limit)


def reply() -> CustomerRepliedInput:
    return CustomerRepliedInput(actor="ana", channel="email")


def office_input(**overrides):
    return case_input("office", **{"case_id": "C-2001", **overrides})


def office_case(at: datetime = TUESDAY_10, policy: Policy = OFFICE, **overrides):
    state, effects = R.open_case(office_input(**overrides), policy, at, OPENING)
    state, _ = R.owner_assigned(state, policy, 1, owner("agent"), at)
    return state, effects


def acked(at: datetime = TUESDAY_10, policy: Policy = OFFICE):
    state, _ = office_case(at, policy)
    state, _ = R.acknowledge(state, policy, ack(), at)
    return state


def office_with(**overrides) -> Policy:
    data = OFFICE.model_dump()
    data.update(overrides)
    return Policy.model_validate(data)


# ----- calendars chosen per tier and severity


def test_clocks_count_working_time_of_the_case_calendar():
    state, _ = office_case(SATURDAY_NOON)
    monday_9 = datetime(2026, 3, 9, 9, 0, tzinfo=NY).astimezone(UTC)
    assert state.acknowledge_clock.due_at == monday_9 + 10 * MIN
    assert state.resolve_clock.due_at == monday_9 + HOUR
    assert state.sla_due_at == state.acknowledge_clock.due_at


def test_severity_selects_the_24x7_calendar():
    state, _ = office_case(SATURDAY_NOON, severity="critical")
    assert state.acknowledge_clock.due_at == SATURDAY_NOON + 10 * MIN


def test_a_tier_may_name_its_own_calendar():
    data = OFFICE.model_dump()
    data["tiers"][1]["calendar"] = "always"  # team leads run 24x7
    policy = Policy.model_validate(data)
    state, _ = office_case(SATURDAY_NOON, policy)
    state, _ = R.escalate(state, policy, esc("complexity"), SATURDAY_NOON)
    assert state.tier == "team_lead" and state.acknowledge_clock.due_at == SATURDAY_NOON + 10 * MIN


def test_a_policy_without_calendars_runs_on_wall_clock_time():
    state, _ = R.open_case(make_input(), STANDARD, SATURDAY_NOON, OPENING)
    assert state.acknowledge_clock.due_at == SATURDAY_NOON + 5 * MIN


@pytest.mark.parametrize(
    "overrides,words",
    [
        ({"calendar": "night"}, ["calendar", "night", "always, office"]),
        ({"severity_calendars": {"low": "weekends"}}, ["severity_calendars.low", "weekends"]),
        ({"contact_hours": {"mon": ["20:00-08:00"]}}, ["contact_hours", "+1"]),
        ({"pause": {"limit": "0s"}}, ["limit", "longer than zero"]),
        ({"pause": {"on_limit": "escalate"}}, ["on_limit"]),
    ],
)
def test_bad_calendar_settings_in_a_policy_name_the_field(overrides, words):
    with pytest.raises(ValueError) as info:
        office_with(**overrides)
    for word in words:
        assert word in str(info.value)


def test_unknown_holiday_country_names_the_calendar(tmp_path):
    text = (Path(__file__).parent / "policies" / "office.toml").read_text()
    text = text.replace('name = "office"', 'name = "bad"').replace(
        "[calendars.always]", '[calendars.office.holidays]\ncountry = "XX"\n\n[calendars.always]'
    )
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy_file(tmp_path / "bad.toml")
    assert "calendars.office.holidays.country" in str(info.value) and "XX" in str(info.value)


def test_holidays_are_resolved_into_dates_when_the_policy_loads(tmp_path):
    text = (Path(__file__).parent / "policies" / "office.toml").read_text()
    text = text.replace('name = "office"', 'name = "holidays"').replace(
        "[calendars.always]", '[calendars.office.holidays]\ncountry = "US"\nsubdivision = "NY"\n\n[calendars.always]'
    )
    (tmp_path / "holidays.toml").write_text(text)
    policy = load_policy_file(tmp_path / "holidays.toml")
    year = datetime.now(UTC).year
    dates = policy.calendars["office"].holiday_dates
    assert any(d.year == year and d.month == 12 and d.day == 25 for d in dates)
    assert any(d.year == year + 3 for d in dates)  # a few years ahead for long-running cases


# ----- waiting on the customer


def test_waiting_stops_only_the_resolve_clock_and_keeps_its_business_time():
    state, _ = office_case()
    later = TUESDAY_10 + 5 * MIN
    state, effects = R.wait_on_customer(state, OFFICE, wait(), later)
    assert effects == [] and state.timeline[-1].kind == "waiting_on_customer"
    assert state.resolve_clock.paused_at == later and state.resolve_clock.remaining == 55 * MIN
    assert state.acknowledge_clock.running  # acknowledging is still owed
    assert state.sla_due_at == state.acknowledge_clock.due_at
    assert R.describe_deadline(state, state.sla_due_at) == "acknowledge target at agent"
    state, _ = R.acknowledge(state, OFFICE, ack(), later)
    assert state.sla_due_at is None and R.next_deadline(state) == state.waiting.until
    assert R.describe_deadline(state, state.waiting.until) == "waiting on the customer (needs a photo of the invoice)"


def test_reply_resumes_with_the_remaining_business_time():
    state = acked()
    paused_at = TUESDAY_10 + 50 * MIN
    state, _ = R.wait_on_customer(state, OFFICE, wait(), paused_at)
    # The customer answers Wednesday 10:00: 7h10m of working time passed (Tue 10:50-18:00 and Wed 9-10).
    answered = datetime(2026, 3, 4, 10, 0, tzinfo=NY).astimezone(UTC)
    state, _ = R.customer_replied(state, OFFICE, reply(), answered)
    assert state.resolve_clock.due_at == answered + 10 * MIN
    pause = state.pauses[0]
    assert pause.business_paused == timedelta(hours=8, minutes=10)
    assert pause.ended_at == answered and state.paused_total == answered - paused_at
    assert state.timeline[-1].kind == "customer_replied" and state.sla_due_at == answered + 10 * MIN


def test_waiting_refusals_change_nothing():
    state = acked()
    refused(R.customer_replied, state, OFFICE, reply(), TUESDAY_10, field="status", type=ERR_INVALID_STATE)
    waiting, _ = R.wait_on_customer(state, OFFICE, wait(), TUESDAY_10)
    refused(R.wait_on_customer, waiting, OFFICE, wait("again"), TUESDAY_10, field="status", type=ERR_INVALID_STATE)
    refused(R.wait_on_customer, state, OFFICE, wait(limit="3d"), TUESDAY_10, field="limit")  # policy allows 2d
    resolved, _ = R.resolve(state, OFFICE, resolution(), TUESDAY_10)
    refused(R.wait_on_customer, resolved, OFFICE, wait(), TUESDAY_10, field="status", type=ERR_INVALID_STATE)
    refused(R.customer_replied, resolved, OFFICE, reply(), TUESDAY_10, field="status", type=ERR_INVALID_STATE)


def test_a_shorter_limit_than_the_policy_is_honoured():
    state, _ = R.wait_on_customer(acked(), OFFICE, wait(limit="4h"), TUESDAY_10)
    assert state.waiting.until == TUESDAY_10 + 4 * HOUR


@pytest.mark.parametrize("then", ["resume", "close"])
def test_the_wait_limit_resumes_or_closes_as_the_policy_says(then):
    policy = office_with(pause={"limit": "1d", "on_limit": then})
    state = acked(policy=policy)
    state, _ = R.wait_on_customer(state, policy, wait(), TUESDAY_10 + 30 * MIN)
    until = state.waiting.until
    assert R.next_deadline(state) == until
    assert R.advance(state, policy, until - MIN)[0] == state  # nothing due yet
    state, _ = R.advance(state, policy, until)
    assert state.timeline[-1 if then == "resume" else -2].detail["then"] == then
    if then == "resume":
        assert state.status == Status.OPEN and state.waiting is None
        # Wednesday 10:30 + the 30 working minutes left.
        assert state.resolve_clock.due_at == until + 30 * MIN
    else:
        assert state.status == Status.CLOSED and state.outcome == "customer_lost"
        assert "no reply from the customer" in state.close_reason


def test_escalating_resolving_or_closing_ends_the_wait():
    state, _ = R.wait_on_customer(acked(), OFFICE, wait(), TUESDAY_10)
    up, _ = R.escalate(state, OFFICE, esc("complexity"), TUESDAY_10 + HOUR)
    assert up.waiting is None and up.pauses[0].ended_by == "system" and up.resolve_clock.running
    fixed, _ = R.resolve(state, OFFICE, resolution(), TUESDAY_10 + HOUR)
    assert fixed.waiting is None and fixed.resolve_clock.stopped_at == TUESDAY_10 + HOUR
    top, _ = R.escalate(state, OFFICE, esc("needs_authority", "manager"), TUESDAY_10)
    top, _ = R.wait_on_customer(top, OFFICE, wait(), TUESDAY_10)
    gone, _ = R.close(top, OFFICE, closing("customer_lost"), TUESDAY_10 + HOUR)
    assert gone.waiting is None and gone.paused_total == HOUR


# ----- who hears what, when


def held(effects) -> dict[str, datetime | None]:
    return {s.message.kind.value: s.not_before for s in sends(effects)}


def test_owner_notification_waits_for_working_hours_unless_urgent():
    state, _ = R.open_case(office_input(), OFFICE, SATURDAY_NOON, OPENING)
    _, effects = R.owner_assigned(state, OFFICE, 1, owner("agent"), SATURDAY_NOON)
    assert held(effects) == {"owner_assigned": datetime(2026, 3, 9, 9, 0, tzinfo=NY).astimezone(UTC)}
    state, _ = R.open_case(office_input(severity="critical"), OFFICE, SATURDAY_NOON, OPENING)
    _, effects = R.owner_assigned(state, OFFICE, 1, owner("agent"), SATURDAY_NOON)
    assert held(effects) == {"owner_assigned": None}


def test_customer_messages_wait_for_the_contact_window_in_the_customers_zone():
    # 21:30 in Berlin on a Tuesday: an offer confirmation goes out at 08:00 Berlin time.
    late = datetime(2026, 3, 3, 21, 30, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    state, _ = office_case(late, severity="critical")
    state, _ = R.propose_offer(state, OFFICE, offer("20", currency="USD"), late)
    state, effects = R.record_offer_response(state, OFFICE, answer(state.offers[0].id), late)
    to_customer = [s for s in sends(effects) if s.message.to.kind == "customer"]
    assert to_customer and all(isinstance(s, Send) for s in to_customer)
    assert to_customer[0].not_before == datetime(2026, 3, 4, 8, 0, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)


def test_check_ins_in_one_closed_stretch_collapse_into_one():
    policy = office_with(followups={"offsets": ["1h", "2h", "1d"], "response_window": "1d"})
    late = datetime(2026, 3, 3, 22, 0, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    state, _ = office_case(late, policy)
    state, _ = R.resolve(state, policy, resolution(), late)
    berlin = [c.due_at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%a %H:%M") for c in state.checkins]
    assert berlin == ["Wed 08:00", "Thu 08:00"]
    assert [c.number for c in state.checkins] == [1, 2]


def test_an_owner_with_their_own_hours_hears_in_those_hours_not_the_tiers():
    """Auto-assign: a rep the roster gives a calendar hears when it has them working (a weekend shift hears
    on Saturday, an off-shift rep not before they start); a rep without one, when the tier's calendar opens."""
    from escalation.domain.roster import Roster
    from escalation.domain.rules.routing import choose

    roster = Roster.model_validate(
        {
            "calendars": {
                "weekend": {"time_zone": "America/New_York", "hours": {"sat": ["08:00-20:00"]}},
                "late": {"time_zone": "America/New_York", "hours": {"mon": ["13:00-21:00"]}},
            },
            "reps": [
                {
                    "id": "wes",
                    "name": "Wes",
                    "tier": "agent",
                    "skills": ["billing"],
                    "email": "wes@example.com",
                    "calendar": "weekend",
                },
                {
                    "id": "lia",
                    "name": "Lia",
                    "tier": "agent",
                    "skills": ["billing"],
                    "email": "lia@example.com",
                    "calendar": "late",
                },
                {"id": "ana", "name": "Ana", "tier": "agent", "skills": ["billing"], "email": "ana@example.com"},
            ],
        }
    )

    def told(rep_id: str, at: datetime, **overrides) -> datetime | None:
        state, effects = R.open_case(office_input(**overrides), OFFICE, at, OPENING)
        [req] = [e for e in effects if isinstance(e, R.Assign)]
        req = req.model_copy(update={"exclude": [r.id for r in roster.reps if r.id != rep_id]})
        routed = choose(roster, req, {}, at)
        assert routed.owner.id == rep_id
        state, effects = R.owner_found(state, OFFICE, routed, at)
        assert state.owner.id == rep_id  # the office policy assigns at once
        return held(effects)["owner_assigned"]

    monday_9 = datetime(2026, 3, 9, 9, 0, tzinfo=NY).astimezone(UTC)
    assert told("wes", SATURDAY_NOON) is None  # working his weekend shift: at once
    assert told("lia", SATURDAY_NOON) == datetime(2026, 3, 9, 13, 0, tzinfo=NY).astimezone(UTC)  # her start
    assert told("lia", monday_9) == datetime(2026, 3, 9, 13, 0, tzinfo=NY).astimezone(UTC)  # not at 09:00
    assert told("ana", SATURDAY_NOON) == monday_9  # no calendar of her own: the tier's
    assert told("lia", SATURDAY_NOON, severity="critical") is None  # urgent: at any hour
    # Cases routed before rep calendars counted replay as they ran: the tier's hours.
    state, effects = R.open_case(office_input(), OFFICE, SATURDAY_NOON, OPENING)
    [req] = [e for e in effects if isinstance(e, R.Assign)]
    routed = choose(roster, req.model_copy(update={"exclude": ["lia", "ana"]}), {}, SATURDAY_NOON)
    _, effects = R.owner_found(state, OFFICE, routed, SATURDAY_NOON, own_hours=False)
    assert held(effects)["owner_assigned"] == monday_9


def test_a_held_notice_goes_stale_when_the_case_closes_or_moves_on():
    state, _ = R.open_case(office_input(), OFFICE, SATURDAY_NOON, OPENING)
    assigned, effects = R.owner_assigned(state, OFFICE, 1, owner("agent"), SATURDAY_NOON)
    [notice] = [s.message for s in sends(effects)]
    assert notice.kind == "owner_assigned" and not R.message_obsolete(assigned, notice)
    up, _ = R.escalate(assigned, OFFICE, esc("complexity"), SATURDAY_NOON + MIN)
    assert R.message_obsolete(up, notice)  # the case is no longer theirs
    resolved, effects = R.resolve(assigned, OFFICE, resolution(), SATURDAY_NOON + MIN)
    assert R.message_obsolete(resolved, notice)
    # A team's "waiting for an agent" is stale once someone holds the case or it left the tier.
    _, effects = R.owner_assigned(state, OFFICE, 1, None, SATURDAY_NOON)
    [waiting] = [s.message for s in sends(effects)]
    assert waiting.kind == "unassigned" and not R.message_obsolete(state, waiting)
    assert R.message_obsolete(assigned, waiting) and R.message_obsolete(up, waiting)
    # What was promised to the customer still goes.
    offered, _ = R.propose_offer(assigned, OFFICE, offer("20", currency="USD"), SATURDAY_NOON)
    confirmed, effects = R.record_offer_response(offered, OFFICE, answer("offer-1"), SATURDAY_NOON)
    [confirmation] = [s.message for s in sends(effects)]
    closed, _ = R.resolve(confirmed, OFFICE, resolution(), SATURDAY_NOON)
    assert not R.message_obsolete(closed, confirmation)
