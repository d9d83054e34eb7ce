"""Shared plumbing of the rules: the error type, the effects, a Step that collects both, and `command`, which
makes a rule written on a Step the function the workflow runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import wraps
from typing import Any, Literal, Protocol, TypeVar

from pydantic import Field

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.calendar import ALWAYS, WorkingCalendar
from escalation.domain.models import CaseState, ContactChannel, Contract, Status, Tier, TimelineEntry
from escalation.domain.policy import Policy
from escalation.domain.principal import Principal
from escalation.domain.rules.permission import permit
from escalation.domain.rules.retention import trim
from escalation.domain.rules.sla import paused_remaining, sla_due
from escalation.domain.rules.violation import RuleViolation

SYSTEM = "system"


class MessageKind(StrEnum):
    OWNER_ASSIGNED = "owner_assigned"
    UNASSIGNED = "unassigned"
    TOP_BREACH = "top_breach"
    FOLLOWUP_CHECKIN = "followup_checkin"
    OFFER_CONFIRMATION = "offer_confirmation"
    CASE_OFFERED = "case_offered"
    NO_CAPACITY = "no_capacity"
    CALLBACK_SCHEDULED = "callback_scheduled"
    CALLBACK_REMINDER = "callback_reminder"
    CALLBACK_DUE = "callback_due"
    CALLBACK_CANCELLED = "callback_cancelled"
    CALLBACK_UNREACHABLE = "callback_unreachable"


class Recipient(Contract):
    kind: Literal["owner", "team", "escalation_contact", "customer"]
    id: str
    name: str
    email: str | None = None
    phone: str | None = None
    tier: Tier | None = None  # a team's tier: delivery looks up the team's address by it


class Message(Contract):
    # Stable across activity retries and workflow replays: receivers dedupe on it.
    key: str
    case_id: str
    kind: MessageKind
    to: Recipient
    channel: ContactChannel
    subject: str
    body: str
    # Channels this message already failed on (a fallback carries them, so the next one is new).
    attempted: list[ContactChannel] = Field(default_factory=list)


class Assign(Contract):
    """Find an owner at `tier`; the answer goes back into `owner_assigned`."""

    case_id: str
    tier: Tier
    stint: int  # which tier stint asked, so a late answer for an older stint is ignored
    skills: list[str]
    language: str
    prefer: str | None = None
    exclude: list[str] = Field(default_factory=list)
    request: int = 0  # which routing request of the case this is (answers to older ones are ignored)
    at: datetime | None = None  # the case's "now": who is working is judged at this instant
    callback_id: str | None = None  # find a rep to take over this callback instead of the case


class Send(Contract):
    message: Message
    # Held until then: the recipient's working hours or the customer's contact window opens.
    not_before: datetime | None = None
    # The callback a held confirmation announces, and the time it announces: if the callback is
    # cancelled or moved before the message goes, the message is dropped (never a stale promise).
    about: str | None = None
    announces: datetime | None = None


Effect = Assign | Send
# What every rule returns: the new state (a changed copy) and the effects it asks for.
Result = tuple[CaseState, list[Effect]]


@dataclass
class Step:
    """A change in progress: a private copy of the state plus the effects it asks for."""

    state: CaseState
    policy: Policy
    now: datetime
    effects: list[Effect] = field(default_factory=list)
    # Who sent the command, verified (None: the case's own doing, or a command from before identity).
    by: Principal | None = None
    # The owner whose case a rep at the case's tier or above acted on (recorded on the entries they make).
    override_of: str | None = None

    @classmethod
    def begin(cls, state: CaseState, policy: Policy, now: datetime, by: Principal | None = None) -> Step:
        return cls(state.model_copy(deep=True), policy, now, by=by)

    def log(self, kind: str, actor: str, /, **detail: Any) -> TimelineEntry:
        mine = self.by is not None and actor == self.by.id
        if mine and self.override_of is not None:
            detail["override_of"] = self.override_of
        entry = TimelineEntry(
            seq=self.state.last_seq + 1,
            at=self.now,
            kind=kind,
            actor=actor,
            via=self.by.via if mine and self.by is not None else None,
            tier=self.state.current_tier,
            detail={k: v for k, v in detail.items() if v is not None},
        )
        self.state.timeline.append(entry)
        return entry

    def send(
        self,
        entry: TimelineEntry,
        kind: MessageKind,
        to: Recipient,
        channel: ContactChannel,
        subject: str,
        body: str,
        attempted: list[ContactChannel] | None = None,
        *,
        at: datetime | None = None,
        about: str | None = None,
        announces: datetime | None = None,
    ) -> None:
        """Queue a message; it is held until the recipient's hours open, or until `at` when given."""
        key = f"{self.state.case_id}/{self.state.opening_id}/{entry.seq}/{kind.value}/{to.id}"
        # One entry may send the same kind twice to one person (two callbacks called off at once):
        # number the repeats, or receivers deduping on the key would drop them.
        taken = {e.message.key for e in self.effects if isinstance(e, Send)}
        if key in taken:
            key = next(f"{key}/{n}" for n in range(2, len(taken) + 3) if f"{key}/{n}" not in taken)
        opens = at if at is not None else self.contact_window(to).next_open(self.now)
        self.effects.append(
            Send(
                message=Message(
                    key=key,
                    case_id=self.state.case_id,
                    kind=kind,
                    to=to,
                    channel=channel,
                    subject=subject,
                    body=body,
                    attempted=attempted or [],
                ),
                not_before=opens if opens > self.now else None,
                about=about,
                announces=announces,
            )
        )

    @property
    def calendar(self) -> WorkingCalendar:
        """The business calendar the current tier's clocks count in."""
        return self.policy.calendar_for(self.state.current_tier, self.state.input.severity)

    def contact_window(self, to: Recipient) -> WorkingCalendar:
        """When `to` may hear from us: customers in their contact window (their own zone), staff in
        working hours unless the severity is urgent."""
        if to.kind == "customer":
            return self.policy.customer_window(self.state.input.customer.time_zone)
        if self.state.input.severity in self.policy.urgent_severities:
            return ALWAYS
        return self.calendar

    def require_open(self, field: str = "status") -> None:
        s = self.state.status
        if s == Status.CLOSED:
            raise RuleViolation(
                field,
                f"case {self.state.case_id} is closed ({self.state.outcome.value if self.state.outcome else ''}); "
                "nothing more can be done on it",
                type=ERR_INVALID_STATE,
            )
        if s == Status.RESOLVED:
            raise RuleViolation(
                field,
                f"case {self.state.case_id} is resolved and in follow-up; it reopens if the customer reports "
                "the fix does not work",
                type=ERR_INVALID_STATE,
            )

    def stop_clocks(self) -> None:
        """Stop whichever SLA clocks of the current tier still run (resolution, closing)."""
        for clock in (self.state.acknowledge_clock, self.state.resolve_clock):
            if clock and clock.live:
                clock.stopped_at = self.now

    def customer(self) -> Recipient:
        c = self.state.input.customer
        return Recipient(kind="customer", id=c.id, name=c.name, email=c.email, phone=c.phone)

    def team(self) -> Recipient:
        """The current tier's team queue: for nobody-available notices and unreachable owners."""
        tier = self.state.current_tier
        return Recipient(kind="team", id=f"team-{tier.value}", name=f"{tier.value} queue", tier=tier)

    def require_not_closed(self, field: str = "status") -> None:
        if self.state.status == Status.CLOSED:
            self.require_open(field)

    def result(self) -> tuple[CaseState, list[Effect]]:
        trim(self.state)
        self.state.sla_due_at = sla_due(self.state)
        self.state.sla_paused_remaining = paused_remaining(self.state)
        return self.state, self.effects


Cmd = TypeVar("Cmd")
Cmd_contra = TypeVar("Cmd_contra", contravariant=True)


class CommandRule(Protocol[Cmd_contra]):
    """A command as the workflow runs it (see `command`)."""

    __name__: str

    def __call__(
        self,
        state: CaseState,
        policy: Policy,
        cmd: Cmd_contra,
        now: datetime,
        /,
        *args: Any,
        by: Principal | None = None,
        **kwargs: Any,
    ) -> Result: ...


def command(rule: Callable[..., object]) -> CommandRule[Any]:
    """A command's rule, written on a Step (`def propose_offer(step: Step, cmd: OfferInput) -> None`, raising
    `RuleViolation` to refuse), as the function the workflow runs: `(state, policy, cmd, now, ..., by=sender)
    -> Result` on a copy of `state`, so a refusal changes nothing and a validator can dry-run it. `by` is the
    command's verified sender: the policy's permissions are checked first (escalation.domain.rules.permission).
    Other arguments after `cmd` (the rep a handler looked up, a flag for older histories) go to the rule;
    whatever it returns is dropped (the workflow reads the new state). The name stays the rule's, which is
    the command's."""

    @wraps(rule)
    def run(
        state: CaseState,
        policy: Policy,
        cmd: Any,
        now: datetime,
        /,
        *args: Any,
        by: Principal | None = None,
        **kwargs: Any,
    ) -> Result:
        step = Step.begin(state, policy, now, by)
        permit(step, rule.__name__, cmd)
        rule(step, cmd, *args, **kwargs)
        return step.result()

    return run
