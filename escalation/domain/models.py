"""The public contract of an escalation: start input, update/signal arguments, query results, outcome.

Plain pydantic v2 models, no temporalio import. Contract models forbid unknown fields so that a typo
("currncy") is an error instead of a silently ignored value. Money is `Decimal`; send it as a string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


# The longest duration anyone may give (a wait on the customer, a callback window, a policy's target):
# longer ones are typos, and a huge one would overflow date arithmetic.
LONGEST_DURATION = timedelta(days=366)
_NO_LONGER = timedelta(days=100 * 366)  # even in what was recorded: past this, date arithmetic overflows


def parse_duration(value: object) -> object:
    """'90s', '15m', '4h', '1d12h', '2w' or a number of seconds; ISO 8601 ('PT15M') falls through to pydantic.
    A negative or longer-than-a-year duration is refused here with its own words, before any arithmetic
    ('99999999999999d' would overflow, '-5m' would get the ISO parser's puzzling message)."""
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if "-" in text:  # '-5m', 'PT-5M': a negative duration
            raise ValueError(f"must be positive (got '{value[:40]}')")
        if len(text) <= 40 and _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
            return _bounded(seconds, value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return _bounded(float(value), value)
    return value


def _bounded(seconds: float, given: object) -> timedelta:
    if seconds != seconds or seconds < 0:  # NaN compares unequal to itself
        raise ValueError(f"must be positive (got {str(given)[:40]})")
    if seconds > (LONGEST_DURATION if _BOUNDS.get() else _NO_LONGER).total_seconds():
        raise ValueError(f"must be at most {LONGEST_DURATION.days} days (got {str(given)[:40]})")
    return timedelta(seconds=seconds)


def _within_limit(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must be positive")
    if _BOUNDS.get() and value > LONGEST_DURATION:
        raise ValueError(f"must be at most {LONGEST_DURATION.days} days")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_within_limit)]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Tier(StrEnum):
    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"


class Channel(StrEnum):
    CALL = "call"
    CHAT = "chat"
    EMAIL = "email"
    SMS = "sms"


class ContactChannel(StrEnum):
    """Channels we can reach a customer on by ourselves (chat needs the customer to be there)."""

    EMAIL = "email"
    SMS = "sms"
    CALL = "call"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Sentiment(StrEnum):
    FURIOUS = "furious"
    ANGRY = "angry"
    UPSET = "upset"
    NEUTRAL = "neutral"
    CALM = "calm"


class EscalationReason(StrEnum):
    CUSTOMER_REQUEST = "customer_request"
    THREAT = "threat"
    SLA_BREACH = "sla_breach"
    NEEDS_AUTHORITY = "needs_authority"
    COMPLEXITY = "complexity"
    FOLLOWUP_NEGATIVE = "followup_negative"
    NO_CAPACITY = "no_capacity"  # nobody at the tier could take the case: never left waiting
    CUSTOMER_UNREACHABLE = "customer_unreachable"  # callback attempts used up


# Reasons a person may give; the others are set by the system.
MANUAL_REASONS = {
    EscalationReason.CUSTOMER_REQUEST,
    EscalationReason.THREAT,
    EscalationReason.NEEDS_AUTHORITY,
    EscalationReason.COMPLEXITY,
}


class Status(StrEnum):
    # Started, its policy still loading (an instant, usually): no tier, clocks or owner yet. Only the `state`
    # and `brief` queries ever show it; never an event or a search attribute.
    OPENING = "opening"
    OPEN = "open"  # someone at the current tier is working it
    RESOLVED = "resolved"  # fix given; follow-up check-ins running
    CLOSED = "closed"  # final; the workflow completes


class Outcome(StrEnum):
    RESOLVED = "resolved"
    CUSTOMER_LOST = "customer_lost"
    LEGAL = "legal"


class OfferKind(StrEnum):
    COMPENSATION = "compensation"  # refund, credit: money owed back
    GOODWILL = "goodwill"  # voucher, upgrade, waived fee: a gesture


class OfferStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class OfferAnswer(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"


class RootCause(StrEnum):
    PRODUCT_DEFECT = "product_defect"
    BILLING_ERROR = "billing_error"
    SERVICE_OUTAGE = "service_outage"
    DELIVERY = "delivery"
    POLICY_GAP = "policy_gap"
    PROCESS_FAILURE = "process_failure"
    COMMUNICATION = "communication"
    AGENT_ERROR = "agent_error"
    CUSTOMER_MISUNDERSTANDING = "customer_misunderstanding"
    FRAUD = "fraud"
    OTHER = "other"


class FollowUpAnswer(StrEnum):
    FIXED = "fixed"
    NOT_FIXED = "not_fixed"


def _shown(value: str) -> str:
    """A refused value as a refusal may quote it: short, so a megabyte is never echoed."""
    return value if len(value) <= 40 else f"{value[:40]}... ({len(value):,} characters)"


def _valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:  # OSError: a folder such as 'Europe'
        raise ValueError(f"'{_shown(value)}' is not an IANA time zone (for example 'Europe/Berlin')") from err
    return value


def _money(value: Decimal) -> Decimal:
    # Digits are bounded before this runs (MONEY_DIGITS), so quantize cannot overflow the decimal context.
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value < 0:
        raise ValueError(f"must not be negative (got {value})")
    try:
        exact = value == value.quantize(Decimal("0.01"))
    except InvalidOperation:  # more digits than the decimal context holds ('1e309')
        raise ValueError(f"has more than {MONEY_DIGITS} digits (at most {'9' * (MONEY_DIGITS - 2)}.99)") from None
    if not exact:
        raise ValueError(f"has more than 2 decimal places (got {value})")
    return value


# Whether the bounds below apply. They apply to everything built or sent now; what history recorded before
# they existed is read as it was (`as_recorded`), or a running case would fail its replay after a deploy.
# Workers check the bounds where commands are taken instead: update validators, and a case's first task.
_BOUNDS: ContextVar[bool] = ContextVar("escalation_bounds", default=True)


@contextmanager
def as_recorded() -> Iterator[None]:
    """Read payloads without the caller bounds (lengths, control characters, digits, counts, ranges)."""
    token = _BOUNDS.set(False)
    try:
        yield
    finally:
        _BOUNDS.reset(token)


def check_bounds(value: BaseModel) -> None:
    """Raise the ValidationError a caller would get for `value` (read `as_recorded`) under today's bounds."""
    type(value).model_validate(value.model_dump(mode="json", exclude_none=True))


def _at_most(limit: int, unit: str = "characters") -> Any:
    """A length bound that `as_recorded` lifts, shown in the JSON Schema as maxLength or maxItems."""

    def check(value: Any) -> Any:
        if _BOUNDS.get() and len(value) > limit:
            raise ValueError(f"is {len(value):,} {unit}, over the limit of {limit:,}")
        return value

    key = "maxItems" if unit == "items" else "maxLength"
    return [AfterValidator(check), Field(json_schema_extra={key: limit})]


# Bounds on what callers send (README "Limits"). Text is counted in characters; a start input or an update
# also has a total size (escalation.client.converter), well under Temporal's payload limit.
NAME_CHARS = 200  # a person's name, an actor, a rep id as typed
LINE_CHARS = 500  # a one-line reason, an offer's description, an article reference
TEXT_CHARS = 4000  # a note, the customer's problem, a resolution: a few paragraphs
MONEY_DIGITS = 12  # up to 9,999,999,999.99
MAX_SKILLS = 20

# Control characters drive terminals and forge lines in briefs and emails; bidirectional overrides make text
# read differently from what it says. Multi-line text keeps its line breaks and tabs, and nothing else.
_LINE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _refuse_control(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if _BOUNDS.get() and (bad := pattern.search(value)) is not None:
            raise ValueError(
                f"contains a control character (U+{ord(bad.group()):04X}) at character {bad.start() + 1}; {what}"
            )
        return value

    return check


def _newlines(value: object) -> object:
    """Windows and old Mac line breaks become plain newlines."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


_one_line = _refuse_control(_LINE_CONTROL, "a one-line field takes no line breaks or control characters")
_multi_line = _refuse_control(_TEXT_CONTROL, "only line breaks and tabs are kept")

NonEmpty = Annotated[
    str,
    BeforeValidator(_newlines),
    StringConstraints(strip_whitespace=True, min_length=1),
    *_at_most(TEXT_CHARS),
    AfterValidator(_multi_line),
]
Text = Annotated[
    str,
    BeforeValidator(_newlines),
    StringConstraints(strip_whitespace=True),
    *_at_most(TEXT_CHARS),
    AfterValidator(_multi_line),
]
Line = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), *_at_most(LINE_CHARS), AfterValidator(_one_line)
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), *_at_most(NAME_CHARS), AfterValidator(_one_line)
]
Actor = Name
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]
TimeZoneName = Annotated[str, *_at_most(64), AfterValidator(_valid_zone)]


def _digits(value: Decimal) -> Decimal:
    # Before `_money`: quantize would overflow the decimal context on '1e309' or 30 digits.
    if _BOUNDS.get() and value.is_finite():
        _sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        total = len(digits) + exponent if exponent >= 0 else max(len(digits), -exponent)
        if total > MONEY_DIGITS:
            raise ValueError(f"has more than {MONEY_DIGITS} digits (at most {'9' * (MONEY_DIGITS - 2)}.99)")
    return value


Money = Annotated[
    Decimal,
    Field(decimal_places=2),
    AfterValidator(_digits),
    AfterValidator(_money),
    Field(
        description='An amount as a string ("19.99"): not negative, at most 2 decimal places, '
        f"at most {MONEY_DIGITS} digits"
    ),
]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{5,24}$")


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise ValueError(f"'{_shown(value)}' is not an email address")
    return value


def _phone(value: str | None) -> str | None:
    if value is not None and not _PHONE.match(value):
        raise ValueError(f"'{_shown(value)}' is not a phone number (digits, optional leading +)")
    return value


Email = Annotated[str, *_at_most(254), AfterValidator(_email)]
Phone = Annotated[str, *_at_most(24), AfterValidator(_phone)]


class Customer(Contract):
    id: Identifier
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    time_zone: TimeZoneName = "UTC"
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")] = "en"
    lifetime_value: Money = Decimal("0")
    preferred_channel: ContactChannel = ContactChannel.EMAIL

    @model_validator(mode="after")
    def _reachable(self) -> Customer:
        if not _BOUNDS.get():  # as recorded: a forgotten customer (right to erasure) has no contact details left
            return self
        if self.preferred_channel == ContactChannel.EMAIL and not self.email:
            raise ValueError("preferred_channel is 'email' but customer.email is missing")
        if self.preferred_channel in (ContactChannel.SMS, ContactChannel.CALL) and not self.phone:
            raise ValueError(f"preferred_channel is '{self.preferred_channel.value}' but customer.phone is missing")
        return self

    def contact_channels(self) -> list[ContactChannel]:
        """Preferred channel first, then every other channel we have details for."""
        have = [c for c in ContactChannel if (self.email if c == ContactChannel.EMAIL else self.phone)]
        return [self.preferred_channel] + [c for c in have if c != self.preferred_channel]

    def written_channel(self) -> ContactChannel:
        """Where a written notice (an offer confirmation, a callback notice) goes first: the first channel in
        `contact_channels` that carries text, so the preferred one when it is email or SMS."""
        return next(c for c in self.contact_channels() if c != ContactChannel.CALL)


class EscalationInput(Contract):
    """Everything the first agent knows when the case escalates. Start input of `Escalation`."""

    case_id: Identifier
    customer: Customer
    channel: Channel
    category: Identifier
    skills: Annotated[list[Identifier], *_at_most(MAX_SKILLS, "items")] = Field(default_factory=list)
    severity: Severity = Severity.MEDIUM
    summary: NonEmpty
    desired_outcome: NonEmpty
    threat: bool = False
    sentiment: Sentiment = Sentiment.UPSET
    opened_by: Actor
    policy: Identifier = "default"
    # Internal: set only by the workflow when a long case continues as new (escalation.domain.carry.CarriedCase).
    # A run not started by continue-as-new refuses it.
    # Left out of JSON when unset, so published payloads (the `state` query) match the schema.
    carried: SkipJsonSchema[dict[str, Any] | None] = Field(default=None, exclude_if=lambda v: v is None)


# ----- update / signal arguments (one model each so fields can be added without breaking callers)


class AcknowledgeInput(Contract):
    actor: Actor
    note: Text | None = None


class EscalateInput(Contract):
    actor: Actor
    reason: EscalationReason
    detail: NonEmpty | None = None
    target_tier: Tier | None = None


class DeEscalateInput(Contract):
    actor: Actor
    reason: NonEmpty
    target_tier: Tier | None = None


class NoteInput(Contract):
    actor: Actor
    text: NonEmpty
    sentiment: Sentiment | None = None


class WaitOnCustomerInput(Contract):
    """Stop the resolve clock while the team waits for something only the customer can give."""

    actor: Actor
    reason: NonEmpty
    # Give up waiting after this long (wall-clock time); at most the policy's pause limit.
    limit: Duration | None = None


class CustomerRepliedInput(Contract):
    """The customer came back: the resolve clock runs again with the business time it had left."""

    actor: Actor
    channel: ContactChannel | Literal["chat"] | None = None
    note: Text | None = None


class OfferInput(Contract):
    actor: Actor
    kind: OfferKind
    amount: Money
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    description: Line


class OfferResponseInput(Contract):
    actor: Actor
    offer_id: Identifier
    answer: OfferAnswer
    note: Text | None = Field(
        default=None,
        description="The customer's reason with their answer (why they declined); "
        "kept with the offer and shown in every brief",
    )


class ResolveInput(Contract):
    actor: Actor
    resolution: NonEmpty
    root_cause: RootCause
    kb_article: Line | None = None
    kb_missing: bool = False

    @model_validator(mode="after")
    def _kb(self) -> ResolveInput:
        if self.kb_article is None and not self.kb_missing:
            raise ValueError(
                "name the knowledge-base article used or written (kb_article), "
                "or set kb_missing=true so managers see the gap"
            )
        if self.kb_article is not None and self.kb_missing:
            raise ValueError("give either kb_article or kb_missing=true, not both")
        return self


class CloseInput(Contract):
    actor: Actor
    outcome: Outcome
    reason: NonEmpty


class ForgetInput(Contract):
    """Right to erasure: the customer's name, contact details and every free text on the case are replaced by a
    tombstone; the case keeps running with ids, tiers, amounts and times."""

    actor: Actor
    # The erasure request's reference (a ticket id), kept on the timeline: never free text.
    reference: Identifier | None = None


class FollowUpResponseInput(Contract):
    answer: FollowUpAnswer
    comment: Text | None = None
    channel: ContactChannel | None = None
    checkin: int | None = Field(
        default=None, ge=1, le=100, description="Which check-in this answers (1-based); latest if omitted"
    )


# ----- state (query results and the outcome)


class Owner(Contract):
    id: str
    name: str
    tier: Tier
    email: str | None = None
    phone: str | None = None
    authority_limit: Decimal | None = None  # overrides the tier's limit when set
    time_zone: str | None = None  # where the rep works, to show times on their own clock


class TimelineEntry(Contract):
    seq: int
    at: datetime
    kind: str
    actor: str  # the verified sender (a rep, a service, "customer") or "system"
    tier: Tier
    # The service that acted for the rep in `actor` (a CRM for its logged-in rep); left out when none.
    via: str | None = Field(default=None, exclude_if=lambda v: v is None)
    detail: dict[str, Any] = Field(default_factory=dict)


class Offer(Contract):
    id: str
    kind: OfferKind
    amount: Decimal
    currency: str
    description: str
    proposed_by: str
    proposed_at: datetime
    tier: Tier
    status: OfferStatus = OfferStatus.PROPOSED
    answered_at: datetime | None = None
    answer_note: str | None = None  # the customer's reason with their answer (record_offer_response note)


class Clock(Contract):
    """One SLA target at the current tier (acknowledge or resolve)."""

    started_at: datetime
    # None while paused (waiting on the customer): no instant is due then; `remaining` holds the business
    # time left, and resuming sets a new due instant from it.
    due_at: datetime | None
    stopped_at: datetime | None = None
    breached_at: datetime | None = None
    paused_at: datetime | None = None
    remaining: timedelta | None = None

    @model_validator(mode="after")
    def _no_due_while_paused(self) -> Clock:
        if self.paused_at is not None and self.live:
            self.due_at = None  # states kept from before paused clocks dropped their old instant
        return self

    @property
    def live(self) -> bool:
        """Neither stopped nor breached (it may be paused)."""
        return self.stopped_at is None and self.breached_at is None

    @property
    def running(self) -> bool:
        """Counting down to `due_at`."""
        return self.live and self.paused_at is None


class Pause(Contract):
    """One wait on the customer."""

    started_at: datetime
    by: str
    reason: str
    # When the wait gives up (policy or update limit), and what happens then.
    until: datetime | None = None
    on_limit: Literal["resume", "close"] = "resume"
    ended_at: datetime | None = None
    ended_by: str | None = None
    # Business time the pause kept off the resolve clock (set when it ends).
    business_paused: timedelta | None = None


class TierStint(Contract):
    tier: Tier
    entered_at: datetime
    left_at: datetime | None = None
    reason: str
    owners: list[str] = Field(default_factory=list)


class Resolution(Contract):
    resolution: str
    root_cause: RootCause
    kb_article: str | None = None
    kb_missing: bool = False
    resolved_by: str
    resolved_at: datetime
    tier: Tier


class CheckIn(Contract):
    number: int
    resolution: int = 1  # which resolution of the case (1 = first) this check-in follows up
    due_at: datetime
    channel: ContactChannel
    sent_at: datetime | None = None
    answer: FollowUpAnswer | None = None
    answered_at: datetime | None = None
    comment: str | None = None
    expired: bool = False
    cancelled: bool = False


# ----- routing and callbacks


class AssignmentStatus(StrEnum):
    OFFERED = "offered"  # waiting for the rep to accept
    ACCEPTED = "accepted"
    EXPIRED = "expired"  # not accepted in time: the next rep is asked
    WITHDRAWN = "withdrawn"  # reassigned, or the case moved on


class Assignment(Contract):
    """The case offered to one rep, who must accept it by `accept_by`."""

    stint: int
    rep: Owner
    offered_at: datetime
    accept_by: datetime
    load: int | None = None  # open cases the rep held when chosen (None: visibility could not count)
    status: AssignmentStatus = AssignmentStatus.OFFERED
    answered_at: datetime | None = None


class CallbackChannel(StrEnum):
    CALL = "call"
    VIDEO = "video"


class CallbackOutcome(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"
    WRONG_NUMBER = "wrong_number"
    DECLINED = "declined"


class CallbackStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time, or for an outcome within its window
    COMPLETED = "completed"  # the customer was reached (or declined the call)
    FAILED = "failed"  # unreachable after every attempt, or a wrong number
    MISSED = "missed"  # nobody called within the window and no other rep could take it
    CANCELLED = "cancelled"


# "earliest": the first moment the customer's contact window is open. A time without a UTC offset is
# read on the customer's own wall clock ("10:00" means 10:00 where they are, whatever the DST).
def _plausible(value: datetime) -> datetime:
    # Far-off years overflow date arithmetic (a window added to year 9999); no callback is booked there.
    if _BOUNDS.get() and not 2000 <= value.year <= 2999:
        raise ValueError(f"must be a time in the years 2000 to 2999 (got year {value.year})")
    return value


CallbackTime = Annotated[datetime, AfterValidator(_plausible)] | Literal["earliest"]


class ScheduleCallbackInput(Contract):
    actor: Actor
    at: CallbackTime
    window: Duration | None = None  # how long after `at` the call may start; policy default
    owner: Identifier | None = None  # who calls; the case owner when left out
    channel: CallbackChannel = CallbackChannel.CALL
    phone: Phone | None = None  # another number than the customer's
    notes: Text | None = None


class RescheduleCallbackInput(Contract):
    actor: Actor
    callback_id: Identifier
    at: CallbackTime
    window: Duration | None = None
    owner: Identifier | None = None  # hand it to another rep; unchanged when left out
    notes: Text | None = None


class CancelCallbackInput(Contract):
    actor: Actor
    callback_id: Identifier
    reason: NonEmpty


class CallbackOutcomeInput(Contract):
    actor: Actor
    callback_id: Identifier
    outcome: CallbackOutcome
    note: Text | None = None


class AcceptInput(Contract):
    """The rep the case is offered to takes it."""

    actor: Actor
    note: Text | None = None


class ReassignInput(Contract):
    actor: Actor
    reason: NonEmpty
    to: Identifier | None = None  # preferred rep; routing picks the best other qualified rep if they cannot
    # Only if the case is still with this rep (the owner or the rep it is offered to); makes automatic
    # reassignment safe to repeat.
    from_owner: Identifier | None = None


class CallbackAttempt(Contract):
    number: int
    due_at: datetime
    outcome: CallbackOutcome
    by: str
    recorded_at: datetime
    note: str | None = None


class Callback(Contract):
    """A promised call to the customer. `due_at` is the current attempt's start, kept in UTC and shown on
    the customer's wall clock (`customer_time`) and the caller's (`owner_time`)."""

    id: str
    status: CallbackStatus = CallbackStatus.SCHEDULED
    due_at: datetime
    window: timedelta
    customer_time: datetime
    owner_time: datetime
    owner: Owner
    channel: CallbackChannel
    phone: str | None = None
    notes: str | None = None
    scheduled_by: str
    scheduled_at: datetime
    remind_at: datetime | None = None  # None when no reminder is (still) to be sent
    due_told: bool = False  # the owner was told the callback is due now
    attempts: list[CallbackAttempt] = Field(default_factory=list)
    missed_by: list[str] = Field(default_factory=list)
    handing_over: bool = False  # its window passed unattempted: routing looks for the next rep
    ended_at: datetime | None = None
    end_reason: str | None = None

    @property
    def closes_at(self) -> datetime:
        """End of the window in which the current attempt must be made."""
        return self.due_at + self.window


# How far back a new case looks for the same customer's earlier cases, and how many it keeps (newest first).
JOURNEY_DAYS = 90
JOURNEY_KEPT = 5
JOURNEY_COUNTED = 50  # a customer with more in the window counts as this many (one visibility page)


class EarlierCase(Contract):
    """One of the customer's earlier cases, as visibility knew it when this one opened (no personal data)."""

    case_id: str
    opened_at: datetime
    category: str | None = None
    status: str | None = None
    highest_tier: Tier | None = None
    granted: Decimal | None = None
    followup: FollowUpAnswer | None = None  # the last check-in's answer, if one came


class Journey(Contract):
    """The customer's earlier cases in the JOURNEY_DAYS before this one opened: how many (up to 50), and the newest
    few."""

    count: Annotated[int, Field(ge=0)]
    cases: Annotated[list[EarlierCase], Field(max_length=JOURNEY_KEPT)] = Field(default_factory=list)

    @property
    def repeat(self) -> bool:
        return self.count > 0


class LookBack(Contract):
    """What a new case learns before it opens: the customer's journey (None: visibility could not tell) and its
    escalation risk (None: no model, or it could not score)."""

    journey: Journey | None = None
    risk: Annotated[float, Field(ge=0, le=1)] | None = None
    risk_model: Annotated[str, Field(max_length=100)] | None = None


class CaseState(Contract):
    case_id: str
    # Distinguishes this opening of the case from earlier ones under the same id (a closed case's id
    # may be reused); part of every message key and event id so receivers never drop a new case's news.
    opening_id: str
    input: EscalationInput
    policy_name: str
    policy_version: str | None  # None only while the case is opening (its policy is loading)
    status: Status
    tier: Tier | None  # None only while the case is opening
    owner: Owner | None = None
    sentiment: Sentiment
    opened_at: datetime
    acknowledged_by: str | None = None
    acknowledge_clock: Clock | None = None
    resolve_clock: Clock | None = None
    offers: list[Offer] = Field(default_factory=list)
    stints: list[TierStint] = Field(default_factory=list)
    resolution: Resolution | None = None
    resolutions: list[Resolution] = Field(default_factory=list)
    checkins: list[CheckIn] = Field(default_factory=list)
    followup_ends_at: datetime | None = None
    outcome: Outcome | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    escalations: int = 0
    breaches: int = 0
    reopens: int = 0
    pauses: list[Pause] = Field(default_factory=list)
    # Wall-clock time spent waiting on the customer, over all pauses that ended.
    paused_total: timedelta = timedelta(0)
    # What breaches next: a missed SLA target the case still owes (at the top of the ladder, where nothing
    # climbs), else the earliest running clock's due; None while none runs. Also the SlaDueAt search
    # attribute, so ops can list what breaches next (a missed one first).
    sla_due_at: datetime | None = None
    # While waiting on the customer: the business time the paused resolve clock has left (it has no due
    # instant then, and nothing can breach); None when no clock is paused.
    sla_paused_remaining: timedelta | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # Older timeline entries no longer kept in the state (escalation.domain.rules.retention); every one went out as
    # an event.
    timeline_earlier: int = 0
    # Routing: every time the case was offered to a rep, and how many routing requests were made (an
    # answer to an older request is ignored).
    assignments: list[Assignment] = Field(default_factory=list)
    route_requests: int = 0
    callbacks: list[Callback] = Field(default_factory=list)
    # Learned before opening (escalation.domain.rules.journey): earlier cases of the customer, escalation risk.
    journey: Journey | None = Field(default=None, exclude_if=lambda v: v is None)
    risk: float | None = Field(default=None, exclude_if=lambda v: v is None)
    risk_model: str | None = Field(default=None, exclude_if=lambda v: v is None)

    @property
    def current_tier(self) -> Tier:
        """The tier the case is at. Only an opening case has none (its policy is loading), and no rule runs on
        an opening case."""
        if self.tier is None:
            raise ValueError(f"case {self.case_id} is opening: it has no tier yet")
        return self.tier

    @property
    def pending_assignment(self) -> Assignment | None:
        """The offer a rep has yet to accept, if any."""
        a = self.assignments[-1] if self.assignments else None
        return a if a is not None and a.status == AssignmentStatus.OFFERED else None

    @property
    def waiting(self) -> Pause | None:
        """The open wait on the customer, if any."""
        return self.pauses[-1] if self.pauses and self.pauses[-1].ended_at is None else None

    @property
    def last_seq(self) -> int:
        """The number of the latest timeline entry (0 before the first): entries are numbered on from it, and
        older ones may have left the state (escalation.domain.rules.retention)."""
        return self.timeline[-1].seq if self.timeline else 0

    @property
    def notes(self) -> list[TimelineEntry]:
        """Notes are timeline entries of kind 'note' (kept once, so a long case's state stays small)."""
        return [e for e in self.timeline if e.kind == "note"]


class OfferLine(Contract):
    kind: OfferKind
    amount: Decimal
    currency: str
    description: str
    status: OfferStatus
    tier: Tier
    proposed_by: str
    # The customer's reason given with their answer (record_offer_response `note`), so nobody asks again.
    answer_note: str | None = None


class BriefFacts(Contract):
    """What a brief says, as data: every field of `Brief` but its text."""

    case_id: str
    tier: Tier | None  # None only while the case is opening
    owner: str | None
    status: Status
    severity: Severity
    threat: bool
    customer: str
    customer_value: Decimal
    customer_time_zone: str
    preferred_channel: ContactChannel
    problem: str
    wants: str
    category: str
    sentiment: Sentiment
    tried: list[str]
    offers: list[OfferLine]
    granted_total: Decimal
    currency: str | None  # the policy's; None only while the case is opening
    notes: list[str]
    previous_owners: list[str]
    # The customer's earlier cases (None: not known); one line each, newest first.
    earlier_cases: int | None = None
    earlier: list[str] = Field(default_factory=list)
    risk: float | None = None  # escalation risk scored at opening
    time_open_seconds: float
    time_by_tier_seconds: dict[str, float]


class Brief(BriefFacts):
    """What the next owner reads so the customer never repeats themselves."""

    text: str


class CheckInResult(Contract):
    number: int
    channel: ContactChannel
    sent_at: datetime | None
    answer: FollowUpAnswer | None
    comment: str | None


class EscalationOutcome(Contract):
    """Result of the `Escalation` workflow."""

    case_id: str
    outcome: Outcome
    final_tier: Tier
    highest_tier: Tier
    policy_version: str
    offers_granted: list[OfferLine]
    granted_total: Decimal
    currency: str
    opened_at: datetime
    first_resolved_at: datetime | None
    closed_at: datetime
    seconds_to_first_resolution: float | None
    seconds_open: float
    escalations: int
    breaches: int
    reopens: int
    root_cause: RootCause | None
    kb_missing: bool
    followups: list[CheckInResult]
    callbacks_missed: int = 0  # also counted in breaches


class CaseEvent(Contract):
    """One change of a case as other systems see it (outbox, webhooks). `id` is stable: dedupe on it."""

    id: str
    type: str
    case_id: str
    seq: int
    at: datetime
    actor: str
    tier: Tier
    status: Status
    via: str | None = Field(default=None, exclude_if=lambda v: v is None)  # the service acting for `actor`
    owner: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class EventBatch(Contract):
    """Events handed to the record activity together."""

    events: list[CaseEvent]
