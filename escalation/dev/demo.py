"""Demo cases for `make run`: a handful of clearly labelled cases (ids `DEMO-...`, policy `demo`) that
show the ladder at work in the Temporal UI within a couple of minutes.

Every case is driven through the public client helpers and the workflow's updates, the way a
call-centre front end would: each command is signed for the rep it names by the client's credential
interceptor (escalation.client.credentials), and a customer's follow-up answer carries the customer credential
the signed inbound endpoint would mint for that case and check-in. The driver tolerates restarts: a case whose workflow already exists
(open or closed) is skipped, never started twice.

Run on its own against a running server and worker: `python -m escalation.dev.demo`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from escalation.client import CaseAlreadyOpen, case_handle, case_state, execute_update, open_case
from escalation.client.credentials import use_credential
from escalation.config import Settings
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    Callback,
    CallbackOutcome,
    CallbackOutcomeInput,
    CaseState,
    CheckIn,
    CustomerRepliedInput,
    EscalateInput,
    EscalationInput,
    EscalationReason,
    FollowUpAnswer,
    FollowUpResponseInput,
    NoteInput,
    Offer,
    OfferAnswer,
    OfferInput,
    OfferKind,
    OfferResponseInput,
    Owner,
    ResolveInput,
    RootCause,
    ScheduleCallbackInput,
    Sentiment,
    Tier,
    TimelineEntry,
    WaitOnCustomerInput,
)
from escalation.identity import CUSTOMER, Signer

log = structlog.get_logger()

POLICY = "demo"
T = TypeVar("T")

# How long a step may wait for the case to get somewhere (an owner, a sent check-in) before giving up.
# The demo policy's longest gap is a follow-up check-in 15 s after a resolution.
STEP_TIMEOUT = 120.0
POLL = 0.5
# Seconds between a person's steps, so timelines in the UI read like a conversation, not a burst.
# Well inside the demo policy's 20 s acknowledge target.
PACE = 2.0
# How long the demo customer takes to send the photo: longer than the demo agent's resolve target.
WAIT_FOR_CUSTOMER = 50.0


class DemoStepFailed(Exception):
    """A demo case did not get where the driver expected within STEP_TIMEOUT."""


# ----- a case as the front end sees it


class DemoCase:
    """One demo case: its handle plus small helpers that wait for the workflow and log every step."""

    def __init__(self, handle: WorkflowHandle, case_id: str, signer: Signer | None = None) -> None:
        self.handle = handle
        self.case_id = case_id
        # Mints the customer's credential for a follow-up answer, as the signed inbound endpoint does.
        self.signer = signer
        self.log = log.bind(case_id=case_id)

    async def state(self) -> CaseState:
        return await case_state(self.handle)

    def tier_of(self, s: CaseState) -> Tier:
        """The case's tier (a state has none only while the case opens, before any demo step)."""
        if s.tier is None:
            raise DemoStepFailed(f"{self.case_id}: still opening, no tier yet")
        return s.tier

    async def until(self, what: str, check: Callable[[CaseState], T | None]) -> T:
        """Poll the `state` query until `check` returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT
        while True:
            found = check(await self.state())
            if found:
                return found
            if loop.time() > deadline:
                raise DemoStepFailed(f"{self.case_id}: gave up waiting for {what} after {STEP_TIMEOUT:.0f}s")
            await asyncio.sleep(POLL)

    async def owner_at(self, tier: Tier) -> Owner:
        """Wait until routing offers the case's current stint at `tier` to a rep (or gives it an owner), and
        have that rep accept it, as the rep's desktop would."""

        def offered_or_owned(s: CaseState) -> Owner | None:
            if s.tier != tier or not s.stints:
                return None
            if s.owner is not None and s.owner.id in s.stints[-1].owners:
                return s.owner
            pending = s.pending_assignment
            return pending.rep if pending is not None and pending.stint == len(s.stints) else None

        owner = await self.until(f"an owner at {tier.value}", offered_or_owned)
        if (await self.state()).owner is None:
            await self.update("accept", AcceptInput(actor=owner.id), TimelineEntry, actor=owner.id)
        self.log.info("demo_step", step="owner_assigned", tier=tier.value, owner=owner.id, owner_name=owner.name)
        return owner

    async def callback(self, actor: Owner, in_seconds: float, notes: str) -> Callback:
        at = datetime.now(UTC) + timedelta(seconds=in_seconds)
        cb = await self.update(
            "schedule_callback",
            ScheduleCallbackInput(actor=actor.id, at=at, notes=notes),
            Callback,
            actor=actor.id,
            at=at.isoformat(),
        )
        self.log.info(
            "demo_step",
            step="callback_booked",
            callback_id=cb.id,
            customer_time=cb.customer_time.isoformat(),
            owner_time=cb.owner_time.isoformat(),
        )
        return cb

    async def callback_due(self, callback_id: str) -> None:
        """Wait until the caller has been told the callback is due."""

        def due(s: CaseState) -> bool:
            return any(c.id == callback_id and c.status == "scheduled" and c.due_told for c in s.callbacks)

        await self.until(f"{callback_id} to fall due", due)

    async def callback_outcome(self, actor: Owner, callback_id: str, outcome: CallbackOutcome) -> Callback:
        await self.callback_due(callback_id)
        return await self.update(
            "record_callback_outcome",
            CallbackOutcomeInput(actor=actor.id, callback_id=callback_id, outcome=outcome),
            Callback,
            callback_id=callback_id,
            outcome=outcome.value,
        )

    async def checkin_sent(self, number: int) -> CheckIn:
        """Wait until follow-up check-in `number` has gone out to the customer (state.checkins[i].sent_at)."""

        def sent(s: CaseState) -> CheckIn | None:
            c = next((c for c in s.checkins if c.number == number), None)
            return c if c is not None and c.sent_at is not None else None

        checkin = await self.until(f"follow-up check-in {number} to be sent", sent)
        self.log.info(
            "demo_step",
            step="checkin_sent",
            checkin=number,
            channel=checkin.channel.value,
            sent_at=checkin.sent_at.isoformat() if checkin.sent_at else None,
        )
        return checkin

    async def next_checkin_number(self) -> int:
        s = await self.state()
        upcoming = [c.number for c in s.checkins if c.sent_at is None and not c.cancelled]
        if not upcoming:
            raise DemoStepFailed(f"{self.case_id}: no follow-up check-in is scheduled")
        return upcoming[0]

    async def update(self, name: str, arg: Any, result_type: type[T], **fields: Any) -> T:
        await asyncio.sleep(PACE)
        result = await execute_update(self.handle, name, arg, result_type=result_type)
        self.log.info("demo_step", step=name, **fields)
        return result

    async def acknowledge(self, owner: Owner, note: str | None = None) -> None:
        await self.update("acknowledge", AcknowledgeInput(actor=owner.id, note=note), TimelineEntry, actor=owner.id)

    async def note(self, actor: str, text: str, sentiment: Sentiment | None = None) -> None:
        await self.update(
            "add_note", NoteInput(actor=actor, text=text, sentiment=sentiment), TimelineEntry, actor=actor, text=text
        )

    async def offer(self, actor: str, amount: str, description: str, kind: OfferKind = OfferKind.COMPENSATION) -> Offer:
        offer = await self.update(
            "propose_offer",
            OfferInput(actor=actor, kind=kind, amount=Decimal(amount), description=description),
            Offer,
            actor=actor,
            amount=amount,
            kind=kind.value,
        )
        self.log.info(
            "demo_step", step="offer_proposed", offer_id=offer.id, amount=str(offer.amount), currency=offer.currency
        )
        return offer

    async def offer_answer(self, actor: str, offer: Offer, answer: OfferAnswer, note: str | None = None) -> None:
        """`actor`, the rep on the call, records the customer's answer to the offer."""
        await self.update(
            "record_offer_response",
            OfferResponseInput(actor=actor, offer_id=offer.id, answer=answer, note=note),
            Offer,
            actor=actor,
            offer_id=offer.id,
            answer=answer.value,
        )

    async def escalate(self, actor: str, reason: EscalationReason, detail: str) -> Tier:
        await self.update(
            "escalate",
            EscalateInput(actor=actor, reason=reason, detail=detail),
            TimelineEntry,
            actor=actor,
            reason=reason.value,
        )
        tier = self.tier_of(await self.state())
        self.log.info("demo_step", step="escalated_to", tier=tier.value)
        return tier

    async def resolve(
        self, actor: str, resolution: str, root_cause: RootCause, *, kb_article: str | None = None
    ) -> None:
        await self.update(
            "resolve",
            ResolveInput(
                actor=actor,
                resolution=resolution,
                root_cause=root_cause,
                kb_article=kb_article,
                kb_missing=kb_article is None,
            ),
            TimelineEntry,
            actor=actor,
            root_cause=root_cause.value,
            kb_article=kb_article,
            kb_missing=kb_article is None,
        )

    async def followup(self, number: int, answer: FollowUpAnswer, comment: str) -> None:
        """The customer answers check-in `number`, with the customer credential the signed inbound endpoint
        mints for this case and check-in (only the customer answers a check-in)."""
        await self.checkin_sent(number)
        if self.signer is None:
            raise DemoStepFailed(
                f"{self.case_id}: no signing key to mint the customer's credential for check-in {number}"
            )
        with use_credential(self.signer.mint(CUSTOMER, case_id=self.case_id, checkin=number)):
            await self.update(
                "followup_response",
                FollowUpResponseInput(answer=answer, comment=comment, checkin=number),
                TimelineEntry,
                checkin=number,
                answer=answer.value,
                comment=comment,
            )


def _refusal(err: WorkflowUpdateFailedError) -> str:
    cause = err.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or err)


# ----- the scenarios


def _customer(
    cid: str,
    name: str,
    email: str,
    *,
    language: str = "en",
    time_zone: str = "Europe/London",
    value: str = "1200",
    phone: str | None = None,
) -> dict[str, Any]:
    return {
        "id": cid,
        "name": name,
        "email": email,
        "phone": phone,
        "language": language,
        "time_zone": time_zone,
        "lifetime_value": value,
        "preferred_channel": "email",
    }


async def nobody_touches(case: DemoCase) -> None:
    """Nobody accepts or acknowledges: offers time out rep after rep, each tier with nobody left hands the
    case up with no_capacity (or an SLA breach gets there first) until the manager's missed target sends
    the top-tier breach notice to the escalation contact. Never on hold, never silent."""
    case.log.info(
        "demo_step",
        step="left_alone",
        expect="offers time out, climbs with no_capacity / SLA breaches to manager, then a top-tier breach notice",
    )
    seen: set[Tier] = set()

    def progress(s: CaseState) -> bool:
        if s.tier is not None and s.tier not in seen:
            seen.add(s.tier)
            case.log.info(
                "demo_step", step="at_tier", tier=s.tier.value, breaches=s.breaches, escalations=s.escalations
            )
        return any(e.kind == "breached" and e.tier == Tier.MANAGER for e in s.timeline)

    await case.until("a breach at the top tier", progress)
    case.log.info(
        "demo_step",
        step="top_tier_breach",
        detail="breach notice sent to the escalation contact (see the outbox, kind top_breach)",
    )


async def accepted_never_acknowledged(case: DemoCase) -> None:
    """The agent accepts the case but never acknowledges it: accepting makes them the owner, only
    acknowledging stops the acknowledge clock, so at the demo policy's 20 s target the case climbs to the
    team lead with reason sla_breach. The team lead acknowledges at once and resolves it."""
    agent = await case.owner_at(Tier.AGENT)
    await case.note(agent.id, "Checking the outage map before I call back", Sentiment.UPSET)

    def climbed(s: CaseState) -> TimelineEntry | None:
        return next(
            (
                e
                for e in s.timeline
                if e.kind == "escalated" and e.detail.get("reason") == EscalationReason.SLA_BREACH.value
            ),
            None,
        )

    entry = await case.until("the acknowledge target to be missed", climbed)
    case.log.info(
        "demo_step",
        step="climbed_on_breach",
        from_tier=entry.detail.get("from_tier"),
        to_tier=entry.detail.get("to_tier"),
        reason=entry.detail.get("reason"),
        detail=entry.detail.get("detail"),
    )
    lead = await case.owner_at(Tier.TEAM_LEAD)
    await case.acknowledge(lead, "Picked up after the missed target; calling the customer now")
    await case.resolve(
        lead.id,
        "Reset the SIM profile remotely; data works again",
        RootCause.PRODUCT_DEFECT,
        kb_article="KB-4120 Resetting a SIM profile",
    )


async def quick_fix(case: DemoCase) -> None:
    """The agent acknowledges and resolves at once; the customer answers the first check-in 'fixed'."""
    agent = await case.owner_at(Tier.AGENT)
    await case.acknowledge(agent, "On it")
    await case.note(agent.id, "Invoice PDF link had expired; re-issued it and sent it by email", Sentiment.CALM)
    await case.resolve(
        agent.id,
        "Re-issued the invoice PDF with a fresh download link",
        RootCause.PROCESS_FAILURE,
        kb_article="KB-1042 Re-issuing invoice PDFs",
    )
    number = await case.next_checkin_number()
    await case.followup(number, FollowUpAnswer.FIXED, "Downloaded it, thanks!")
    case.log.info("demo_step", step="closed_by_customer", detail="positive follow-up closes the case")


async def threat(case: DemoCase) -> None:
    """Opened with a threat: starts at supervisor, who books a callback (no answer, then reached on the
    retry), settles it with an accepted offer and resolves it. The follow-up check-ins then go unanswered
    and the case closes by itself."""
    sup = await case.owner_at(Tier.SUPERVISOR)
    await case.acknowledge(sup, "Will call the customer back in a moment")
    # "Calling a customer back takes the emotional heat out": no answer the first time, reached on the retry.
    cb = await case.callback(sup, 4, "Apologise first; explain the refund of the three debits")
    await case.callback_outcome(sup, cb.id, CallbackOutcome.NO_ANSWER)
    await case.callback_outcome(sup, cb.id, CallbackOutcome.REACHED)
    await case.note(
        sup.id, "Customer mentioned going to a lawyer and the press; calmer after the call", Sentiment.UPSET
    )
    offer = await case.offer(sup.id, "300", "Refund of three wrong direct debits plus one month free")
    await case.offer_answer(sup.id, offer, OfferAnswer.ACCEPTED, "Accepted on the phone")
    await case.resolve(
        sup.id,
        "Refunded the duplicate debits and fixed the mandate in billing",
        RootCause.BILLING_ERROR,
        kb_article="KB-2210 Duplicate SEPA mandates",
    )
    case.log.info(
        "demo_step",
        step="awaiting_followups",
        detail="check-ins go unanswered; the case closes when the follow-up window ends",
    )


async def needs_authority(case: DemoCase) -> None:
    """The agent's offer is above the agent's authority and is refused; the case goes to the team lead with
    reason needs_authority, whose offer is accepted. A 'not fixed' follow-up reopens it; resolved again."""
    agent = await case.owner_at(Tier.AGENT)
    await case.acknowledge(agent)
    try:
        await case.offer(agent.id, "80", "Refund of the router rental for two months")
        case.log.warning("demo_unexpected", detail="the agent's over-limit offer was accepted by the rules")
    except WorkflowUpdateFailedError as err:
        case.log.warning("demo_offer_refused", actor=agent.id, amount="80", message=_refusal(err))
    tier = await case.escalate(agent.id, EscalationReason.NEEDS_AUTHORITY, "Customer wants 80 EUR back; above my limit")
    lead = await case.owner_at(tier)
    await case.acknowledge(lead, "Read the brief, calling the customer")
    offer = await case.offer(lead.id, "80", "Refund of the router rental for two months")
    await case.offer_answer(lead.id, offer, OfferAnswer.ACCEPTED)
    await case.resolve(
        lead.id,
        "Refunded two months of router rental; remote reset of the router",
        RootCause.PRODUCT_DEFECT,
        kb_article="KB-3307 Router firmware 4.2 reset",
    )
    number = await case.next_checkin_number()
    await case.followup(number, FollowUpAnswer.NOT_FIXED, "Router drops the connection again every evening")
    s = await case.state()
    tier = case.tier_of(s)
    case.log.info("demo_step", step="reopened", tier=tier.value, status=s.status.value, reopens=s.reopens)
    owner = await case.owner_at(tier)
    await case.acknowledge(owner, "Reopened: shipping a replacement")
    await case.resolve(owner.id, "Replacement router shipped by express; old one collected", RootCause.PRODUCT_DEFECT)
    case.log.info(
        "demo_step", step="resolved_again", detail="resolved without a KB article (kb_missing) so managers see the gap"
    )


async def wants_manager(case: DemoCase) -> None:
    """'Let me speak to a manager': the escalation lands at team_lead, who stands in for managers."""
    agent = await case.owner_at(Tier.AGENT)
    await case.acknowledge(agent)
    await case.note(agent.id, "Customer insists on speaking to a manager about the cancellation fee", Sentiment.ANGRY)
    tier = await case.escalate(agent.id, EscalationReason.CUSTOMER_REQUEST, "Customer asked for a manager")
    lead = await case.owner_at(tier)
    await case.acknowledge(lead, "Team lead taking the call for the manager")
    await case.resolve(
        lead.id, "Explained the fee and waived it as the contract page was unclear", RootCause.COMMUNICATION
    )


async def waits_on_customer(case: DemoCase) -> None:
    """The agent needs a photo of the meter from the customer: the resolve clock stops while the case
    waits (the UI shows it waiting, with no SLA due), and runs again with the time it had left."""
    agent = await case.owner_at(Tier.AGENT)
    await case.acknowledge(agent)
    await case.update(
        "wait_on_customer",
        WaitOnCustomerInput(actor=agent.id, reason="photo of the meter reading"),
        TimelineEntry,
        actor=agent.id,
    )
    await asyncio.sleep(WAIT_FOR_CUSTOMER)  # longer than the agent's resolve target: no breach
    await case.update(
        "customer_replied",
        CustomerRepliedInput(actor=agent.id, channel="email", note="photo received"),
        TimelineEntry,
        actor=agent.id,
    )
    s = await case.state()
    case.log.info("demo_step", step="clock_resumed", paused_seconds=s.paused_total.total_seconds(), breaches=s.breaches)
    await case.resolve(
        agent.id,
        "Corrected the meter reading and re-issued the bill",
        RootCause.BILLING_ERROR,
        kb_article="KB-1310 Correcting meter readings",
    )


@dataclass(frozen=True)
class Scenario:
    case: dict[str, Any]
    drive: Callable[[DemoCase], Awaitable[None]]

    @property
    def case_id(self) -> str:
        return self.case["case_id"]

    def input(self) -> EscalationInput:
        return EscalationInput.model_validate({**self.case, "policy": POLICY})


SCENARIOS: list[Scenario] = [
    Scenario(
        {
            "case_id": "DEMO-1-UNTOUCHED",
            "customer": _customer(
                "demo-cust-1", "Lena Fischer", "lena.fischer@example.org", language="de", time_zone="Europe/Berlin"
            ),
            "channel": "call",
            "category": "internet",
            "skills": ["internet"],
            "severity": "high",
            "summary": "[DEMO] Internet down for three days, technician never came",
            "desired_outcome": "Working internet and an apology",
            "sentiment": "angry",
            "opened_by": "ben",
        },
        nobody_touches,
    ),
    Scenario(
        {
            "case_id": "DEMO-2-QUICK-FIX",
            "customer": _customer("demo-cust-2", "Omar Haddad", "omar.haddad@example.org"),
            "channel": "chat",
            "category": "billing",
            "skills": ["billing"],
            "severity": "low",
            "summary": "[DEMO] Cannot download the invoice PDF",
            "desired_outcome": "A working invoice PDF",
            "sentiment": "neutral",
            "opened_by": "ana",
        },
        quick_fix,
    ),
    Scenario(
        {
            "case_id": "DEMO-3-THREAT",
            "customer": _customer(
                "demo-cust-3", "Grace Okafor", "grace.okafor@example.org", value="9800", phone="+44 20 7946 0123"
            ),
            "channel": "call",
            "category": "billing",
            "skills": ["billing"],
            "severity": "critical",
            "threat": True,
            "summary": "[DEMO] Debited three times; threatens a lawyer and the press",
            "desired_outcome": "All wrong debits refunded today",
            "sentiment": "furious",
            "opened_by": "ana",
        },
        threat,
    ),
    Scenario(
        {
            "case_id": "DEMO-4-NEEDS-AUTHORITY",
            "customer": _customer("demo-cust-4", "Tom Becker", "tom.becker@example.org", value="2400"),
            "channel": "email",
            "category": "internet",
            "skills": ["internet"],
            "severity": "medium",
            "summary": "[DEMO] Router keeps dropping since the firmware update",
            "desired_outcome": "Refund of the router rental and a stable connection",
            "opened_by": "ben",
        },
        needs_authority,
    ),
    Scenario(
        {
            "case_id": "DEMO-5-WANTS-MANAGER",
            "customer": _customer("demo-cust-5", "Priya Nair", "priya.nair@example.org"),
            "channel": "call",
            "category": "billing",
            "skills": ["billing"],
            "severity": "medium",
            "summary": "[DEMO] Customer asks for a manager about a cancellation fee",
            "desired_outcome": "The cancellation fee waived",
            "sentiment": "angry",
            "opened_by": "ana",
        },
        wants_manager,
    ),
    Scenario(
        {
            "case_id": "DEMO-6-WAITING-ON-CUSTOMER",
            "customer": _customer("demo-cust-6", "Jonas Berg", "jonas.berg@example.org", time_zone="Europe/Stockholm"),
            "channel": "email",
            "category": "billing",
            "skills": ["billing"],
            "severity": "medium",
            "summary": "[DEMO] Bill based on a wrong meter reading",
            "desired_outcome": "A corrected bill",
            "sentiment": "upset",
            "opened_by": "ana",
        },
        waits_on_customer,
    ),
    Scenario(
        {
            "case_id": "DEMO-7-SLA-BREACH",
            "customer": _customer("demo-cust-7", "Chen Wei", "chen.wei@example.org"),
            "channel": "call",
            "category": "mobile",
            "skills": ["mobile"],
            "severity": "high",
            "summary": "[DEMO] No mobile data since the SIM swap",
            "desired_outcome": "Mobile data working today",
            "sentiment": "upset",
            "opened_by": "ben",
        },
        accepted_never_acknowledged,
    ),
]


# ----- running them


async def case_exists(handle: WorkflowHandle) -> bool:
    try:
        await handle.describe()
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def run_scenario(client: Client, settings: Settings, scenario: Scenario) -> None:
    case_log = log.bind(case_id=scenario.case_id)
    try:
        if await case_exists(case_handle(client, scenario.case_id)):
            case_log.info("demo_case_skipped", reason="a case with this id exists already")
            return
        try:
            handle = await open_case(client, scenario.input(), task_queue_name=settings.task_queue)
        except CaseAlreadyOpen:
            case_log.info("demo_case_skipped", reason="already open")
            return
        case_log.info("demo_case_opened", policy=POLICY, scenario=scenario.drive.__name__)
        await scenario.drive(DemoCase(handle, scenario.case_id, Signer.from_settings(settings.identity)))
        case_log.info("demo_case_done", scenario=scenario.drive.__name__)
    except asyncio.CancelledError:
        case_log.info("demo_case_interrupted")
        raise
    except Exception as err:  # one broken scenario must not stop the others or the worker
        case_log.error("demo_case_failed", error=f"{type(err).__name__}: {err}")


async def run_demo(client: Client, settings: Settings, *, stagger: float = 0.5) -> None:
    """Open and drive every demo case concurrently. Cancel the task running this to stop driving."""
    log.info("demo_started", cases=[s.case_id for s in SCENARIOS], policy=POLICY)
    tasks: list[asyncio.Task[None]] = []
    try:
        for scenario in SCENARIOS:
            tasks.append(asyncio.create_task(run_scenario(client, settings, scenario), name=f"demo {scenario.case_id}"))
            await asyncio.sleep(stagger)  # so the UI lists them in order
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
    log.info("demo_driven", detail="all demo cases have had their steps; timers carry on in the workflows")


def main() -> None:
    """`python -m escalation.dev.demo`: open the demo cases on a running server (a worker must be running)."""
    import signal

    from escalation import logs
    from escalation.service.worker import connect

    logs.configure()
    settings = Settings.from_env()

    async def _main() -> None:
        client = await connect(settings)
        task = asyncio.create_task(run_demo(client, settings))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("demo_stopped")

    asyncio.run(_main())


if __name__ == "__main__":
    main()
