"""Who can own a case: representatives with a tier, skills, languages and optional own authority limit."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from escalation.models import Contract, Identifier, Money, Owner, Tier


class Rep(Contract):
    id: Identifier
    name: str
    tier: Tier
    skills: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=lambda: ["en"])
    email: str | None = None
    phone: str | None = None
    authority_limit: Money | None = None
    active: bool = True

    def owner(self) -> Owner:
        return Owner(id=self.id, name=self.name, tier=self.tier, email=self.email, phone=self.phone,
                     authority_limit=self.authority_limit)


class Roster(Contract):
    reps: list[Rep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Roster:
        seen: set[str] = set()
        for rep in self.reps:
            if rep.id in seen:
                raise ValueError(f"reps: id '{rep.id}' appears twice")
            seen.add(rep.id)
        return self

    def qualified(self, tier: Tier, skills: list[str], language: str) -> list[Rep]:
        need = set(skills)
        return [r for r in self.reps
                if r.active and r.tier == tier and need <= set(r.skills) and language.split("-")[0] in r.languages]

    def choose(self, case_id: str, tier: Tier, skills: list[str], language: str,
               prefer: str | None = None, exclude: list[str] | None = None) -> Rep | None:
        """Pick an owner: the preferred rep when qualified, else spread cases evenly (stable per case)."""
        pool = [r for r in self.qualified(tier, skills, language) if r.id not in set(exclude or [])]
        if not pool:
            return None
        for rep in pool:
            if rep.id == prefer:
                return rep
        pool.sort(key=lambda r: hashlib.sha256(f"{case_id}/{r.id}".encode()).hexdigest())
        return pool[0]


class RosterError(ValueError):
    pass


def load_roster(path: Path) -> Roster:
    try:
        return Roster.model_validate(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as err:
        raise RosterError(f"roster {Path(path).name}: {err}") from err


class RosterStore:
    """The roster file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cached: tuple[tuple[int, int], Roster] | None = None

    def get(self) -> Roster:
        stat = self.path.stat()
        mtime = (stat.st_mtime_ns, stat.st_size)
        if self._cached is None or self._cached[0] != mtime:
            self._cached = (mtime, load_roster(self.path))
        return self._cached[1]


__all__ = ["Rep", "Roster", "RosterError", "RosterStore", "load_roster"]
