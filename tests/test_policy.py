"""Loading and validating policies, the roster and the start input (no Temporal server needed)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from escalation.domain.models import Customer, EscalationInput, EscalationReason, Outcome, Tier, parse_duration
from escalation.domain.policy import Policy, PolicyError, PolicyStore, load_policy_file
from escalation.domain.roster import Rep, Roster, RosterError, RosterStore, load_roster
from escalation.domain.rules import routing
from escalation.domain.rules.step import Assign

ROOT = Path(__file__).parent.parent
CONFIG_POLICIES = ROOT / "config" / "policies"
TEST_POLICIES = Path(__file__).parent / "policies"
A, TL, SV, MG = Tier.AGENT, Tier.TEAM_LEAD, Tier.SUPERVISOR, Tier.MANAGER


def tier(name: str, ack: Any = "5m", res: Any = "1h", limit: Any = "25") -> dict[str, Any]:
    return {"name": name, "acknowledge_within": ack, "resolve_within": res, "authority_limit": limit}


def policy_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "p",
        "version": "1",
        "tiers": [
            tier("agent", limit="25"),
            tier("team_lead", limit="100"),
            tier("supervisor", limit="500"),
            tier("manager", limit="5000"),
        ],
    }
    data.update(overrides)
    return data


def invalid(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Policy.model_validate(policy_data(**overrides))
    return str(info.value)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL_TOML = """
version = "{version}"
[[tiers]]
name = "agent"
acknowledge_within = "5m"
resolve_within = "1h"
"""


# ----- shipped policies


@pytest.mark.parametrize("name", ["default", "demo"])
def test_shipped_policies_load(name):
    policy = PolicyStore(CONFIG_POLICIES).get(name)
    assert policy.name == name
    assert policy.ladder == [A, TL, SV, MG]
    assert policy.threat_tier == SV
    assert policy.close_lost_tiers == [MG]
    assert policy.currency == "EUR"
    assert policy.customer_request_tier is None
    assert policy.skip_reasons == [EscalationReason.THREAT, EscalationReason.NEEDS_AUTHORITY]
    limits = [t.authority_limit for t in policy.tiers]
    assert limits == [Decimal("25"), Decimal("100"), Decimal("500"), Decimal("5000")]


def test_default_policy_values():
    policy = load_policy_file(CONFIG_POLICIES / "default.toml")
    assert policy.version == "2026-11-23.2"
    assert [(t.acknowledge_within, t.resolve_within) for t in policy.tiers] == [
        (timedelta(minutes=5), timedelta(hours=4)),
        (timedelta(minutes=10), timedelta(hours=8)),
        (timedelta(minutes=15), timedelta(days=1)),
        (timedelta(minutes=30), timedelta(days=2)),
    ]
    assert policy.followups.offsets == [timedelta(days=1), timedelta(days=7)]
    assert policy.followups.response_window == timedelta(days=2)
    assert policy.followups.stop_on_positive is True
    assert policy.escalation_contact == "head-of-service@example.com"
    assert policy.routing.accept_within == timedelta(minutes=2)
    assert (policy.callbacks.horizon, policy.callbacks.max_attempts) == (timedelta(days=30), 3)


def test_demo_policy_is_fast():
    policy = load_policy_file(CONFIG_POLICIES / "demo.toml")
    assert all(t.resolve_within <= timedelta(minutes=1) for t in policy.tiers)
    assert policy.followups.offsets == [timedelta(seconds=15), timedelta(seconds=30)]


def test_all_policies_validate():
    assert [p.name for p in PolicyStore(CONFIG_POLICIES).validate_all()] == ["default", "demo"]
    test_policies = [p.name for p in PolicyStore(TEST_POLICIES).validate_all()]
    assert {"fast", "standard"} <= set(test_policies)


# ----- ladder helpers


def test_ladder_helpers():
    policy = Policy.model_validate(policy_data())
    assert policy.first_tier == A and policy.top_tier == MG
    assert policy.above(A) == TL and policy.above(MG) is None
    assert policy.below(TL) == A and policy.below(A) is None
    assert policy.rank(SV) == 2
    assert policy.tier(TL).authority_limit == Decimal("100")
    with pytest.raises(KeyError):
        Policy.model_validate(policy_data(tiers=[tier("agent")], threat_tier="agent")).tier(MG)
    assert policy.lowest_tier_granting(Decimal("25")) == A
    assert policy.lowest_tier_granting(Decimal("25.01")) == TL
    assert policy.lowest_tier_granting(Decimal("5000")) == MG
    assert policy.lowest_tier_granting(Decimal("5000.01")) is None
    assert policy.may_close_as(Outcome.RESOLVED, A)
    assert policy.may_close_as(Outcome.CUSTOMER_LOST, MG) and not policy.may_close_as(Outcome.LEGAL, SV)


def test_partial_ladder():
    policy = Policy.model_validate(
        policy_data(tiers=[tier("agent"), tier("manager", limit=None)], threat_tier="manager")
    )
    assert policy.ladder == [A, MG]
    assert policy.above(A) == MG
    assert policy.lowest_tier_granting(Decimal("1000000")) == MG


# ----- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 1h 30m ", timedelta(minutes=90)),
        ("1H30M", timedelta(minutes=90)),
        ("PT15M", timedelta(minutes=15)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        (90, timedelta(seconds=90)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_durations(text, expected):
    policy = Policy.model_validate(policy_data(tiers=[tier("agent", ack=text, res="30d")], threat_tier="agent"))
    assert policy.tiers[0].acknowledge_within == expected


def test_parse_duration_passes_other_values_through():
    assert parse_duration("PT15M") == "PT15M"  # pydantic reads ISO 8601
    assert parse_duration(5) == timedelta(seconds=5)  # a number of seconds, bounded here
    assert parse_duration("1h30m") == timedelta(minutes=90)


@pytest.mark.parametrize(
    "bad,words",
    [
        ("99999999999999d", "at most 366 days"),
        (-5, "must be positive"),
        (float("nan"), "must be positive"),
        ("PT-5M", "must be positive"),
    ],
)
def test_durations_out_of_bounds_are_refused_in_words(bad, words):
    with pytest.raises(ValueError, match=words):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["15 minutes", "1m30", "soon", "-5m", "", "h"])
def test_bad_durations_are_rejected(bad):
    message = invalid(tiers=[tier("agent", ack=bad, res="1d")], threat_tier="agent")
    assert "acknowledge_within" in message


@pytest.mark.parametrize("zero", ["0s", "0m", 0])
def test_zero_durations_are_rejected(zero):
    message = invalid(tiers=[tier("agent", ack=zero, res="1h")], threat_tier="agent")
    assert "acknowledge_within must be longer than zero" in message


# ----- bad policies: the message names the field


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"tiers": [tier("team_lead"), tier("agent")], "threat_tier": "agent"}, ["tiers", "lowest first"]),
        ({"tiers": [tier("manager"), tier("supervisor", limit="5000")]}, ["tiers", "lowest first"]),
        ({"tiers": [tier("agent"), tier("agent")], "threat_tier": "agent"}, ["tiers", "appear once"]),
        ({"tiers": []}, ["tiers", "at least one tier"]),
        (
            {"tiers": [tier("agent", limit="100"), tier("team_lead", limit="25")], "threat_tier": "agent"},
            ["authority_limit", "shrink"],
        ),
        (
            {"tiers": [tier("agent", limit=None), tier("team_lead", limit="25")], "threat_tier": "agent"},
            ["authority_limit", "shrink"],
        ),
        ({"tiers": [tier("agent"), tier("manager")], "threat_tier": "supervisor"}, ["threat_tier", "supervisor"]),
        ({"customer_request_tier": "director"}, ["customer_request_tier"]),
        (
            {"tiers": [tier("agent"), tier("manager")], "threat_tier": "manager", "customer_request_tier": "team_lead"},
            ["customer_request_tier", "team_lead", "not on this policy's ladder"],
        ),
        (
            {"tiers": [tier("agent"), tier("manager")], "threat_tier": "manager", "close_lost_tiers": ["supervisor"]},
            ["close_lost_tiers", "supervisor"],
        ),
        (
            {"tiers": [tier("agent", ack="2h", res="1h")], "threat_tier": "agent"},
            ["acknowledge_within must not be longer than resolve_within"],
        ),
        ({"tiers": [tier("agent", ack="5m", res="0s")], "threat_tier": "agent"}, ["resolve_within"]),
        ({"tiers": [tier("agent", limit="-1")], "threat_tier": "agent"}, ["authority_limit", "negative"]),
        ({"tiers": [tier("agent", limit="1.234")], "threat_tier": "agent"}, ["authority_limit", "decimal places"]),
        ({"followups": {"offsets": ["7d", "1d"]}}, ["followups", "offsets must be strictly increasing"]),
        ({"followups": {"offsets": ["1d", "1d"]}}, ["followups", "offsets must be strictly increasing"]),
        ({"followups": {"offsets": ["1d", "24h"]}}, ["followups", "offsets must be strictly increasing"]),
        ({"followups": {"offsets": ["0s", "1d"]}}, ["followups", "offsets must be longer than zero"]),
        ({"followups": {"response_window": "0s"}}, ["followups", "response_window"]),
        ({"currency": "eur"}, ["currency"]),
        ({"currency": "EURO"}, ["currency"]),
        ({"skip_reasons": ["sometimes"]}, ["skip_reasons"]),
        ({"threat_tiers": "supervisor"}, ["threat_tiers", "Extra inputs are not permitted"]),
        ({"followups": {"offset": ["1d"]}}, ["followups.offset", "Extra inputs are not permitted"]),
        (
            {"tiers": [{**tier("agent"), "ack_within": "5m"}], "threat_tier": "agent"},
            ["ack_within", "Extra inputs are not permitted"],
        ),
        ({"tiers": [tier("director")]}, ["tiers.0.name"]),
        ({"version": None}, ["version"]),
    ],
)
def test_bad_policies_are_rejected_naming_the_field(overrides, words):
    message = invalid(**overrides)
    for word in words:
        assert word in message, (word, message)


def test_missing_tiers_is_rejected():
    data = policy_data()
    del data["tiers"]
    with pytest.raises(ValidationError) as info:
        Policy.model_validate(data)
    assert "tiers" in str(info.value) and "Field required" in str(info.value)


def test_policy_with_follow_ups_off():
    policy = Policy.model_validate(policy_data(followups={"offsets": []}))
    assert policy.followups.offsets == []


# ----- files and the store


def test_load_policy_file_takes_its_name_from_the_file(tmp_path):
    path = write(tmp_path, "gold", 'threat_tier = "agent"\n' + MINIMAL_TOML.format(version="g1"))
    policy = load_policy_file(path)
    assert policy.name == "gold" and policy.version == "g1" and policy.ladder == [A]


def test_name_must_match_the_file(tmp_path):
    path = write(tmp_path, "gold", 'name = "silver"\nthreat_tier = "agent"\n' + MINIMAL_TOML.format(version="1"))
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert "gold.toml" in str(info.value) and "silver" in str(info.value)


def test_invalid_file_error_names_file_and_field(tmp_path):
    path = write(tmp_path, "bad", 'threat_tier = "supervisor"\n' + MINIMAL_TOML.format(version="1"))
    with pytest.raises(PolicyError) as info:  # supervisor is not on this one-tier ladder
        load_policy_file(path)
    assert "bad.toml is invalid" in str(info.value) and "threat_tier" in str(info.value)


def test_threats_go_to_the_top_of_a_ladder_without_supervisor():
    short = Policy.model_validate(policy_data(tiers=[tier("agent"), tier("team_lead")]))
    assert short.threat_tier is None and short.threat_target == TL
    full = Policy.model_validate(policy_data())
    assert full.threat_target == SV


def test_toml_syntax_error(tmp_path):
    path = write(tmp_path, "broken", 'version = "1\n')
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert "broken.toml" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError):
        load_policy_file(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", ["gold", "../policies/default", "default.toml", "", ".hidden", "a/b"])
def test_unknown_policy_names_the_field_and_lists_known_ones(name):
    store = PolicyStore(CONFIG_POLICIES)
    with pytest.raises(PolicyError) as info:
        store.get(name)
    message = str(info.value)
    assert message.startswith("policy: ")
    assert "default, demo" in message


def test_unknown_policy_in_an_empty_folder(tmp_path):
    with pytest.raises(PolicyError) as info:
        PolicyStore(tmp_path).get("default")
    assert "(known: none)" in str(info.value)
    assert PolicyStore(tmp_path).names() == []


def test_store_picks_up_edits(tmp_path):
    body = 'threat_tier = "agent"\n' + MINIMAL_TOML
    path = write(tmp_path, "live", body.format(version="v1"))
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    store = PolicyStore(tmp_path)
    first = store.get("live")
    assert first.version == "v1"
    assert store.get("live") is first  # cached while the file is unchanged

    path.write_text(body.format(version="v2"), encoding="utf-8")
    os.utime(path, ns=(1_000_000_001_000_000_000, 1_000_000_001_000_000_000))
    second = store.get("live")
    assert second.version == "v2"
    assert store.get("live") is second

    # an edit that breaks the file is reported, not silently served from the cache
    path.write_text(body.format(version="v3").replace('"agent"', '"nobody"', 1), encoding="utf-8")
    os.utime(path, ns=(1_000_000_002_000_000_000, 1_000_000_002_000_000_000))
    with pytest.raises(PolicyError):
        store.get("live")

    # a new file shows up too
    write(tmp_path, "extra", body.format(version="x1"))
    assert store.names() == ["extra", "live"]
    assert store.get("extra").version == "x1"


# ----- roster

ROSTER = Roster.model_validate(
    {
        "reps": [
            {"id": "ana", "name": "Ana", "tier": "agent", "skills": ["billing", "orders"], "languages": ["en", "pt"]},
            {"id": "ben", "name": "Ben", "tier": "agent", "skills": ["billing", "mobile"], "languages": ["en", "de"]},
            {
                "id": "cy",
                "name": "Cy",
                "tier": "agent",
                "skills": ["billing", "orders", "mobile"],
                "languages": ["en"],
                "active": False,
            },
            {"id": "dee", "name": "Dee", "tier": "agent", "skills": ["billing"], "languages": ["en"]},
            {
                "id": "tara",
                "name": "Tara",
                "tier": "team_lead",
                "skills": ["billing", "orders", "mobile"],
                "languages": ["en", "de"],
                "authority_limit": "150",
            },
        ]
    }
)


def choose(
    case_id: str,
    tier_: Tier,
    skills: list[str],
    language: str,
    *,
    prefer: str | None = None,
    exclude: tuple[str, ...] = (),
    roster: Roster = ROSTER,
):
    """The routing choice with nobody's load known and everyone working (routing has its own tests)."""
    req = Assign(
        case_id=case_id, tier=tier_, stint=1, skills=skills, language=language, prefer=prefer, exclude=list(exclude)
    )
    return routing.choose(roster, req, None, datetime(2026, 3, 2, 9, tzinfo=UTC)).owner


def ids(reps: list[Rep]) -> list[str]:
    return [r.id for r in reps]


@pytest.mark.parametrize(
    ("tier_", "skills", "language", "expected"),
    [
        (A, ["billing"], "en", ["ana", "ben", "dee"]),
        (A, [], "en", ["ana", "ben", "dee"]),
        (A, ["billing", "orders"], "en", ["ana"]),
        (A, ["mobile"], "en", ["ben"]),  # cy has the skill but is inactive
        (A, ["billing"], "pt", ["ana"]),
        (A, ["billing"], "pt-BR", ["ana"]),
        (A, ["billing"], "de-AT", ["ben"]),
        (A, ["billing"], "fr", []),
        (A, ["legal"], "en", []),
        (TL, ["billing", "mobile"], "de", ["tara"]),
        (SV, ["billing"], "en", []),
    ],
)
def test_qualified(tier_, skills, language, expected):
    assert ids(ROSTER.qualified(tier_, skills, language)) == expected


def test_choose_prefers_the_named_rep_when_qualified():
    assert choose("C-1", A, ["billing"], "en", prefer="dee").id == "dee"
    assert choose("C-1", A, ["billing"], "en", prefer="ben").id == "ben"


def test_choose_ignores_a_preference_that_does_not_qualify():
    for prefer in ("cy", "tara", "nobody"):  # inactive, wrong tier, unknown
        chosen = choose("C-1", A, ["billing"], "en", prefer=prefer)
        assert chosen is not None and chosen.id in {"ana", "ben", "dee"}
    # preferred but lacking the skill / language
    assert choose("C-1", A, ["billing", "orders"], "en", prefer="ben").id == "ana"
    assert choose("C-1", A, ["billing"], "de", prefer="ana").id == "ben"


def test_choose_excludes():
    assert choose("C-1", A, ["billing"], "en", exclude=("ana", "ben")).id == "dee"
    assert choose("C-1", A, ["billing"], "en", prefer="ana", exclude=("ana",)).id != "ana"
    assert choose("C-1", A, ["billing"], "en", exclude=("ana", "ben", "dee")) is None
    assert choose("C-1", A, ["legal"], "en") is None
    assert choose("C-1", SV, [], "en") is None


def test_choose_is_stable_per_case_and_spreads_cases():
    picks = [choose(f"C-{i}", A, ["billing"], "en").id for i in range(60)]
    assert picks == [choose(f"C-{i}", A, ["billing"], "en").id for i in range(60)]
    assert set(picks) == {"ana", "ben", "dee"}
    assert "cy" not in picks


def test_rep_owner_carries_the_authority_limit():
    owner = ROSTER.owner(ROSTER.reps[-1])
    assert (owner.id, owner.tier, owner.authority_limit) == ("tara", TL, Decimal("150"))
    assert ROSTER.owner(ROSTER.reps[0]).authority_limit is None


def test_duplicate_rep_ids_are_rejected(tmp_path):
    rep = {"id": "ana", "name": "Ana", "tier": "agent"}
    with pytest.raises(ValidationError) as info:
        Roster.model_validate({"reps": [rep, {**rep, "name": "Other Ana"}]})
    assert "id 'ana' appears twice" in str(info.value)
    path = tmp_path / "roster.toml"
    path.write_text(
        '[[reps]]\nid = "ana"\nname = "A"\ntier = "agent"\n[[reps]]\nid = "ana"\nname = "B"\ntier = "manager"\n',
        encoding="utf-8",
    )
    with pytest.raises(RosterError) as err:
        load_roster(path)
    assert "roster.toml" in str(err.value) and "appears twice" in str(err.value)


@pytest.mark.parametrize(
    "rep",
    [
        {"id": "ana", "name": "Ana", "tier": "boss"},
        {"id": "ana", "name": "Ana", "tier": "agent", "authority_limit": "-5"},
        {"id": "has space", "name": "Ana", "tier": "agent"},
        {"id": "ana", "name": "Ana", "tier": "agent", "skill": ["billing"]},
    ],
)
def test_bad_reps_are_rejected(rep):
    with pytest.raises(ValidationError):
        Roster.model_validate({"reps": [rep]})


@pytest.mark.parametrize("path", [ROOT / "config" / "roster.toml", Path(__file__).parent / "roster.toml"])
def test_shipped_rosters_load(path):
    roster = load_roster(path)
    assert {r.tier for r in roster.reps} == set(Tier)
    maya = next(r for r in roster.reps if r.id == "maya")
    assert maya.authority_limit == Decimal("10000")
    assert choose("C-1", TL, ["billing"], "de", roster=roster).id == "tara"


def test_roster_file_errors(tmp_path):
    with pytest.raises(RosterError):
        load_roster(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[reps]\n", encoding="utf-8")
    with pytest.raises(RosterError):
        load_roster(bad)


def test_roster_store_picks_up_edits(tmp_path):
    path = tmp_path / "roster.toml"
    path.write_text('[[reps]]\nid = "ana"\nname = "A"\ntier = "agent"\n', encoding="utf-8")
    os.utime(path, ns=(1_000_000_000_000_000_000,) * 2)
    store = RosterStore(path)
    first = store.get()
    assert ids(first.reps) == ["ana"] and store.get() is first
    path.write_text(path.read_text() + '[[reps]]\nid = "ben"\nname = "B"\ntier = "agent"\n', encoding="utf-8")
    os.utime(path, ns=(1_000_000_001_000_000_000,) * 2)
    assert ids(store.get().reps) == ["ana", "ben"]


# ----- the start input


def input_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "case_id": "C-1",
        "customer": {
            "id": "cust-1",
            "name": "Dana",
            "email": "dana@example.org",
            "time_zone": "Europe/Berlin",
            "lifetime_value": "4200.50",
        },
        "channel": "call",
        "category": "billing",
        "summary": "Charged twice",
        "desired_outcome": "Refund",
        "opened_by": "ana",
    }
    data.update(overrides)
    return data


def customer(**overrides: Any) -> dict[str, Any]:
    return {**input_data()["customer"], **overrides}


def test_valid_input_and_defaults():
    inp = EscalationInput.model_validate(input_data(summary="  Charged twice  "))
    assert inp.summary == "Charged twice"
    assert inp.policy == "default" and inp.severity == "medium" and inp.sentiment == "upset"
    assert inp.threat is False and inp.skills == []
    assert inp.customer.lifetime_value == Decimal("4200.50")
    assert inp.customer.language == "en" and inp.customer.preferred_channel == "email"
    assert inp.customer.contact_channels() == ["email"]
    both = Customer.model_validate(customer(phone="+49 30 123456", preferred_channel="sms"))
    assert both.contact_channels() == ["sms", "email", "call"]


def errors(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        EscalationInput.model_validate(data)
    return info.value.errors()


@pytest.mark.parametrize(
    ("data", "loc", "words"),
    [
        (input_data(customer=customer(time_zone="Mars/Olympus")), ("customer", "time_zone"), "IANA time zone"),
        (input_data(customer=customer(time_zone="Europe/Berlin/")), ("customer", "time_zone"), "IANA time zone"),
        (input_data(customer=customer(time_zone="../etc/passwd")), ("customer", "time_zone"), "IANA time zone"),
        (input_data(customer=customer(time_zone="")), ("customer", "time_zone"), "IANA time zone"),
        (input_data(customer=customer(time_zone="Europe")), ("customer", "time_zone"), "IANA time zone"),
        (input_data(customer=customer(email=None)), ("customer",), "customer.email is missing"),
        (input_data(customer=customer(preferred_channel="sms")), ("customer",), "customer.phone is missing"),
        (input_data(customer=customer(preferred_channel="call")), ("customer",), "customer.phone is missing"),
        (input_data(customer=customer(lifetime_value="-1")), ("customer", "lifetime_value"), "negative"),
        (input_data(customer=customer(lifetime_value="1.005")), ("customer", "lifetime_value"), "decimal places"),
        (input_data(customer=customer(lifetime_value="Infinity")), ("customer", "lifetime_value"), "finite"),
        (input_data(customer=customer(email="not-an-email")), ("customer", "email"), "not an email"),
        (input_data(customer=customer(phone="call me")), ("customer", "phone"), "not a phone"),
        (input_data(customer=customer(language="English")), ("customer", "language"), "pattern"),
        (input_data(customer=customer(lifetme_value="1")), ("customer", "lifetme_value"), "Extra inputs"),
        (input_data(priority="high"), ("priority",), "Extra inputs"),
        (input_data(case_id="has spaces"), ("case_id",), "pattern"),
        (input_data(case_id="-leading-dash"), ("case_id",), "pattern"),
        (input_data(summary="   "), ("summary",), "at least 1"),
        (input_data(channel="fax"), ("channel",), "Input should be"),
        (input_data(severity="urgent"), ("severity",), "Input should be"),
        (input_data(skills=["ok", "not ok"]), ("skills", 1), "pattern"),
        (input_data(policy="../default"), ("policy",), "pattern"),
    ],
)
def test_bad_input_is_rejected_at_the_field(data, loc, words):
    errs = errors(data)
    assert any(tuple(e["loc"]) == loc and words in e["msg"] for e in errs), errs


@pytest.mark.parametrize(
    "missing", ["case_id", "customer", "channel", "category", "summary", "desired_outcome", "opened_by"]
)
def test_missing_required_field(missing):
    data = input_data()
    del data[missing]
    errs = errors(data)
    assert any(e["loc"] == (missing,) and e["type"] == "missing" for e in errs), errs


@pytest.mark.parametrize("missing", ["id", "name"])
def test_missing_customer_field(missing):
    cust = customer()
    del cust[missing]
    errs = errors(input_data(customer=cust))
    assert any(e["loc"] == ("customer", missing) and e["type"] == "missing" for e in errs), errs


def test_sms_customer_with_a_phone_needs_no_email():
    inp = EscalationInput.model_validate(
        input_data(customer=customer(email=None, phone="+1 555 0100", preferred_channel="sms"))
    )
    assert inp.customer.contact_channels() == ["sms", "call"]


def test_input_round_trips_through_json():
    inp = EscalationInput.model_validate(input_data(threat=True, skills=["billing"]))
    assert EscalationInput.model_validate_json(inp.model_dump_json()) == inp


def test_time_zone_naming_a_tzdata_folder_is_a_validation_error(tmp_path, monkeypatch):
    """With the `tzdata` package installed (Windows, slim images, anything that pulls in pandas), ZoneInfo('Europe')
    raises IsADirectoryError rather than ZoneInfoNotFoundError. The validator must still answer with a
    ValidationError on customer.time_zone. The package layout is simulated here so the test is deterministic."""
    import sys

    folder = tmp_path / "tzdata" / "zoneinfo" / "Europe"
    folder.mkdir(parents=True)
    for init in (tmp_path / "tzdata", tmp_path / "tzdata" / "zoneinfo", folder):
        (init / "__init__.py").write_text("", encoding="utf-8")
    saved = {k: v for k, v in sys.modules.items() if k == "tzdata" or k.startswith("tzdata.")}
    for k in saved:
        monkeypatch.delitem(sys.modules, k)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        errs = errors(input_data(customer=customer(time_zone="Europe")))
    finally:
        for k in [k for k in sys.modules if k == "tzdata" or k.startswith("tzdata.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert any(e["loc"] == ("customer", "time_zone") for e in errs), errs
