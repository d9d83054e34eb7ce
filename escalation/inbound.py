"""The inbound endpoint: a gateway relays a customer's answer to a follow-up check-in.

    POST /followups   {"case_id": "C-1001", "answer": "fixed" | "not_fixed", "comment"?, "channel"?, "checkin"?}
    Escalation-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the inbound secret>
    Idempotency-Key: <the gateway's id for this answer>   (optional; a repeat returns the first result)

The signature is checked before anything else; then the answer drives the case's `followup_response`
update (an update, not a signal, so the gateway learns whether it was taken). Answers: 200 with the
timeline entry; 401 bad or stale signature; 400 a body that breaks the contract; 404 no such case;
409 the case is not in a state to take it (not in follow-up, already answered, completed);
422 the answer does not fit the case (an unknown check-in number). Run it with `escalations-inbound`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from pydantic import ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from escalation import logs
from escalation.client import case_handle, connect, execute_update
from escalation.config import ConfigError, Settings
from escalation.constants import ERR_INVALID_ARGUMENT, IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from escalation.converter import describe
from escalation.errors import Unreachable
from escalation.models import FollowUpResponseInput, Identifier, TimelineEntry
from escalation.signature import SignatureError, verify

log = structlog.get_logger()

MAX_BODY = 64 * 1024


class FollowUpAnswerRequest(FollowUpResponseInput):
    """Body of POST /followups: the follow-up answer plus the case it belongs to."""

    case_id: Identifier


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def build_app(client: Client, secret: str, *, tolerance: float, clock: Callable[[], float] = time.time) -> web.Application:
    async def followups(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(secret, request.headers.get(SIGNATURE_HEADER), body, now=clock(), tolerance=tolerance)
        except SignatureError as err:
            log.warning("inbound_refused", reason=str(err), remote=request.remote)
            return _error(401, str(err))
        try:
            answer = FollowUpAnswerRequest.model_validate_json(body)
        except ValidationError as err:
            return _error(400, describe(err))
        key = request.headers.get(IDEMPOTENCY_HEADER)
        try:
            entry = await execute_update(
                case_handle(client, answer.case_id), "followup_response",
                FollowUpResponseInput.model_validate(answer.model_dump(exclude={"case_id"})),
                result_type=TimelineEntry, update_id=f"inbound-{key}"[:200] if key else None)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            invalid = isinstance(cause, ApplicationError) and cause.type == ERR_INVALID_ARGUMENT
            return _error(422 if invalid else 409, message)
        except RPCError as err:
            if "already completed" in err.message:
                return _error(409, f"case {answer.case_id} is closed: {err.message}")
            if err.status == RPCStatusCode.NOT_FOUND:
                return _error(404, f"no case {answer.case_id}")
            raise
        log.info("followup_answer_taken", case_id=answer.case_id, answer=answer.answer.value, seq=entry.seq)
        return web.json_response(entry.model_dump(mode="json"))

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/followups", followups)
    app.router.add_get("/healthz", health)
    return app


def main() -> None:
    logs.configure()
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        raise SystemExit(f"escalations-inbound: {err}") from None
    inbound = settings.delivery.inbound if settings.delivery else None
    if inbound is None or inbound.secret is None:
        raise SystemExit("ESCALATIONS_INBOUND__SECRET is not set: the endpoint verifies every answer with it")

    async def app() -> web.Application:
        # The worker's connection settings: profile, TLS, API key, gRPC headers.
        client = await connect(settings)
        log.info("inbound_started", host=inbound.host, port=inbound.port, address=settings.address)
        return build_app(client, inbound.secret.get_secret_value(), tolerance=inbound.tolerance)

    try:
        web.run_app(app(), host=inbound.host, port=inbound.port, print=None)
    except Unreachable as err:
        print(f"escalations-inbound: {err}", file=sys.stderr, flush=True)
        logs.leave(1)


if __name__ == "__main__":
    main()
