"""Who can own a case: representatives with a tier, skills, languages, working hours, a cap on open cases,
contact details and optional own authority limit. Pure data; routing (escalation.domain.rules.routing) chooses."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import structlog
from pydantic import Field, ValidationError, model_validator

from escalation.domain.calendar import ALWAYS, CalendarError, WorkingCalendar
from escalation.domain.models import Contract, Identifier, Money, Owner, Tier, TimeZoneName
from escalation.domain.policy import file_version, holiday_years
from escalation.domain.refusal import describe
from escalation.files import FileProblem, read_toml

log = structlog.get_logger()


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
    # Inactive reps are never chosen; cases they hold are reassigned (escalation.service.roster_watch).
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
        return Owner(
            id=rep.id,
            name=rep.name,
            tier=rep.tier,
            email=rep.email,
            phone=rep.phone,
            authority_limit=rep.authority_limit,
            time_zone=zone,
        )

    def qualified(self, tier: Tier, skills: list[str], language: str) -> list[Rep]:
        """Active reps at `tier` with every skill and the customer's language ('pt-BR' matches 'pt')."""
        need = set(skills)
        return [
            r
            for r in self.reps
            if r.active and r.tier == tier and need <= set(r.skills) and language.split("-")[0] in r.languages
        ]

    def with_holidays(self, years: range) -> Roster:
        """A copy whose calendars (named and per rep) have their public holidays resolved into dates."""

        def resolve(where: str, cal: WorkingCalendar) -> WorkingCalendar:
            try:
                return cal.with_holidays(years)
            except CalendarError as err:
                raise RosterError(f"{where}.{err}") from None

        calendars = {name: resolve(f"calendars.{name}", cal) for name, cal in self.calendars.items()}
        reps = [
            r.model_copy(update={"calendar": resolve(f"reps.{r.id}.calendar", r.calendar)})
            if isinstance(r.calendar, WorkingCalendar)
            else r
            for r in self.reps
        ]
        return self.model_copy(update={"calendars": calendars, "reps": reps})


class RosterError(ValueError):
    """A roster file that cannot be read or does not validate. `summary`: the reason without the file's values."""

    def __init__(self, message: str, *, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message


def load_roster(path: Path) -> Roster:
    label = f"roster {Path(path).name}"
    try:
        data = read_toml(Path(path), label)
    except FileProblem as err:
        raise RosterError(str(err)) from None
    try:
        roster = Roster.model_validate(data)
    except ValidationError as err:
        raise RosterError(f"{label}: {err}", summary=f"{label}: {describe(err)}") from err
    try:
        return roster.with_holidays(holiday_years())
    except RosterError as err:
        raise RosterError(f"{label}: {err}") from None


class RosterStore:
    """The roster file, re-read when it changes. `get` is strict; `in_force` keeps the last valid roster while
    the file is invalid (being rewritten, a broken edit), and logs that once per broken version of the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._cached: tuple[tuple[int, int], Roster] | None = None
        self._broken: tuple[int, int] | None = None

    def get(self) -> Roster:
        try:
            version = file_version(self.path)
        except OSError as err:
            raise RosterError(f"roster {self.path.name}: cannot read: {err.strerror or err}") from None
        if self._cached is None or self._cached[0] != version:
            self._cached = (version, load_roster(self.path))
        return self._cached[1]

    def in_force(self) -> Roster:
        """The roster routing uses now: the file as it is, or while it is invalid the last valid roster this store
        read (logged: which file, why). Raises RosterError when the file has not been valid since."""
        try:
            return self.get()
        except RosterError as err:
            if self._cached is None:
                raise
            try:
                version: tuple[int, int] | None = file_version(self.path)
            except OSError:
                version = None
            if self._broken != version:
                self._broken = version
                log.warning(
                    "roster_invalid_kept_last_valid",
                    file=str(self.path),
                    error=err.summary,
                    reps_in_force=len(self._cached[1].reps),
                )
            return self._cached[1]

    def warm(self) -> None:
        """Read the roster if it is valid now, so it stays in force should the file break later."""
        with suppress(RosterError):  # the worker's start-up check reports it
            self.get()


__all__ = ["Rep", "Roster", "RosterError", "RosterStore", "load_roster"]
