"""Credentials are stripped from receivers' error text before it is kept (escalation/delivery/redact.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError

from activities.email import SmtpEmail
from activities.render import Templates
from activities.webhooks import WebhookEvents
from escalation.client import case_state, open_case
from escalation.constants import SIGNATURE_HEADER
from escalation.delivery.redact import EXCERPT, REDACTED, excerpt, redact
from escalation.delivery.settings import SmtpSecurity, SmtpSettings, WebhookSettings
from escalation.domain.models import CaseEvent, ContactChannel, ResolveInput, TimelineEntry
from escalation.domain.rules.step import Message, MessageKind, Recipient
from tests.cases import case_input, eventually, owned, worker_process
from tests.conftest import IDENTITY_KEYS
from tests.servers import LOOPBACK, HttpServer, MailHandler, Request, smtp_server

ROOT = Path(__file__).resolve().parent.parent

SECRET = "s3cr3t-T0ken_value"


@pytest.mark.parametrize(
    "text, kept",
    [
        # Headers, as a receiver echoes them back
        (f"Authorization: Bearer {SECRET}", f"Authorization: {REDACTED}"),
        (f"authorization=Basic {SECRET}\nnext line", f"authorization={REDACTED}\nnext line"),
        (f"Proxy-Authorization: Digest username=bob, response={SECRET}", f"Proxy-Authorization: {REDACTED}"),
        (
            f'{{"headers": {{"Authorization": "Bearer {SECRET}", "Accept": "*/*"}}}}',
            f'{{"headers": {{"Authorization": "{REDACTED}", "Accept": "*/*"}}}}',
        ),
        (f"{{'Authorization': 'Bearer {SECRET}'}}", f"{{'Authorization': {REDACTED}}}"),
        (
            f'{{"echo": "{{\\"authorization\\": \\"Bearer {SECRET}\\"}}"}}',
            f'{{"echo": "{{\\"authorization\\": \\"{REDACTED}\\"}}"}}',
        ),
        (f"Cookie: sid={SECRET}; theme=dark", f"Cookie: {REDACTED}"),
        # An auth scheme anywhere
        (f"bad credentials (Bearer {SECRET})", f"bad credentials (Bearer {REDACTED})"),
        (f"expected Basic {SECRET}, got none", f"expected Basic {REDACTED}, got none"),
        (f"token Bearer {SECRET}", f"token Bearer {REDACTED}"),
        # key=value, key: value, JSON
        (f"api_key={SECRET}&to=%2B4930", f"api_key={REDACTED}&to=%2B4930"),
        (f"GET /send?apikey={SECRET} refused", f"GET /send?apikey={REDACTED} refused"),
        (f"X-Api-Key: {SECRET}", f"X-Api-Key: {REDACTED}"),
        (f"x-api-key: Bearer {SECRET}", f"x-api-key: {REDACTED}"),
        (
            f'{{"access_token": "{SECRET}", "expires_in": 3600}}',
            f'{{"access_token": "{REDACTED}", "expires_in": 3600}}',
        ),
        (f'{{"client_secret":"with spaces {SECRET}"}}', f'{{"client_secret":"{REDACTED}"}}'),
        (f"password: {SECRET} rejected", f"password: {REDACTED} rejected"),
        (f"passwd={SECRET}", f"passwd={REDACTED}"),
        (f"secret = {SECRET}", f"secret = {REDACTED}"),
        (f"Escalation-Signature: t=1,v1={SECRET}", f"Escalation-Signature: {REDACTED}"),
        (f"signature={SECRET}", f"signature={REDACTED}"),
        (f"status=token={SECRET}", f"status=token={REDACTED}"),
        # URL user info
        (
            f"could not reach https://bob:{SECRET}@gw.example.com/sms",
            f"could not reach https://{REDACTED}@gw.example.com/sms",
        ),
        (f"smtp://relay-user:{SECRET}@mail.example.com:587", f"smtp://{REDACTED}@mail.example.com:587"),
        # Long blobs that look random
        ("key 0123456789abcdef0123456789abcdef is revoked", f"key {REDACTED} is revoked"),
        ("sk_live_51HxQ2eKz8B3nV7wYtR4uP0aM6cD9fG2hJ expired", f"{REDACTED} expired"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.sig",
            f"eyJhbGciOiJIUzI1NiJ9.{REDACTED}.sig",
        ),
        # ... and what stays
        ("HTTP 500 Internal Server Error: upstream timed out", "HTTP 500 Internal Server Error: upstream timed out"),
        ("HTTP 401 Unauthorized: authentication: required", "HTTP 401 Unauthorized: authentication: required"),
        (
            "550 5.1.1 <dana@example.org>: Recipient address rejected",
            "550 5.1.1 <dana@example.org>: Recipient address rejected",
        ),
        ('{"error": "invalid_request", "status": 400}', '{"error": "invalid_request", "status": 400}'),
        (
            "unknown field customer_notification_preferences_override",
            "unknown field customer_notification_preferences_override",
        ),
        ("see https://docs.example.com/errors/4711", "see https://docs.example.com/errors/4711"),
    ],
)
def test_credentials_are_redacted_and_the_rest_is_kept(text, kept):
    assert redact(text) == kept


def test_an_excerpt_is_redacted_before_it_is_cut_and_kept_on_one_line():
    # The token straddles the 200th character: cut first, its first half would look like nothing.
    text = "x" * 180 + " Authorization: Bearer " + SECRET
    kept = excerpt(text)
    assert SECRET[:5] not in kept and len(kept) <= EXCERPT
    assert excerpt("line one\r\nforged: line\x1b[31m two\t\x00") == "line one forged: line [31m two"
    assert excerpt("word " * 10_000) == ("word " * 40)[:EXCERPT]
    # A reply so long that the excerpt's window cuts a key in two: its first 19 characters, too short to
    # look like one, are not kept either.
    key = "0123456789abcdef" * 4
    assert excerpt(f"{'0f' * 4_990} {key}") == REDACTED


def test_work_stays_linear_on_hostile_text():
    import time

    for text in (
        "token" * 20_000,
        "a" * 100_000,
        "x-api-key" * 10_000,
        "//a:" * 25_000,
        "Bearer " * 15_000,
        '"' * 100_000,
        "aB" * 50_000,
    ):
        start = time.perf_counter()
        redact(text)
        assert time.perf_counter() - start < 1, text[:20]


# ----- properties: a secret embedded anywhere never survives

# Credentials: token68 characters, as bearer tokens, api keys and passwords use.
secrets_ = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+", min_size=6, max_size=60
)
FORMS = [
    "Authorization: Bearer {s}",
    "authorization: {s}",
    "Proxy-Authorization: Basic {s}",
    "Bearer {s}",
    "basic {s}",
    "api_key={s}",
    "apikey: {s}",
    "X-Api-Key: {s}",
    "token={s}",
    "access_token={s}&state=1",
    "secret: {s}",
    "password={s}",
    "passwd: {s}",
    "client_secret={s}",
    "signature={s}",
    "x-auth-token: {s}",
    "https://user:{s}@host.example/path",
    "//{s}@host",
    "?key=1&token={s}",
]
JSON_NAMES = [
    "Authorization",
    "api_key",
    "apiKey",
    "x-api-key",
    "token",
    "access_token",
    "secret",
    "password",
    "client_secret",
    "signature",
    "Proxy-Authorization",
]
# Text around it, with pieces that look like the start or end of another credential or of JSON.
FRAGMENTS = [
    '"',
    "'",
    "\\",
    '\\"',
    ":",
    "=",
    " ",
    "\n",
    ",",
    "&",
    "token",
    "Bearer",
    "Authorization",
    "//",
    "@",
    "{",
    "}",
    "api_key",
    "password: ",
    "Basic ",
    "x",
]
around = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=8).map("".join)


@settings(max_examples=400)
@given(before=around, after=around, form=st.sampled_from(FORMS), secret=secrets_)
def test_a_credential_never_survives_whatever_surrounds_it(before, after, form, secret):
    text = before + form.format(s=secret) + (" " + after if after else "")
    assume(secret not in before + form.format(s="\0") + " " + after)  # there only as the credential
    assert secret not in redact(text), text
    assert secret[:EXCERPT] not in excerpt(text)


@settings(max_examples=200)
@given(
    name=st.sampled_from(JSON_NAMES),
    secret=secrets_ | st.text(min_size=6, max_size=40),
    other=st.dictionaries(
        st.text(alphabet="abcdefghij_", min_size=1, max_size=8), st.text(max_size=20) | st.integers(), max_size=3
    ),
    nested=st.booleans(),
)
def test_a_credential_in_json_never_survives(name, secret, other, nested):
    def body_with(value: str) -> str:
        return json.dumps({**other, "headers": {name: value}} if nested else {name: value, **other})

    body = body_with(secret)
    encoded = json.dumps(secret)[1:-1]  # as it stands in the JSON text
    assume(encoded not in body_with("\0") and encoded not in f'\\"{REDACTED}\\"')
    assert encoded not in redact(body), body
    wrapped = json.dumps({"error": body})  # a receiver quoting what it received, as a string
    assert json.dumps(encoded)[1:-1] not in redact(wrapped), wrapped


@settings(max_examples=300)
@given(
    before=around,
    after=around,
    raw=st.binary(min_size=24, max_size=64),
    encode=st.sampled_from([bytes.hex, base64.b64encode, base64.urlsafe_b64encode]),
)
def test_a_long_random_blob_never_survives(before, after, raw, encode):
    blob = encode(raw)
    blob = blob.decode() if isinstance(blob, bytes) else blob
    text = f"{before} {blob} {after}"
    assume(blob not in f"{before} \0 {after}")
    assert blob not in redact(text), text


# ----- receivers that echo credentials: SMTP and webhooks, then a case end to end


async def test_an_smtp_refusal_keeps_the_reply_without_the_credentials_it_echoes():
    token = f"s3cr3t-token-{uuid.uuid4().hex}"
    handler = MailHandler()
    handler.refuse["ana@example.com"] = f"550 5.7.1 relay denied for AUTH PLAIN {token} password={token}"
    server = smtp_server(handler)
    try:
        settings = SmtpSettings(host=LOOPBACK, port=server.port, security=SmtpSecurity.NONE, timeout=5)
        message = Message(
            key="C-7/run-1/4/owner_assigned/ana",
            case_id="C-7",
            kind=MessageKind.OWNER_ASSIGNED,
            to=Recipient(kind="owner", id="ana", name="Ana Alves", email="ana@example.com"),
            channel=ContactChannel.EMAIL,
            subject="[C-7] for you",
            body="Problem: charged twice",
        )
        with pytest.raises(ApplicationError) as caught:
            await SmtpEmail(settings, Templates()).deliver(message)
    finally:
        server.stop()
    assert caught.value.non_retryable and "550 5.7.1 relay denied" in caught.value.message
    assert token not in caught.value.message and token[:16] not in caught.value.message


def echo(request: Request, number: int) -> str:
    """A receiver's error page quoting the request it refused, headers and all."""
    quoted = [
        f"{name}: {request.headers[name]}" for name in ("Authorization", SIGNATURE_HEADER) if name in request.headers
    ]
    return "\n".join(["Unauthorized: not accepted", *quoted, json.dumps({"seen": {"headers": request.headers}})])


async def test_a_webhook_refusal_is_dead_lettered_without_the_headers_it_echoes(tmp_path):
    receiver = await HttpServer(respond=lambda request, number: 401, reply=echo).start()
    secret = f"whsec-{uuid.uuid4().hex}"
    try:
        sink = WebhookEvents(WebhookSettings(url=f"{receiver.url}/hooks", secret=secret), tmp_path / "dead.jsonl")
        event = CaseEvent(
            id="escalation-C-5/run-1/1",
            type="escalation.note",
            case_id="C-5",
            seq=1,
            at=datetime(2026, 11, 23, 9, 1, tzinfo=UTC),
            actor="ana",
            tier="agent",
            status="open",
            owner="ana",
            detail={"text": "note"},
        )
        with pytest.raises(ApplicationError):
            await sink.publish([event])
    finally:
        await receiver.stop()
    [request] = receiver.requests
    signature = request.headers[SIGNATURE_HEADER]
    dead = (tmp_path / "dead.jsonl").read_text()
    assert "HTTP 401" in dead and "Unauthorized: not accepted Escalation-Signature: [redacted]" in dead
    assert signature.split("v1=")[1] not in dead and secret not in dead


async def test_a_token_a_gateway_echoes_reaches_no_timeline_event_history_or_log(env, tmp_path):
    """A real SMS gateway on loopback answers 500, then 401, each time echoing the request's Authorization
    header; a real worker process delivers through it. The check-in fails over to email, and the token is
    nowhere: not in the case's state, its history, the events file or the worker's log."""
    token = f"s3cr3t-token-{uuid.uuid4().hex}"
    gateway = await HttpServer(respond=lambda request, number: 500 if number == 1 else 401, reply=echo).start()
    worker, queue, data = await worker_process(
        env,
        tmp_path,
        "redact",
        ESCALATIONS_GATEWAY__URL=f"{gateway.url}/sms",
        ESCALATIONS_GATEWAY__AUTH=f"Bearer {token}",
        ESCALATIONS_IDENTITY__KEYS=str(IDENTITY_KEYS),
    )
    try:
        customer = {**case_input().customer.model_dump(mode="json"), "preferred_channel": "sms"}
        # The worker's roster names its reps with its queue's suffix: the case is opened by its agent.
        opener = f"ana-{queue.rsplit('-', 1)[1]}"
        handle = await open_case(
            env.client, case_input("fast", customer=customer, opened_by=opener), task_queue_name=queue
        )
        owner = (await eventually(lambda: owned(handle), timeout=30)).owner  # the worker process is starting
        await handle.execute_update(
            "resolve",
            ResolveInput(actor=owner.id, resolution="Refund issued", root_cause="billing_error", kb_article="KB-7"),
            result_type=TimelineEntry,
        )

        async def failed_over_and_recorded():
            s = await case_state(handle)
            failed = [e for e in s.timeline if e.kind == "delivery_failed"]
            events = (data / "events.jsonl").read_text() if (data / "events.jsonl").exists() else ""
            return (s, failed[0]) if failed and "escalation.delivery_failed" in events else None

        state, failure = await eventually(failed_over_and_recorded, timeout=60)
        history = (await handle.fetch_history()).to_json()
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(worker.communicate(), 60)
        await gateway.stop()

    # The gateway did get the token, twice, and echoed it both times.
    assert [r.headers["Authorization"] for r in gateway.requests] == [f"Bearer {token}"] * 2
    # What it answered is kept, the token is not.
    assert "HTTP 401 Unauthorized: Unauthorized: not accepted Authorization: [redacted]" in failure.detail["error"]
    assert failure.detail["permanent"] is True
    assert token not in state.model_dump_json()
    assert token not in history and "HTTP 401" in history
    assert token not in (data / "events.jsonl").read_text()
    log = err.decode() + out.decode()
    assert "HTTP 500" in log and "HTTP 401" in log  # the retried failure and the refusal were both logged
    assert token not in log
    hidden = token.removeprefix("s3cr3t-token-")
    assert hidden not in log and hidden not in history and hidden not in state.model_dump_json()
