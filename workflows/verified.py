"""Every command comes from a verified person: the worker side of escalation.identity.

A client attaches a signed credential (a JWT) to each command in the `escalations-credential` Temporal
header. This worker interceptor verifies it in the update validator, before the command can enter the case's
history, and hands the case the principal it names (escalation.domain.principal.Principal: the rep or service
as the roster has them, or the customer of one case). A command without a valid credential is refused as
`Unauthenticated` and changes nothing.

Validators are not replayed, handlers are: a replay must never depend on keys that have since rotated out,
nor on today's roster. So the handler reads the claims of the credential as recorded with the update (already
verified by the validator that took it) and looks them up in the roster through a local activity, whose
answer is recorded too. A case's start carries the credential the same way; its first run verifies it, as of
the start, through the same activity.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from escalation.domain.principal import Identity, Principal
from escalation.identity import HEADER, CredentialRefused, sender, token_from_header

# The worker's check of a credential, called from the validator outside the sandbox: the token's principal
# (as JSON) or why it is refused. Escalation's own name, so it never collides with the SDK's.
EXTERN = "escalations.identify"
Identify = Callable[[str], tuple[dict[str, Any] | None, str | None]]


def recorded_identity(payload: Payload | None) -> Identity | None:
    """The claims of the credential recorded with a command, read leniently and never refused: the validator
    that took the command verified it, and a replay must not depend on today's parsing rules or keys. None when
    there is none (a command taken before credentials existed) or it cannot be read at all."""
    if payload is None:
        return None
    try:
        text = json.loads(payload.data) if payload.metadata.get("encoding") == b"json/plain" else payload.data.decode()
        head, body = str(text).split(".")[:2]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        kid = _kid(head)
        act, checkin = claims.get("act"), claims.get("checkin")
        return Identity(
            subject=str(claims.get("sub", "")),
            acting_service=str(act["sub"]) if isinstance(act, dict) and "sub" in act else None,
            case_id=str(claims["case"]) if claims.get("case") is not None else None,
            checkin=checkin if isinstance(checkin, int) and not isinstance(checkin, bool) else None,
            key_id=str(kid) if kid is not None else None,
        )
    except Exception:  # a header no validator could have taken: as if there were none
        return None


def _kid(head: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("kid")
    except Exception:
        return None


def _token_in(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(HEADER)
    return None if payload is None else token_from_header(payload)


class Verified(Interceptor):
    """Worker interceptor: commands are verified in their validator; see the module's docstring."""

    def __init__(self, identify: Identify) -> None:
        self._identify = identify

    @classmethod
    def for_replay(cls) -> Verified:
        """For a Replayer: handlers and the start read the credentials recorded with them; validators do not run."""
        return cls(lambda _token: (None, "a replay verifies nothing"))

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        input.unsafe_extern_functions[EXTERN] = self._identify
        return _Verified


class _Verified(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        try:
            token = _token_in(input.headers)
        except CredentialRefused as err:
            raise sender.unauthenticated(str(err)) from None
        if token is None:
            raise sender.unauthenticated("the command carries no credential")
        principal, refusal = workflow.extern_functions()[EXTERN](token)
        if principal is None:
            raise sender.unauthenticated(refusal or "refused")
        with sender.holding(sender.verified, Principal.model_validate(principal)):
            super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        # Read as recorded, never verified again here: the validator that took the command verified it (every
        # update of the case has a validator: tests/test_identity_cases.py checks).
        with sender.holding(sender.claims, recorded_identity(input.headers.get(HEADER))):
            return await super().handle_update_handler(input)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            token = _token_in(input.headers)
        except CredentialRefused:
            token = ""  # unreadable: the case's first run refuses it as it refuses a wrong one
        with sender.holding(sender.start_token, token):
            return await super().execute_workflow(input)
