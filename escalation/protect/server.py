"""`escalations codec-server`: Temporal's codec server protocol, so the Temporal UI and the `temporal` CLI show
payloads decrypted to the people allowed to read customer data.

`POST .../encode` and `POST .../decode` take and answer `{"payloads": [...]}` (Temporal's `Payloads` as protobuf
JSON); the `X-Namespace` header names the namespace (only the settings' one is served). Every request needs
`Authorization: Bearer <credential>`: a credential of escalation.identity (a rep's, or a service's), verified with
ESCALATIONS_IDENTITY__KEYS, naming someone the roster lets read customer data (escalation.domain.roster: reps at
supervisor or above unless the roster says otherwise; services whose `may` names read_customer_data). No credential
or a bad one: 401; someone not permitted: 403. A browser may call it only from the configured UI origins
(ESCALATIONS_CODEC__UI_ORIGINS): their preflight is answered, any other origin refused (403).

`allow_loopback_anonymous` (`make run` only): bound to a loopback address, a request from this machine without a
credential is served as "anonymous (loopback)". The embedded dev server's UI has no login and sends no credential;
anything that can reach a loopback port can read the dev server itself anyway.

Each request is logged (who, which namespace, which cases' workflows, how many payloads): never the contents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from escalation.config import ConfigError, Settings
from escalation.domain.principal import Identity, NotIdentified
from escalation.domain.roster import RosterError, RosterStore
from escalation.identity import CredentialRefused, KeyProblem, Verifier
from escalation.protect import AesGcmCodec, PayloadKeyProblem, key_ring
from escalation.protect.codec import WORKFLOW_ID
from escalation.web import is_loopback, listen, parse_address

log = structlog.get_logger()

MAX_BODY = 16 * 1024 * 1024  # a page of history's payloads; Temporal's own limit per payload is 2 MB
ANONYMOUS = "anonymous (loopback)"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


@dataclass(frozen=True)
class Reader:
    """Who is asking: the verified subject (and the service acting for them), or ANONYMOUS."""

    subject: str
    via: str | None = None


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CodecServer:
    """The codec server's checks and work; `app()` is its aiohttp application."""

    def __init__(
        self,
        settings: Settings,
        *,
        codec: AesGcmCodec,
        verifier: Verifier | None,
        roster: RosterStore,
        ui_origins: list[str],
        allow_loopback_anonymous: bool = False,
    ) -> None:
        self.namespace = settings.namespace
        self.codec = codec
        self.verifier = verifier
        self.roster = roster
        self.ui_origins = [o.rstrip("/") for o in ui_origins]
        self.allow_loopback_anonymous = allow_loopback_anonymous

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        address: str,
        ui_origins: list[str] | None = None,
        allow_loopback_anonymous: bool = False,
    ) -> CodecServer:
        """The server for `settings`; ConfigError when it cannot work (no codec keys, no identity keys, anonymous
        access asked for an address other machines can reach)."""
        host, _ = parse_address(address)
        if allow_loopback_anonymous and not is_loopback(host):
            raise ConfigError(
                f"codec server: {address} is reachable from other machines; anonymous access is only for a "
                "loopback address (127.0.0.1)"
            )
        keys = key_ring(settings.codec)  # a rotated key file is read again as it changes
        if keys is None:
            raise ConfigError("codec server: no codec keys (ESCALATIONS_CODEC__KEYS): there is nothing to decrypt with")
        try:
            verifier: Verifier | None = Verifier.from_settings(settings.identity)
        except KeyProblem as err:
            if not allow_loopback_anonymous:
                raise ConfigError(f"codec server: every request needs a credential, and {err}") from None
            verifier = None
        if not settings.roster_path.is_file():
            raise ConfigError(f"codec server: roster file not found: {settings.roster_path} (ESCALATIONS_ROSTER)")
        return cls(
            settings,
            codec=AesGcmCodec(keys, compress_above=settings.codec.compress_above, strict=True),
            verifier=verifier,
            roster=RosterStore(settings.roster_path),
            ui_origins=settings.codec.ui_origins if ui_origins is None else ui_origins,
            allow_loopback_anonymous=allow_loopback_anonymous,
        )

    # ----- checks

    def _cors(self, request: web.Request) -> dict[str, str]:
        """The CORS headers for a request from an allowed origin; none without an Origin (the CLI, curl).
        Refused (403) for any other origin."""
        origin = request.headers.get("Origin")
        if origin is None:
            return {}
        if origin.rstrip("/") not in self.ui_origins:
            raise Refused(403, f"origin {origin[:100]!r} may not call this codec server")
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def reader(self, request: web.Request) -> Reader:
        """Who asks, checked: 401 without a credential (or with one that does not verify or names nobody), 403 when
        they may not read customer data."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if self.allow_loopback_anonymous and request.remote is not None and is_loopback(request.remote):
                return Reader(ANONYMOUS)
            raise Refused(401, "this codec server needs a credential: send Authorization: Bearer <credential>")
        if self.verifier is None:
            raise Refused(401, "this codec server has no identity keys to verify credentials with")
        try:
            claims = self.verifier.verify(token)
            roster = self.roster.in_force()
            who = roster.identify(
                Identity(
                    subject=claims.subject,
                    acting_service=claims.acting_service,
                    case_id=claims.case_id,
                    checkin=claims.checkin,
                )
            )
        except (CredentialRefused, NotIdentified) as err:
            raise Refused(401, str(err)) from None
        except RosterError:
            raise Refused(503, "the roster cannot be read right now to check who you are; try again") from None
        refusal = roster.customer_data_refusal(who)
        if refusal is not None:
            raise Refused(403, refusal)
        return Reader(who.id, who.via)

    # ----- the protocol

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            cors = self._cors(request)
        except Refused as err:
            log.warning("codec_refused", status=err.status, reason=err.message, remote=request.remote)
            return web.json_response({"error": err.message}, status=err.status)
        if request.method == "OPTIONS":  # a browser's preflight from an allowed origin
            return web.Response(
                status=204,
                headers=cors
                | {
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
        operation = request.path.rstrip("/").rsplit("/", 1)[-1]
        if request.method != "POST" or operation not in ("encode", "decode"):
            return web.json_response({"error": "POST .../encode or .../decode"}, status=404, headers=cors)
        namespace = request.headers.get("X-Namespace")
        try:
            who = self.reader(request)
            if namespace and namespace != self.namespace:
                raise Refused(403, f"this codec server serves namespace {self.namespace!r}, not {namespace[:100]!r}")
        except Refused as err:
            log.warning(
                "codec_refused", status=err.status, reason=err.message, operation=operation, remote=request.remote
            )
            challenge = {"WWW-Authenticate": 'Bearer realm="escalations codec"'} if err.status == 401 else {}
            return web.json_response({"error": err.message}, status=err.status, headers=cors | challenge)
        try:
            given = json_format.Parse(await request.read(), Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, ValueError):
            return web.json_response({"error": 'the body must be {"payloads": [...]}'}, status=400, headers=cors)
        try:
            if operation == "decode":
                done = await self.codec.decode(list(given.payloads))
                workflows = sorted(
                    {p.metadata[WORKFLOW_ID].decode() for p in given.payloads if WORKFLOW_ID in p.metadata}
                )
            else:
                done = await self.codec.encode(list(given.payloads))
                workflows = []
        except PayloadKeyProblem as err:
            log.warning("codec_failed", operation=operation, by=who.subject, key_id=err.key_id)
            return web.json_response({"error": str(err)}, status=422, headers=cors)
        log.info(
            "payloads_decoded" if operation == "decode" else "payloads_encoded",
            by=who.subject,
            via=who.via,
            namespace=namespace or self.namespace,
            workflow_ids=workflows,
            payloads=len(done),
            remote=request.remote,
        )
        body = json_format.MessageToJson(Payloads(payloads=done), indent=None)
        return web.Response(text=body, content_type="application/json", headers=cors)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def start(server: CodecServer, address: str) -> tuple[web.AppRunner, str]:
    """Listen on `address` (HOST:PORT). Returns the runner (clean it up to stop) and the endpoint's URL."""
    runner, url = await listen(server.app(), address, "codec server")
    return runner, url.rstrip("/")


async def serve(server: CodecServer, address: str, *, announce: Callable[[str], None]) -> None:
    """Serve until cancelled (Ctrl-C); the verifier's keys are read again as it asks."""
    runner, url = await start(server, address)
    stop = asyncio.Event()
    keep_fresh: asyncio.Task[None] | None = None
    if server.verifier is not None:
        keep_fresh = asyncio.create_task(server.verifier.keep_fresh(stop))
    origins = ", ".join(server.ui_origins) or "none (no browser may call it)"
    announce(f"codec server on {url} (for the UI: --ui-codec-endpoint {url}; origins allowed: {origins})")
    try:
        await asyncio.Event().wait()
    finally:
        stop.set()
        if keep_fresh is not None:
            keep_fresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_fresh
        await runner.cleanup()
