"""Real servers on loopback for the delivery tests: an SMTP server (aiosmtpd) and an HTTP server
(aiohttp) that record what they receive and answer as each test scripts them to."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from escalation.constants import IDEMPOTENCY_HEADER

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


# ----- SMTP


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    def part(self, subtype: str) -> str:
        found = self.message.get_body(preferencelist=(subtype,))
        assert found is not None and found.get_content_subtype() == subtype, f"no text/{subtype} part"
        return found.get_content()


class MailHandler:
    """Keeps every accepted mail; `refuse` maps a recipient to the reply its RCPT gets (e.g. '550 ...')."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.mails.append(
            Mail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.recipients]


class Accounts:
    """An SMTP authenticator over a dict of login -> password."""

    def __init__(self, accounts: dict[str, str]) -> None:
        self.accounts = accounts

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.accounts.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


def smtp_server(handler: MailHandler, port: int | None = None, **options: Any) -> Controller:
    """A started aiosmtpd server on loopback; options pass to the Controller (tls_context, ssl_context,
    require_starttls, authenticator, auth_require_tls ...). Call .stop() when done."""
    controller = Controller(handler, hostname=LOOPBACK, port=port or free_port(), **options)
    controller.start()
    return controller


def server_tls(ca, hostname: str = LOOPBACK) -> ssl.SSLContext:
    """A server-side TLS context with a certificate for `hostname` issued by the test CA (trustme)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname).configure_cert(context)
    return context


# ----- HTTP


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class HttpServer:
    """Records every request, then answers with the status `respond` returns for it (200 by default) and,
    when `reply` is set, the text it returns as the body (as a receiver's error page or echo does).
    `delivered` is what a receiver that dedupes by Idempotency-Key would act on, in order."""

    respond: Callable[[Request, int], int] = lambda request, number: 200
    reply: Callable[[Request, int], str] | None = None
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    @property
    def delivered(self) -> list[Request]:
        seen: set[str] = set()
        once = []
        for r in self.requests:
            key = r.headers.get(IDEMPOTENCY_HEADER)
            if key not in seen:
                seen.add(key)
                once.append(r)
        return once

    async def _handle(self, request: web.Request) -> web.Response:
        recorded = Request(request.path, dict(request.headers), await request.read())
        self.requests.append(recorded)
        status = self.respond(recorded, len(self.requests))
        if self.reply is not None:
            return web.Response(text=self.reply(recorded, len(self.requests)), status=status)
        return web.json_response({"status": status}, status=status)

    async def start(self) -> HttpServer:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
