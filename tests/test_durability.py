"""Nothing is lost: a dev server killed with SIGKILL and restarted on its SQLite file keeps every case
and fires its timers; a long case continues as new with all of its state."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bench.chaos.run import connect, free_port, start_sqlite_server
from escalation.client import Case, case_state, open_case
from escalation.client.credentials import with_credentials
from escalation.domain.models import CloseInput, NoteInput, ResolveInput, TimelineEntry
from tests.cases import case_input, eventually, owned
from tests.conftest import IDENTITY
from worker import build_worker


@asynccontextmanager
async def sqlite_server(db: Path, port: int) -> AsyncIterator[subprocess.Popen]:
    proc = start_sqlite_server(db, port)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_server_killed_and_restarted_keeps_the_case_and_its_timers(settings, tmp_path):
    db, port = tmp_path / "temporal.db", free_port()
    async with sqlite_server(db, port) as first:
        client = with_credentials(await connect(port), IDENTITY)  # signs for the rep each command names
        async with build_worker(client, settings):
            handle = await open_case(client, case_input("durable"), task_queue_name=settings.task_queue)
            owner = (await owned(handle)).owner
            assert owner is not None
            await handle.execute_update(
                "resolve",
                ResolveInput(actor=owner.id, resolution="Refunded", root_cause="billing_error", kb_article="KB-1"),
                result_type=TimelineEntry,
            )
            first.send_signal(signal.SIGKILL)  # no shutdown: the check-in timers (4s, 5s) are pending
            first.wait(10)
            async with sqlite_server(db, port):
                # Same worker and client: they reconnect by themselves.
                result = await asyncio.wait_for(handle.result(), 60)
    assert result.outcome == "resolved"
    assert [f.sent_at is not None for f in result.followups] == [True, True]
    lines = (settings.data_dir / "outbox.jsonl").read_text().splitlines()
    checkins = [m for m in map(json.loads, lines) if m["kind"] == "followup_checkin"]
    assert len(checkins) == 2 and len({m["key"] for m in checkins}) == 2


async def test_long_case_continues_as_new_with_all_its_state(short_history_env, settings):
    client = short_history_env.client
    async with build_worker(client, settings):
        handle = await open_case(client, case_input(), task_queue_name=settings.task_queue)
        first_run = (await owned(handle)).case_id and (await handle.describe()).run_id
        for i in range(40):
            await Case(handle, handle.id.removeprefix("escalation-")).add_note(NoteInput(actor="ana", text=f"call {i}"))

        async def continued():
            return (await handle.describe()).run_id != first_run

        await eventually(continued)
        state = await case_state(handle)
        assert [n.detail["text"] for n in state.notes] == [f"call {i}" for i in range(40)]
        assert [e.seq for e in state.timeline] == list(range(1, len(state.timeline) + 1))
        case = Case(handle, handle.id.removeprefix("escalation-"))  # resends a command refused while the case moves
        await case.escalate({"actor": "ana", "reason": "threat"})
        await case.escalate({"actor": "sam", "reason": "complexity"})
        await case.close(CloseInput(actor="maya", outcome="customer_lost", reason="cancelled"))
        result = await handle.result()
    assert result.outcome == "customer_lost" and result.escalations == 2
    events = [json.loads(line) for line in (settings.data_dir / "events.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # none lost, none twice


async def test_a_stuck_channel_never_holds_up_a_breach_around_continue_as_new(short_history_env, settings):
    class Down:
        async def deliver(self, message):
            raise ConnectionError("mail relay unreachable")  # retried by the activity, never succeeds

    client = short_history_env.client
    async with build_worker(client, settings, delivery=Down()):
        handle = await open_case(client, case_input("brisk"), task_queue_name=settings.task_queue)
        await owned(handle)
        for i in range(40):  # past the history size at which the server suggests continuing as new
            await Case(handle, handle.id.removeprefix("escalation-")).add_note(NoteInput(actor="ana", text=f"call {i}"))
        await Case(handle, handle.id.removeprefix("escalation-")).escalate({"actor": "ana", "reason": "complexity"})

        async def breached_at_team_lead():
            s = await case_state(handle)
            return s if s.tier == "supervisor" else None

        state = await eventually(breached_at_team_lead, timeout=20)
    breach = [e for e in state.timeline if e.kind == "breached"][-1]
    assert breach.tier == "team_lead" and breach.detail["clock"] == "acknowledge"
    assert not [e for e in state.timeline if e.kind == "delivery_failed"]  # still retrying, not given up
