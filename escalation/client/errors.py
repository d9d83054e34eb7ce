"""Typed errors of the escalation client. Each carries the message a person reads (the update validator's
own words, field first) instead of a raw RPC or SDK error, and the error type of the contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError, TerminatedError
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError, RPCStatusCode

from escalation.constants import (
    ERR_INVALID_ARGUMENT,
    ERR_INVALID_STATE,
    ERR_NOT_PERMITTED,
    ERR_UNAUTHENTICATED,
    ERR_UNKNOWN_POLICY,
    workflow_id,
)
from escalation.domain.formatting import instant
from escalation.domain.refusal import describe


class EscalationError(Exception):
    """Base of the client's errors. `field` names the offending input when the refusal says which.

    `retryable` says whether the same command may succeed if sent again unchanged (the case or the server
    was unavailable for a moment; nothing was refused); `update_id` is the idempotency key an update was
    sent with, so a retry with it is applied at most once."""

    type = "Error"
    retryable = False
    update_id: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(EscalationError):
    """The input breaks the contract or a rule (fix the input); nothing changed."""

    type = ERR_INVALID_ARGUMENT


class InvalidState(EscalationError):
    """The case is not in a state for that command (already acknowledged, resolved, closed...)."""

    type = ERR_INVALID_STATE


class Unauthenticated(EscalationError):
    """The command carried no credential, or one that does not verify or names nobody of the roster (who it
    names is inactive, unknown); nothing was applied. Sign it (escalation.identity) and send it again."""

    type = ERR_UNAUTHENTICATED


class NotPermitted(EscalationError):
    """The verified sender may not do that on this case (the policy's permissions, their own authority limit,
    what the roster gives a service); nothing was applied."""

    type = ERR_NOT_PERMITTED


class CaseClosed(InvalidState):
    """The case's workflow has completed; it takes no more commands (queries still answer)."""


class UnknownPolicy(EscalationError):
    """The case names a policy the workers do not have; it could not open."""

    type = ERR_UNKNOWN_POLICY


class CaseNotFound(EscalationError):
    type = "NotFound"

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} not found (no workflow {workflow_id(case_id)})", field="case_id")
        self.case_id = case_id


class CaseAlreadyOpen(EscalationError):
    """A case with this id is still open; it was not started a second time."""

    type = "AlreadyOpen"

    def __init__(self, case_id: str, run_id: str | None) -> None:
        super().__init__(
            f"case {case_id} is already open (workflow {workflow_id(case_id)}"
            + (f", run {run_id}" if run_id else "")
            + "); drive the open case instead",
            field="case_id",
        )
        self.case_id = case_id
        self.run_id = run_id


class CaseUnavailable(EscalationError):
    """The case cannot take commands for now, and took nothing: its workflow task is failing (a worker
    restarted mid-task, or the case is stuck) or the case is handing over to a new run. Send the same
    command again shortly, with the same update id."""

    type = "CaseUnavailable"
    retryable = True


class CaseEnded(EscalationError):
    """The case's workflow ended without an outcome (terminated, cancelled, timed out or failed)."""

    type = "Ended"


@dataclass(frozen=True)
class Ending:
    """How a case's workflow ended, as the server recorded it (describe, and the history's close event)."""

    status: str  # completed, terminated, cancelled, timed out, failed, continued as new
    at: datetime | None = None
    by: str | None = None  # who terminated it (the client's identity), when recorded
    reason: str | None = None  # why it was terminated, or the failure's message

    def __str__(self) -> str:
        """'terminated by temporal-cli:ops@host at 2026-11-24 09:05 UTC: duplicate of C-1002'"""
        by = f" by {self.by}" if self.by else ""
        at = f" at {instant(self.at)}" if self.at else ""
        why = f": {self.reason}" if self.reason else (" (no reason given)" if self.status == "terminated" else "")
        return f"{self.status}{by}{at}{why}"


class CaseTerminated(CaseClosed, CaseEnded):
    """The case's workflow was terminated on the server (by an operator or a tool, not by the case's own rules):
    it has no outcome and takes no more commands; its last state can still be read. `ending.by` and
    `ending.reason` say who and why when the history records them."""

    type = "Terminated"

    def __init__(self, case_id: str, ending: Ending) -> None:
        super().__init__(
            f"case {case_id} was {ending}; it has no outcome and takes no more commands (its last "
            "state can still be read)",
            field="case_id",
        )
        self.case_id = case_id
        self.ending = ending


def ended(err: EscalationError, case_id: str, ending: Ending | None) -> EscalationError:
    """What to raise instead of `err` (a refusal because the case's workflow has closed, or its missing
    outcome) now that it is known how the workflow ended: terminated says by whom and why; cancelled, timed
    out or failed says so instead of "completed". `err` itself when it completed, or nothing is known."""
    if ending is None or ending.status in ("completed", "continued as new"):
        return err
    if ending.status == "terminated":
        return CaseTerminated(case_id, ending)
    if isinstance(err, CaseClosed):
        was = "was " if ending.status in ("terminated", "cancelled") else ""
        return CaseClosed(
            f"case {case_id} {was}{ending}; it has no outcome and takes no more commands (its last state "
            "can still be read)",
            field="case_id",
        )
    return err


class Unreachable(EscalationError):
    """The Temporal server cannot be used with these connection settings: it did not answer (address, TLS,
    network; retryable) or, as the subclasses say, refused the credentials or has no such namespace."""

    type = "Unavailable"
    retryable = True


class NoWorker(Unreachable):
    """The server took the request but no worker answered for the case in time (none running, or polling
    another task queue). An update may still be applied when a worker picks the case up: send it again with
    the same update id, never a new one."""

    type = "NoWorker"


class CredentialsRefused(Unreachable):
    """The server refused the credentials (API key, client certificate): fix the settings, not retryable."""

    type = "CredentialsRefused"
    retryable = False


class NamespaceNotFound(Unreachable):
    """The namespace of the connection settings does not exist on that server (nothing about the case)."""

    type = "NamespaceNotFound"
    retryable = False


_BY_TYPE: dict[str, type[EscalationError]] = {
    cls.type: cls
    for cls in (InvalidArgument, InvalidState, UnknownPolicy, CaseUnavailable, Unauthenticated, NotPermitted)
}


def from_application_error(err: ApplicationError) -> EscalationError:
    details: Any = err.details[0] if err.details else None
    field = details.get("field") if isinstance(details, dict) else None
    return _BY_TYPE.get(err.type or "", EscalationError)(err.message, field=field)


def from_validation_error(err: ValidationError) -> InvalidArgument:
    """The same words the server would use, for input refused before it was sent."""
    first = err.errors(include_url=False)
    field = ".".join(str(p) for p in first[0]["loc"]) if first else None
    return InvalidArgument(describe(err), field=field or None)


def translate(err: BaseException, case_id: str | None = None) -> BaseException:
    """The typed error for what the SDK raised about case `case_id` (None: about no case in particular, as
    for lists), or `err` itself if nothing fits. An RPC error always becomes an EscalationError."""
    if isinstance(err, WorkflowUpdateFailedError) and isinstance(err.cause, ApplicationError):
        return from_application_error(err.cause)
    if isinstance(err, WorkflowFailureError):
        cause = err.cause
        if isinstance(cause, ApplicationError):
            return from_application_error(cause)
        if isinstance(cause, (TerminatedError, CancelledError, TemporalTimeout)):
            return CaseEnded(f"case {case_id} ended without an outcome: {cause.message or type(cause).__name__}")
        return CaseEnded(f"case {case_id} failed: {cause or err}")
    if isinstance(err, WorkflowQueryFailedError):
        # Queries carry only a message; the workflow's own words say which kind it is.
        if "could not open" in err.message:
            return UnknownPolicy(err.message)
        return InvalidState(err.message)
    if isinstance(err, WorkflowQueryRejectedError):
        return CaseEnded(f"case {case_id} is not running ({err.status})")
    if isinstance(err, RPCError):
        # The server answers NOT_FOUND for a missing namespace too: that is a setting, not a missing case.
        if _has_detail(err, "NamespaceNotFoundFailure"):
            return NamespaceNotFound(
                f"{err.message.rstrip('.')}: check the namespace of the connection "
                "settings (TEMPORAL_NAMESPACE or the client config profile)"
            )
        if err.status == RPCStatusCode.NOT_FOUND and case_id is not None:
            if "already completed" in err.message:
                return CaseClosed(
                    f"case {case_id} has completed; it takes no more commands "
                    "(its state and outcome can still be read)",
                    field="case_id",
                )
            return CaseNotFound(case_id)
        if err.status in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED) and case_id is not None:
            # A query the server could not hand to any worker (it waits for one, then gives up).
            return NoWorker(
                f"no worker answered for case {case_id} in time: is a worker running on the case's "
                f"task queue? ({err.message})"
            )
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return Unreachable(f"the Temporal server did not answer: {err.message}")
        if err.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
            return CredentialsRefused(f"the Temporal server refused the credentials: {err.message}")
        if _has_detail(err, "WorkflowNotReadyFailure"):
            return case_unavailable(err, case_id)
        if err.status == RPCStatusCode.RESOURCE_EXHAUSTED and case_id is not None:
            # Too many commands in flight on one case (the server's limit, 10 by default): none of this was
            # applied; it goes through once the ones before it finish.
            return CaseUnavailable(
                f"case {case_id} has as many commands in flight as the server allows; nothing was applied. "
                f"Try again shortly with the same update id (server: {err.message.rstrip('.')})"
            )
        return EscalationError(f"the Temporal server could not do it ({err.status.name}): {err.message}")
    return err


# What the server answers (FAILED_PRECONDITION, with a WorkflowNotReadyFailure detail) to an update for a
# workflow whose workflow task has failed twice in a row (its third attempt or a later one is pending):
# "Unable to perform workflow execution update due to Workflow Task in failed state."
WORKFLOW_TASK_FAILING = "Workflow Task in failed state"


def _has_detail(err: RPCError, name: str) -> bool:
    return any(name in d.type_url for d in err.grpc_status.details)


def case_unavailable(err: RPCError, case_id: str | None) -> CaseUnavailable:
    """The server refused a command because the case cannot take one now (nothing was applied)."""
    case = f"case {case_id}" if case_id is not None else "the case"
    if WORKFLOW_TASK_FAILING in err.message:
        return CaseUnavailable(
            f"{case} cannot take commands right now: its workflow task is failing (a worker restarted "
            "mid-task, or the case is stuck); nothing was applied. Try again shortly with the same update id; "
            f"if it persists, `escalations doctor` lists stuck cases (server: {err.message.rstrip('.')})"
        )
    return CaseUnavailable(
        f"{case} is not ready for commands (for example while it hands over to a new run); nothing was "
        f"applied. Try again shortly with the same update id (server: {err.message.rstrip('.')})"
    )
