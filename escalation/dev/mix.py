"""The simulated call centre behind `escalations simulate`: for a seed and a number of cases, the same list of
case scripts every time (pure: no clock, no I/O, no temporalio).

A script is the case as a front end would open it and what the people on it then do: take it at each tier
(or leave it to breach), add notes, escalate with a reason, make offers within the acting tier's authority,
resolve with a root cause, answer a follow-up (a "not fixed" reopens the case) or close it as customer_lost.

The mix carries real signal, so the report, the themes and the risk model find something: cancellations and
outages climb far more often than account questions; furious, threatening, high-value and returning customers
climb more; words like "third time" or "manager" in a summary go with climbing; policy gaps and fraud are
mostly resolved without a knowledge-base article; email and SMS cases are more often left to breach.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, TypeVar

from escalation.domain.bands import VALUE_BANDS, value_band
from escalation.domain.models import (
    Channel,
    EscalationInput,
    EscalationReason,
    FollowUpAnswer,
    OfferKind,
    Outcome,
    RootCause,
    Sentiment,
    Severity,
    Tier,
)
from escalation.domain.policy import Policy

MAX_CASES = 5000  # one run; a few hundred is what the demo needs
CASE_PREFIX = "SIM"
PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
T = TypeVar("T")

# ----- what a script does (the driver runs these in order)


@dataclass(frozen=True)
class Take:
    """Wait for routing to offer the case at its current tier, accept it as that rep, and acknowledge it
    `ack_after` seconds later (well inside the accelerated acknowledge target)."""

    ack_after: float


@dataclass(frozen=True)
class LeaveToBreach:
    """The rep accepts the case but never acknowledges it: the acknowledge target passes and the case climbs
    with reason sla_breach."""


@dataclass(frozen=True)
class Note:
    text: str
    sentiment: Sentiment | None = None


@dataclass(frozen=True)
class Escalate:
    """Escalate by hand; `to` is the tier the plan expects the case at afterwards (a case the system moved
    there already, e.g. no_capacity, is not escalated again)."""

    reason: EscalationReason
    detail: str
    to: Tier


@dataclass(frozen=True)
class Offer:
    kind: OfferKind
    amount: Decimal
    description: str
    accepted: bool
    note: str | None = None


@dataclass(frozen=True)
class Resolve:
    resolution: str
    root_cause: RootCause
    kb_article: str | None  # None: resolved without one (kb_missing)


@dataclass(frozen=True)
class FollowUp:
    """The customer answers the next follow-up check-in; not_fixed reopens the case."""

    answer: FollowUpAnswer
    comment: str


@dataclass(frozen=True)
class Close:
    outcome: Outcome
    reason: str


Action = Take | LeaveToBreach | Note | Escalate | Offer | Resolve | FollowUp | Close


@dataclass(frozen=True)
class CaseScript:
    case_id: str
    opening: EscalationInput
    actions: tuple[Action, ...]

    @property
    def ends(self) -> Literal["closed", "resolved"]:
        """How the script leaves the case: closed (a "fixed" answer with stop_on_positive, or closed by hand),
        or resolved with its follow-ups still to come (the case then closes by itself)."""
        last = self.actions[-1]
        closed = isinstance(last, Close) or (isinstance(last, FollowUp) and last.answer == FollowUpAnswer.FIXED)
        return "closed" if closed else "resolved"

    @property
    def escalations(self) -> int:
        """Climbs the plan asks for (by hand or by a missed acknowledge target)."""
        return sum(isinstance(a, (Escalate, LeaveToBreach)) for a in self.actions)


# ----- the call centre's vocabulary


@dataclass(frozen=True)
class Category:
    skill: str  # the roster skill that handles it
    weight: float  # share of the volume
    climb: float  # base chance the first tier hands it up
    severity: tuple[float, float, float, float]  # low, medium, high, critical
    summaries: tuple[str, ...]
    outcomes: tuple[str, ...]
    notes: tuple[str, ...]
    resolutions: tuple[str, ...]
    root_causes: tuple[tuple[RootCause, float], ...]
    kb: tuple[str, ...]
    complexity: str  # why the first tier hands it up as too complex
    compensation: float  # chance a case of this category gets money back (else goodwill, if anything)
    not_fixed: float  # chance a follow-up answer says it is still broken
    lost: float  # chance the customer is lost


CATEGORIES: dict[str, Category] = {
    "billing": Category(
        skill="billing",
        weight=0.26,
        climb=0.15,
        severity=(0.25, 0.5, 0.2, 0.05),
        summaries=(
            "Charged twice for the {month} invoice",
            "Direct debit taken twice, customer wants a refund",
            "Invoice shows {amount} EUR more than the tariff",
            "Refund promised in {month} never arrived",
            "Billed for a bundle the customer never ordered",
            "Late payment fee on an invoice that was paid on time",
        ),
        outcomes=(
            "Refund of the double charge",
            "A corrected invoice and the refund",
            "The late fee removed",
            "Refund to the card used",
        ),
        notes=(
            "Checked the billing history: two debits on the same day",
            "Payment provider confirms the duplicate charge",
            "Customer sent the bank statement showing both debits",
            "Invoice was generated before the tariff change went through",
        ),
        resolutions=(
            "Refunded the duplicate charge and corrected the invoice",
            "Removed the wrong bundle and credited the difference",
            "Waived the late fee; the payment was matched to the right account",
            "Re-issued the invoice with the agreed tariff",
        ),
        root_causes=(
            (RootCause.BILLING_ERROR, 0.6),
            (RootCause.PROCESS_FAILURE, 0.2),
            (RootCause.CUSTOMER_MISUNDERSTANDING, 0.2),
        ),
        kb=("KB-1042 Duplicate charges", "KB-1310 Correcting an invoice", "KB-2210 Refunds to the card"),
        complexity="Billing system shows the refund as paid; needs a billing specialist",
        compensation=0.85,
        not_fixed=0.12,
        lost=0.01,
    ),
    "outage": Category(
        skill="internet",
        weight=0.22,
        climb=0.35,
        severity=(0.05, 0.3, 0.45, 0.2),
        summaries=(
            "Internet down for {days} days, router lights blinking red",
            "No connection since the storm, technician never came",
            "Broadband drops every evening, router restarted many times",
            "Whole street without internet, works from home and lost a day",
            "Internet outage again, speed under 1 Mbit when it works",
        ),
        outcomes=(
            "Working internet today and a credit for the days without it",
            "A technician visit with a fixed time",
            "A stable connection and compensation for the outage",
        ),
        notes=(
            "Outage map shows a fault on the local cabinet",
            "Line test fails at the exchange; raised a network ticket",
            "Router firmware is current; the fault is upstream",
            "Technician slot offered, customer cannot wait that long",
        ),
        resolutions=(
            "Network team repaired the cabinet; connection stable again",
            "Technician replaced the line card; speed back to normal",
            "Remote reset of the router profile; line test passes",
        ),
        root_causes=(
            (RootCause.SERVICE_OUTAGE, 0.7),
            (RootCause.PRODUCT_DEFECT, 0.2),
            (RootCause.COMMUNICATION, 0.1),
        ),
        kb=("KB-3307 Router reset", "KB-3410 Local cabinet faults", "KB-3502 Outage credits"),
        complexity="Line fault beyond first-line checks; needs network escalation",
        compensation=0.7,
        not_fixed=0.3,
        lost=0.02,
    ),
    "delivery": Category(
        skill="orders",
        weight=0.14,
        climb=0.12,
        severity=(0.3, 0.5, 0.17, 0.03),
        summaries=(
            "Parcel marked delivered but never arrived",
            "Order delayed {days} days, no tracking update",
            "Wrong item delivered, return label not working",
            "Courier left the new phone with a neighbour who denies it",
        ),
        outcomes=(
            "The order delivered this week",
            "A replacement sent by express",
            "A working return label and a refund",
        ),
        notes=(
            "Courier tracking stops at the depot",
            "Opened a trace with the courier",
            "Warehouse confirms the wrong item was picked",
        ),
        resolutions=(
            "Replacement sent by express with tracking",
            "Courier trace found the parcel; delivered today",
            "Refunded the order and collected the wrong item",
        ),
        root_causes=((RootCause.DELIVERY, 0.7), (RootCause.PROCESS_FAILURE, 0.2), (RootCause.COMMUNICATION, 0.1)),
        kb=("KB-5101 Courier traces", "KB-5120 Express replacements"),
        complexity="Courier dispute needs the logistics desk",
        compensation=0.4,
        not_fixed=0.1,
        lost=0.01,
    ),
    "device": Category(
        skill="mobile",
        weight=0.14,
        climb=0.2,
        severity=(0.15, 0.5, 0.3, 0.05),
        summaries=(
            "New phone keeps restarting after the update",
            "No mobile data since the SIM swap",
            "Screen cracked within a week, repair refused",
            "eSIM activation fails, phone shows no service",
        ),
        outcomes=(
            "A replacement phone",
            "Mobile data working today",
            "The repair covered under warranty",
        ),
        notes=(
            "Reproduced the restart loop with the customer on the line",
            "SIM profile not provisioned on the network",
            "Warranty terms checked: covered",
        ),
        resolutions=(
            "Replacement handset shipped; old one collected",
            "Re-provisioned the SIM profile; data works",
            "Repair approved under warranty",
        ),
        root_causes=(
            (RootCause.PRODUCT_DEFECT, 0.6),
            (RootCause.CUSTOMER_MISUNDERSTANDING, 0.3),
            (RootCause.AGENT_ERROR, 0.1),
        ),
        kb=("KB-4120 Resetting a SIM profile", "KB-4210 Warranty repairs"),
        complexity="Handset fault needs the device specialists",
        compensation=0.3,
        not_fixed=0.25,
        lost=0.01,
    ),
    "account": Category(
        skill="billing",
        weight=0.12,
        climb=0.06,
        severity=(0.4, 0.45, 0.12, 0.03),
        summaries=(
            "Cannot log in to the account after the password reset",
            "Address change not saved, letters go to the old address",
            "Someone else's name on the account",
            "Unknown contract opened in the customer's name",
        ),
        outcomes=(
            "Access to the account again",
            "Correct details on the account",
            "The unknown contract cancelled",
        ),
        notes=(
            "Identity checked with two security questions",
            "Account locked after too many login attempts",
            "Possible identity theft: flagged to the fraud team",
        ),
        resolutions=(
            "Unlocked the account and reset the login",
            "Updated the address and re-sent the letters",
            "Cancelled the contract opened by fraud",
        ),
        root_causes=(
            (RootCause.PROCESS_FAILURE, 0.35),
            (RootCause.POLICY_GAP, 0.3),
            (RootCause.AGENT_ERROR, 0.2),
            (RootCause.FRAUD, 0.15),
        ),
        kb=("KB-6010 Account unlock", "KB-6050 Address changes"),
        complexity="Possible fraud needs the security team's sign-off",
        compensation=0.2,
        not_fixed=0.08,
        lost=0.01,
    ),
    "cancellation": Category(
        skill="billing",
        weight=0.12,
        climb=0.45,
        severity=(0.1, 0.5, 0.3, 0.1),
        summaries=(
            "Wants to cancel, charged an early termination fee",
            "Cancellation confirmed in {month} but still billed",
            "Cancellation fee not mentioned when signing the contract",
            "Moving abroad, contract cannot be cancelled online",
        ),
        outcomes=(
            "Cancellation without the fee",
            "Billing stopped and the extra months refunded",
            "The contract ended this month",
        ),
        notes=(
            "Contract page does not mention the fee clearly",
            "Retention offer declined, customer wants out",
            "Cancellation request found in the system but not processed",
        ),
        resolutions=(
            "Cancelled the contract and waived the fee",
            "Stopped billing and refunded the months after the cancellation",
            "Ended the contract at the end of the month as asked",
        ),
        root_causes=(
            (RootCause.POLICY_GAP, 0.5),
            (RootCause.COMMUNICATION, 0.3),
            (RootCause.BILLING_ERROR, 0.2),
        ),
        kb=("KB-7001 Cancellation fees", "KB-7020 Moving abroad"),
        complexity="Fee waiver outside first-line policy",
        compensation=0.6,
        not_fixed=0.15,
        lost=0.12,
    ),
}

# How often a root cause is resolved without a knowledge-base article: where the KB has gaps.
KB_MISSING: dict[RootCause, float] = {
    RootCause.POLICY_GAP: 0.75,
    RootCause.FRAUD: 0.6,
    RootCause.PROCESS_FAILURE: 0.3,
    RootCause.COMMUNICATION: 0.25,
}
KB_MISSING_OTHERWISE = 0.08

SENTIMENTS: tuple[tuple[Sentiment, float], ...] = (
    (Sentiment.FURIOUS, 0.08),
    (Sentiment.ANGRY, 0.22),
    (Sentiment.UPSET, 0.4),
    (Sentiment.NEUTRAL, 0.2),
    (Sentiment.CALM, 0.1),
)
SENTIMENT_CLIMB: dict[Sentiment, float] = {
    Sentiment.FURIOUS: 0.3,
    Sentiment.ANGRY: 0.15,
    Sentiment.UPSET: 0.0,
    Sentiment.NEUTRAL: -0.08,
    Sentiment.CALM: -0.12,
}
SEVERITY_CLIMB: dict[Severity, float] = {
    Severity.LOW: -0.08,
    Severity.MEDIUM: 0.0,
    Severity.HIGH: 0.05,
    Severity.CRITICAL: 0.12,
}
BAND_CLIMB: dict[str, float] = {"under_1k": -0.05, "1k_10k": 0.0, "10k_100k": 0.05, "100k_plus": 0.15}
BAND_WEIGHTS: dict[str, float] = {"under_1k": 0.4, "1k_10k": 0.35, "10k_100k": 0.2, "100k_plus": 0.05}
BAND_TOP = Decimal("400000")  # the highest lifetime value drawn (100k_plus has no upper bound)
CHANNELS: tuple[tuple[Channel, float], ...] = (
    (Channel.CALL, 0.4),
    (Channel.CHAT, 0.3),
    (Channel.EMAIL, 0.22),
    (Channel.SMS, 0.08),
)
# Written channels wait in a queue: they are the ones left to breach.
BREACH: dict[Channel, float] = {Channel.CALL: 0.03, Channel.CHAT: 0.05, Channel.EMAIL: 0.15, Channel.SMS: 0.12}
BUSY_BREACH = 0.1  # a case handed up is left to breach at the tier it reached
THREAT = 0.03  # of furious customers, more
RETURNING = 0.2  # share of cases from a customer who had one before in this run
REPEAT_CLIMB = 0.1  # per earlier case of the same customer in this run
# Languages the accelerated demo roster covers at every tier for each skill: en everywhere, de where an agent
# has the skill (no agent speaks German for orders).
GERMAN = 0.15
GERMAN_SKILLS = frozenset({"billing", "internet", "mobile"})

# Said by customers who end up climbing (and now and then by those who do not): the summary's words carry signal.
HEATED = (
    "third time I call about this",
    "wants to speak to a manager",
    "will cancel if not fixed today",
    "nobody calls back",
)
THREATS = ("threatens a lawyer", "going to the ombudsman and the press")
CALM_ENDS = ("happy to wait for a callback", "first contact about this")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
FIRST = ("Lena", "Omar", "Grace", "Tom", "Priya", "Jonas", "Chen", "Sofia", "Marta", "Ravi", "Ines", "Paul")
LAST = ("Fischer", "Haddad", "Okafor", "Becker", "Nair", "Berg", "Wei", "Costa", "Novak", "Shah", "Weber", "Moreau")


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    value: Decimal
    language: str
    time_zone: str

    def payload(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "language": self.language,
            "time_zone": self.time_zone,
            "lifetime_value": str(self.value),
            "preferred_channel": "email",
        }


@dataclass
class _Ladder:
    """What the plan needs of the policy: the ladder, each tier's authority limit, where threats start and
    the lowest tier that may close a case as customer_lost."""

    tiers: list[Tier]
    limits: dict[Tier, Decimal | None]
    threat: Tier
    close_lost: list[Tier]
    spent: Decimal = field(default=Decimal("0"))

    @classmethod
    def of(cls, policy: Policy) -> _Ladder:
        return cls(
            tiers=list(policy.ladder),
            limits={t.name: t.authority_limit for t in policy.tiers},
            threat=policy.threat_target,
            close_lost=list(policy.close_lost_allowed),
        )

    def above(self, tier: Tier) -> Tier | None:
        i = self.tiers.index(tier)
        return self.tiers[i + 1] if i + 1 < len(self.tiers) else None

    def room(self, tier: Tier) -> Decimal:
        """What `tier` may still offer on this case (offers not declined count against its limit)."""
        limit = self.limits[tier]
        return (Decimal("10000") if limit is None else limit) - self.spent

    def floor(self, tier: Tier) -> Decimal:
        """The limit of the tier below: an amount above it is why the case needed this tier."""
        i = self.tiers.index(tier)
        below = self.limits[self.tiers[i - 1]] if i > 0 else None
        return below if below is not None else Decimal("0")


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _money(value: float) -> Decimal:
    return Decimal(str(round(value))).quantize(Decimal("0.01"))


def _customer(rng: random.Random, seed: int, k: int) -> Customer:
    names = [name for _, name in VALUE_BANDS]
    floors = {name: floor for floor, name in VALUE_BANDS}
    band = _pick(rng, list(BAND_WEIGHTS.items()))
    i = names.index(band)
    low = floors[band]
    high = floors[names[i + 1]] if i + 1 < len(names) else BAND_TOP
    value = (low + (high - low) * Decimal(str(round(rng.random(), 4)))).quantize(Decimal("0.01"))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    german = rng.random() < GERMAN
    return Customer(
        id=f"cust-{seed}-{k + 1:04d}",
        name=f"{first} {last}",
        email=f"{first.lower()}.{last.lower()}.{k + 1}@example.org",
        value=value,
        language="de" if german else "en",
        time_zone="Europe/Berlin" if german else "Europe/London",
    )


def plan(
    n: int,
    seed: int,
    policy: Policy,
    *,
    prefix: str = CASE_PREFIX,
    openers: Sequence[str] = ("ana", "ben"),
) -> list[CaseScript]:
    """`n` case scripts for `seed`, the same every time, for cases on `policy` opened by the reps `openers`."""
    if not 0 < n <= MAX_CASES:
        raise ValueError(f"n: between 1 and {MAX_CASES} cases (got {n})")
    if not PREFIX.fullmatch(prefix):
        raise ValueError(
            f"prefix: 1 to 40 letters, digits, '.', '_' or '-', starting with a letter or digit (got {prefix[:60]!r})"
        )
    if not openers:
        raise ValueError("openers: name at least one rep who opens cases")
    rng = random.Random(seed)
    # Most customers call once; some come back, the ones who came back before most often.
    customers: list[Customer] = []
    cases_of: dict[str, int] = {}
    scripts = []
    for i in range(n):
        if customers and rng.random() < RETURNING:
            customer = rng.choices(customers, [cases_of[c.id] for c in customers])[0]
        else:
            customer = _customer(rng, seed, len(customers))
            customers.append(customer)
        earlier = cases_of.get(customer.id, 0)
        cases_of[customer.id] = earlier + 1
        scripts.append(
            _script(rng, policy, f"{prefix}-{seed}-{i + 1:04d}", customer, earlier, openers[i % len(openers)])
        )
    return scripts


def _script(
    rng: random.Random, policy: Policy, case_id: str, customer: Customer, earlier: int, opener: str
) -> CaseScript:
    name = _pick(rng, [(k, c.weight) for k, c in CATEGORIES.items()])
    cat = CATEGORIES[name]
    if customer.language != "en" and cat.skill not in GERMAN_SKILLS:
        customer = Customer(customer.id, customer.name, customer.email, customer.value, "en", customer.time_zone)
    channel = _pick(rng, CHANNELS)
    severity = _pick(rng, list(zip(Severity, cat.severity, strict=True)))
    sentiment = _pick(rng, SENTIMENTS)
    if name in ("cancellation", "outage") and sentiment in (Sentiment.NEUTRAL, Sentiment.CALM) and rng.random() < 0.5:
        sentiment = Sentiment.UPSET
    threat = rng.random() < (THREAT * 3 if sentiment == Sentiment.FURIOUS else THREAT / 3)
    if threat:
        sentiment = Sentiment.FURIOUS
    band = value_band(customer.value)
    climb = (
        cat.climb
        + SENTIMENT_CLIMB[sentiment]
        + SEVERITY_CLIMB[severity]
        + BAND_CLIMB[band]
        + REPEAT_CLIMB * min(earlier, 2)
    )
    climb = min(max(climb, 0.02), 0.95)
    climbs = rng.random() < climb
    lost = rng.random() < cat.lost

    summary = rng.choice(cat.summaries).format(
        month=rng.choice(MONTHS), amount=rng.randrange(12, 180), days=rng.randrange(2, 9)
    )
    if threat:
        summary += "; " + rng.choice(THREATS)
    elif rng.random() < (0.6 if climbs else 0.08):
        summary += "; " + rng.choice(HEATED)
    elif earlier and rng.random() < 0.5:
        summary += "; called about this before"
    elif rng.random() < 0.25:
        summary += "; " + rng.choice(CALM_ENDS)
    opening = EscalationInput.model_validate(
        {
            "case_id": case_id,
            "customer": customer.payload(),
            "channel": channel.value,
            "category": name,
            "skills": [cat.skill],
            "severity": severity.value,
            "summary": summary,
            "desired_outcome": rng.choice(cat.outcomes),
            "threat": threat,
            "sentiment": sentiment.value,
            "opened_by": opener,
            "policy": policy.name,
        }
    )

    ladder = _Ladder.of(policy)
    tier = ladder.threat if threat else ladder.tiers[0]
    acts: list[Action] = []

    def take() -> None:
        acts.append(Take(ack_after=round(rng.uniform(0.5, 6.0), 1)))

    def escalate(reason: EscalationReason, detail: str, *, busy: bool = True) -> bool:
        nonlocal tier
        above = ladder.above(tier)
        if above is None:
            return False
        acts.append(Escalate(reason, detail, above))
        tier = above
        higher = ladder.above(tier)
        if busy and higher is not None and rng.random() < BUSY_BREACH:
            acts.append(LeaveToBreach())  # the tier above was busy too: its acknowledge target passes
            tier = higher
        take()
        return True

    def offer(floor: Decimal | None = None) -> None:
        room = ladder.room(tier)
        low = max(floor if floor is not None else Decimal("5"), Decimal("5"))
        if room < low:
            return
        compensation = rng.random() < cat.compensation
        amount = _money(rng.uniform(float(low), float(room))) if room > low else room
        amount = min(amount, room)
        accepted = rng.random() < 0.75
        acts.append(
            Offer(
                kind=OfferKind.COMPENSATION if compensation else OfferKind.GOODWILL,
                amount=amount,
                description="Refund and credit on the account" if compensation else "Voucher as a gesture",
                accepted=accepted,
                note=None if accepted else rng.choice(("Not enough for the trouble", "Wants the fix, not money")),
            )
        )
        if accepted:
            ladder.spent += amount

    # The first tier: left to breach (written channels wait in a queue), or taken quickly.
    if tier != ladder.tiers[-1] and rng.random() < BREACH[channel] + (0.05 if name == "outage" else 0):
        acts.append(LeaveToBreach())
        above = ladder.above(tier)
        assert above is not None
        tier = above
    take()
    for _ in range(rng.choice((0, 1, 1, 2))):
        acts.append(Note(rng.choice(cat.notes), sentiment if rng.random() < 0.5 else None))

    if lost:
        # The customer wants out: up to the tier that may close a case as lost, a last offer declined, closed.
        while tier not in ladder.close_lost:
            if not escalate(
                EscalationReason.CUSTOMER_REQUEST, "Customer wants to leave, asks for someone senior", busy=False
            ):
                raise ValueError(f"policy '{policy.name}': no tier may close a case as customer_lost")
        acts.append(
            Offer(OfferKind.GOODWILL, Decimal("0.00"), "Three months free to stay", accepted=False, note="Leaving")
        )
        acts.append(Note("Customer is leaving for a competitor", Sentiment.ANGRY))
        acts.append(Close(Outcome.CUSTOMER_LOST, "Customer left for a competitor despite a retention offer"))
        return CaseScript(case_id, opening, tuple(acts))

    if climbs:
        wants_money = rng.random() < cat.compensation
        if wants_money and tier in ladder.limits and ladder.above(tier) is not None:
            reason = EscalationReason.NEEDS_AUTHORITY
            detail = f"Customer asks for more than my limit of {ladder.limits[tier]} {policy.currency}"
        elif sentiment in (Sentiment.FURIOUS, Sentiment.ANGRY) or rng.random() < 0.4:
            reason, detail = EscalationReason.CUSTOMER_REQUEST, "Customer asked for a manager"
        else:
            reason, detail = EscalationReason.COMPLEXITY, cat.complexity
        floor = ladder.floor(ladder.above(tier) or tier) if reason == EscalationReason.NEEDS_AUTHORITY else None
        if escalate(reason, detail) and floor is not None:
            offer(floor + 1)
        # Some climb once more: furious customers and high-value ones most.
        again = 0.25 + (0.25 if sentiment == Sentiment.FURIOUS else 0) + (0.15 if band == "100k_plus" else 0)
        if rng.random() < again:
            escalate(EscalationReason.COMPLEXITY if rng.random() < 0.5 else reason, detail)
    elif rng.random() < 0.35:
        offer()

    root = _pick(rng, cat.root_causes)
    missing = rng.random() < KB_MISSING.get(root, KB_MISSING_OTHERWISE)
    acts.append(Resolve(rng.choice(cat.resolutions), root, None if missing else rng.choice(cat.kb)))

    if rng.random() < 0.6:
        if rng.random() < cat.not_fixed + (0.1 if missing else 0):
            acts.append(FollowUp(FollowUpAnswer.NOT_FIXED, "Still not working"))
            take()
            acts.append(Resolve("Fixed for good after the customer came back", root, rng.choice(cat.kb)))
            if rng.random() < 0.5:
                acts.append(FollowUp(FollowUpAnswer.FIXED, "Works now"))
        else:
            acts.append(FollowUp(FollowUpAnswer.FIXED, rng.choice(("Works now, thanks", "All sorted", "Fine now"))))
    return CaseScript(case_id, opening, tuple(acts))
