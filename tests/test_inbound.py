"""The inbound endpoint on a real HTTP server: follow-up answers signed in the Standard Webhooks format (by the
`standardwebhooks` library, as a gateway would sign them) drive the workflow's update."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import structlog.testing
from aiohttp import web
from standardwebhooks import Webhook

from escalation.client import case_state, open_case
from escalation.constants import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)
from escalation.delivery.inbound import MAX_BODY, build_app
from escalation.delivery.signature import sign_legacy
from escalation.domain.models import ResolveInput, TimelineEntry
from escalation.identity import Signer
from tests.cases import case_input, eventually, owned
from tests.conftest import IDENTITY
from tests.servers import LOOPBACK, free_port

# whsec_ and the base64 of at least 24 bytes, or the endpoint refuses to start
CUSTOMERS = Signer.from_settings(IDENTITY)
SECRET = "whsec_aW5ib3VuZC10ZXN0LXNlY3JldC00ZjBjOWQyYTdiMWU4NjM1"
NEW_SECRET = "whsec_aW5ib3VuZC1yb3RhdGVkLXNlY3JldC05YjJlNGY3MGExZDM="


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` served on loopback; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def inbound(env):
    """The endpoint served on loopback, talking to the dev server; yields its base URL."""
    async with serving(build_app(env.client, SECRET, tolerance=300, customers=CUSTOMERS)) as url:
        yield url


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None, msg_id: str | None = None) -> dict[str, str]:
    """The Standard Webhooks headers a gateway sends, made with the `standardwebhooks` library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    moment = datetime.fromtimestamp(int(at or time.time()), UTC)
    return {
        WEBHOOK_ID_HEADER: msg_id,
        WEBHOOK_TIMESTAMP_HEADER: str(int(moment.timestamp())),
        WEBHOOK_SIGNATURE_HEADER: Webhook(secret).sign(msg_id, moment, body.decode()),
    }


async def post(
    url: str,
    payload: dict | bytes,
    *,
    secret: str = SECRET,
    at: float | None = None,
    key: str | None = None,
    msg_id: str | None = None,
    signature: dict[str, str | bytes] | None = None,
) -> httpx.Response:
    """POSTs an answer signed with `secret` (or with the `signature` headers given instead)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    headers |= signature if signature is not None else signed(body, secret=secret, at=at, msg_id=msg_id)
    if key:
        headers[IDEMPOTENCY_HEADER] = key
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{url}/followups", content=body, headers=headers)


async def resolved_and_checked_in(env, settings):
    handle = await open_case(env.client, case_input("fast"), task_queue_name=settings.task_queue)
    owner = (await owned(handle)).owner.id
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=owner, resolution="Refund issued", root_cause="billing_error", kb_article="KB-7"),
        result_type=TimelineEntry,
    )

    async def checked_in():
        s = await case_state(handle)
        return s if s.checkins and s.checkins[0].sent_at else None

    return handle, await eventually(checked_in, timeout=20)


async def test_unsigned_or_badly_signed_answers_are_refused_and_change_nothing(env, worker, settings, inbound):
    handle, before = await resolved_and_checked_in(env, settings)
    answer = {"case_id": before.case_id, "answer": "not_fixed", "comment": "still charged twice"}
    body = json.dumps(answer).encode()
    now = int(time.time())
    refused = [
        await post(inbound, answer, secret="whsec_Z3Vlc3NlZC1zZWNyZXQtb2YtMjQtYnl0ZXM="),
        await post(inbound, answer, at=time.time() - 3600),  # a replay of an old request
        await post(inbound, body.replace(b"not_fixed", b"fixed"), signature=signed(body)),  # tampered
        await post(inbound, answer, signature=signed(body) | {WEBHOOK_ID_HEADER: "msg_another"}),  # id swapped
        await post(inbound, answer, signature=signed(body) | {WEBHOOK_SIGNATURE_HEADER: "v1,AAAA"}),
        await post(inbound, answer, signature=signed(body) | {WEBHOOK_SIGNATURE_HEADER: "v1,\u00e9".encode("latin-1")}),
        await post(inbound, answer, signature=signed(body) | {WEBHOOK_TIMESTAMP_HEADER: "soon"}),
        await post(inbound, answer, signature={WEBHOOK_ID_HEADER: "msg_1", WEBHOOK_TIMESTAMP_HEADER: str(now)}),
        # the legacy header, still accepted this release, is refused just the same when wrong
        await post(inbound, answer, signature={SIGNATURE_HEADER: "t=1,v1=00"}),
        await post(inbound, answer, signature={SIGNATURE_HEADER: f"t={now},v1=\u00e9".encode("latin-1")}),
    ]
    assert [r.status_code for r in refused] == [401] * len(refused)
    reasons = [r.json()["error"] for r in refused]
    assert all("does not match" in reasons[i] for i in (0, 2, 3, 4, 5, 9)), reasons
    assert "stale" in reasons[1] and "stale" in reasons[8] and "unix seconds" in reasons[6], reasons
    assert "missing: webhook-signature" in reasons[7], reasons
    async with httpx.AsyncClient() as client:
        missing = await client.post(f"{inbound}/followups", content=body)
    assert missing.status_code == 401 and "missing" in missing.json()["error"]
    after = await case_state(handle)  # (the second check-in may go out meanwhile: it is due 5 s after resolving)
    assert after.status == "resolved" and after.checkins[0].answer is None
    assert not [e for e in after.timeline if e.kind == "followup_answered"]


async def test_a_signed_answer_reopens_the_case_once_even_when_the_gateway_repeats_it(env, worker, settings, inbound):
    handle, state = await resolved_and_checked_in(env, settings)
    answer = {"case_id": state.case_id, "answer": "not_fixed", "comment": "still charged twice", "channel": "sms"}
    first = await post(inbound, answer, msg_id="gw-msg-881")
    assert first.status_code == 200, first.text
    entry = TimelineEntry.model_validate(first.json())
    assert entry.kind == "followup_answered" and entry.detail["answer"] == "not_fixed"
    assert entry.detail["channel"] == "sms" and entry.actor == "customer"

    # The gateway did not hear back and retries: the same webhook-id, signed again a moment later, is the
    # idempotency key, as is an Idempotency-Key header with the same value.
    again = await post(inbound, answer, msg_id="gw-msg-881", at=time.time() + 1)
    assert again.status_code == 200 and again.json() == first.json()
    keyed = await post(inbound, answer, key="gw-msg-881")
    assert keyed.status_code == 200 and keyed.json() == first.json()

    state = await case_state(handle)
    assert state.status == "open" and state.reopens == 1
    assert [e.kind for e in state.timeline].count("followup_answered") == 1
    assert state.timeline[entry.seq].kind == "reopened"

    # Under another id, a repeat is a second answer, and the case says it is not in follow-up any more.
    late = await post(inbound, answer)
    assert late.status_code == 409 and late.json()["error"].startswith("status: ")


async def test_answers_that_do_not_fit_are_refused_with_the_reason(env, worker, settings, inbound):
    handle, state = await resolved_and_checked_in(env, settings)
    cases = [
        ({"case_id": state.case_id}, 400, "answer: is required"),
        ({"case_id": state.case_id, "answer": "maybe"}, 400, "answer:"),
        ({"case_id": state.case_id, "answer": "fixed", "checkn": 1}, 400, "checkn: is not a known field"),
        ({"case_id": state.case_id, "answer": "fixed", "checkin": 9}, 422, "checkin: check-in 9"),
        ({"case_id": "C-nope", "answer": "fixed"}, 404, "no case C-nope"),
    ]
    for payload, status, reason in cases:
        response = await post(inbound, payload)
        assert response.status_code == status, (payload, response.text)
        assert reason in response.json()["error"], (payload, response.text)
    not_json = await post(inbound, b"fixed")
    assert not_json.status_code == 400
    state_after = await case_state(handle)
    assert state_after.status == "resolved" and state_after.checkins[0].answer is None

    ok = await post(inbound, {"case_id": state.case_id, "answer": "fixed"})
    assert ok.status_code == 200
    await handle.result()  # "fixed" closes the case under this policy
    closed = await post(inbound, {"case_id": state.case_id, "answer": "not_fixed"})
    assert closed.status_code == 409 and "has completed; it takes no more commands" in closed.json()["error"]


async def test_while_the_secret_rotates_answers_signed_with_either_secret_are_taken(env):
    """An unknown case is a 404: the signature was accepted. 401: it was not."""
    answer = {"case_id": "C-nope", "answer": "fixed"}
    body = json.dumps(answer).encode()
    async with serving(
        build_app(env.client, NEW_SECRET, previous_secrets=[SECRET], tolerance=300, customers=CUSTOMERS)
    ) as url:
        new = await post(url, answer, secret=NEW_SECRET)
        old = await post(url, answer, secret=SECRET)  # a gateway not yet moved to the new secret
        both = signed(body, secret=NEW_SECRET)
        moment = datetime.fromtimestamp(int(both[WEBHOOK_TIMESTAMP_HEADER]), UTC)
        both[WEBHOOK_SIGNATURE_HEADER] += " " + Webhook(SECRET).sign(both[WEBHOOK_ID_HEADER], moment, body.decode())
        either = await post(url, answer, signature=both)  # a gateway signing with both while it moves
        other = await post(url, answer, secret="whsec_c29tZW9uZS1lbHNlcy1zZWNyZXQtNDI=")
    assert [r.status_code for r in (new, old, either)] == [404, 404, 404], (new.text, old.text, either.text)
    assert other.status_code == 401 and "does not match" in other.json()["error"]
    # Once the previous secret is dropped, its answers are refused.
    async with serving(build_app(env.client, NEW_SECRET, tolerance=300, customers=CUSTOMERS)) as url:
        dropped = await post(url, answer, secret=SECRET)
    assert dropped.status_code == 401


async def test_the_legacy_signature_header_is_still_accepted_this_release_and_logged(env):
    answer = {"case_id": "C-nope", "answer": "fixed"}
    body = json.dumps(answer).encode()
    with structlog.testing.capture_logs() as logged:
        async with serving(build_app(env.client, SECRET, tolerance=300, customers=CUSTOMERS)) as url:
            legacy = await post(
                url, answer, signature={SIGNATURE_HEADER: sign_legacy([SECRET], body, int(time.time()))}
            )
            stale = await post(url, answer, signature={SIGNATURE_HEADER: sign_legacy([SECRET], body, 1_700_000_000)})
    assert legacy.status_code == 404, legacy.text
    assert stale.status_code == 401 and "stale" in stale.json()["error"]
    assert [e["event"] for e in logged if e["event"] == "inbound_legacy_signature"] == ["inbound_legacy_signature"]


async def test_health(inbound):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{inbound}/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def _inbound(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs the `escalations-inbound` console script; it should stop at once, so a timeout is a failure."""
    script = Path(sys.executable).parent / "escalations-inbound"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    env = (
        clean
        | {
            "ESCALATIONS_INBOUND__SECRET": SECRET,
            "ESCALATIONS_INBOUND__PORT": str(free_port()),
            "ESCALATIONS_IDENTITY__KEYS": str(IDENTITY.keys),
        }
        | env
    )
    return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30)


async def test_the_endpoint_connects_with_the_workers_connection_settings(env, tmp_path):
    address = env.client.service_client.config.target_host
    # TLS asked for (as for Temporal Cloud or an mTLS cluster) against this plain server: it must not connect.
    tls = await asyncio.to_thread(_inbound, {"TEMPORAL_ADDRESS": address, "TEMPORAL_TLS": "true"})
    assert tls.returncode == 1, tls.stderr
    assert f"escalations-inbound: cannot connect to Temporal at {address} (namespace default, TLS)" in tls.stderr
    missing_ca = await asyncio.to_thread(_inbound, {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem")})
    assert missing_ca.returncode == 1 and "Traceback" not in missing_ca.stderr
    assert "tls_server_ca_cert: server CA certificate file not found" in missing_ca.stderr


# ----- secrets, deadlines and failures: no answer may hang the gateway or show it a traceback


@pytest.mark.parametrize(
    "secret, previous, reason",
    [
        ("", [], "ESCALATIONS_INBOUND__SECRET is not set"),
        ("x" * 31, [], "ESCALATIONS_INBOUND__SECRET is too short (31 characters): use at least 32"),
        ("whsec_c2hvcnQta2V5", [], "ESCALATIONS_INBOUND__SECRET is too short (9 bytes after whsec_): use at least 24"),
        (SECRET, ["x" * 31], "ESCALATIONS_INBOUND__PREVIOUS_SECRETS is too short (31 characters)"),
    ],
)
async def test_the_endpoint_refuses_to_start_with_an_empty_or_short_secret(secret, previous, reason):
    env = {"ESCALATIONS_INBOUND__SECRET": secret, "ESCALATIONS_INBOUND__PREVIOUS_SECRETS": json.dumps(previous)}
    started = await asyncio.to_thread(_inbound, env)
    assert started.returncode == 1, started.stderr
    [line] = started.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"escalations-inbound: {reason}"), started.stderr
    with pytest.raises(ValueError, match=reason.split(" ")[0]):
        build_app(None, secret, previous_secrets=previous, tolerance=300, customers=CUSTOMERS)  # type: ignore[arg-type]


async def test_an_answer_no_worker_takes_is_a_quick_503_with_retry_after(env):
    # A case on a task queue no worker polls: its first workflow task is never picked up.
    handle = await open_case(env.client, case_input("fast"), task_queue_name=f"nobody-polls-{uuid.uuid4().hex[:8]}")
    try:
        async with serving(build_app(env.client, SECRET, tolerance=300, customers=CUSTOMERS, timeout=2)) as url:
            started = time.monotonic()
            response = await post(
                url, {"case_id": handle.id.removeprefix("escalation-"), "answer": "fixed"}, key="gw-msg-503"
            )
            took = time.monotonic() - started
    finally:
        await handle.terminate("test finished")
    assert response.status_code == 503 and took < 4, (response.text, took)
    assert int(response.headers["Retry-After"]) > 0 and response.headers["Content-Type"].startswith("application/json")
    assert "no worker took 'followup_response'" in response.json()["error"]


async def test_an_answer_for_a_case_whose_workflow_task_fails_is_a_503_not_a_500(env, settings):
    from tests.test_retries import open_stuck

    inp = case_input()
    handle = await open_stuck(env, f"{settings.task_queue}-stuck", inp, task_timeout=1)
    try:
        async with serving(build_app(env.client, SECRET, tolerance=300, customers=CUSTOMERS, timeout=2)) as url:
            started = time.monotonic()
            response = await post(url, {"case_id": inp.case_id, "answer": "not_fixed"})
            took = time.monotonic() - started
    finally:
        await handle.terminate("test finished")
    assert response.status_code == 503 and took < 4, (response.text, took)
    assert "Retry-After" in response.headers and "its workflow task is failing" in response.json()["error"]
    assert "Traceback" not in response.text


async def test_a_failure_of_the_endpoint_is_a_json_500_with_one_log_line_and_no_traceback(env):
    def broken_clock() -> float:
        raise RuntimeError("clock source gone: /dev/rtc0 for dana@example.org")

    with structlog.testing.capture_logs() as logged:
        async with serving(
            build_app(env.client, SECRET, tolerance=300, customers=CUSTOMERS, clock=broken_clock)
        ) as url:
            response = await post(url, {"case_id": "C-1", "answer": "fixed", "comment": "Dana, still broken"})
    assert response.status_code == 500 and response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert "failed" in error and "Idempotency-Key" in error
    for leaked in ("Traceback", "RuntimeError", "clock source", "dana@example.org", "inbound.py"):
        assert leaked not in response.text
    [line] = [e for e in logged if e["event"] == "inbound_failed"]
    assert (
        line["error"] == "RuntimeError" and line["path"] == "/followups" and line["at"].startswith("test_inbound.py:")
    )
    assert "dana" not in json.dumps(line, default=str).lower()


async def test_refusals_of_the_http_layer_are_json_too(inbound):
    async with httpx.AsyncClient(timeout=10) as client:
        unknown = await client.get(f"{inbound}/nowhere")
        wrong_method = await client.get(f"{inbound}/followups")
        too_large = await client.post(f"{inbound}/followups", content=b"x" * (MAX_BODY + 1))
    assert unknown.status_code == 404 and unknown.json() == {"error": "Not Found"}
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert wrong_method.json() == {"error": "Method Not Allowed"}
    assert too_large.status_code == 413 and "Maximum request body size" in too_large.json()["error"]


async def test_an_idempotency_key_out_of_bounds_is_refused(inbound):
    response = await post(inbound, {"case_id": "C-1", "answer": "fixed"}, key="k" * 193)
    assert response.status_code == 400 and response.json()["error"].startswith("Idempotency-Key: 1 to 192")
