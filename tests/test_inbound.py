"""The inbound endpoint on a real HTTP server: signed follow-up answers drive the workflow's update."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from escalation.client import case_state, open_case
from escalation.constants import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from escalation.inbound import build_app
from escalation.models import ResolveInput, TimelineEntry
from escalation.signature import sign
from tests.cases import case_input, eventually, owned
from tests.servers import LOOPBACK, free_port

SECRET = "inbound-test-secret"


@pytest.fixture
async def inbound(env):
    """The endpoint served on loopback, talking to the dev server; yields its base URL."""
    runner = web.AppRunner(build_app(env.client, SECRET, tolerance=300))
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def post(url: str, payload: dict | bytes, *, secret: str = SECRET, at: float | None = None,
               key: str | None = None, signature: str | bytes | None = None) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: signature or sign(secret, body, int(at or time.time()))}
    if key:
        headers[IDEMPOTENCY_HEADER] = key
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{url}/followups", content=body, headers=headers)


async def resolved_and_checked_in(env, settings):
    handle = await open_case(env.client, case_input("fast"), task_queue_name=settings.task_queue)
    owner = (await owned(handle)).owner.id
    await handle.execute_update("resolve", ResolveInput(actor=owner, resolution="Refund issued",
                                                        root_cause="billing_error", kb_article="KB-7"),
                                result_type=TimelineEntry)

    async def checked_in():
        s = await case_state(handle)
        return s if s.checkins and s.checkins[0].sent_at else None
    return handle, await eventually(checked_in, timeout=20)


async def test_unsigned_or_badly_signed_answers_are_refused_and_change_nothing(env, worker, settings, inbound):
    handle, before = await resolved_and_checked_in(env, settings)
    answer = {"case_id": before.case_id, "answer": "not_fixed", "comment": "still charged twice"}
    body = json.dumps(answer).encode()
    refused = [
        await post(inbound, answer, secret="guessed-secret"),
        await post(inbound, answer, at=time.time() - 3600),  # a replay of an old request
        await post(inbound, body.replace(b"not_fixed", b"fixed"), signature=sign(SECRET, body, int(time.time()))),
        await post(inbound, answer, signature="t=1,v1=00"),
        await post(inbound, answer, signature=f"t={int(time.time())},v1=\u00e9".encode("latin-1")),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401, 401, 401]
    reasons = [r.json()["error"] for r in refused]
    assert "does not match" in reasons[0] and "stale" in reasons[1] and "does not match" in reasons[2]
    async with httpx.AsyncClient() as client:
        missing = await client.post(f"{inbound}/followups", content=body)
    assert missing.status_code == 401 and "missing" in missing.json()["error"]
    after = await case_state(handle)  # (the second check-in may go out meanwhile: it is due 5 s after resolving)
    assert after.status == "resolved" and after.checkins[0].answer is None
    assert not [e for e in after.timeline if e.kind == "followup_answered"]


async def test_a_signed_answer_reopens_the_case_once_even_when_the_gateway_repeats_it(env, worker, settings, inbound):
    handle, state = await resolved_and_checked_in(env, settings)
    answer = {"case_id": state.case_id, "answer": "not_fixed", "comment": "still charged twice", "channel": "sms"}
    first = await post(inbound, answer, key="gw-msg-881")
    assert first.status_code == 200, first.text
    entry = TimelineEntry.model_validate(first.json())
    assert entry.kind == "followup_answered" and entry.detail["answer"] == "not_fixed"
    assert entry.detail["channel"] == "sms" and entry.actor == "customer"

    again = await post(inbound, answer, key="gw-msg-881")  # the gateway did not hear back and retries
    assert again.status_code == 200 and again.json() == first.json()

    state = await case_state(handle)
    assert state.status == "open" and state.reopens == 1
    assert [e.kind for e in state.timeline].count("followup_answered") == 1
    assert state.timeline[entry.seq].kind == "reopened"

    # Without the key, a repeat is a second answer, and the case says it is not in follow-up any more.
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
    assert closed.status_code == 409 and "closed" in closed.json()["error"]


async def test_health(inbound):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{inbound}/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def _inbound(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs the `escalations-inbound` console script; it should stop at once, so a timeout is a failure."""
    script = Path(sys.executable).parent / "escalations-inbound"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    env = clean | {"ESCALATIONS_INBOUND__SECRET": SECRET, "ESCALATIONS_INBOUND__PORT": str(free_port())} | env
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
