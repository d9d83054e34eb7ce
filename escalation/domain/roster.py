"""Who can own a case: representatives with a tier, skills, languages, working hours, a cap on open cases,
contact details and optional own authority limit. Pure data; routing (escalation.domain.rules.routing) chooses."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import structlog
from pydantic import Field, ValidationError, model_validator

from escalation.domain.calendar import ALWAYS, CalendarError, WorkingCalendar
from escalation.domain.models import Contract, Email, Identifier, Money, Owner, Phone, Tier, TimeZoneName
from escalation.domain.policy import file_version, holiday_years
from escalation.domain.principal import CLOSE_LOST, COMMANDS, RESERVED, Identity, NotIdentified, Principal, Service
from escalation.domain.refusal import describe
from escalation.files import FileProblem, read_toml

TIERS = list(Tier)  # the ladder's order

log = structlog.get_logger()


class Rep(Contract):
    id: Identifier
    name: str
    tier: Tier
    skills: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=lambda: ["en"])
    # Checked when the roster loads: a rep nobody can reach is found out then, not at the first breach.
    email: Email | None = None
    phone: Phone | None = None
    authority_limit: Money | None = None
    # When the rep works: a name from the roster's [calendars], or their own calendar; unset: any time.
    calendar: str | WorkingCalendar | None = None
    # Where the rep is, for showing times on their clock; unset: their calendar's zone.
    time_zone: TimeZoneName | None = None
    # Most open cases the rep holds at once; unset: no cap.
    max_cases: int | None = Field(default=None, ge=1)
    # Inactive reps are never chosen; cases they hold are reassigned (escalation.service.roster_watch).
    active: bool = True
    # May see customer data decrypted (the codec server: the Temporal UI, the temporal CLI); unset: reps at
    # CUSTOMER_DATA_TIER or above may.
    read_customer_data: bool | None = None


# Who may read customer data decrypted (escalation.protect.server) unless the roster says otherwise per rep: reps at
# this tier or above. A service only when its `may` names READ_CUSTOMER_DATA ("*" is every command, not this).
CUSTOMER_DATA_TIER = Tier.SUPERVISOR
READ_CUSTOMER_DATA = "read_customer_data"


class Roster(Contract):
    calendars: dict[str, WorkingCalendar] = Field(default_factory=dict)
    reps: list[Rep] = Field(default_factory=list)
    # Systems that act by their own credential (the worker's roster watch, a CRM acting for its reps).
    services: list[Service] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Roster:
        seen: set[str] = set()
        for what, ids in (("reps", [r.id for r in self.reps]), ("services", [s.id for s in self.services])):
            for id_ in ids:
                if id_.casefold() in RESERVED:  # "System" would read as the case itself
                    raise ValueError(f"{what}: '{id_}' is reserved (the case itself, or its customer)")
                if id_ in seen:
                    raise ValueError(f"{what}: id '{id_}' appears twice (rep and service ids share one space)")
                seen.add(id_)
        for service in self.services:
            unknown = sorted(set(service.may) - set(COMMANDS) - {"*", READ_CUSTOMER_DATA, CLOSE_LOST})
            if unknown:
                raise ValueError(
                    f"services.{service.id}.may: unknown command(s) {', '.join(unknown)} "
                    f"(known: {', '.join(COMMANDS)}, and {READ_CUSTOMER_DATA}, {CLOSE_LOST})"
                )
        for rep in self.reps:
            if isinstance(rep.calendar, str) and rep.calendar not in self.calendars:
                known = ", ".join(sorted(self.calendars)) or "none defined"
                raise ValueError(f"reps.{rep.id}.calendar: no calendar named '{rep.calendar}' in calendars ({known})")
        return self

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None)

    def identify(self, who: Identity) -> Principal:
        """The principal a verified credential names: an active rep, a service of the roster (by itself, or acting
        for an active rep when it may), or the customer of one case. Raises NotIdentified saying why not."""
        sub = who.subject
        owner = next((s for s in self.services if who.key_id is not None and who.key_id in s.kids), None)
        if owner is not None and owner.id not in (sub, who.acting_service):
            # A key the roster gives one service (a CRM's) cannot name anyone that service does not speak for.
            raise NotIdentified(f"key '{who.key_id}' is service {owner.id}'s: it may name only {owner.id}")
        if sub in RESERVED:
            if sub != "customer":
                raise NotIdentified(f"'{sub}' is the case itself; no credential may name it")
            if who.case_id is None:
                raise NotIdentified("a customer credential must name its case")
            if who.acting_service is not None:
                raise NotIdentified("a customer credential cannot name a service acting for it")
            return Principal(id=sub, kind="customer", case_id=who.case_id, checkin=who.checkin)
        if who.case_id is not None or who.checkin is not None:
            raise NotIdentified("only a customer credential names a case or check-in")
        via = None
        if who.acting_service is not None:
            via = self._service(who.acting_service)
            if not via.acts_for_reps:
                raise NotIdentified(f"service '{via.id}' may not act for reps (roster: acts_for_reps)")
        rep = self.rep(sub)
        if rep is not None:
            if not rep.active:
                raise NotIdentified(f"rep '{rep.id}' is inactive in the roster")
            return Principal(
                id=rep.id,
                kind="rep",
                name=rep.name,
                tier=rep.tier,
                authority_limit=rep.authority_limit,
                via=via.id if via else None,
            )
        if via is not None:
            raise NotIdentified(f"'{sub}' is not a rep of the roster")
        service = self._service(sub)
        return Principal(
            id=service.id,
            kind="service",
            name=service.name,
            may=list(service.may),
            authority_limit=service.authority_limit,
        )

    def customer_data_refusal(self, who: Principal) -> str | None:
        """Why `who` may not read customer data decrypted, or None when they may: a rep by their own
        `read_customer_data`, else at CUSTOMER_DATA_TIER or above (acting through a service too); a service when its
        `may` names READ_CUSTOMER_DATA; never the customer."""
        if who.kind == "customer":
            return "customers do not read cases' data here"
        if who.kind == "service":
            if READ_CUSTOMER_DATA in who.may:
                return None
            return f"service {who.id} may not read customer data (the roster's may does not name {READ_CUSTOMER_DATA})"
        rep = self.rep(who.id)
        if rep is None or rep.tier is None:
            return f"'{who.id}' is not a rep of the roster"
        if rep.read_customer_data is not None:
            return None if rep.read_customer_data else f"{who.label} may not read customer data (roster)"
        if TIERS.index(rep.tier) >= TIERS.index(CUSTOMER_DATA_TIER):
            return None
        return f"{who.label} may not read customer data: it needs a {CUSTOMER_DATA_TIER.value} or above"

    def _service(self, service_id: str) -> Service:
        service = next((s for s in self.services if s.id == service_id), None)
        if service is None:
            raise NotIdentified(f"'{service_id}' is not a rep or service of the roster")
        if not service.active:
            raise NotIdentified(f"service '{service.id}' is inactive in the roster")
        return service

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


__all__ = [
    "CUSTOMER_DATA_TIER",
    "READ_CUSTOMER_DATA",
    "Rep",
    "Roster",
    "RosterError",
    "RosterStore",
    "load_roster",
]
