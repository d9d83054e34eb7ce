"""The worker's log stream on the real dev server: every line is one JSON object, whoever wrote it (our own
code, workflow.logger in the workflow, temporalio's loggers, the roster watcher), with the case it concerns
(case id, workflow id, run id, tier, activity) and no personal data."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks import Webhook
from temporalio.api.common.v1 import Payload

from escalation import logs
from escalation.client import EscalationClient, case_state, open_case
from escalation.delivery import inbound
from escalation.delivery.redact import REDACTED
from escalation.domain.models import Callback, CallbackStatus, TimelineEntry
from escalation.identity import Signer
from escalation.service.log_context import TIER_HEADER, tier_of
from tests.cases import case_input, eventually, worker_process
from tests.conftest import IDENTITY, IDENTITY_KEYS

ROOT = Path(__file__).resolve().parent.parent


def _night_zone() -> str:
    """A zone where it is about 02:00 now, so a customer there is outside the 08:00-20:00 contact window
    of the `routing` policy for hours: a confirmation to them is held."""
    offset = (2 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is UTC+5


async def test_every_worker_log_line_is_one_json_object(env, tmp_path):
    # Reps of their own: the roster watcher reassigns every open case an inactive rep holds on the server,
    # and other tests' cases (their workers gone) are held by reps of the usual names.
    worker, queue, _ = await worker_process(env, tmp_path, "logs", ESCALATIONS_IDENTITY__KEYS=str(IDENTITY_KEYS))
    try:
        customer = {
            "id": "cust-night",
            "name": "Dana Doe",
            "email": "dana@example.org",
            "phone": "+49 30 1234567",
            "time_zone": _night_zone(),
        }
        # The worker's roster names its reps with its queue's suffix: the case is opened by its agent.
        opener = f"ana-{queue.rsplit('-', 1)[1]}"
        inp = case_input("routing", customer=customer, opened_by=opener)
        handle = await open_case(env.client, inp, task_queue_name=queue)
        case = EscalationClient(env.client).case(handle.id.removeprefix("escalation-"))

        async def offered():
            s = await case_state(handle)
            return s.pending_assignment.rep.id if s.pending_assignment else None

        rep = await eventually(offered, timeout=30)
        await case.accept({"actor": rep})
        # The customer's confirmation waits for their contact window; cancelled first, it is dropped (a log line).
        booked: Callback = await case.schedule_callback({"actor": rep, "at": "earliest"})
        assert booked.due_at > datetime.now(UTC) + timedelta(hours=5)
        await case.cancel_callback({"actor": rep, "callback_id": booked.id, "reason": "customer called us"})
        assert (await case.state()).callbacks[0].status == CallbackStatus.CANCELLED
        # The roster watcher reassigns the case of a rep the roster marks inactive (its own log line).
        roster = tmp_path / "roster.toml"  # the worker's own (tests.cases.worker_process)
        text = roster.read_text().replace(f'id = "{rep}"\n', f'id = "{rep}"\nactive = false\n')
        # (worker_process gives every id of the roster the queue's suffix: the watch's own service keeps its name)
        roster.write_text(re.sub(r'^id = "roster-[0-9a-f]+"$', 'id = "roster"', text, flags=re.M))

        async def reassigned():
            return any(e.kind == "reassigned" and e.actor == "roster" for e in (await case.state()).timeline)

        await eventually(reassigned, timeout=30)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(worker.communicate(), 60)

    lines = [line for line in err.decode().splitlines() if line.strip()]
    logged = []
    for line in lines:
        try:
            logged.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    assert all(isinstance(entry, dict) and "event" in entry and "level" in entry for entry in logged)
    assert out.decode().strip() == "" and worker.returncode == 0, out
    events = {entry["event"]: entry for entry in logged}
    dropped = events["held_message_dropped"]  # workflow.logger, from the workflow
    assert dropped["logger"] == "temporalio.workflow" and dropped["case_id"] == case.case_id
    assert dropped["key"].endswith(f"/callback_scheduled/{customer['id']}") and dropped["workflow_id"] == handle.id
    assert dropped["reason"] == "the case moved on" and dropped["level"] == "info"
    assert events["case_reassigned"]["from_owner"] == rep  # the roster watcher
    assert events["case_reassigned"]["case_id"] == case.case_id  # from the workflow id it names
    assert dropped["tier"] in {"agent", "team_lead", "supervisor", "manager"}  # the case's, from its search attribute
    # Activities: every line one logs carries the case, its workflow and run, the activity and the case's tier.
    run_id = (await handle.describe()).run_id
    from_activities = [e for e in logged if "activity" in e]
    assert {e["event"] for e in from_activities} >= {"owner_chosen", "message_sent"}, from_activities
    for entry in from_activities:
        assert entry["case_id"] == case.case_id and entry["workflow_id"] == handle.id, entry
        assert entry["run_id"] == run_id and entry["tier"] in {"agent", "team_lead", "supervisor", "manager"}, entry
    assert {e["activity"] for e in from_activities} >= {"find_owner", "send_message"}
    # Nothing about the customer: no name, contact detail or what they told us, in any line.
    text = err.decode()
    for personal in (customer["name"], customer["email"], customer["phone"], "Charged twice", "duplicate charge"):
        assert personal not in text, personal
    shutdown = [e for e in logged if e.get("logger", "").startswith("temporalio.worker")]  # the SDK's own
    assert any(e["event"].startswith("Beginning worker shutdown") for e in shutdown), logged
    assert "worker_started" in events and "worker_stopped" in events


def _processed(**fields):
    event = {"event": "something_happened", "level": "info", **fields}
    return logs._personal(None, "info", event)


def test_contact_details_and_free_text_are_redacted_from_a_line():
    line = _processed(
        name="Dana Doe",
        summary="Charged twice",
        note=None,
        owner="sam",
        error="refused for dana@example.org at +49 30 1234567: Authorization: Bearer abc.def",
        exception="ValueError: 'dana@example.org' is not allowed",
    )
    assert line["name"] == REDACTED and line["summary"] == REDACTED and line["note"] is None
    assert line["owner"] == "sam"
    assert "dana@example.org" not in line["error"] and "+49 30 1234567" not in line["error"]
    assert "abc.def" not in line["error"] and line["error"].startswith("refused for ")
    assert "dana@example.org" not in line["exception"]
    # Ids, times and counts stay as they are.
    kept = _processed(
        run_id="0195c6a2-7b1e-7c3a-9f21-3a4b5c6d7e8f",
        at="2026-11-29 09:40:12 UTC",
        case_id="C-1001",
        count=3,
    )
    assert kept["run_id"] == "0195c6a2-7b1e-7c3a-9f21-3a4b5c6d7e8f" and kept["at"] == "2026-11-29 09:40:12 UTC"
    assert kept["case_id"] == "C-1001" and kept["count"] == 3


def test_a_tier_header_is_read_only_when_it_is_a_short_json_string():
    json_plain = {"encoding": b"json/plain"}
    assert tier_of({TIER_HEADER: Payload(metadata=json_plain, data=b'"manager"')}) == "manager"
    assert tier_of({}) is None
    assert tier_of({TIER_HEADER: Payload(metadata=json_plain, data=b"not json")}) is None
    assert tier_of({TIER_HEADER: Payload(metadata=json_plain, data=b"42")}) is None
    assert tier_of({TIER_HEADER: Payload(metadata=json_plain, data=b'"' + b"x" * 100 + b'"')}) is None


def test_bound_case_fields_reach_python_logging_lines_too():
    """An activity's context (bound by the worker interceptor) goes on lines of Python logging it causes, such
    as the SDK's own, rendered as JSON."""
    logs._json_logging("INFO")  # the root handler of Python logging (structlog's own set-up left alone)
    root = logging.getLogger()
    handler = next(h for h in root.handlers if isinstance(h, logs._JsonHandler))
    try:
        record = logging.LogRecord("temporalio.activity", logging.WARNING, __file__, 1, "attempt failed", (), None)
        bound = {"case_id": "C-1", "workflow_id": "escalation-C-1", "activity": "find_owner"}
        with structlog.contextvars.bound_contextvars(**bound):
            line = json.loads(handler.format(record))
    finally:
        root.removeHandler(handler)
    assert line["case_id"] == "C-1" and line["activity"] == "find_owner" and line["event"] == "attempt failed"


def test_a_channel_backend_named_email_is_no_address():
    assert _processed(email="smtp mail.example.org:587")["email"] == "smtp mail.example.org:587"
    assert _processed(email="dana@example.org")["email"] == REDACTED
    assert _processed(phone="030 1234567")["phone"] == REDACTED and _processed(phone="outbox")["phone"] == "outbox"


def test_lines_are_json_in_a_pipe_and_for_reading_on_a_terminal(monkeypatch):
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "__stderr__", Stream(tty=False))
    assert isinstance(logs._renderer(), structlog.processors.JSONRenderer)
    monkeypatch.setattr(sys, "__stderr__", Stream(tty=True))
    assert isinstance(logs._renderer(), structlog.dev.ConsoleRenderer)


async def test_the_inbound_endpoint_names_the_case_while_it_takes_an_answer(monkeypatch):
    """Every line logged while an answer is taken (the client's, the endpoint's own) carries its case."""
    seen: list[dict] = []

    class Case:
        def __init__(self, *_: object, **__: object) -> None:
            pass

        async def followup_response(self, *_: object, **__: object) -> TimelineEntry:
            seen.append(structlog.contextvars.get_contextvars())
            return TimelineEntry(seq=7, at=datetime.now(UTC), kind="followup_answered", actor="customer", tier="agent")

    monkeypatch.setattr(inbound, "Case", Case)
    monkeypatch.setattr(inbound, "case_handle", lambda *_: None)
    secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    app = inbound.build_app(None, secret, tolerance=300, customers=Signer.from_settings(IDENTITY))  # type: ignore[arg-type]
    body = json.dumps({"case_id": "C-4711", "answer": "fixed"})
    moment = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_1", moment, body),
        "Content-Type": "application/json",
    }
    async with TestClient(TestServer(app)) as client:
        answer = await client.post("/followups", data=body, headers=headers)
        assert answer.status == 200, await answer.text()
    assert seen == [{"case_id": "C-4711", "workflow_id": "escalation-C-4711"}]
    assert structlog.contextvars.get_contextvars() == {}  # nothing left bound for the next request


def test_a_line_naming_a_workflow_names_its_case():
    assert logs._case_named(None, "info", {"workflow_id": "escalation-C-9"})["case_id"] == "C-9"
    assert "case_id" not in logs._case_named(None, "info", {"workflow_id": "other-workflow"})
    assert logs._case_named(None, "info", {"workflow_id": "escalation-C-9", "case_id": "C-1"})["case_id"] == "C-1"
