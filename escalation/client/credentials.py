"""The client side of "who may act": every workflow start, update, update-with-start and signal this client sends
carries a credential in the Temporal header `escalation.identity.HEADER`.

Where the credential comes from, first that applies:
1. one given for the call: `with use_credential(token): ...` (what `Case(credential=...)` does), a token or a
   function returning one (called per command, so it can mint a fresh one; when it returns None, what follows);
2. ESCALATIONS_CREDENTIAL (`IdentitySettings.credential`): a ready-made token, sent as it is;
3. a signing key in the settings: a credential minted for the actor the command names (the update argument's
   `actor`, or a start's `opened_by`), with "act" naming `acting_service` when this client is a service acting for
   reps; a reserved actor ("system", "customer") or a command that names none gets nothing minted;
4. nothing: the header is left out (the worker refuses the command, saying a credential is missing).
A header the caller set already is never replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

from escalation.identity import CUSTOMER, HEADER, SYSTEM, IdentitySettings, Signer, header_payload

__all__ = ["Credential", "CredentialInterceptor", "CredentialSource", "use_credential", "with_credentials"]

# A token, or a function that returns one (None: nothing to send).
Credential = str | Callable[[], str | None]

_given: ContextVar[Credential | None] = ContextVar("escalations_credential", default=None)

# Minted credentials are reused while more than this share of their lifetime is left.
REUSE_WHILE_LEFT = 0.5
MAX_CACHED = 1000  # actors whose minted credential is kept for reuse


@contextmanager
def use_credential(credential: Credential | None) -> Iterator[None]:
    """Within the block, every command this task (and the tasks it starts) sends carries `credential`; None
    leaves the client's own source in charge."""
    if credential is None:
        yield
        return
    token = _given.set(credential)
    try:
        yield
    finally:
        _given.reset(token)


def _field(arg: Any, name: str) -> str | None:
    value = arg.get(name) if isinstance(arg, Mapping) else getattr(arg, name, None)
    return value if isinstance(value, str) and value else None


def named_actor(args: Sequence[Any], field: str = "actor") -> str | None:
    """Who a command says acts: `field` of its one argument (a pydantic model, a dataclass or a mapping)."""
    return _field(args[0], field) if len(args) == 1 else None


class CredentialSource:
    """Which credential a command carries (see the module's docstring)."""

    def __init__(
        self, *, signer: Signer | None = None, token: str | None = None, acting_service: str | None = None
    ) -> None:
        self.signer = signer
        self.token = token
        self.acting_service = acting_service
        self._minted: dict[str, tuple[str, float]] = {}  # actor -> (token, monotonic time it is reused until)

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> CredentialSource:
        """Raises escalation.identity.KeyProblem for a signing key file that cannot be used."""
        return cls(
            signer=Signer.from_settings(settings),
            token=settings.credential_token(),
            acting_service=settings.acting_service,
        )

    def token_for(self, actor: str | None) -> str | None:
        given = _given.get()
        if given is not None:
            token = given() if callable(given) else given
            if token is not None:
                return token
        if self.token is not None:
            return self.token
        if self.signer is None or actor is None or actor in (SYSTEM, CUSTOMER):
            return None
        now = time.monotonic()
        cached = self._minted.get(actor)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            token = self.signer.mint(actor, acting_service=self.acting_service)
        except ValueError:  # no credential can name it (too long, control characters): the worker says why
            return None
        if len(self._minted) >= MAX_CACHED:
            self._minted.clear()
        self._minted[actor] = (token, now + self.signer.ttl.total_seconds() * REUSE_WHILE_LEFT)
        return token


def _with_header(headers: Mapping[str, Any], token: str | None) -> Mapping[str, Any]:
    if token is None or HEADER in headers:
        return headers
    return {**headers, HEADER: header_payload(token)}


class CredentialInterceptor(Interceptor):
    """Client interceptor that puts the credential on every start, update, update-with-start and signal."""

    def __init__(self, source: CredentialSource) -> None:
        self.source = source

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> CredentialInterceptor:
        return cls(CredentialSource.from_settings(settings))

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next, self.source)


class _Outbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, source: CredentialSource) -> None:
        super().__init__(next)
        self.source = source

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.headers = _with_header(input.headers, self.source.token_for(named_actor(input.args, "opened_by")))
        return await self.next.start_workflow(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
        input.headers = _with_header(input.headers, self.source.token_for(named_actor(input.args)))
        return await self.next.start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        update, start = input.update_workflow_input, input.start_workflow_input
        actor = named_actor(update.args)
        update.headers = _with_header(update.headers, self.source.token_for(actor))
        start.headers = _with_header(
            start.headers, self.source.token_for(named_actor(start.args, "opened_by") or actor)
        )
        return await self.next.start_update_with_start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        input.headers = _with_header(input.headers, self.source.token_for(named_actor(input.args)))
        await self.next.signal_workflow(input)


def with_credentials(client: Client, settings: IdentitySettings | CredentialSource) -> Client:
    """A client sharing `client`'s connection whose commands carry credentials from `settings` (before any its
    interceptors would attach: the first header set is kept)."""
    source = settings if isinstance(settings, CredentialSource) else CredentialSource.from_settings(settings)
    config = client.config()
    config["interceptors"] = [CredentialInterceptor(source), *config["interceptors"]]
    return Client(**config)
