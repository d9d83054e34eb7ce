"""Who sent the command a workflow is handling, as the worker interceptor (workflows.verified) hands it over.

Context variables, in a module the workflow sandbox passes through, so the interceptor (loaded by the worker)
and the workflow (loaded in the sandbox) share them. Each update runs in a task of its own, so concurrent
commands never see each other's sender."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import TypeVar

from temporalio.exceptions import ApplicationError

from escalation.constants import ERR_UNAUTHENTICATED
from escalation.domain.principal import Identity, Principal
from escalation.identity.credentials import HEADER

T = TypeVar("T")

# Around a validator: the verified principal. Around a handler: the claims of the credential recorded with the
# command (None for a command sent before credentials existed). Around the workflow's run: its start credential.
verified: ContextVar[Principal | None] = ContextVar("escalations_sender", default=None)
claims: ContextVar[Identity | None] = ContextVar("escalations_claims", default=None)
start_token: ContextVar[str | None] = ContextVar("escalations_start_token", default=None)


@contextmanager
def holding(var: ContextVar[T], value: T) -> Iterator[None]:
    reset = var.set(value)
    try:
        yield
    finally:
        # A workflow evicted from the cache is closed from another context, which has nothing to reset.
        with suppress(ValueError):
            var.reset(reset)


def sender() -> Principal:
    """In an update validator: who sent the command, verified. Outside one: an error (a bug)."""
    principal = verified.get()
    if principal is None:
        raise RuntimeError("no verified sender: only an update validator behind the Verified interceptor has one")
    return principal


def recorded_claims() -> Identity | None:
    """In an update handler: the claims of the credential recorded with the command (verified when it was
    taken), or None for a command taken before credentials existed."""
    return claims.get()


def unauthenticated(reason: str) -> ApplicationError:
    """The refusal of a command (or a case's start) without a credential that verifies."""
    return ApplicationError(
        f"credential: {reason}; nothing was applied (send a credential in the '{HEADER}' header: "
        "see the README, 'Who may act')",
        {"field": "credential"},
        type=ERR_UNAUTHENTICATED,
        non_retryable=True,
    )
