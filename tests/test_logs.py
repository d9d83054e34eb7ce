"""The worker's log stream on the real dev server: every line is one JSON object, whoever wrote it (our own
code, workflow.logger in the workflow, temporalio's loggers, the roster watcher), with the case it concerns."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from escalation.client import EscalationClient, case_state, open_case
from escalation.domain.models import Callback, CallbackStatus
from tests.cases import case_input, eventually, worker_process

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
    worker, queue, _ = await worker_process(env, tmp_path, "logs")
    try:
        customer = {
            "id": "cust-night",
            "name": "Dana Doe",
            "email": "dana@example.org",
            "phone": "+49 30 1234567",
            "time_zone": _night_zone(),
        }
        handle = await open_case(env.client, case_input("routing", customer=customer), task_queue_name=queue)
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
        roster.write_text(roster.read_text().replace(f'id = "{rep}"\n', f'id = "{rep}"\nactive = false\n'))

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
    shutdown = [e for e in logged if e.get("logger", "").startswith("temporalio.worker")]  # the SDK's own
    assert any(e["event"].startswith("Beginning worker shutdown") for e in shutdown), logged
    assert "worker_started" in events and "worker_stopped" in events
