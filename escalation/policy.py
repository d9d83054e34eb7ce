"""Escalation policies: the ladder and its SLA targets, authority limits and follow-up schedule, as data.

A policy is a TOML file in the policies folder, named `<name>.toml`. The worker loads it when a case
opens (through an activity, so the values are recorded in the case's history) and the case keeps the
version it started with: editing a policy changes new cases only.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from escalation.models import Contract, EscalationReason, Money, Outcome, Tier

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


def parse_duration(value: object) -> object:
    """'90s', '15m', '4h', '1d12h', '2w' or a number of seconds; ISO 8601 ('PT15M') falls through to pydantic."""
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _DURATION.fullmatch(text):
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class TierPolicy(Contract):
    name: Tier
    acknowledge_within: Duration
    resolve_within: Duration
    # Most a case may be granted in total while owned at this tier; None means no limit.
    authority_limit: Money | None = None

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
        for low, high in zip(limits, limits[1:]):
            if low is None and high is not None or (low is not None and high is not None and high < low):
                raise ValueError("tiers: authority_limit must not shrink going up the ladder")
        for field in ("threat_tier", "customer_request_tier"):
            tier = getattr(self, field)
            if tier is not None and tier not in names:
                raise ValueError(f"{field}: '{tier.value}' is not on this policy's ladder ({', '.join(names)})")
        for tier in self.close_lost_tiers or []:
            if tier not in names:
                raise ValueError(f"close_lost_tiers: '{tier.value}' is not on this policy's ladder")
        return self

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

    @property
    def close_lost_allowed(self) -> list[Tier]:
        """Tiers that may close a case as customer_lost or legal."""
        return self.close_lost_tiers if self.close_lost_tiers is not None else [self.top_tier]

    def may_close_as(self, outcome: Outcome, tier: Tier) -> bool:
        return outcome == Outcome.RESOLVED or tier in self.close_lost_allowed

    def lowest_tier_granting(self, total: Decimal, above: Tier | None = None) -> Tier | None:
        """The lowest tier (above `above`, when given) whose authority limit covers `total`."""
        start = self.rank(above) + 1 if above is not None else 0
        for t in self.tiers[start:]:
            if t.authority_limit is None or t.authority_limit >= total:
                return t.name
        return None


class PolicyError(ValueError):
    """A policy that cannot be found or does not validate."""


def load_policy_file(path: Path) -> Policy:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PolicyError(f"policy file {path.name}: {err}") from err
    data.setdefault("name", path.stem)
    if data["name"] != path.stem:
        raise PolicyError(f"policy file {path.name}: name '{data['name']}' must match the file name")
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(f"policy file {path.name} is invalid:\n{err}") from err


class PolicyStore:
    """The policies folder. Re-reads a file when it changes so edits reach new cases without a restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, tuple[tuple[int, int], Policy]] = {}

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.toml"))

    def get(self, name: str) -> Policy:
        path = self.folder / f"{name}.toml"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise PolicyError(f"policy: unknown policy '{name}' (known: {known})")
        stat = path.stat()
        mtime = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(name)
        if cached and cached[0] == mtime:
            return cached[1]
        policy = load_policy_file(path)
        self._cache[name] = (mtime, policy)
        return policy

    def validate_all(self) -> list[Policy]:
        return [self.get(n) for n in self.names()]
