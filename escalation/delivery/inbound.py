"""The inbound endpoint: a gateway relays a customer's answer to a follow-up check-in.

    POST /followups   {"case_id": "C-1001", "answer": "fixed" | "not_fixed", "comment"?, "channel"?, "checkin"?}
    webhook-id: <the gateway's id for this answer>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" with the inbound secret>
    Idempotency-Key: <an id for this answer>   (optional, else webhook-id; a repeat returns the first result)

Signed in the Standard Webhooks format (escalation/delivery/signature.py), so a gateway signs with any Standard
Webhooks library; while the secret rotates, a signature with a previous secret is accepted too. The earlier
`Escalation-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` is accepted this release only.
The signature is checked before anything else; then the answer drives the case's `followup_response`
update (an update, not a signal, so the gateway learns whether it was taken). Answers: 200 with the
timeline entry; 401 bad or stale signature; 400 a body that breaks the contract; 404 no such case;
409 the case is not in a state to take it (not in follow-up, already answered, completed);
422 the answer does not fit the case (an unknown check-in number); 503 with Retry-After when the case
cannot take it now (no worker answered within the endpoint's deadline, or its workflow task is failing):
send it again later with the same Idempotency-Key. Every answer, errors included, is JSON
(`{"error": "..."}`); a failure of the endpoint itself is a 500 without details and one log line.
Run it with `escalations-inbound`; it refuses to start without a secret of at least 32 characters.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog
from aiohttp import web
from pydantic import ValidationError
from temporalio.client import Client

from escalation import logs
from escalation.client import MAX_UPDATE_ID, Case, case_handle, connect
from escalation.client.credentials import use_credential
from escalation.client.errors import (
    CaseEnded,
    CaseNotFound,
    EscalationError,
    InvalidArgument,
    InvalidState,
    UnknownPolicy,
    Unreachable,
)
from escalation.config import ConfigError, Settings
from escalation.constants import IDEMPOTENCY_HEADER, WEBHOOK_ID_HEADER, workflow_id
from escalation.delivery.signature import SECRET_PREFIX, SignatureError, signing_key, verify
from escalation.domain.models import FollowUpResponseInput, Identifier
from escalation.domain.refusal import describe
from escalation.identity import CUSTOMER, KeyProblem, Signer
from escalation.web import json_error as _error
from escalation.web import json_errors as json_errors_middleware

log = structlog.get_logger()

MAX_BODY = 64 * 1024
# The secret signs every answer: a short one can be guessed (and an empty one signs for anybody).
MIN_SECRET = 32
MIN_KEY_BYTES = 24  # a whsec_<base64> secret: its key, as the Standard Webhooks specification asks
SECRET_SETTING = "ESCALATIONS_INBOUND__SECRET"
PREVIOUS_SECRETS_SETTING = "ESCALATIONS_INBOUND__PREVIOUS_SECRETS"
# How long an answer may take in all, every Temporal call included: a gateway waits on it, so an answer the
# case cannot take now (no worker, a failing workflow task) is a quick 503 with Retry-After, not a hang.
TIMEOUT = 5.0
# What a 503 tells the gateway to wait before it sends the answer again (seconds).
RETRY_AFTER = 5
IDEMPOTENCY_PREFIX = "inbound-"


class FollowUpAnswerRequest(FollowUpResponseInput):
    """Body of POST /followups: the follow-up answer plus the case it belongs to."""

    case_id: Identifier


def _unavailable(message: str) -> web.Response:
    return _error(503, message, **{"Retry-After": str(RETRY_AFTER)})


def secret_problem(secret: str | None, setting: str = SECRET_SETTING) -> str | None:
    """Why `secret` cannot sign answers, or None when it can."""
    if not secret:
        return f"{setting} is not set: the endpoint verifies every answer with it (at least {MIN_SECRET} characters)"
    try:
        key = signing_key(secret)
    except ValueError as err:
        return f"{setting}: {err}"
    if secret.startswith(SECRET_PREFIX):
        if len(key) < MIN_KEY_BYTES:
            return (
                f"{setting} is too short ({len(key)} bytes after {SECRET_PREFIX}): use at least {MIN_KEY_BYTES}, "
                'e.g. from `echo "whsec_$(openssl rand -base64 32)"`'
            )
    elif len(secret) < MIN_SECRET:
        return (
            f"{setting} is too short ({len(secret)} characters): use at least {MIN_SECRET}, "
            'e.g. from `echo "whsec_$(openssl rand -base64 32)"`'
        )
    return None


# Every answer is JSON, a failure of the endpoint too (escalation.web.json_errors).
json_errors = json_errors_middleware(
    "inbound_failed",
    "the endpoint failed to handle this answer; it may not have been taken: send it again later with the same "
    "Idempotency-Key",
)


def build_app(
    client: Client,
    secret: str,
    *,
    previous_secrets: Sequence[str] = (),
    tolerance: float,
    customers: Signer,
    customer_ttl: timedelta = timedelta(minutes=2),
    clock: Callable[[], float] = time.time,
    timeout: float = TIMEOUT,
) -> web.Application:
    """The endpoint. Answers signed with `secret` or, while it rotates, one of `previous_secrets` are taken.
    A verified answer reaches its case with a credential `customers` mints for that case (and check-in) alone,
    living `customer_ttl`: the customer's only way in (escalation.identity). `timeout` bounds each answer's
    Temporal calls in all (seconds)."""
    problems = [secret_problem(secret)] + [secret_problem(p, PREVIOUS_SECRETS_SETTING) for p in previous_secrets]
    if problem := next((p for p in problems if p is not None), None):
        raise ValueError(problem)
    secrets = [secret, *previous_secrets]

    async def followups(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signed = verify(secrets, request.headers, body, now=clock(), tolerance=tolerance)
        except SignatureError as err:
            log.warning("inbound_refused", reason=str(err), remote=request.remote)
            return _error(401, str(err))
        if signed.legacy:  # the gateway still signs the earlier way, which the next release no longer takes
            log.warning("inbound_legacy_signature", remote=request.remote)
        try:
            answer = FollowUpAnswerRequest.model_validate_json(body)
        except ValidationError as err:
            return _error(400, describe(err))
        # The gateway's id for the answer: Idempotency-Key, else the signed webhook-id (the same on its retries).
        named, key = IDEMPOTENCY_HEADER, request.headers.get(IDEMPOTENCY_HEADER)
        if key is None and signed.id is not None:
            named, key = WEBHOOK_ID_HEADER, signed.id
        if key is not None and not (0 < len(key) <= MAX_UPDATE_ID - len(IDEMPOTENCY_PREFIX) and key.isprintable()):
            return _error(
                400,
                f"{named}: 1 to {MAX_UPDATE_ID - len(IDEMPOTENCY_PREFIX)} printable characters (got {len(key)})",
            )
        # Every line logged while the answer is taken names its case.
        bound = {"case_id": answer.case_id, "workflow_id": workflow_id(answer.case_id)}
        with structlog.contextvars.bound_contextvars(**bound):
            return await take(answer, key)

    async def take(answer: FollowUpAnswerRequest, key: str | None) -> web.Response:
        case_id = answer.case_id
        # The update waits for a worker for most of the deadline; a case briefly not ready (handing over to a
        # new run, a failing task) is asked again for half of it; the deadline bounds everything else.
        case = Case(case_handle(client, case_id), case_id, update_timeout=timeout * 0.8, retry_timeout=timeout * 0.5)
        # The customer's credential, for this case and check-in only, minted now that the signature holds.
        credential = customers.mint(CUSTOMER, case_id=case_id, checkin=answer.checkin, ttl=customer_ttl)
        try:
            with use_credential(credential):
                entry = await asyncio.wait_for(
                    case.followup_response(
                        FollowUpResponseInput.model_validate(answer.model_dump(exclude={"case_id"})),
                        update_id=f"{IDEMPOTENCY_PREFIX}{key}" if key else None,
                    ),
                    timeout,
                )
        except TimeoutError:
            return _unavailable(
                f"case {case_id} did not answer within {timeout:g}s (no worker took the answer); "
                "send it again later with the same Idempotency-Key"
            )
        except EscalationError as err:
            return _refusal(case_id, err)
        log.info("followup_answer_taken", case_id=case_id, answer=answer.answer.value, seq=entry.seq)
        return web.json_response(entry.model_dump(mode="json"))

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    app.router.add_post("/followups", followups)
    app.router.add_get("/healthz", health)
    return app


def _refusal(case_id: str, err: EscalationError) -> web.Response:
    """The HTTP answer for a typed refusal of the update."""
    if err.retryable:  # no worker, a failing workflow task, the server did not answer: nothing was taken
        log.warning("followup_answer_deferred", case_id=case_id, error=err.type)
        return _unavailable(err.message)
    if isinstance(err, CaseNotFound):
        return _error(404, f"no case {case_id}")
    if isinstance(err, InvalidArgument):
        return _error(422, err.message)
    if isinstance(err, (InvalidState, CaseEnded, UnknownPolicy)):  # closed, terminated, not in follow-up
        return _error(409, err.message)
    # The server refused for a reason of its own (credentials, namespace): ours to fix, not the gateway's.
    log.error("inbound_failed", case_id=case_id, error=err.type, reason=err.message)
    return _error(500, "the endpoint cannot use the Temporal server now; the answer was not taken")


def main() -> None:
    logs.configure()
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        raise SystemExit(f"escalations-inbound: {err}") from None
    inbound = settings.delivery.inbound if settings.delivery else None
    secret = inbound.secret.get_secret_value() if inbound and inbound.secret else None
    if (problem := secret_problem(secret)) is not None:
        raise SystemExit(f"escalations-inbound: {problem}")
    assert inbound is not None and secret is not None
    previous = [p.get_secret_value() for p in inbound.previous_secrets]
    if problem := next(filter(None, (secret_problem(p, PREVIOUS_SECRETS_SETTING) for p in previous)), None):
        raise SystemExit(f"escalations-inbound: {problem}")
    try:
        customers = Signer.from_settings(settings.identity)
    except KeyProblem as err:
        raise SystemExit(f"escalations-inbound: identity: {err}") from None
    if customers is None:
        raise SystemExit(
            "escalations-inbound: identity: no signing key to mint the customer's credential with: set "
            "ESCALATIONS_IDENTITY__SIGNING_KEYS (or ESCALATIONS_IDENTITY__KEYS to a JWKS file holding one)"
        )

    async def app() -> web.Application:
        # The worker's connection settings: profile, TLS, API key, gRPC headers.
        client = await connect(settings)
        log.info("inbound_started", host=inbound.host, port=inbound.port, address=settings.address)
        return build_app(
            client,
            secret,
            previous_secrets=previous,
            tolerance=inbound.tolerance,
            customers=customers,
            customer_ttl=settings.identity.customer_ttl,
        )

    try:
        web.run_app(app(), host=inbound.host, port=inbound.port, print=None)
    except Unreachable as err:
        print(f"escalations-inbound: {err}", file=sys.stderr, flush=True)
        logs.leave(1)


if __name__ == "__main__":
    main()
