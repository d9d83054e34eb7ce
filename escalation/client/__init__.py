"""The escalation client other services import: open, find, drive and wait for cases with typed models.

    esc = await EscalationClient.connect()              # Settings.from_env(): profile, TEMPORAL_*, ...
    case = await esc.open(payload)                      # validates first; an open case is returned as is
    entry = await case.escalate(EscalateInput(actor="ana", reason="customer_request"))
    state = await case.state()
    outcome = await case.outcome()

Refusals raise the typed errors of `escalation.client.errors` with the validator's message (field first), never
a raw RPC error. Every update is sent with an update id (`update_id=`, else a new one per call) that the
server applies once; a retryable failure (`err.retryable`: the case or the server was unavailable for a
moment) is resent with that id for up to `retry_timeout` seconds, then raised with `err.update_id`.
The lower-level functions below (open_case, case_handle, case_state, execute_update) work on plain Temporal
handles and raise the SDK's errors.
"""

from __future__ import annotations

import asyncio
import decimal
import logging
import random
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from escalation import constants
from escalation.client import contract
from escalation.client.contract import Update
from escalation.client.converter import data_converter_for, header_codec
from escalation.client.credentials import Credential, CredentialInterceptor, use_credential
from escalation.client.errors import (
    WORKFLOW_TASK_FAILING,
    CaseAlreadyOpen,
    CaseClosed,
    CaseEnded,
    CaseTerminated,
    CredentialsRefused,
    Ending,
    EscalationError,
    InvalidArgument,
    NoWorker,
    UnknownPolicy,
    Unreachable,
    ended,
    from_validation_error,
    translate,
)
from escalation.config import ConfigError, Settings
from escalation.constants import (
    RETRY_TIMEOUT,
    SA_CUSTOMER,
    SA_SEVERITY,
    SA_STATUS,
    UPDATE_TIMEOUT,
    WORKFLOW_TYPE,
    task_queue,
    workflow_id,
)
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    Brief,
    Callback,
    CallbackOutcomeInput,
    CancelCallbackInput,
    CaseState,
    CloseInput,
    CustomerRepliedInput,
    DeEscalateInput,
    EscalateInput,
    EscalationInput,
    EscalationOutcome,
    FollowUpResponseInput,
    ForgetInput,
    NoteInput,
    Offer,
    OfferInput,
    OfferResponseInput,
    ReassignInput,
    RescheduleCallbackInput,
    ResolveInput,
    ScheduleCallbackInput,
    Status,
    TimelineEntry,
    WaitOnCustomerInput,
)
from escalation.domain.policy import policy_names, unknown_policy
from escalation.domain.rules.display import static_summary
from escalation.identity import KeyProblem
from escalation.search import CaseFilter, CaseSummary

__all__ = [
    "Case",
    "CaseAlreadyOpen",
    "EscalationClient",
    "case_handle",
    "case_state",
    "connect",
    "execute_update",
    "open_case",
]

# An idempotency key is a caller's label, not data: long enough for any uuid or composite key.
MAX_UPDATE_ID = 200
log = logging.getLogger(__name__)

# How long `open` watches a case it started until a worker has opened it (loaded its policy), and how often.
OPEN_WAIT = 10.0
OPEN_POLL = 0.1

# Backoff between resends of an update the case could not take: first delay, growth, cap (seconds).
RETRY_FIRST_DELAY = 0.25
RETRY_MAX_DELAY = 4.0

T = TypeVar("T")
A = TypeVar("A", bound=BaseModel)  # an update's argument
R = TypeVar("R", bound=BaseModel)  # an update's result
M = TypeVar("M", bound=BaseModel)


async def connect(settings: Settings | None = None) -> Client:
    """A Temporal client for `settings` (default: from the environment) with the escalation data converter (its
    payloads encrypted with the settings' codec keys: escalation.protect), whose commands carry a credential from
    the settings' identity section (escalation.client.credentials)."""
    settings = settings or Settings.from_env()
    try:
        credentials = CredentialInterceptor.from_settings(settings.identity)
    except KeyProblem as err:
        raise ConfigError(f"identity: {err}") from None
    converter = data_converter_for(settings)
    try:
        return await Client.connect(
            **settings.connect_kwargs(),
            data_converter=converter,
            header_codec_behavior=header_codec(converter),
            interceptors=[credentials],
        )
    except (RuntimeError, RPCError) as err:  # "Failed client connect: ...", or credentials refused
        refused = isinstance(err, RPCError) and err.status in (
            RPCStatusCode.UNAUTHENTICATED,
            RPCStatusCode.PERMISSION_DENIED,
        )
        raise (CredentialsRefused if refused else Unreachable)(
            f"cannot connect to Temporal at {settings.address} (namespace {settings.namespace}"
            f"{', TLS' if settings.uses_tls else ''}): {err}"
        ) from None


def _model(model: type[M], value: M | Mapping[str, Any]) -> M:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise from_validation_error(err) from None
    except (ValueError, ArithmeticError, RecursionError) as err:
        # A validator that failed outside pydantic's own errors (an overflow, a decimal it cannot hold, input
        # nested too deep): still a refusal of the input, naming the field when one alone fails.
        field = _blame(model, value)
        where = f"{model.__name__}: {field}" if field else model.__name__
        raise InvalidArgument(f"{where}: {_unreadable(err)}", field=field) from None


def _unreadable(err: BaseException) -> str:
    if isinstance(err, decimal.DecimalException):
        return "is not a number that can be held (too many digits, or not a finite number)"
    if isinstance(err, OverflowError):
        return f"is out of range ({err})"
    if isinstance(err, RecursionError):
        return "is nested too deeply"
    return str(err)[:300] or type(err).__name__


def _blame(model: type[BaseModel], value: Any) -> str | None:
    """The first field of `value` that fails on its own, for an error that did not say which."""
    if not isinstance(value, Mapping):
        return None
    for name, info in model.model_fields.items():
        if name not in value:
            continue
        try:
            TypeAdapter(info.rebuild_annotation()).validate_python(value[name])  # the field's type and bounds
        except Exception:
            return name
    return None


class EscalationClient:
    """Cases on one Temporal namespace. `task_queue` is where new cases are started."""

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str | None = None,
        update_timeout: float | None = UPDATE_TIMEOUT,
        retry_timeout: float = RETRY_TIMEOUT,
        policy_dir: Path | None = None,
    ) -> None:
        self.temporal = client
        self.task_queue = task_queue or constants.task_queue()
        # The workers' policies folder, when this client can see it: `open` refuses a policy name it has no
        # file for before anything is started. None: the workers alone decide (see `open`).
        self.policy_dir = policy_dir
        # How long an update may wait for a worker to take it; None waits for ever.
        self.update_timeout = update_timeout
        # How long an update the case could not take for the moment (a retryable error) is resent, with the
        # same update id, before that error is raised; 0 raises it at once.
        self.retry_timeout = retry_timeout

    @classmethod
    async def connect(cls, settings: Settings | None = None, **options: Any) -> EscalationClient:
        """Connect with `settings` (default: from the environment); `options` are `update_timeout`,
        `retry_timeout` and `policy_dir`. Settings that name the policies folder (ESCALATIONS_POLICY_DIR)
        give it to the client, so unknown policy names are refused before a start."""
        settings = settings or Settings.from_env()
        if "policy_dir" in settings.model_fields_set:
            options.setdefault("policy_dir", settings.policy_dir)
        return cls(await connect(settings), task_queue=settings.task_queue, **options)

    async def open(
        self,
        case: EscalationInput | Mapping[str, Any],
        *,
        if_open: Literal["return", "fail"] = "return",
        wait: float = OPEN_WAIT,
        credential: Credential | None = None,
    ) -> Case:
        """Open a case. Opening is idempotent by case id: if the case is open already its handle is returned
        (`Case.opened` is False) unless `if_open="fail"`, which raises CaseAlreadyOpen. A closed case's id
        opens a new case. Bad input raises InvalidArgument before anything is started, and so does a policy
        name the client's policies folder has no file for (UnknownPolicy; only when the client was given the
        folder, since a client may run where the workers' folder is not).

        A started case is then watched for up to `wait` seconds until it has opened (its policy loaded): a
        start the workers refuse at once (a policy they do not have, input they refuse) raises that failure,
        UnknownPolicy or InvalidArgument, instead of returning a case that is already gone. When no worker
        took the case within `wait`, the case is returned with `still_opening` set (it opens when a worker
        runs). `wait=0` returns right after the start. `credential` (a token, or a function returning one) is
        sent with the start and with every command of the returned case, instead of the client's own."""
        inp = _model(EscalationInput, case)
        if inp.carried is not None:
            raise InvalidArgument(
                "carried: internal to the workflow; leave it out when opening a case", field="carried"
            )
        if (
            self.policy_dir is not None
            and policy_names(self.policy_dir)
            and (unknown := unknown_policy(self.policy_dir, inp.policy)) is not None
        ):
            raise UnknownPolicy(str(unknown), field="policy")
        try:
            with use_credential(credential):
                handle = await open_case(self.temporal, inp, task_queue_name=self.task_queue)
        except CaseAlreadyOpen:
            if if_open == "fail":
                raise
            return self.case(inp.case_id, credential=credential)
        except RPCError as err:
            raise translate(err, inp.case_id) from None
        opened = Case(
            handle,
            inp.case_id,
            opened=True,
            update_timeout=self.update_timeout,
            retry_timeout=self.retry_timeout,
            credential=credential,
        )
        if wait > 0:
            opened.still_opening = not await opened._until_open(wait)
        return opened

    def case(self, case_id: str, *, credential: Credential | None = None) -> Case:
        """The handle of a case by id (no call is made; a missing case raises CaseNotFound when used). Its commands
        carry `credential` (a token, or a function returning one) when given, else the client's own."""
        return Case(
            case_handle(self.temporal, case_id),
            case_id,
            update_timeout=self.update_timeout,
            retry_timeout=self.retry_timeout,
            credential=credential,
        )

    async def list_cases(
        self, filter: CaseFilter | Mapping[str, Any] | None = None, *, limit: int | None = 100
    ) -> list[CaseSummary]:
        """Cases matching `filter`, from visibility (search attributes), at most `limit` (None: all)."""
        query = _model(CaseFilter, filter or {}).query()
        try:
            return [CaseSummary.from_execution(ex) async for ex in self.temporal.list_workflows(query, limit=limit)]
        except RPCError as err:
            raise translate(err) from None

    async def count_cases(self, filter: CaseFilter | Mapping[str, Any] | None = None) -> int:
        query = _model(CaseFilter, filter or {}).query()
        try:
            return (await self.temporal.count_workflows(query)).count
        except RPCError as err:
            raise translate(err) from None

    async def forget_customer(
        self, customer_id: str, cmd: ForgetInput | Mapping[str, Any]
    ) -> list[tuple[str, TimelineEntry | EscalationError]]:
        """Send `forget` to every open case of the customer (found by the CustomerId search attribute): each case's
        id with the entry it recorded, or the error that refused it. Closed cases are left to Temporal's retention."""
        arg = _model(ForgetInput, cmd)
        done: list[tuple[str, TimelineEntry | EscalationError]] = []
        for found in await self.list_cases(CaseFilter(customer=customer_id), limit=None):
            try:
                done.append((found.case_id, await self.case(found.case_id).forget(arg)))
            except EscalationError as err:
                done.append((found.case_id, err))
        return done


class Case:
    """One case: every update and query of the contract, typed. Arguments are the contract's input models
    (or plain mappings, validated first). Every update takes `update_id`, its idempotency key (see `update`)."""

    def __init__(
        self,
        handle: WorkflowHandle[Any, EscalationOutcome],
        case_id: str,
        *,
        opened: bool = False,
        update_timeout: float | None = UPDATE_TIMEOUT,
        retry_timeout: float = RETRY_TIMEOUT,
        credential: Credential | None = None,
    ) -> None:
        self.handle = handle
        self.case_id = case_id
        self.opened = opened  # True when this call started the case
        # Set by `EscalationClient.open` when no worker had opened the case (loaded its policy) in its wait.
        self.still_opening = False
        self.update_timeout = update_timeout
        self.retry_timeout = retry_timeout
        # Sent with every command of this case instead of the client's own credential (None: the client's).
        self.credential = credential

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    async def update(self, op: Update[A, R], cmd: A | Mapping[str, Any], *, update_id: str | None = None) -> R:
        """Send update `op`. `update_id` is its idempotency key (default: a new one for this call): the server
        applies an update id once per run of the case and answers a repeat with the first result. A retryable
        failure (the case's workflow task is failing, the server did not answer) is resent with the same id,
        backing off, for up to `retry_timeout` seconds; then it is raised, with `update_id` set on it, so the
        caller can send the command again later with that id."""
        arg = _model(op.arg, cmd)
        if update_id is not None and not (0 < len(update_id) <= MAX_UPDATE_ID and update_id.isprintable()):
            raise InvalidArgument(
                f"update_id: 1 to {MAX_UPDATE_ID} printable characters (got {len(update_id)} "
                "characters); use the id a refusal printed, or leave it out",
                field="update_id",
            )
        update_id = update_id or str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_timeout
        delay = RETRY_FIRST_DELAY
        attempt = 1
        while True:
            try:
                return await self._send(op, arg, update_id)
            except EscalationError as err:
                err.update_id = update_id
                remaining = give_up - loop.time()
                # NoWorker comes after `update_timeout` of waiting already: the caller decides whether to wait more.
                if not err.retryable or isinstance(err, NoWorker) or remaining <= 0:
                    raise
                pause = min(delay * random.uniform(0.8, 1.2), remaining)
                log.info(
                    "update_retry case_id=%s update=%s update_id=%s attempt=%d error=%s retry_in=%.2fs",
                    self.case_id,
                    op.name,
                    update_id,
                    attempt,
                    err.type,
                    pause,
                )
            await asyncio.sleep(pause)
            delay = min(delay * 2, RETRY_MAX_DELAY)
            attempt += 1

    async def _send(self, op: Update[A, R], arg: A, update_id: str) -> R:
        try:
            # The server admits an update and then waits for a worker to take it, for ever when none runs:
            # give up after `update_timeout` with an answer a person can act on.
            with use_credential(self.credential):
                return await asyncio.wait_for(
                    execute_update(self.handle, op.name, arg, result_type=op.result, update_id=update_id),
                    self.update_timeout,
                )
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise NoWorker(
                f"no worker took '{op.name}' for case {self.case_id} within {self.update_timeout:g}s: is a "
                "worker running on the case's task queue? The server may still apply it when a worker "
                "picks the case up: send it again only with the same update id, which is applied once"
            ) from None
        except Exception as err:
            raise await self._ended(translate(err, self.case_id)) from None

    async def acknowledge(
        self, cmd: AcknowledgeInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> TimelineEntry:
        return await self.update(contract.ACKNOWLEDGE, cmd, update_id=update_id)

    async def escalate(self, cmd: EscalateInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        return await self.update(contract.ESCALATE, cmd, update_id=update_id)

    async def de_escalate(
        self, cmd: DeEscalateInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> TimelineEntry:
        return await self.update(contract.DE_ESCALATE, cmd, update_id=update_id)

    async def add_note(self, cmd: NoteInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        return await self.update(contract.ADD_NOTE, cmd, update_id=update_id)

    async def propose_offer(self, cmd: OfferInput | Mapping[str, Any], *, update_id: str | None = None) -> Offer:
        return await self.update(contract.PROPOSE_OFFER, cmd, update_id=update_id)

    async def record_offer_response(
        self, cmd: OfferResponseInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> Offer:
        return await self.update(contract.RECORD_OFFER_RESPONSE, cmd, update_id=update_id)

    async def wait_on_customer(
        self, cmd: WaitOnCustomerInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> TimelineEntry:
        return await self.update(contract.WAIT_ON_CUSTOMER, cmd, update_id=update_id)

    async def customer_replied(
        self, cmd: CustomerRepliedInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> TimelineEntry:
        return await self.update(contract.CUSTOMER_REPLIED, cmd, update_id=update_id)

    async def resolve(self, cmd: ResolveInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        return await self.update(contract.RESOLVE, cmd, update_id=update_id)

    async def close(self, cmd: CloseInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        return await self.update(contract.CLOSE, cmd, update_id=update_id)

    async def followup_response(
        self, cmd: FollowUpResponseInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> TimelineEntry:
        return await self.update(contract.FOLLOWUP_RESPONSE, cmd, update_id=update_id)

    async def accept(self, cmd: AcceptInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        return await self.update(contract.ACCEPT, cmd, update_id=update_id)

    async def reassign(self, cmd: ReassignInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        return await self.update(contract.REASSIGN, cmd, update_id=update_id)

    async def schedule_callback(
        self, cmd: ScheduleCallbackInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> Callback:
        return await self.update(contract.SCHEDULE_CALLBACK, cmd, update_id=update_id)

    async def reschedule_callback(
        self, cmd: RescheduleCallbackInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> Callback:
        return await self.update(contract.RESCHEDULE_CALLBACK, cmd, update_id=update_id)

    async def cancel_callback(
        self, cmd: CancelCallbackInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> Callback:
        return await self.update(contract.CANCEL_CALLBACK, cmd, update_id=update_id)

    async def record_callback_outcome(
        self, cmd: CallbackOutcomeInput | Mapping[str, Any], *, update_id: str | None = None
    ) -> Callback:
        return await self.update(contract.RECORD_CALLBACK_OUTCOME, cmd, update_id=update_id)

    async def forget(self, cmd: ForgetInput | Mapping[str, Any], *, update_id: str | None = None) -> TimelineEntry:
        """Right to erasure: the customer's name, contact details and the case's free text become a tombstone; the
        case runs on (in a fresh run of its history, so the run that held them is deleted after retention)."""
        return await self.update(contract.FORGET, cmd, update_id=update_id)

    async def state(self, *, wait: float = 10.0) -> CaseState:
        """The `state` query; waits up to `wait` seconds while a just-opened case loads its policy."""
        try:
            return await case_state(self.handle, wait=wait)
        except Exception as err:
            raise translate(err, self.case_id) from None

    async def brief(self) -> Brief:
        try:
            return await self.handle.query(contract.BRIEF.name, result_type=Brief)
        except Exception as err:
            raise translate(err, self.case_id) from None

    async def outcome(self) -> EscalationOutcome:
        """Wait until the case closes and return its outcome (CaseTerminated, a CaseEnded, if it was terminated)."""
        try:
            return await self.handle.result()
        except Exception as err:
            raise await self._ended(translate(err, self.case_id)) from None

    async def ending(self) -> Ending | None:
        """How the case's workflow ended, None while it runs: completed, or terminated (by whom and why, as the
        history records them), cancelled, timed out or failed (with the failure's message)."""
        try:
            desc = await self.handle.describe()
        except Exception as err:
            raise translate(err, self.case_id) from None
        if desc.status in (None, WorkflowExecutionStatus.RUNNING):
            return None
        by = reason = None
        if desc.status in (WorkflowExecutionStatus.TERMINATED, WorkflowExecutionStatus.FAILED):
            try:
                async for event in self.handle.fetch_history_events(
                    event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
                ):
                    if event.HasField("workflow_execution_terminated_event_attributes"):
                        attrs = event.workflow_execution_terminated_event_attributes
                        by, reason = attrs.identity or None, attrs.reason or None
                    elif event.HasField("workflow_execution_failed_event_attributes"):
                        reason = event.workflow_execution_failed_event_attributes.failure.message or None
            except RPCError:
                pass  # the history could not be read (archived, no permission): say what describe knows
        return Ending(
            status=_ENDINGS.get(desc.status, desc.status.name.lower()), at=desc.close_time, by=by, reason=reason
        )

    async def _until_open(self, wait: float) -> bool:
        """Watch a case just started until it has opened (True) or `wait` seconds passed (False); raise how its
        start failed when it failed at once (UnknownPolicy, InvalidArgument)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                desc = await self.handle.describe()
            except RPCError as err:
                raise translate(err, self.case_id) from None
            if desc.status not in (None, WorkflowExecutionStatus.RUNNING):
                try:
                    await self.handle.result()
                except Exception as err:
                    raise await self._ended(translate(err, self.case_id)) from None
                return True  # it opened and completed already
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                # A query waits for a worker to answer it: never longer than what is left of `wait`.
                state = await asyncio.wait_for(self.handle.query("state", result_type=CaseState), left)
                if state.status != Status.OPENING:
                    return True
            except TimeoutError:
                return False
            except Exception:
                pass  # no task yet, or it failed meanwhile: describe says which on the next look
            await asyncio.sleep(min(OPEN_POLL, max(deadline - loop.time(), 0)))

    async def _ended(self, err: BaseException) -> BaseException:
        """`err`, or for a case whose workflow has closed, the error that says how it ended (terminated by whom
        and why) rather than "completed"."""
        if not isinstance(err, (CaseClosed, CaseEnded)) or isinstance(err, CaseTerminated):
            return err
        try:
            ending = await self.ending()
        except EscalationError:
            return err
        return ended(err, self.case_id, ending)


_ENDINGS = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued as new",
}


# ----- lower level: plain Temporal handles, SDK errors


async def open_case(
    client: Client, inp: EscalationInput | dict[str, Any], *, task_queue_name: str | None = None
) -> WorkflowHandle[Any, EscalationOutcome]:
    """Start the Escalation workflow for a case. Raises pydantic.ValidationError for bad input and
    CaseAlreadyOpen when the case is open already; a closed case's id may be used again."""
    case = inp if isinstance(inp, EscalationInput) else EscalationInput.model_validate(inp)
    if case.carried is not None:
        raise ValueError("carried: internal to the workflow; leave it out when opening a case")
    try:
        return await client.start_workflow(
            WORKFLOW_TYPE,
            case,
            id=workflow_id(case.case_id),
            task_queue=task_queue_name or task_queue(),
            result_type=EscalationOutcome,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=static_summary(case),  # no personal data: the UI and anyone with the namespace see it
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SearchAttributeKey.for_keyword(SA_CUSTOMER), case.customer.id),
                    SearchAttributePair(SearchAttributeKey.for_keyword(SA_SEVERITY), case.severity.value),
                    SearchAttributePair(SearchAttributeKey.for_keyword(SA_STATUS), Status.OPEN.value),
                ]
            ),
        )
    except WorkflowAlreadyStartedError as err:
        raise CaseAlreadyOpen(case.case_id, getattr(err, "run_id", None)) from None


async def execute_update(
    handle: WorkflowHandle,
    update: str,
    arg: Any,
    *,
    result_type: type[T],
    attempts: int = 5,
    update_id: str | None = None,
) -> T:
    """Run an update, retrying (with the same update id, so it is applied once) when the server says the
    case was briefly not ready: that happens while a long case hands over to a new run. A caller that
    retries on its own passes its idempotency key as `update_id`: a repeat returns the first result. A case
    whose workflow task is failing is not "briefly not ready": that refusal is raised at once."""
    update_id = update_id or str(uuid.uuid4())
    for attempt in range(1, attempts + 1):
        try:
            return await handle.execute_update(update, arg, id=update_id, result_type=result_type)
        except RPCError as err:
            if attempt == attempts or not _not_ready(err):
                raise
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _not_ready(err: RPCError) -> bool:
    return (
        any("WorkflowNotReadyFailure" in d.type_url for d in err.grpc_status.details)
        and WORKFLOW_TASK_FAILING not in err.message
    )


def case_handle(client: Client, case_id: str) -> WorkflowHandle[Any, EscalationOutcome]:
    return client.get_workflow_handle(workflow_id(case_id), result_type=EscalationOutcome)


async def case_state(handle: WorkflowHandle, *, wait: float = 10.0) -> CaseState:
    """The `state` query, waiting (up to `wait` seconds) while a just-started case loads its policy; a case
    still opening then is returned as it is (status `opening`, no tier yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            state = await handle.query("state", result_type=CaseState)
            if state.status != Status.OPENING or loop.time() > deadline:
                return state
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND or loop.time() > deadline:
                raise
        except Exception as err:  # WorkflowQueryFailedError while opening (workers from before `opening`)
            if "still opening" not in str(err) or loop.time() > deadline:
                raise
        await asyncio.sleep(0.05)
