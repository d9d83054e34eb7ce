"""Driving the simulated call centre (escalation.dev.mix) through the real workflow: `escalations simulate N`
and `make run` use it to give the report, the themes and the risk model a history worth analysing.

Every step goes through the project client the way a front end would: each command is signed for the rep it
names (the client's credential interceptor), a customer's follow-up answer carries the customer credential
the signed inbound endpoint would mint for that case and check-in, and every update is sent with an update
id of its own (`<case>:<step>`), so a resend after a moment of unavailability is applied once.

At most `concurrency` cases are driven at once; nothing waits on a case's result (the dev server caps long
polls per namespace), cases are watched through the `state` query. A step that cannot be done is reported
with the case id and the step, and the run counts it as failed: no script is left half-done silently. A
case id that exists already (an earlier run with the same seed) is skipped, never opened twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

import structlog
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from escalation.client import Case, EscalationClient, case_handle
from escalation.client.credentials import use_credential
from escalation.client.errors import CaseAlreadyOpen, EscalationError, InvalidState, NoWorker
from escalation.config import Settings
from escalation.dev import mix
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    CaseState,
    CloseInput,
    EscalateInput,
    FollowUpAnswer,
    FollowUpResponseInput,
    NoteInput,
    OfferAnswer,
    OfferInput,
    OfferResponseInput,
    ResolveInput,
    Status,
    Tier,
)
from escalation.domain.policy import PolicyError, PolicyStore
from escalation.domain.roster import RosterError, load_roster
from escalation.identity import CUSTOMER, KeyProblem, Signer

log = structlog.get_logger()

T = TypeVar("T")

DEFAULT_CASES = 300
DEFAULT_CONCURRENCY = 12
MAX_CONCURRENCY = 200
DEFAULT_POLICY = "demo"  # the accelerated ladder: seconds instead of hours
# How long one step may wait for the case to get somewhere (an owner, a sent check-in, a missed target).
STEP_TIMEOUT = 120.0
OPEN_WAIT = 30.0  # for a worker to open a case; none by then stops the run (every case would wait as long)
POLL = 0.5
ASSIGN_POLL = 0.25  # an offer must be accepted within the policy's accept_within: look often
TIERS = list(Tier)


def prepare(
    settings: Settings, cases: int, seed: int, *, policy: str = DEFAULT_POLICY, prefix: str = mix.CASE_PREFIX
) -> list[mix.CaseScript]:
    """The scripts for `cases` cases of `seed` on `policy` (from the policies folder), opened by the active reps
    at the policy's first tier in the roster. Raises PolicyError, RosterError or ValueError saying what is wrong."""
    loaded = PolicyStore(settings.policy_dir).get(policy)
    first = loaded.ladder[0]
    openers = sorted(r.id for r in load_roster(settings.roster_path).reps if r.active and r.tier == first)
    if not openers:
        raise ValueError(f"roster: no active rep at {first.value}, the first tier of policy '{policy}', to open cases")
    return mix.plan(cases, seed, loaded, prefix=prefix, openers=openers)


class StepFailed(Exception):
    """A step of a script could not be done (or the case did not get where it should in time)."""

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class CaseRun:
    case_id: str
    result: Literal["done", "skipped", "failed"]
    ends: Literal["closed", "resolved"]
    error: str | None = None
    step: int | None = None  # the failed step, 1-based
    seconds: float = 0.0
    followed: int = 0  # escalations the system made before the script asked for them (no_capacity, a breach)


@dataclass
class Progress:
    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    skipped: int = 0
    failed: int = 0
    running: int = 0  # holding a slot
    waiting: int = 0  # gave their slot back until a follow-up check-in goes out

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"simulate: {self.finished}/{self.total} cases ({self.done} driven, {self.skipped} skipped, "
            f"{self.failed} failed), {self.running} worked on, {self.waiting} waiting for a follow-up, {elapsed:.0f}s"
        )


@dataclass
class Simulation:
    runs: list[CaseRun]
    seconds: float

    @property
    def failed(self) -> list[CaseRun]:
        return [r for r in self.runs if r.result == "failed"]

    def count(self, result: str) -> int:
        return sum(r.result == result for r in self.runs)


async def case_exists(esc: EscalationClient, case_id: str) -> bool:
    try:
        await case_handle(esc.temporal, case_id).describe()
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


class Slots:
    """At most `n` cases worked at once. A case that gave its slot back while it waited for a follow-up check-in
    gets one before any case not started yet: it must answer within the check-in's response window."""

    def __init__(self, n: int) -> None:
        self.free = n
        self.returning = 0
        self.changed = asyncio.Condition()

    async def acquire(self, *, returning: bool = False) -> None:
        async with self.changed:
            self.returning += returning
            try:
                await self.changed.wait_for(lambda: self.free > 0 and (returning or not self.returning))
            finally:
                self.returning -= returning
            self.free -= 1

    async def release(self) -> None:
        async with self.changed:
            self.free += 1
            self.changed.notify_all()


class Seat:
    """One case's claim on the slots: whether it holds one now."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.held = False

    async def take(self, *, returning: bool = False) -> None:
        await self.slots.acquire(returning=returning)
        self.held = True

    async def leave(self) -> None:
        if self.held:
            self.held = False
            await self.slots.release()


class Driver:
    """Runs one script on one case."""

    def __init__(
        self,
        esc: EscalationClient,
        script: mix.CaseScript,
        signer: Signer | None,
        *,
        step_timeout: float,
        seat: Seat | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.esc = esc
        self.progress = progress
        # The case's slot: given back while the case only waits for a follow-up check-in to go out.
        self.seat = seat
        self.script = script
        self.case_id = script.case_id
        self.signer = signer
        self.step_timeout = step_timeout
        self.case: Case = esc.case(script.case_id)
        self.actor: str | None = None  # the rep holding the case at its current stint
        self.taken = 0  # the stint (1-based) the driver took the case at
        self.followed = 0
        self.started = False  # a worker opened the case

    def uid(self, step: int, part: str) -> str:
        return f"sim:{self.case_id}:{step}:{part}"

    async def until(self, what: str, check: Callable[[CaseState], T | None], *, poll: float = POLL) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.step_timeout
        while True:
            found = check(await self.case.state())
            if found is not None and found is not False:
                return found
            if loop.time() > deadline:
                raise StepFailed(f"gave up waiting for {what} after {self.step_timeout:.0f}s")
            await asyncio.sleep(poll)

    async def run(self) -> None:
        opened = await self.esc.open(self.script.opening, if_open="fail", wait=OPEN_WAIT)
        if opened.still_opening:
            raise NoWorker(
                f"no worker opened case {self.case_id} within {OPEN_WAIT:g}s: is a worker running on task queue "
                f"'{self.esc.task_queue}' (make run, make worker)?"
            )
        self.case, self.started = opened, True
        for i, action in enumerate(self.script.actions, 1):
            try:
                await self.step(i, action)
            except (StepFailed, EscalationError) as err:
                raise StepFailed(f"step {i} ({type(action).__name__}): {err}", step=i) from None

    async def step(self, i: int, action: mix.Action) -> None:
        match action:
            case mix.Take(ack_after=ack_after):
                await self.take(i, ack_after)
            case mix.LeaveToBreach():
                await self.leave_to_breach(i)
            case mix.Note(text=text, sentiment=sentiment):
                actor = await self.holder(i)
                await self.case.add_note(
                    NoteInput(actor=actor, text=text, sentiment=sentiment), update_id=self.uid(i, "note")
                )
            case mix.Escalate(reason=reason, detail=detail, to=to):
                s = await self.case.state()
                if s.tier is not None and TIERS.index(s.tier) >= TIERS.index(to):
                    self.followed += 1  # the system moved it there already (no_capacity, a missed target)
                    return
                actor = await self.holder(i)
                await self.case.escalate(
                    EscalateInput(actor=actor, reason=reason, detail=detail), update_id=self.uid(i, "escalate")
                )
            case mix.Offer(kind=kind, amount=amount, description=description, accepted=accepted, note=note):
                actor = await self.holder(i)
                offer = await self.case.propose_offer(
                    OfferInput(actor=actor, kind=kind, amount=amount, description=description),
                    update_id=self.uid(i, "offer"),
                )
                await self.case.record_offer_response(
                    OfferResponseInput(
                        actor=actor,
                        offer_id=offer.id,
                        answer=OfferAnswer.ACCEPTED if accepted else OfferAnswer.DECLINED,
                        note=note,
                    ),
                    update_id=self.uid(i, "answer"),
                )
            case mix.Resolve(resolution=resolution, root_cause=root_cause, kb_article=kb_article):
                actor = await self.holder(i)
                await self.case.resolve(
                    ResolveInput(
                        actor=actor,
                        resolution=resolution,
                        root_cause=root_cause,
                        kb_article=kb_article,
                        kb_missing=kb_article is None,
                    ),
                    update_id=self.uid(i, "resolve"),
                )
            case mix.FollowUp(answer=answer, comment=comment):
                await self.followup(i, answer, comment)
            case mix.Close(outcome=outcome, reason=reason):
                actor = await self.holder(i)
                await self.case.close(
                    CloseInput(actor=actor, outcome=outcome, reason=reason), update_id=self.uid(i, "close")
                )

    # ----- the steps that wait for the case

    async def offered(self, stint: int | None = None) -> tuple[int, str, bool]:
        """Wait until the case's current stint (at whatever tier it is now) is offered to a rep or owned:
        (stint, rep, owned already)."""

        def found(s: CaseState) -> tuple[int, str, bool] | None:
            if s.status != Status.OPEN or not s.stints:
                return None
            n = len(s.stints)
            if stint is not None and n != stint:
                return None
            if s.owner is not None and s.owner.id in s.stints[-1].owners:
                return n, s.owner.id, True
            pending = s.pending_assignment
            return (n, pending.rep.id, False) if pending is not None and pending.stint == n else None

        return await self.until("an owner", found, poll=ASSIGN_POLL)

    async def accept(self, i: int) -> tuple[int, str]:
        """Take the case offered at its current stint as the rep it is offered to; an offer that lapsed or moved on
        meanwhile is looked up again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.step_timeout
        attempt = 0
        while True:
            stint, rep, owned = await self.offered()
            if owned:
                return stint, rep
            attempt += 1
            try:
                await self.case.accept(AcceptInput(actor=rep), update_id=self.uid(i, f"accept-{stint}-{attempt}"))
                return stint, rep
            except InvalidState:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(ASSIGN_POLL)  # the offer timed out or was withdrawn: the next one is looked up

    async def take(self, i: int, ack_after: float) -> None:
        stint, rep = await self.accept(i)
        self.actor, self.taken = rep, stint
        await asyncio.sleep(ack_after)
        s = await self.case.state()
        if len(s.stints) != stint:  # moved on meanwhile (a missed target): take it where it is now
            self.followed += 1
            await self.take(i, 0)
            return
        if s.acknowledged_by is None:
            await self.case.acknowledge(AcknowledgeInput(actor=rep), update_id=self.uid(i, f"ack-{stint}"))

    async def holder(self, i: int) -> str:
        """The rep who holds the case now; a case the system moved since it was taken is taken again first."""
        s = await self.case.state()
        if self.actor is None or len(s.stints) != self.taken or s.owner is None or s.owner.id != self.actor:
            if s.status != Status.OPEN:
                raise StepFailed(f"the case is {s.status.value}, with nobody holding it")
            self.followed += 1
            await self.take(i, 0)
        assert self.actor is not None
        return self.actor

    async def leave_to_breach(self, i: int) -> None:
        s = await self.case.state()
        if s.tier is None or s.tier == TIERS[-1]:
            return  # nothing above: a breach at the top does not climb
        stint, rep = await self.accept(i)
        self.actor, self.taken = rep, stint
        await self.until("the acknowledge target to be missed", lambda s: len(s.stints) > stint)

    @contextlib.asynccontextmanager
    async def idle(self) -> AsyncIterator[None]:
        """Give the case's slot to another case while this one only waits (a resolved case holds no rep)."""
        if self.seat is None:
            yield
            return
        await self.seat.leave()
        if self.progress is not None:
            self.progress.running -= 1
            self.progress.waiting += 1
        try:
            yield
        finally:
            await self.seat.take(returning=True)
            if self.progress is not None:
                self.progress.waiting -= 1
                self.progress.running += 1

    async def followup(self, i: int, answer: FollowUpAnswer, comment: str) -> None:
        s = await self.case.state()
        upcoming = [c for c in s.checkins if c.sent_at is None and not c.cancelled and c.answer is None]
        sent = [c for c in s.checkins if c.sent_at is not None and c.answer is None and not c.expired]
        if not upcoming and not sent:
            raise StepFailed("no follow-up check-in is scheduled or waiting for an answer")
        number = sent[0].number if sent else upcoming[0].number
        if not sent:
            due = upcoming[0].due_at

            def is_sent(s: CaseState) -> bool:
                return any(c.number == number and c.sent_at is not None for c in s.checkins)

            async with self.idle():
                await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
                await self.until(f"follow-up check-in {number} to be sent", is_sent)
        if self.signer is None:
            raise StepFailed("no signing key to mint the customer's credential for a follow-up answer")
        with use_credential(self.signer.mint(CUSTOMER, case_id=self.case_id, checkin=number)):
            await self.case.followup_response(
                FollowUpResponseInput(answer=answer, comment=comment, checkin=number), update_id=self.uid(i, "answer")
            )


async def drive(
    esc: EscalationClient,
    script: mix.CaseScript,
    signer: Signer | None,
    *,
    step_timeout: float = STEP_TIMEOUT,
    seat: Seat | None = None,
    progress: Progress | None = None,
) -> CaseRun:
    """Open the script's case and run its steps; the result says how far it got (never raises for the case).
    `seat`, held by the caller, is given back while the case waits for a follow-up check-in."""
    started = time.monotonic()
    run = CaseRun(script.case_id, "done", script.ends)
    driver = Driver(esc, script, signer, step_timeout=step_timeout, seat=seat, progress=progress)
    try:
        if await case_exists(esc, script.case_id):
            run.result = "skipped"
            return run
        await driver.run()
    except CaseAlreadyOpen:  # only opening raises it: another run opened the case between the look and the start
        run.result = "skipped"
    except NoWorker as err:
        if driver.started:  # a case a worker opened fails alone; a case no worker opens stops the run
            run.result, run.error = "failed", str(err)
        else:
            raise
    except Exception as err:  # one case's failure is reported with it; the others go on
        run.result = "failed"
        run.error = str(err) if isinstance(err, (StepFailed, EscalationError)) else f"{type(err).__name__}: {err}"
        run.step = getattr(err, "step", None)
        log.warning("simulate_case_failed", case_id=script.case_id, error=type(err).__name__)
    finally:
        run.seconds = time.monotonic() - started
        run.followed = driver.followed
    return run


async def simulate(
    esc: EscalationClient,
    scripts: Sequence[mix.CaseScript],
    signer: Signer | None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[Progress], None] | None = None,
    every: float = 5.0,
    step_timeout: float = STEP_TIMEOUT,
) -> Simulation:
    """Drive every script, `concurrency` cases at a time; `on_progress` is called every `every` seconds and at the
    end. Cancel the task running this to stop: the cases keep running in their workflows."""
    if not 0 < concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency: between 1 and {MAX_CONCURRENCY} (got {concurrency})")
    progress = Progress(total=len(scripts))
    slots = Slots(concurrency)

    # A customer who comes back does so after their earlier case has had its steps, as people do: their brief
    # then shows what happened last time.
    waits: dict[str, asyncio.Event] = {}  # case id -> the end of the customer's case before it
    done: dict[str, asyncio.Event] = {}  # case id -> its own end
    latest: dict[str, asyncio.Event] = {}  # customer id -> the end of their latest case so far
    for s in scripts:
        customer = s.opening.customer.id
        if customer in latest:
            waits[s.case_id] = latest[customer]
        done[s.case_id] = latest[customer] = asyncio.Event()

    async def one(script: mix.CaseScript) -> CaseRun:
        try:
            if script.case_id in waits:
                await waits[script.case_id].wait()
            return await drive_one(script)
        finally:
            done[script.case_id].set()

    async def drive_one(script: mix.CaseScript) -> CaseRun:
        seat = Seat(slots)
        await seat.take()
        progress.running += 1
        try:
            run = await drive(esc, script, signer, step_timeout=step_timeout, seat=seat, progress=progress)
        finally:
            progress.running -= 1
            await seat.leave()
        setattr(progress, run.result, getattr(progress, run.result) + 1)
        return run

    async def report() -> None:
        while on_progress is not None:
            await asyncio.sleep(every)
            on_progress(progress)

    ticker = asyncio.create_task(report())
    tasks = [asyncio.create_task(one(s), name=f"simulate {s.case_id}") for s in scripts]
    try:
        runs = await asyncio.gather(*tasks)
    except NoWorker as err:
        raise NoWorker(f"{err} The run stopped after {progress.finished} of {progress.total} cases.") from None
    finally:
        ticker.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.wait([ticker, *tasks])
    if on_progress is not None:
        on_progress(progress)
    return Simulation(list(runs), time.monotonic() - progress.started)


# `make run` on a fresh data directory: the demo cases, and this many simulated cases behind them.
DEMO_CASES = DEFAULT_CASES
DEMO_SEED = 1
CLI_SEED = 2  # `escalations simulate` and `make simulate` by default: other cases than make run's


async def run_in_background(
    client: Client, settings: Settings, *, cases: int = DEMO_CASES, seed: int = DEMO_SEED
) -> None:
    """`make run`: drive the simulation next to the worker, logging progress (counts and case ids only). Cancel the
    task running this to stop driving; the cases carry on in their workflows."""
    try:
        scripts = prepare(settings, cases, seed)
        signer = Signer.from_settings(settings.identity)
    except (PolicyError, RosterError, ValueError, KeyProblem) as err:
        log.error("simulation_not_started", error=str(err))
        return
    esc = EscalationClient(client, task_queue=settings.task_queue)
    log.info("simulation_started", cases=cases, seed=seed, policy=DEFAULT_POLICY, first=scripts[0].case_id)

    def progress(p: Progress) -> None:
        log.info(
            "simulation_progress",
            finished=p.finished,
            total=p.total,
            failed=p.failed,
            worked_on=p.running,
            waiting_for_followup=p.waiting,
        )

    try:
        result = await simulate(esc, scripts, signer, on_progress=progress, every=30.0)
    except EscalationError as err:
        log.error("simulation_stopped", error=str(err))
        return
    for run in result.failed:
        log.warning("simulation_case_failed", case_id=run.case_id, step=run.step)
    log.info(
        "simulation_done",
        driven=result.count("done"),
        skipped=result.count("skipped"),
        failed=len(result.failed),
        seconds=round(result.seconds),
        detail="try: escalations report",
    )
    await asyncio.to_thread(_train_demo_model, settings)


def _train_demo_model(settings: Settings) -> None:
    """`make run`: the risk model fitted on the simulated history, where the worker reads it, so the cases opened
    from now on are scored. Without the insight extra, or with too little history, the cases stay unscored."""
    try:
        from escalation.insight import source, training

        model = training.train(training.training_rows(source.connect(settings.events_path)))
        training.save(model, settings.risk_model_path)
    except ImportError:
        log.info("risk_model_not_trained", reason="the insight extra is not installed")
        return
    except (source.SourceProblem, training.TrainingRefused) as err:
        log.info("risk_model_not_trained", reason=str(err))
        return
    m = model.metrics
    log.info(
        "risk_model_trained",
        version=model.version,
        roc_auc=round(m.roc_auc, 3),
        precision_top_decile=round(m.precision_top_decile, 3),
        base_rate=round(m.base_rate, 3),
        detail="new cases are scored from now on; escalations train fits it again",
    )
