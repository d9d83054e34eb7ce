"""Who can own a case: representatives with a tier, skills, languages, working hours, a cap on open cases,
contact details and optional own authority limit. Pure data; routing (escalation.rules.routing) chooses."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from escalation.calendar import ALWAYS, CalendarError, WorkingCalendar
from escalation.models import Contract, Identifier, Money, Owner, Tier, TimeZoneName
from escalation.policy import holiday_years

class Rep(Contract):
    id: Identifier
    name: str
    tier: Tier
    skills: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=lambda: ["en"])
    email: str | None = None
    phone: str | None = None
    authority_limit: Money | None = None
    # When the rep works: a name from the roster's [calendars], or their own calendar; unset: any time.
    calendar: str | WorkingCalendar | None = None
    # Where the rep is, for showing times on their clock; unset: their calendar's zone.
    time_zone: TimeZoneName | None = None
    # Most open cases the rep holds at once; unset: no cap.
    max_cases: int | None = Field(default=None, ge=1)
    # Inactive reps are never chosen; cases they hold are reassigned (escalation.roster_watch).
    active: bool = True


class Roster(Contract):
    calendars: dict[str, WorkingCalendar] = Field(default_factory=dict)
    reps: list[Rep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Roster:
        seen: set[str] = set()
        for rep in self.reps:
            if rep.id in seen:
                raise ValueError(f"reps: id '{rep.id}' appears twice")
            seen.add(rep.id)
            if isinstance(rep.calendar, str) and rep.calendar not in self.calendars:
                known = ", ".join(sorted(self.calendars)) or "none defined"
                raise ValueError(f"reps.{rep.id}.calendar: no calendar named '{rep.calendar}' in calendars ({known})")
        return self

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None)

    def calendar_of(self, rep: Rep) -> WorkingCalendar:
        if rep.calendar is None:
            return ALWAYS
        return self.calendars[rep.calendar] if isinstance(rep.calendar, str) else rep.calendar

    def owner(self, rep: Rep) -> Owner:
        """The rep as a case sees its owner."""
        zone = rep.time_zone or (self.calendar_of(rep).time_zone if rep.calendar is not None else None)
        return Owner(id=rep.id, name=rep.name, tier=rep.tier, email=rep.email, phone=rep.phone,
                     authority_limit=rep.authority_limit, time_zone=zone)

    def qualified(self, tier: Tier, skills: list[str], language: str) -> list[Rep]:
        """Active reps at `tier` with every skill and the customer's language ('pt-BR' matches 'pt')."""
        need = set(skills)
        return [r for r in self.reps
                if r.active and r.tier == tier and need <= set(r.skills) and language.split("-")[0] in r.languages]

    def with_holidays(self, years: range) -> Roster:
        """A copy whose calendars (named and per rep) have their public holidays resolved into dates."""
        def resolve(where: str, cal: WorkingCalendar) -> WorkingCalendar:
            try:
                return cal.with_holidays(years)
            except CalendarError as err:
                raise RosterError(f"{where}.{err}") from None

        calendars = {name: resolve(f"calendars.{name}", cal) for name, cal in self.calendars.items()}
        reps = [r.model_copy(update={"calendar": resolve(f"reps.{r.id}.calendar", r.calendar)})
                if isinstance(r.calendar, WorkingCalendar) else r for r in self.reps]
        return self.model_copy(update={"calendars": calendars, "reps": reps})


class RosterError(ValueError):
    pass


def load_roster(path: Path) -> Roster:
    try:
        roster = Roster.model_validate(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as err:
        raise RosterError(f"roster {Path(path).name}: {err}") from err
    try:
        return roster.with_holidays(holiday_years())
    except RosterError as err:
        raise RosterError(f"roster {Path(path).name}: {err}") from None


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
