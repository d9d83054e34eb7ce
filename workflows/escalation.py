"""The `Escalation` workflow: one durable workflow per customer case.

The workflow is the imperative shell around `escalation.domain.rules`: handlers validate by dry-running a rule
and then apply it; one loop in `run` waits for the next event or the next deadline, whichever comes
first, and turns the rules' effects into activities. A deadline is a value in the state, not a timer
object, so acknowledging, escalating or resolving simply changes what the loop waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityConfig, LocalActivityConfig

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.identity import IdentifyRequest, IdentityActivities
    from activities.insight import InsightActivities, LookBackRequest
    from activities.notify import NotifyActivities
    from activities.policy import PolicyActivities
    from activities.record import RecordActivities
    from activities.route import RouteActivities
    from escalation import metrics
    from escalation.client.converter import oversized
    from escalation.constants import (
        ERR_CASE_UNAVAILABLE,
        ERR_DELIVERY_REJECTED,
        ERR_INVALID_ARGUMENT,
        ERR_INVALID_STATE,
        ERR_UNKNOWN_POLICY,
        INSIGHT_SEARCH_ATTRIBUTES,
        SA_CUSTOMER,
        SA_OWNER,
        SA_REOPENS,
        SA_SEVERITY,
        SA_SLA_BREACH,
        SA_SLA_DUE,
        SA_STATUS,
        SA_TIER,
        WORKFLOW_ID_PREFIX,
        WORKFLOW_TYPE,
        workflow_id,
    )
    from escalation.domain import rules
    from escalation.domain.carry import CarriedCase
    from escalation.domain.formatting import instant
    from escalation.domain.models import (
        AcceptInput,
        AcknowledgeInput,
        Brief,
        Callback,
        CallbackOutcomeInput,
        CancelCallbackInput,
        CaseEvent,
        CaseState,
        CloseInput,
        CustomerRepliedInput,
        DeEscalateInput,
        EscalateInput,
        EscalationInput,
        EscalationOutcome,
        EventBatch,
        FollowUpResponseInput,
        ForgetInput,
        LookBack,
        NoteInput,
        Offer,
        OfferInput,
        OfferResponseInput,
        Owner,
        ReassignInput,
        RescheduleCallbackInput,
        ResolveInput,
        ScheduleCallbackInput,
        Status,
        TimelineEntry,
        WaitOnCustomerInput,
        as_recorded,
        check_bounds,
    )
    from escalation.domain.policy import Policy
    from escalation.domain.principal import Principal
    from escalation.domain.refusal import describe
    from escalation.domain.rules import Assign, Effect, Routed, RuleViolation, Send, display
    from escalation.domain.rules.dimensions import dimensions
    from escalation.domain.rules.opening import opening_brief, opening_state
    from escalation.domain.rules.permission import may_open
    from escalation.domain.rules.retention import require_room
    from escalation.domain.rules.sla import breach_flag, running_due
    from escalation.identity import sender
    from escalation.search import SEARCH_KEYS


# Activity options. Messages may take a day of retries (a channel is down) without holding up the case.
QUICK = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)),
)
POLICY_OPTS = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=10),
    schedule_to_close_timeout=timedelta(minutes=10),
    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
)
# The policy is read from the worker's own folder, like the roster: a local activity with the same patience.
POLICY_LOCAL_OPTS = LocalActivityConfig(
    start_to_close_timeout=timedelta(seconds=10),
    schedule_to_close_timeout=timedelta(minutes=10),
    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    summary="load policy",
)
ASSIGN_OPTS: ActivityConfig = {**QUICK, "schedule_to_close_timeout": timedelta(minutes=5)}
SEND_OPTS = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(days=1),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10)),
)
# Events: the attempt may run long (a big batch to a slow receiver) as long as it heartbeats its progress;
# a lost attempt (worker or server killed) is noticed within the heartbeat timeout, as fast as before.
RECORD_OPTS: ActivityConfig = {
    **SEND_OPTS,
    "start_to_close_timeout": timedelta(minutes=10),
    "heartbeat_timeout": timedelta(seconds=30),
}
# Who a credential names (workflows.verified): the roster is local to the worker, so a local activity.
IDENTIFY_OPTS = LocalActivityConfig(
    start_to_close_timeout=timedelta(seconds=10),
    schedule_to_close_timeout=timedelta(minutes=10),
    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
    summary="check who acts",
)
# What a new case learns before it opens (activities.insight): quick, or the case opens without it.
LOOK_BACK_OPTS = LocalActivityConfig(
    start_to_close_timeout=timedelta(seconds=5),
    schedule_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(maximum_attempts=2),
    summary="look back: earlier cases, escalation risk",
)
DEAD_LETTER_OPTS = ActivityConfig(
    start_to_close_timeout=timedelta(seconds=30),
    schedule_to_close_timeout=timedelta(days=7),
    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
)


def _with_summary(options: ActivityConfig, summary: str) -> ActivityConfig:
    """`options` for one call, with the summary the UI shows for it (a call cannot name it beside `**options`)."""
    return {**options, "summary": summary}


# Events given up on after a day of retries are dead-lettered (older histories only logged them).
EVENTS_DEAD_LETTER_PATCH = "events-dead-letter"
PATCH_DELIVERY_FALLBACK = "delivery-fallback"
# Notices held for working hours are dropped when the case closes or moves on first (older histories slept).
HELD_NOTICES_PATCH = "held-notices-drop-stale"
# An owner assigned at once hears in their own calendar's hours (older histories: the tier's).
OWNER_HOURS_PATCH = "owner-own-hours"
# Cases opened before routing made offers and counted load keep assigning the old way when they replay.
ROUTING_OFFERS_PATCH = "routing-offers"
# Every new time of a promised callback (a retry, a hand-over to the next rep) is announced to the customer.
CALLBACK_MOVES_PATCH = "callback-moves-announced"
# A callback outcome is refused before its attempt is due (older histories recorded early ones).
CALLBACK_NOT_EARLY_PATCH = "callback-outcome-not-early"
# Reassigning `to` a named rep looks them up in the roster and refuses one at another tier.
REASSIGN_TO_TIER_PATCH = "reassign-to-same-tier"
# A missed SLA target at the top of the ladder stays in SlaDueAt, with SlaBreach unowned/owned (older
# histories unset SlaDueAt when it was missed).
SLA_OVERDUE_PATCH = "sla-overdue-marker"
# The timeline entry each update returns, by the rule it runs: the command's own entry.
OWN_ENTRY = {
    "acknowledge": "acknowledged",
    "escalate": "escalated",
    "de_escalate": "de_escalated",
    "add_note": "note",
    "wait_on_customer": "waiting_on_customer",
    "customer_replied": "customer_replied",
    "resolve": "resolved",
    "close": "closed",
    "followup_response": "followup_answered",
    "accept": "assignment_accepted",
    "reassign": "reassigned",
    "forget": "forgotten",
}
# A case opens at its workflow's start (older histories: when the policy had loaded).
OPENED_AT_START_PATCH = "opened-at-start"
# A case's workflow id must be `escalation-<case_id>` (older histories were not checked).
WORKFLOW_ID_PATCH = "workflow-id-checked"
# Update ids whose answers a case keeps (and carries to its next run), about 100 bytes each: a client resends
# for up to its retry timeout, while a busy case takes hundreds of other commands.
ANSWERS_KEPT = 1000
# Continue-as-new drains effects while commands keep coming, then refuses new ones for the instant it takes
# (older histories put it off whenever a command came).
CAN_THROUGH_UPDATES_PATCH = "continue-as-new-through-updates"
# A new case's start input is checked against today's bounds (cases started before them replay as they ran).
BOUNDED_START_PATCH = "start-input-bounded"
# A new case's start must carry a credential naming who opens it (cases started before credentials replay).
OPENED_BY_VERIFIED_PATCH = "opened-by-verified"
# A reopened case says so in the Reopens search attribute (cases reopened before it replay without).
REOPENS_SEARCHABLE_PATCH = "reopens-searchable"
# A new case looks back before it opens (the customer's earlier cases, its escalation risk) and keeps its pattern
# dimensions searchable (Category, HighestTier, RootCause...); cases opened before replay without either.
INSIGHT_AT_OPEN_PATCH = "insight-at-open"
INSIGHT_SEARCHABLE_PATCH = "insight-searchable"
# A command's sender is looked up and recorded by its handler (workflows.verified).
SENDER_RECORDED_PATCH = "command-sender-recorded"
# Every behaviour patched above, at once: a new run records this one patch instead of checking each of them
# (each patch costs a new history a marker and the SDK's TemporalChangeVersion upsert), and waits for each
# deadline on one timer, kept while a command leaves the deadline where it was; its policy is read by a local
# activity. Runs recorded before it check each patch as they always did.
CURRENT_PATCH = "current-2026-11"
# How long a continue-as-new waits for in-flight effects before carrying them to the next run.
CAN_DRAIN = timedelta(seconds=30)


def _answer_key(update_id: str) -> str:
    """How an update id is kept: as it is, or hashed when long (a raw client may send up to the server's limit),
    so the carried answers stay small."""
    if len(update_id) <= 100:
        return update_id
    return "sha256:" + hashlib.sha256(update_id.encode()).hexdigest()


def _out_of_bounds(value: Any) -> str | None:
    """Why a caller's input breaks today's bounds (its size, a field's length, digits, characters), or None."""
    if (too_big := oversized(value)) is not None:
        return too_big
    try:
        check_bounds(value)
    except ValidationError as err:
        return describe(err, type(value))
    return None


C = TypeVar("C")
R = TypeVar("R")


@workflow.defn(name=WORKFLOW_TYPE)
class Escalation:
    """One customer case. Inputs that break the contract never reach this code: the data converter
    (escalation.client.converter) fails the case or rejects the update with the fields named."""

    @workflow.init
    def __init__(self, inp: EscalationInput) -> None:
        self._input = inp
        self._state: CaseState | None = None
        self._policy: Policy | None = None
        self._open_error: str | None = None
        self._published = 0  # timeline entries already handed to the record activity
        self._changed = False  # set by handlers: the loop re-evaluates its deadline
        self._pending: dict[int, Assign | Send | EventBatch] = {}  # side effects in flight
        self._next_effect = 0
        self._search: dict[str, Any] = {}
        # Handing over to a fresh run: new updates are refused (retryable) until it has, so a constant stream
        # of commands cannot keep a case from continuing as new while its history grows past the limits.
        self._moving = False
        # Update id -> a compact answer, for the last ANSWERS_KEPT updates, carried across continue-as-new
        # (workflows.once: a command resent to the next run is answered, not applied twice).
        # Known from the start: a resend can reach the next run in its very first task, before `run` begins.
        answered = (inp.carried or {}).get("answered") if workflow.info().continued_run_id else None
        self._answered: dict[str, dict[str, Any]] = dict(answered) if isinstance(answered, dict) else {}
        self._details = ""
        # Set by `forget`: the run that holds the customer's details in its history hands over to a fresh run at
        # once, so Temporal deletes that history after the namespace's retention instead of when the case closes.
        self._forgotten = False
        # Decided once, before any handler or `run` can check a patch, so a run never mixes the two ways.
        self._current_run = workflow.patched(CURRENT_PATCH)
        self._timer: asyncio.Task[None] | None = None  # the timer of the deadline the loop waits for
        self._timer_for: datetime | None = None

    def _since(self, patch_id: str) -> bool:
        """Whether this run takes the behaviour `patch_id` introduced: always in a current run, else as recorded."""
        return self._current_run or workflow.patched(patch_id)

    # ----- main loop

    @workflow.run
    async def run(self, inp: EscalationInput) -> EscalationOutcome:
        expected = workflow_id(inp.case_id)
        # A new case only: a case started before the check carries on, in every run, under the id it has.
        first_run = inp.carried is None
        if first_run and workflow.info().workflow_id != expected and self._since(WORKFLOW_ID_PATCH):
            # Clients find a case by its id alone; a case under another workflow id would be lost to them.
            raise ApplicationError(
                f"workflow id: a case's workflow id must be '{expected}' (its case_id with the "
                f"prefix '{WORKFLOW_ID_PREFIX}'), not '{workflow.info().workflow_id[:200]}'",
                {"field": "workflow_id"},
                type=ERR_INVALID_ARGUMENT,
                non_retryable=True,
            )
        refusal = _out_of_bounds(inp) if first_run else None
        if refusal is not None and self._since(BOUNDED_START_PATCH):
            # Checked here, not while decoding: a case started before the bounds still replays.
            raise ApplicationError(refusal, type=ERR_INVALID_ARGUMENT, non_retryable=True)
        opener = await self._opener(inp) if first_run and self._since(OPENED_BY_VERIFIED_PATCH) else None
        if inp.carried is not None:
            if workflow.info().continued_run_id is None:
                raise ApplicationError(
                    "carried: set only by the workflow itself when it continues as new; leave it out",
                    type=ERR_INVALID_ARGUMENT,
                    non_retryable=True,
                )
            with as_recorded():  # the case's own state, as an earlier run kept it
                carried = CarriedCase.model_validate(inp.carried)
                self._policy = Policy.model_validate(carried.policy)
            self._published = carried.published
            self._apply(carried.state, carried.pending)
        else:
            self._policy = await self._load_policy(inp.policy)
            opening = workflow.info().first_execution_run_id  # same for every run of this opening
            # The case opens when it was started, a recorded instant: the policy's answer can reach the workflow
            # with an earlier task's time after a crash, and opening at that time wrote histories that did not
            # replay. Cases started before this keep opening at the policy's answer when they replay.
            opened = workflow.info().workflow_start_time if self._since(OPENED_AT_START_PATCH) else workflow.now()
            look = await self._look_back(inp, opened) if self._since(INSIGHT_AT_OPEN_PATCH) else None
            self._apply(*rules.open_case(inp, self._policy, opened, opening, by=opener, look=look))

        while True:
            state = self._current
            if state.status == Status.CLOSED:
                break
            deadline = rules.next_deadline(state)
            fired = await (self._until(state, deadline) if self._current_run else self._until_rearmed(state, deadline))
            self._changed = False
            self._apply(*rules.advance(self._current, self._policy, self._decision_time(deadline if fired else None)))
            if (
                workflow.info().is_continue_as_new_suggested() or self._forgotten
            ) and self._current.status != Status.CLOSED:
                await self._continue_as_new()

        # Closed: the last messages and events are handed over (or given up on) before completing.
        self._moving = False  # a command now hears that the case is closed, not to try again
        await workflow.wait_condition(lambda: not self._pending and workflow.all_handlers_finished())
        return rules.outcome(self._current, self._policy)

    async def _until(self, state: CaseState, deadline: datetime | None) -> bool:
        """Wait for a handler's change or for `deadline`; True when the deadline came. One timer per deadline: a
        change that leaves the deadline where it was keeps waiting on the same timer."""
        if self._fired() and deadline == self._timer_for:
            # It fired while the loop was elsewhere (a continue-as-new's wait): it came, whatever time this
            # activation carries (see `_decision_time`).
            self._timer, self._timer_for = None, None
            return True
        if deadline != self._timer_for or (self._timer is not None and self._timer.done()):
            if self._timer is not None and not self._timer.done():
                self._timer.cancel()
            self._timer, self._timer_for = None, deadline
            if deadline is not None:
                wait = deadline - workflow.now()
                if wait <= timedelta(0):
                    self._timer_for = None  # due already: decided now, as a zero timeout always was
                    return True
                summary = display.deadline_summary(state, deadline)
                self._timer = asyncio.create_task(workflow.sleep(wait, summary=summary))
        await workflow.wait_condition(lambda: self._changed or self._fired())
        if not self._fired():
            return False
        self._timer, self._timer_for = None, None
        return True

    def _fired(self) -> bool:
        return self._timer is not None and self._timer.done() and not self._timer.cancelled()

    async def _until_rearmed(self, state: CaseState, deadline: datetime | None) -> bool:
        """`_until` as runs before CURRENT_PATCH waited: a fresh timer on every turn of the loop."""
        timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(
                lambda: self._changed,
                timeout=timeout,
                timeout_summary=display.deadline_summary(state, deadline) if deadline else None,
            )
        except TimeoutError:
            return True
        return False

    @staticmethod
    def _decision_time(fired: datetime | None) -> datetime:
        """The time to decide with: a deadline whose timer fired has come, whatever time the activation
        carries. After a worker crash the SDK can hand a timer's firing to the workflow with an earlier
        task's time (the first activation of a cold worker; see the README's deploy section): deciding "not
        due yet" from that time wrote histories the same code could not replay. Wherever the times agree,
        as in every history without that fault, this is `workflow.now()` itself."""
        now = workflow.now()
        return now if fired is None else max(now, fired)

    # ----- updates: each validator dry-runs the same rule the handler applies

    @workflow.update
    async def acknowledge(self, cmd: AcknowledgeInput) -> TimelineEntry:
        return await self._handle(rules.acknowledge, cmd)

    @acknowledge.validator
    def _validate_acknowledge(self, cmd: AcknowledgeInput) -> None:
        self._dry_run(rules.acknowledge, cmd)

    @workflow.update
    async def escalate(self, cmd: EscalateInput) -> TimelineEntry:
        return await self._handle(rules.escalate, cmd)

    @escalate.validator
    def _validate_escalate(self, cmd: EscalateInput) -> None:
        self._dry_run(rules.escalate, cmd)

    @workflow.update
    async def de_escalate(self, cmd: DeEscalateInput) -> TimelineEntry:
        return await self._handle(rules.de_escalate, cmd)

    @de_escalate.validator
    def _validate_de_escalate(self, cmd: DeEscalateInput) -> None:
        self._dry_run(rules.de_escalate, cmd)

    @workflow.update
    async def add_note(self, cmd: NoteInput) -> TimelineEntry:
        return await self._handle(rules.add_note, cmd)

    @add_note.validator
    def _validate_add_note(self, cmd: NoteInput) -> None:
        self._dry_run(rules.add_note, cmd)

    @workflow.update
    async def propose_offer(self, cmd: OfferInput) -> Offer:
        await self._handle(rules.propose_offer, cmd)
        return self._current.offers[-1]

    @propose_offer.validator
    def _validate_propose_offer(self, cmd: OfferInput) -> None:
        self._dry_run(rules.propose_offer, cmd)

    @workflow.update
    async def record_offer_response(self, cmd: OfferResponseInput) -> Offer:
        await self._handle(rules.record_offer_response, cmd)
        return next(o for o in self._current.offers if o.id == cmd.offer_id)

    @record_offer_response.validator
    def _validate_record_offer_response(self, cmd: OfferResponseInput) -> None:
        self._dry_run(rules.record_offer_response, cmd)

    @workflow.update
    async def wait_on_customer(self, cmd: WaitOnCustomerInput) -> TimelineEntry:
        return await self._handle(rules.wait_on_customer, cmd)

    @wait_on_customer.validator
    def _validate_wait_on_customer(self, cmd: WaitOnCustomerInput) -> None:
        self._dry_run(rules.wait_on_customer, cmd)

    @workflow.update
    async def customer_replied(self, cmd: CustomerRepliedInput) -> TimelineEntry:
        # An update, not a signal: whoever relays the reply learns at once if the case was not waiting.
        return await self._handle(rules.customer_replied, cmd)

    @customer_replied.validator
    def _validate_customer_replied(self, cmd: CustomerRepliedInput) -> None:
        self._dry_run(rules.customer_replied, cmd)

    @workflow.update
    async def resolve(self, cmd: ResolveInput) -> TimelineEntry:
        return await self._handle(rules.resolve, cmd)

    @resolve.validator
    def _validate_resolve(self, cmd: ResolveInput) -> None:
        self._dry_run(rules.resolve, cmd)

    @workflow.update
    async def close(self, cmd: CloseInput) -> TimelineEntry:
        return await self._handle(rules.close, cmd)

    @close.validator
    def _validate_close(self, cmd: CloseInput) -> None:
        self._dry_run(rules.close, cmd)

    @workflow.update
    async def followup_response(self, cmd: FollowUpResponseInput) -> TimelineEntry:
        # An update, not a signal: the gateway relaying the customer's answer must know it was taken.
        return await self._handle(rules.followup_response, cmd)

    @followup_response.validator
    def _validate_followup_response(self, cmd: FollowUpResponseInput) -> None:
        self._dry_run(rules.followup_response, cmd)

    # ----- routing and callbacks

    @workflow.update
    async def accept(self, cmd: AcceptInput) -> TimelineEntry:
        return await self._handle(rules.accept, cmd)

    @accept.validator
    def _validate_accept(self, cmd: AcceptInput) -> None:
        self._dry_run(rules.accept, cmd)

    @workflow.update
    async def reassign(self, cmd: ReassignInput) -> TimelineEntry:
        to_rep = None
        if cmd.to is not None and self._since(REASSIGN_TO_TIER_PATCH):
            to_rep = await self._find_rep(cmd.to, field="to")
        return await self._handle(partial(rules.reassign, to_rep=to_rep), cmd)

    @reassign.validator
    def _validate_reassign(self, cmd: ReassignInput) -> None:
        self._dry_run(rules.reassign, cmd)

    @workflow.update
    async def schedule_callback(self, cmd: ScheduleCallbackInput) -> Callback:
        owner = await self._find_rep(cmd.owner)
        await self._handle(partial(rules.schedule_callback, owner=owner), cmd)
        return self._current.callbacks[-1]

    @schedule_callback.validator
    def _validate_schedule_callback(self, cmd: ScheduleCallbackInput) -> None:
        self._dry_run(partial(rules.schedule_callback, owner=self._named_rep(cmd.owner)), cmd)

    @workflow.update
    async def reschedule_callback(self, cmd: RescheduleCallbackInput) -> Callback:
        owner = await self._find_rep(cmd.owner)
        await self._handle(partial(rules.reschedule_callback, owner=owner), cmd)
        return self._callback(cmd.callback_id)

    @reschedule_callback.validator
    def _validate_reschedule_callback(self, cmd: RescheduleCallbackInput) -> None:
        self._dry_run(partial(rules.reschedule_callback, owner=self._named_rep(cmd.owner)), cmd)

    @workflow.update
    async def cancel_callback(self, cmd: CancelCallbackInput) -> Callback:
        await self._handle(rules.cancel_callback, cmd)
        return self._callback(cmd.callback_id)

    @cancel_callback.validator
    def _validate_cancel_callback(self, cmd: CancelCallbackInput) -> None:
        self._dry_run(rules.cancel_callback, cmd)

    @workflow.update
    async def record_callback_outcome(self, cmd: CallbackOutcomeInput) -> Callback:
        rule = partial(
            rules.record_callback_outcome,
            not_early=self._since(CALLBACK_NOT_EARLY_PATCH),
            announce_moves=self._since(CALLBACK_MOVES_PATCH),
        )
        await self._handle(rule, cmd)
        return self._callback(cmd.callback_id)

    @record_callback_outcome.validator
    def _validate_record_callback_outcome(self, cmd: CallbackOutcomeInput) -> None:
        self._dry_run(rules.record_callback_outcome, cmd)

    # ----- right to erasure

    @workflow.update
    async def forget(self, cmd: ForgetInput) -> TimelineEntry:
        entry = await self._handle(rules.forget, cmd)
        # The next run starts from the forgotten input (the state's), and the case hands over to it now.
        self._input = self._current.input
        self._forgotten = True
        return entry

    @forget.validator
    def _validate_forget(self, cmd: ForgetInput) -> None:
        self._dry_run(rules.forget, cmd)

    # ----- answers to updates, kept so a repeat in a later run gets the first answer (workflows.once)

    def knows(self, update_id: str) -> bool:
        return _answer_key(update_id) in self._answered

    async def answer(self, update_id: str) -> TimelineEntry | Offer | Callback | None:
        await workflow.wait_condition(lambda: self._state is not None)
        ref = self._answered[_answer_key(update_id)]
        if "offer" in ref:
            return next((o for o in self._current.offers if o.id == ref["offer"]), None)
        if "callback" in ref:
            return next((c for c in self._current.callbacks if c.id == ref["callback"]), None)
        seq, kind, at, actor, tier = ref["entry"]
        kept = next((e for e in self._current.timeline if e.seq == seq), None)
        return kept or TimelineEntry(seq=seq, kind=kind, at=at, actor=actor, tier=tier)

    def remember(self, update_id: str, result: object) -> None:
        if isinstance(result, Offer):
            ref: dict[str, Any] = {"offer": result.id}
        elif isinstance(result, Callback):
            ref = {"callback": result.id}
        elif isinstance(result, TimelineEntry):  # without its text: the timeline has it while it keeps it
            ref = {"entry": [result.seq, result.kind, result.at.isoformat(), result.actor, result.tier.value]}
        else:
            return
        self._answered[_answer_key(update_id)] = ref
        while len(self._answered) > ANSWERS_KEPT:
            del self._answered[next(iter(self._answered))]

    def _callback(self, callback_id: str) -> Callback:
        return next(c for c in self._current.callbacks if c.id == callback_id)

    def _named_rep(self, rep_id: str | None) -> Owner | None:
        """For validators, which cannot read the roster: the rep as the case knows them, else a stand-in
        so that every other rule is checked; the handler then looks the rep up in the roster."""
        s = self._state
        if rep_id is None or s is None:
            return None
        return s.owner if s.owner is not None and s.owner.id == rep_id else Owner(id=rep_id, name=rep_id, tier=s.tier)

    async def _find_rep(self, rep_id: str | None, field: str = "owner") -> Owner | None:
        """The named rep from the roster (active only); None when unknown, which the rule refuses."""
        if rep_id is None:
            return None
        try:
            return await workflow.execute_activity_method(
                RouteActivities.find_rep, rep_id, **_with_summary(ASSIGN_OPTS, f"look up rep {rep_id}")
            )
        except ActivityError as err:  # the roster could not be read for minutes: refuse, changing nothing
            raise ApplicationError(
                f"{field}: the roster could not be read to check '{rep_id}' ({err.cause or err}); try again",
                {"field": field},
                type=ERR_INVALID_STATE,
            ) from None

    # ----- who sends a command (workflows.verified)

    async def _opener(self, inp: EscalationInput) -> Principal:
        """Who opens the case, by the credential it was started with, verified as of the start; a case nobody
        verified may open fails at once, as a case with bad input does."""
        token = sender.start_token.get()
        if not token:
            raise sender.unauthenticated("opening a case needs a credential naming who opens it")
        principal = await self._identify(IdentifyRequest(token=token, at=workflow.info().workflow_start_time))
        try:
            may_open(principal, inp.opened_by)
        except RuleViolation as err:
            raise ApplicationError(str(err), {"field": err.field}, type=err.type, non_retryable=True) from None
        return principal

    async def _sender(self) -> Principal | None:
        """In a handler: who sent the command, as the roster has them (recorded: a replay reads the answer).
        None for a command taken before credentials existed, which replays as it ran."""
        claims = sender.recorded_claims()
        # A credential recorded by a worker that did not look it up yet (a client deployed before the workers)
        # replays without the lookup. The patch is decided once per run: a run that replays such a command takes
        # later ones without it too, which their validators checked all the same.
        if claims is None or not self._since(SENDER_RECORDED_PATCH):
            return None
        return await self._identify(IdentifyRequest(claims=claims))

    async def _identify(self, req: IdentifyRequest) -> Principal:
        try:
            found = await workflow.execute_local_activity_method(IdentityActivities.identify, req, **IDENTIFY_OPTS)
        except ActivityError as err:  # no roster could be read for minutes: refuse, changing nothing
            raise ApplicationError(
                f"credential: the roster could not be read to check who acts ({err.cause or err}); try again",
                {"field": "credential"},
                type=ERR_INVALID_STATE,
            ) from None
        if found.principal is None:
            raise sender.unauthenticated(found.refusal or "refused")
        return found.principal

    # ----- queries

    @workflow.query
    def state(self) -> CaseState:
        return self._ready_state()

    @workflow.query
    def brief(self) -> Brief:
        if self._state is None and self._open_error is None:
            return opening_brief(self._opening(), workflow.now())
        return rules.build_brief(self._ready_state(), self._loaded_policy, self._asked_at())

    @staticmethod
    def _asked_at() -> datetime:
        """When a query is asked. `workflow.now()` is the time of the case's last workflow task, which may be
        long ago (a quiet case: "Open for 90s" after 15 minutes). A query writes no history, so it may read
        the clock; never earlier than the case's own time (the clock of a time-skipping server runs ahead)."""
        with workflow.unsafe.sandbox_unrestricted():
            asked = datetime.now(UTC)  # noqa: TID251 - a query, which writes no history
        return max(workflow.now(), asked)

    # ----- plumbing

    @property
    def _current(self) -> CaseState:
        assert self._state is not None
        return self._state

    @property
    def _loaded_policy(self) -> Policy:
        """The case's policy: loaded (or carried) before the case has a state, so whenever it has one."""
        assert self._policy is not None
        return self._policy

    def _ready_state(self) -> CaseState:
        if self._open_error is not None:
            raise ApplicationError(
                f"case {self._input.case_id} could not open: {self._open_error}", type=ERR_UNKNOWN_POLICY
            )
        if self._state is None:
            return self._opening()
        return self._state

    def _opening(self) -> CaseState:
        """The answer to a query asked while the policy loads (right after the start): the state the case has,
        status `opening`, instead of an error another SDK would show as an unknown query."""
        return opening_state(self._input, workflow.info().first_execution_run_id, workflow.now())

    def _dry_run(
        self,
        rule: Callable[..., rules.Result],
        cmd: C,
        *,
        validating: bool = True,
        by: Principal | None = None,
    ) -> rules.Result | None:
        """The rule's result for `cmd` sent `by` someone (None while the case is opening), or the refusal. The
        rules are pure, so the handler adopts this very result. A validator's sender is the one its credential
        names, verified (workflows.verified)."""
        if validating and self._moving:  # validators only: they are not replayed, and what they took is applied
            raise ApplicationError(
                "case: handing over to a fresh run of its history (a moment); nothing was applied, send it again",
                {"field": "case"},
                type=ERR_CASE_UNAVAILABLE,
            )
        if validating and (refusal := _out_of_bounds(cmd)) is not None:  # not on replay: see as_recorded
            raise ApplicationError(refusal, type=ERR_INVALID_ARGUMENT, non_retryable=True)
        if self._state is None:
            return None  # still opening: the handler waits for the state and checks then
        if validating:
            by = sender.sender()
        try:
            result = rule(self._state, self._loaded_policy, cmd, workflow.now(), by=by)
            if not isinstance(cmd, FollowUpResponseInput):  # a customer's answer is always taken
                require_room(self._state, result[0])
        except RuleViolation as err:
            raise ApplicationError(str(err), {"field": err.field}, type=err.type, non_retryable=True) from None
        return result

    async def _handle(self, rule: Callable[..., rules.Result], cmd: C) -> TimelineEntry:
        by = await self._sender()
        await workflow.wait_condition(lambda: self._state is not None)
        result = self._dry_run(rule, cmd, validating=False, by=by)  # the state may have moved on since validation
        assert result is not None
        recorded = self._current.last_seq
        self._apply(*result)
        self._changed = True
        made = [e for e in self._current.timeline if e.seq > recorded]
        # The entry this command made, even when another comes first (acknowledging the case offered to you
        # records assignment_accepted, then acknowledged); entries that follow from it come after it.
        named = rule.func if isinstance(rule, partial) else rule
        own = OWN_ENTRY.get(getattr(named, "__name__", ""))
        return next((e for e in made if e.kind == own), made[0])

    def _apply(self, state: CaseState, effects: Sequence[Effect | EventBatch]) -> None:
        """Adopt the new state, start its effects, publish its new timeline entries, refresh search."""
        self._state = state
        # By number: the timeline keeps only its recent entries (rules.retention); until it first drops one,
        # an entry's number is its position, as older runs counted.
        new = [e for e in state.timeline if e.seq > self._published]
        if new:
            self._published = new[-1].seq
            effects = [*effects, EventBatch(events=[self._event(e, state) for e in new])]
            self._measure(new, state)
        for effect in effects:
            self._start(effect)
        self._refresh_search(state)

    @staticmethod
    def _measure(entries: Sequence[TimelineEntry], state: CaseState) -> None:
        """Count the new entries (escalation.metrics); the SDK's meter records nothing while replaying."""
        meter = workflow.metric_meter()
        for entry in entries:
            for m in metrics.measures(entry, state):
                if metrics.METRICS[m.name][0] == "histogram":
                    meter.create_histogram_float(m.name, metrics.METRICS[m.name][1]).record(m.value, m.labels)
                else:
                    meter.create_counter(m.name, metrics.METRICS[m.name][1]).add(int(m.value), m.labels)

    def _start(self, effect: Assign | Send | EventBatch) -> None:
        """Run one side effect in the background; it stays in `_pending` until done, and a
        continue-as-new hands whatever is still pending to the next run."""
        number = self._next_effect
        self._next_effect += 1
        self._pending[number] = effect
        if isinstance(effect, Assign):
            work = self._assign(effect)
        elif isinstance(effect, Send):
            work = self._send(effect)
        else:
            work = self._record(effect)
        task = asyncio.create_task(work)
        task.add_done_callback(lambda _: self._pending.pop(number, None))

    async def _load_policy(self, name: str) -> Policy:
        try:
            if self._current_run:  # the worker's own files: read in the opening task, as one marker
                return await workflow.execute_local_activity_method(
                    PolicyActivities.load_policy, name, **POLICY_LOCAL_OPTS
                )
            return await workflow.execute_activity_method(
                PolicyActivities.load_policy, name, **_with_summary(POLICY_OPTS, f"load policy {name}")
            )
        # A failed local activity can surface as its own failure (ApplicationError) rather than an ActivityError.
        except (ActivityError, ApplicationError) as err:
            cause = err.cause if isinstance(err, ActivityError) else err
            self._open_error = cause.message if isinstance(cause, ApplicationError) else str(err)
            raise ApplicationError(self._open_error, type=ERR_UNKNOWN_POLICY, non_retryable=True) from None

    async def _assign(self, effect: Assign) -> None:
        if not self._since(ROUTING_OFFERS_PATCH):
            await self._assign_at_once(effect)
            return
        try:
            routed = await workflow.execute_activity_method(
                RouteActivities.find_owner,
                effect,
                **_with_summary(
                    ASSIGN_OPTS,
                    f"find {effect.tier.value}" + (f" for {effect.callback_id}" if effect.callback_id else ""),
                ),
            )
        except ActivityError as err:
            workflow.logger.warning("routing_failed", extra={"tier": effect.tier.value, "error": str(err.cause or err)})
            routed = Routed(
                stint=effect.stint,
                request=effect.request,
                callback_id=effect.callback_id,
                failed=True,
                reason=f"routing failed: {err.cause or err}",
            )
        # Cases routed before rep calendars counted told an owner assigned at once in the tier's hours.
        own_hours = self._since(OWNER_HOURS_PATCH)
        # Cases whose callbacks were handed over without telling the customer replay so.
        announce = routed.callback_id is None or self._since(CALLBACK_MOVES_PATCH)
        self._apply(
            *rules.owner_found(
                self._current, self._loaded_policy, routed, workflow.now(), own_hours=own_hours, announce_moves=announce
            )
        )
        self._changed = True

    async def _assign_at_once(self, effect: Assign) -> None:
        try:
            owner = await workflow.execute_activity_method(
                RouteActivities.assign_owner, effect, **_with_summary(ASSIGN_OPTS, f"find {effect.tier.value}")
            )
        except ActivityError as err:
            workflow.logger.warning("routing_failed", extra={"tier": effect.tier.value, "error": str(err.cause or err)})
            owner = None
        self._apply(*rules.owner_assigned(self._current, self._loaded_policy, effect.stint, owner, workflow.now()))
        self._changed = True

    async def _send(self, effect: Send) -> None:
        m = effect.message
        if effect.not_before is not None and effect.not_before > workflow.now():
            # Outside the recipient's hours: a durable timer holds the message (it survives restarts
            # and travels with a continue-as-new as a pending effect).
            summary = f"hold {m.kind.value} to {m.to.id} until {instant(effect.not_before)}"
            if not self._since(HELD_NOTICES_PATCH):
                await workflow.sleep(effect.not_before - workflow.now(), summary=summary)
            else:
                # A notice that stops mattering meanwhile (the case closed or moved on) is dropped at once,
                # so a closed case completes when it closes, not when the weekend ends.
                def obsolete() -> bool:
                    return rules.message_obsolete(self._current, m, about=effect.about, announces=effect.announces)

                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        obsolete, timeout=effect.not_before - workflow.now(), timeout_summary=summary
                    )
                if obsolete():
                    workflow.logger.info(
                        "held_message_dropped",
                        extra={"key": m.key, "kind": m.kind.value, "reason": "the case moved on"},
                    )
                    return
        try:
            await workflow.execute_activity_method(
                NotifyActivities.send_message,
                m,
                **_with_summary(SEND_OPTS, f"{m.kind.value} to {m.to.id} by {m.channel.value}"),
            )
        except ActivityError as err:
            # Refused for good (HTTP 4xx, SMTP 5xx) or a day of outage: say so in the timeline, and the
            # rules send it again by the next route (the customer's next channel, the owner's team).
            workflow.logger.error(
                "message_not_delivered",
                extra={"key": m.key, "kind": m.kind.value, "channel": m.channel.value, "error": str(err.cause or err)},
            )
            cause = err.cause
            reason = str(cause) if cause else str(err)
            permanent = isinstance(cause, ApplicationError) and cause.non_retryable
            state, effects = rules.delivery_failed(
                self._current, self._loaded_policy, m, reason, workflow.now(), permanent=permanent
            )
            # Histories from before fallbacks existed replay without the resend.
            self._apply(state, effects if self._since(PATCH_DELIVERY_FALLBACK) else [])

    async def _look_back(self, inp: EscalationInput, opened: datetime) -> LookBack:
        """The customer's earlier cases and the case's escalation risk; nothing when they cannot be had (the case
        opens all the same: an angry customer waits for no report)."""
        info = workflow.info()
        try:
            request = LookBackRequest.of(inp, info.run_id, opened)
            return await workflow.execute_local_activity_method(InsightActivities.look_back, request, **LOOK_BACK_OPTS)
        # A failed local activity surfaces as its own failure (ApplicationError), not always as an ActivityError;
        # a request the look-back's bounds refuse is no reason to hold the case either.
        except FailureError as err:
            workflow.logger.warning("look_back_failed", extra={"error": str(err.cause or err)[:200]})
            return LookBack()
        except ValidationError as err:  # its message would quote the customer's words: the fields only
            fields = sorted({".".join(map(str, e["loc"])) for e in err.errors()})
            workflow.logger.warning("look_back_refused", extra={"fields": fields})
            return LookBack()

    async def _record(self, batch: EventBatch) -> None:
        events = batch.events
        try:
            await workflow.execute_activity_method(
                RecordActivities.record_events, events, **_with_summary(RECORD_OPTS, f"{len(events)} event(s)")
            )
        except ActivityError as err:
            workflow.logger.error(
                "events_not_recorded",
                extra={"first": events[0].id, "last": events[-1].id, "error": str(err.cause or err)},
            )
            refused = isinstance(err.cause, ApplicationError) and err.cause.type == ERR_DELIVERY_REJECTED
            # Refused events were dead-lettered one by one already; a batch that ran out of retries is
            # kept whole (receivers dedupe the ones that did arrive) so nothing is lost.
            if not refused and self._since(EVENTS_DEAD_LETTER_PATCH):
                await workflow.execute_activity_method(
                    RecordActivities.dead_letter_events,
                    events,
                    **_with_summary(DEAD_LETTER_OPTS, f"dead-letter {len(events)} event(s)"),
                )

    def _event(self, entry: TimelineEntry, state: CaseState) -> CaseEvent:
        return CaseEvent(
            id=f"{workflow.info().workflow_id}/{state.opening_id}/{entry.seq}",
            type=f"escalation.{entry.kind}",
            case_id=state.case_id,
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            via=entry.via,
            tier=entry.tier,
            status=state.status,
            owner=state.owner.id if state.owner else None,
            detail=entry.detail,
        )

    def _refresh_search(self, state: CaseState) -> None:
        tier = state.tier
        assert tier is not None  # only a query's stand-in for an opening case has no tier, and it is never adopted
        due, breach = state.sla_due_at, breach_flag(state)
        if breach is not None and not self._since(SLA_OVERDUE_PATCH):
            due, breach = running_due(state), None  # a history from before the overdue marker
        wanted: dict[str, Any] = {
            SA_TIER: tier.value,
            SA_STATUS: state.status.value,
            SA_OWNER: rules.holder(state),
            SA_CUSTOMER: state.input.customer.id,
            SA_SEVERITY: state.input.severity.value,
            SA_SLA_DUE: due,
        }
        if breach is not None or SA_SLA_BREACH in self._search:  # never upserted until a target is missed
            wanted[SA_SLA_BREACH] = breach
        # From the first reopening on (histories from before the attribute replay without it).
        if SA_REOPENS in self._search or (state.reopens and self._since(REOPENS_SEARCHABLE_PATCH)):
            wanted[SA_REOPENS] = state.reopens
        if self._search.keys() & set(INSIGHT_SEARCH_ATTRIBUTES) or self._since(INSIGHT_SEARCHABLE_PATCH):
            wanted |= {
                k: v for k, v in dimensions(state, self._loaded_policy).items() if v is not None or k in self._search
            }
        if wanted != self._search:
            updates = [
                SEARCH_KEYS[k].value_set(v) if v is not None else SEARCH_KEYS[k].value_unset()
                for k, v in wanted.items()
                if self._search.get(k, "unset") != v
            ]
            workflow.upsert_search_attributes(updates)
            self._search = wanted
        # What the UI shows, without personal data (no command: replays as before). The case's summary leads,
        # for cases whose client set none (the temporal CLI, another SDK).
        details = f"{display.static_summary(state.input)}\n\n" + display.current_details(
            state, self._loaded_policy, workflow.now()
        )
        if details != self._details:
            workflow.set_current_details(details)
            self._details = details

    async def _continue_as_new(self) -> None:
        """Hand the case to a fresh run. In-flight effects get a short while to finish; whatever is still
        running then (a message stuck in retries) travels along and starts again in the next run, so it
        never holds up a breach. Anything due or changed first is handled first: the loop retries later."""
        deadline = rules.next_deadline(self._current)
        budget = CAN_DRAIN if deadline is None else min(CAN_DRAIN, max(deadline - workflow.now(), timedelta(0)))
        fired = None
        if not self._since(CAN_THROUGH_UPDATES_PATCH):
            try:
                await workflow.wait_condition(
                    lambda: self._changed or (not self._pending and workflow.all_handlers_finished()), timeout=budget
                )
            except TimeoutError:
                fired = deadline if budget < CAN_DRAIN else None  # the wait ended on the deadline itself
            if self._changed or (deadline is not None and self._decision_time(fired) >= deadline):
                return
            await workflow.wait_condition(workflow.all_handlers_finished)
        else:
            # Commands keep coming while effects drain (a steady stream used to put this off for ever); a
            # deadline that comes, or that a command brought forward, is handled first.
            drain_until = workflow.now() + CAN_DRAIN
            while self._pending:
                self._changed = False
                left = max(drain_until - workflow.now(), timedelta(0))
                budget = left if deadline is None else min(left, max(deadline - workflow.now(), timedelta(0)))
                try:
                    await workflow.wait_condition(lambda: not self._pending or self._changed, timeout=budget)
                except TimeoutError:
                    fired = deadline if budget < left else None  # the wait ended on the deadline itself
                if deadline is not None and self._decision_time(fired) >= deadline:
                    return
                if fired is None and budget == left and not self._changed:
                    break  # drained as long as it may: what still runs travels along
                deadline = rules.next_deadline(self._current)  # a command may have moved it
                if deadline is not None and deadline <= workflow.now():
                    return
            self._changed = True  # the loop re-evaluates what the commands taken meanwhile changed
            # Only for the instant the commands already taken need to finish: new ones are refused (retryable).
            self._moving = True
            # Commands taken may still wait on an activity (a roster lookup): not past the next deadline.
            due = rules.next_deadline(self._current)
            try:
                await workflow.wait_condition(
                    workflow.all_handlers_finished,
                    timeout=None if due is None else max(due - workflow.now(), timedelta(0)),
                )
            except TimeoutError:
                self._moving = False
                return
        pending = list(self._pending.values())
        if self._forgotten:  # messages to a forgotten customer carry their details: they do not travel along
            pending = [e for e in pending if not (isinstance(e, Send) and e.message.to.kind == "customer")]
        carried = CarriedCase(
            state=self._current,
            policy=self._loaded_policy.model_dump(mode="json"),
            published=self._published,
            pending=pending,
            answered=self._answered,
        )
        workflow.continue_as_new(self._input.model_copy(update={"carried": carried.model_dump(mode="json")}))
