"""Escalation policies: the ladder and its SLA targets, authority limits and follow-up schedule, as data.

A policy is a TOML file in the policies folder, named `<name>.toml`. The worker loads it when a case
opens (through an activity, so the values are recorded in the case's history) and the case keeps the
version it started with: editing a policy changes new cases only.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

import structlog
from pydantic import Field, ValidationError, field_validator, model_validator

from escalation.domain.calendar import ALWAYS, CalendarError, WorkingCalendar
from escalation.domain.models import (
    Contract,
    Duration,
    EscalationReason,
    Money,
    Outcome,
    Severity,
    Tier,
)
from escalation.domain.principal import COMMANDS
from escalation.domain.refusal import describe
from escalation.files import FileProblem, read_toml

# Years of public holidays resolved ahead when a policy loads; a case reloading after continue-as-new
# keeps its copy, so this bounds how long a case may run with exact holidays.
HOLIDAY_YEARS_AHEAD = 3

log = structlog.get_logger()


class TierPolicy(Contract):
    name: Tier
    acknowledge_within: Duration
    resolve_within: Duration
    # Most a case may be granted in total while owned at this tier; None means no limit.
    authority_limit: Money | None = None
    # Name of the calendar (in `calendars`) this tier's clocks count in; None: the policy's `calendar`.
    calendar: str | None = None

    @model_validator(mode="after")
    def _durations(self) -> TierPolicy:
        for field in ("acknowledge_within", "resolve_within"):
            if getattr(self, field) <= timedelta(0):
                raise ValueError(f"{field} must be longer than zero")
        if self.acknowledge_within > self.resolve_within:
            raise ValueError("acknowledge_within must not be longer than resolve_within")
        return self


class FollowUpPolicy(Contract):
    # Check-ins after a resolution, counted from the resolution.
    offsets: list[Duration] = Field(default_factory=lambda: [timedelta(days=1), timedelta(days=7)])
    # How long the last check-in waits for an answer before the case completes.
    response_window: Duration = timedelta(days=2)
    # A customer who says "fixed" is not asked again.
    stop_on_positive: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> FollowUpPolicy:
        if any(o <= timedelta(0) for o in self.offsets):
            raise ValueError("offsets must be longer than zero")
        if self.offsets != sorted(self.offsets) or len(set(self.offsets)) != len(self.offsets):
            raise ValueError("offsets must be strictly increasing")
        if self.response_window <= timedelta(0):
            raise ValueError("response_window must be longer than zero")
        return self


class PausePolicy(Contract):
    """Waiting on the customer stops the resolve clock; how long at most, and what happens then."""

    # Longest wait (wall-clock time: the customer's silence); None means no limit.
    limit: Duration | None = None
    # At the limit: "resume" the clock (the team picks the case up again) or "close" it as customer_lost.
    on_limit: Literal["resume", "close"] = "resume"

    @model_validator(mode="after")
    def _positive(self) -> PausePolicy:
        if self.limit is not None and self.limit <= timedelta(0):
            raise ValueError("limit must be longer than zero")
        return self


class RoutingPolicy(Contract):
    """How a case finds its owner at a tier."""

    # A rep offered the case must accept it within this (seconds to minutes), or the next qualified rep
    # is offered it; unset: the chosen rep owns the case at once (auto-assign).
    accept_within: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> RoutingPolicy:
        if self.accept_within is not None and self.accept_within <= timedelta(0):
            raise ValueError("accept_within must be longer than zero (or left out to assign at once)")
        return self


class CallbackPolicy(Contract):
    """Calls back to the customer: how far ahead, reminders, retries, and what follows when they fail."""

    # Furthest ahead a callback may be scheduled (Genesys allows 30 days).
    horizon: Duration = timedelta(days=30)
    # How long after its time a callback may still be made when the update does not say.
    window: Duration = timedelta(minutes=30)
    # The caller is reminded this long before; unset: no reminder.
    remind_before: Duration | None = timedelta(minutes=15)
    # After no answer or voicemail the next attempt is this much later (inside the contact window).
    retry_after: Duration = timedelta(hours=1)
    max_attempts: int = Field(default=3, ge=1)
    # Every attempt unanswered: the customer hears in writing, then the case goes a tier up or to
    # another rep at its tier.
    on_unreachable: Literal["escalate", "reassign"] = "escalate"

    @model_validator(mode="after")
    def _durations(self) -> CallbackPolicy:
        for field in ("horizon", "window", "retry_after"):
            if getattr(self, field) <= timedelta(0):
                raise ValueError(f"{field} must be longer than zero")
        if self.remind_before is not None and self.remind_before <= timedelta(0):
            raise ValueError("remind_before must be longer than zero (or left out for no reminder)")
        return self


class Permission(Contract):
    """Who may send one command on a case (services: the commands the roster gives them).

    The defaults: the owner and anyone at the case's tier or above may act; only the owner or a higher tier
    may resolve; reassigning needs a team lead or above."""

    # The case's owner (or the rep it is offered to) may, whatever their tier, unless below `at_least`.
    owner: bool = True
    # Other reps: at the case's tier or above ("case"), only above it ("above"), or nobody ("none").
    others: Literal["case", "above", "none"] = "case"
    # Nobody below this tier, the owner included.
    at_least: Tier | None = None


# The commands the table governs: opening, accepting (only the rep it is offered to) and the customer's
# follow-up answer (only the customer) have fixed rules.
GOVERNED = tuple(c for c in COMMANDS if c not in ("open", "accept", "followup_response"))
DEFAULT_PERMISSIONS: dict[str, Permission] = {
    "resolve": Permission(others="above"),
    "reassign": Permission(at_least=Tier.TEAM_LEAD),
    # Erasing a customer's details from a case (right to erasure): a supervisor or above, at the case's tier or above.
    "forget": Permission(at_least=Tier.SUPERVISOR),
}


class RiskRouting(Contract):
    """A new case whose escalation risk (scored at opening by the trained model) is at least `at_least` starts at
    `tier` instead of the first one: a team lead stands in early, so the case need not climb to a manager."""

    at_least: Annotated[float, Field(gt=0, le=1)]
    tier: Tier


class Policy(Contract):
    name: str
    version: str
    description: str = ""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    # The ladder, lowest tier first.
    tiers: list[TierPolicy]
    # Where threats go (a case opened with the threat flag starts there); unset: supervisor when the
    # ladder has one, else the top tier.
    threat_tier: Tier | None = None
    # Where "I want a manager" goes; None means the next tier up (team lead stands in for managers).
    customer_request_tier: Tier | None = None
    # Reasons that may jump over a tier when a target tier is named.
    skip_reasons: list[EscalationReason] = Field(
        default_factory=lambda: [EscalationReason.THREAT, EscalationReason.NEEDS_AUTHORITY]
    )
    # Tiers that may close a case as customer_lost or legal; None means the top tier only.
    close_lost_tiers: list[Tier] | None = None
    # Who hears about a breach at the top tier (the manager's own escalation contact).
    escalation_contact: str = "duty-manager@example.com"
    followups: FollowUpPolicy = Field(default_factory=FollowUpPolicy)
    # Business calendars by name; SLA clocks count only their working time.
    calendars: dict[str, WorkingCalendar] = Field(default_factory=dict)
    # The calendar for tiers that name none; None means 24x7 (wall-clock time).
    calendar: str | None = None
    # Severity picks the calendar before the tier does (e.g. critical cases run 24x7).
    severity_calendars: dict[Severity, str] = Field(default_factory=dict)
    # Severities whose owners are notified at any hour; the others hear about a case when their
    # calendar next opens.
    urgent_severities: list[Severity] = Field(default_factory=lambda: [Severity.CRITICAL])
    # When customers may be contacted (check-ins, callbacks), on the customer's own wall clock;
    # None means any time.
    contact_hours: dict[str, list[str]] | None = None
    pause: PausePolicy = Field(default_factory=PausePolicy)
    routing: RoutingPolicy = Field(default_factory=RoutingPolicy)
    callbacks: CallbackPolicy = Field(default_factory=CallbackPolicy)
    # Where high-risk cases start ([risk_routing] at_least = 0.7, tier = "team_lead"); unset: risk only informs.
    risk_routing: RiskRouting | None = None
    # Who may send which command ([permissions.resolve] others = "above"); unnamed commands keep the defaults.
    permissions: dict[str, Permission] = Field(default_factory=dict)

    @field_validator("permissions")
    @classmethod
    def _known_commands(cls, table: dict[str, Permission]) -> dict[str, Permission]:
        unknown = sorted(set(table) - set(GOVERNED))
        if unknown:
            raise ValueError(f"unknown command(s) {', '.join(unknown)} (known: {', '.join(GOVERNED)})")
        return table

    @field_validator("contact_hours")
    @classmethod
    def _contact_hours(cls, hours: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if hours is not None:
            WorkingCalendar(hours=hours)  # same format and checks as a calendar's hours
        return hours

    @model_validator(mode="after")
    def _ladder(self) -> Policy:
        names = [t.name for t in self.tiers]
        if not names:
            raise ValueError("tiers: the ladder needs at least one tier")
        if len(set(names)) != len(names):
            raise ValueError(f"tiers: each tier may appear once (got {', '.join(names)})")
        order = list(Tier)
        if [order.index(n) for n in names] != sorted(order.index(n) for n in names):
            raise ValueError("tiers: list them lowest first (agent, team_lead, supervisor, manager)")
        limits = [t.authority_limit for t in self.tiers]
        for low, high in pairwise(limits):
            if (low is None and high is not None) or (low is not None and high is not None and high < low):
                raise ValueError("tiers: authority_limit must not shrink going up the ladder")
        if self.risk_routing is not None and self.risk_routing.tier not in names:
            raise ValueError(f"risk_routing.tier: '{self.risk_routing.tier.value}' is not on this policy's ladder")
        for field in ("threat_tier", "customer_request_tier"):
            tier = getattr(self, field)
            if tier is not None and tier not in names:
                raise ValueError(f"{field}: '{tier.value}' is not on this policy's ladder ({', '.join(names)})")
        for tier in self.close_lost_tiers or []:
            if tier not in names:
                raise ValueError(f"close_lost_tiers: '{tier.value}' is not on this policy's ladder")
        known = ", ".join(sorted(self.calendars)) or "none defined"
        refs = [("calendar", self.calendar)] + [(f"tiers.{t.name.value}.calendar", t.calendar) for t in self.tiers]
        refs += [(f"severity_calendars.{sev.value}", name) for sev, name in self.severity_calendars.items()]
        for field, name in refs:
            if name is not None and name not in self.calendars:
                raise ValueError(f"{field}: no calendar named '{name}' in calendars ({known})")
        return self

    # ----- calendars (pure)

    def calendar_for(self, tier: Tier, severity: Severity) -> WorkingCalendar:
        """The calendar a case's clocks count in at `tier`: by severity, else the tier's, else the default."""
        name = self.severity_calendars.get(severity)
        if name is None and tier in self.ladder:
            name = self.tier(tier).calendar
        name = name or self.calendar
        return self.calendars[name] if name is not None else ALWAYS

    def customer_window(self, time_zone: str) -> WorkingCalendar:
        """When a customer in `time_zone` may be contacted."""
        if self.contact_hours is None:
            return ALWAYS
        return WorkingCalendar(time_zone=time_zone, hours=self.contact_hours)

    def with_holidays(self, years: range) -> Policy:
        """A copy whose calendars have their public holidays resolved into dates for `years`."""
        calendars = {}
        for name, cal in self.calendars.items():
            try:
                calendars[name] = cal.with_holidays(years)
            except CalendarError as err:
                raise PolicyError(f"calendars.{name}.{err}") from None
        return self.model_copy(update={"calendars": calendars})

    # ----- ladder helpers (pure)

    @property
    def ladder(self) -> list[Tier]:
        return [t.name for t in self.tiers]

    @property
    def first_tier(self) -> Tier:
        return self.tiers[0].name

    @property
    def top_tier(self) -> Tier:
        return self.tiers[-1].name

    def tier(self, name: Tier) -> TierPolicy:
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)

    def rank(self, name: Tier) -> int:
        return self.ladder.index(name)

    def above(self, name: Tier) -> Tier | None:
        i = self.rank(name)
        return self.ladder[i + 1] if i + 1 < len(self.ladder) else None

    def below(self, name: Tier) -> Tier | None:
        i = self.rank(name)
        return self.ladder[i - 1] if i > 0 else None

    @property
    def threat_target(self) -> Tier:
        if self.threat_tier is not None:
            return self.threat_tier
        return Tier.SUPERVISOR if Tier.SUPERVISOR in self.ladder else self.top_tier

    def opening_tier(self, threat: bool, risk: float | None) -> tuple[Tier, str]:
        """Where a new case starts, and why: threats at the threat tier, high risk where `risk_routing` says."""
        if threat:
            return self.threat_target, "threat"
        rr = self.risk_routing
        if rr is not None and risk is not None and risk >= rr.at_least:
            return rr.tier, "risk"
        return self.first_tier, "opened"

    @property
    def close_lost_allowed(self) -> list[Tier]:
        """Tiers that may close a case as customer_lost or legal."""
        return self.close_lost_tiers if self.close_lost_tiers is not None else [self.top_tier]

    def may_close_as(self, outcome: Outcome, tier: Tier) -> bool:
        return outcome == Outcome.RESOLVED or tier in self.close_lost_allowed

    def permission(self, command: str) -> Permission:
        return self.permissions.get(command) or DEFAULT_PERMISSIONS.get(command) or Permission()

    def lowest_tier_granting(self, total: Decimal, above: Tier | None = None) -> Tier | None:
        """The lowest tier (above `above`, when given) whose authority limit covers `total`."""
        start = self.rank(above) + 1 if above is not None else 0
        for t in self.tiers[start:]:
            if t.authority_limit is None or t.authority_limit >= total:
                return t.name
        return None


class PolicyError(ValueError):
    """A policy that cannot be found or does not validate. `summary` is the reason in one line without any of
    the file's values (fit for logs)."""

    def __init__(self, message: str, *, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message


class UnknownPolicyName(PolicyError):
    """No policy file by that name in the policies folder (retrying cannot help, unlike a file being rewritten)."""


# A policy's name is its file's name without `.toml`: no paths, no hidden files.
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def policy_names(folder: Path) -> list[str]:
    """The policies in `folder` (its `*.toml` files), by name."""
    return sorted(p.stem for p in Path(folder).glob("*.toml") if POLICY_NAME.fullmatch(p.stem))


def unknown_policy(folder: Path, name: str) -> UnknownPolicyName | None:
    """The refusal for a policy name `folder` has no file for; None when it has one."""
    if POLICY_NAME.fullmatch(name) and (Path(folder) / f"{name}.toml").is_file():
        return None
    known = ", ".join(policy_names(folder)) or "none"
    return UnknownPolicyName(f"policy: unknown policy '{name[:100]}' (known: {known})")


def load_policy_file(path: Path) -> Policy:
    try:
        data = read_toml(path, f"policy file {path.name}")
    except FileProblem as err:
        raise PolicyError(str(err)) from None
    data.setdefault("name", path.stem)
    if data["name"] != path.stem:
        raise PolicyError(
            f"policy file {path.name}: name '{data['name']}' must match the file name",
            summary=f"policy file {path.name}: name must match the file name",
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(
            f"policy file {path.name} is invalid:\n{err}",
            summary=f"policy file {path.name} is invalid: {describe(err)}",
        ) from err
    # Holidays become plain dates here, outside any workflow, from last year to a few years ahead.
    try:
        return policy.with_holidays(holiday_years())
    except PolicyError as err:
        raise PolicyError(f"policy file {path.name} is invalid: {err}") from None


def holiday_years() -> range:
    """The years whose public holidays a file resolves when it loads (policies, roster)."""
    this_year = date.today().year
    return range(this_year - 1, this_year + HOLIDAY_YEARS_AHEAD + 1)


def file_version(path: Path) -> tuple[int, int]:
    """What tells one version of a file from the next: modification time and size."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


class PolicyStore:
    """The policies folder. Re-reads a file when it changes so edits reach new cases without a restart.

    `get` is strict: a file that is invalid now is an error. `in_force` is what a new case gets: while a file
    is invalid (being rewritten, half-written, a broken edit), the last valid version read since the store
    was made stays in force, and the store logs that once per broken version of the file."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        # Per policy: the last valid version read, with the version of the file it came from.
        self._cache: dict[str, tuple[tuple[int, int], Policy]] = {}
        # Per policy: the version of its file last found invalid (logged once).
        self._broken: dict[str, tuple[int, int] | None] = {}

    def names(self) -> list[str]:
        return policy_names(self.folder)

    def get(self, name: str) -> Policy:
        if (unknown := unknown_policy(self.folder, name)) is not None:
            raise unknown
        path = self.folder / f"{name}.toml"
        try:
            version = file_version(path)
        except OSError as err:  # removed or replaced between the two looks
            raise PolicyError(f"policy file {path.name}: cannot read: {err.strerror or err}") from None
        cached = self._cache.get(name)
        if cached and cached[0] == version:
            return cached[1]
        policy = load_policy_file(path)
        self._cache[name] = (version, policy)
        self._broken.pop(name, None)
        return policy

    def in_force(self, name: str) -> Policy:
        """The policy a case opening now gets: the file as it is, or while it is invalid the last valid version
        this store read (logged: which policy, which file, why). Raises UnknownPolicyName when there is no such
        file, PolicyError when the file is invalid and has not been valid since the store was made."""
        try:
            return self.get(name)
        except UnknownPolicyName:
            raise
        except PolicyError as err:
            cached = self._cache.get(name)
            if cached is None:
                raise
            path = self.folder / f"{name}.toml"
            try:
                version: tuple[int, int] | None = file_version(path)
            except OSError:
                version = None
            if name not in self._broken or self._broken[name] != version:
                self._broken[name] = version
                log.warning(
                    "policy_invalid_kept_last_valid",
                    policy=name,
                    file=str(path),
                    error=err.summary,
                    version_in_force=cached[1].version,
                )
            return cached[1]

    def seen(self, name: str) -> bool:
        """Whether a valid version of `name` was read since the store was made."""
        return name in self._cache

    def warm(self) -> list[str]:
        """Read every policy that is valid now, so its version stays in force should its file break later;
        returns the names that are not valid now (the worker's start-up check reports them)."""
        broken = []
        for name in self.names():
            try:
                self.get(name)
            except PolicyError:
                broken.append(name)
        return broken

    def validate_all(self) -> list[Policy]:
        return [self.get(n) for n in self.names()]
