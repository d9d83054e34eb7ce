"""The events receiver on a real HTTP server on loopback, fed by the worker's own webhook sender (WebhookEvents):
each event once in its UTC day's file, on disk before the answer, refusals that write nothing, and DuckDB reading
the folder back."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.webhooks import WebhookEvents
from escalation.client import open_case
from escalation.config import ConfigError
from escalation.constants import ERR_DELIVERY_REJECTED
from escalation.delivery.events_sink import (
    MAX_BODY,
    PATH,
    EventsSink,
    day_path,
    secrets_from,
)
from escalation.delivery.settings import DeliverySettings, WebhookSettings
from escalation.delivery.signature import signed_headers
from escalation.domain.models import AcknowledgeInput, CaseEvent, ResolveInput, TimelineEntry
from escalation.insight import source
from escalation.web import listen
from tests.cases import case_input, eventually, owned
from tests.servers import LOOPBACK, free_port
from worker import build_worker

SECRET = "whsec_" + base64.b64encode(b"events-sink-test-key-3f9a1c7e5b2d").decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"events-sink-rotated-key-8e4b0d62a").decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"someone-else-entirely-51c2e9f7ab").decode()
MONDAY = datetime(2026, 11, 23, 23, 58, tzinfo=UTC)
TUESDAY = MONDAY + timedelta(minutes=5)  # past midnight UTC: the next day's file


def event(seq: int, at: datetime = MONDAY, case_id: str = "C-1001") -> CaseEvent:
    return CaseEvent(
        id=f"escalation-{case_id}/01a2087c-5b1e-7d3a-9c4f-2e8b6a1d0f37/{seq}",
        type="escalation.note",
        case_id=case_id,
        seq=seq,
        at=at,
        actor="ana",
        tier="agent",
        status="open",
        owner="ana",
        detail={"text": f"note {seq}"},
    )


@asynccontextmanager
async def receiving(out: Path, secrets: list[str] | None = None, **options) -> AsyncIterator[tuple[str, EventsSink]]:
    """The receiver writing under `out`, served on loopback; yields its webhook URL and the receiver."""
    with EventsSink(out, secrets or [SECRET], tolerance=300, **options) as sink:
        runner, url = await listen(sink.app(), f"{LOOPBACK}:0", "events sink")
        try:
            yield f"{url.rstrip('/')}{PATH}", sink
        finally:
            await runner.cleanup()


def sender(url: str, tmp_path: Path, secret: str = SECRET, previous: list[str] | None = None) -> WebhookEvents:
    """The worker's webhook sender, configured at the receiver."""
    settings = WebhookSettings(url=url, secret=secret, previous_secrets=previous or [])
    return WebhookEvents(settings, tmp_path / "dead-letters.jsonl")


def lines(out: Path, day: date) -> list[dict]:
    path = day_path(out, day)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def written(out: Path) -> list[Path]:
    return sorted(out.glob("date=*/*.jsonl"))


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, content=body, headers=headers)


async def test_the_workers_sender_lands_each_event_once_in_its_days_file(tmp_path):
    out = tmp_path / "events"
    async with receiving(out) as (url, _):
        hooks = sender(url, tmp_path)
        await hooks.publish([event(1), event(2), event(3, TUESDAY)])
        # A retried batch sends them again, with one more: only the new one is written.
        await hooks.publish([event(1), event(2), event(3, TUESDAY), event(4, TUESDAY)])

    monday, tuesday = lines(out, MONDAY.date()), lines(out, TUESDAY.date())
    assert [e["seq"] for e in monday] == [1, 2] and [e["seq"] for e in tuesday] == [3, 4]
    assert [p.relative_to(out).as_posix() for p in written(out)] == [
        "date=2026-11-23/events.jsonl",
        "date=2026-11-24/events.jsonl",
    ]
    # Written as the sender's WebhookEvent, time in UTC: the same object the events file holds.
    assert monday[0] == event(1).model_dump(mode="json") | {"at": "2026-11-23T23:58:00Z"}
    assert not (tmp_path / "dead-letters.jsonl").exists()
    # Customer data: the folders and files are their owner's alone.
    for folder in [out, *(p.parent for p in written(out))]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in written(out):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def test_a_duplicate_is_answered_200_and_says_so(tmp_path):
    async with receiving(tmp_path / "events") as (url, _):
        body, headers = sender(url, tmp_path).request(event(1), time.time())
        first, again = await post(url, body, headers), await post(url, body, headers)
    assert (first.status_code, first.json()) == (200, {"id": event(1).id, "day": "2026-11-23", "duplicate": False})
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert len(lines(tmp_path / "events", MONDAY.date())) == 1


async def test_copies_sent_at_once_are_written_once(tmp_path):
    out = tmp_path / "events"
    async with receiving(out) as (url, _):
        hooks = sender(url, tmp_path)
        requests = [hooks.request(event(seq % 10, MONDAY if seq % 2 else TUESDAY), time.time()) for seq in range(60)]
        async with httpx.AsyncClient(timeout=10) as client:
            answers = await asyncio.gather(*(client.post(url, content=b, headers=h) for b, h in requests))
    assert {a.status_code for a in answers} == {200}
    assert sum(not a.json()["duplicate"] for a in answers) == 10
    ids = [e["id"] for day in (MONDAY, TUESDAY) for e in lines(out, day.date())]
    assert len(ids) == len(set(ids)) == 10


async def test_any_configured_secret_verifies_so_a_secret_can_rotate(tmp_path):
    out = tmp_path / "events"
    # The worker signs with the new secret and the old one; the receiver still knows the old one only.
    async with receiving(out, [SECRET]) as (url, _):
        await sender(url, tmp_path, secret=NEW_SECRET, previous=[SECRET]).publish([event(1)])
    # The receiver moved to the new secret, keeping the old one; a worker not yet moved still gets through.
    async with receiving(out, [NEW_SECRET, SECRET]) as (url, _):
        await sender(url, tmp_path, secret=SECRET).publish([event(2)])
        await sender(url, tmp_path, secret=NEW_SECRET).publish([event(3)])
    assert [e["seq"] for e in lines(out, MONDAY.date())] == [1, 2, 3]


async def test_a_bad_signature_is_refused_401_and_nothing_is_written(tmp_path):
    out = tmp_path / "events"
    async with receiving(out) as (url, _):
        hooks = sender(url, tmp_path, secret=WRONG_SECRET)
        with pytest.raises(ApplicationError) as refused:
            await hooks.publish([event(1)])
        # The sender keeps what a receiver refuses for good: nothing is lost.
        assert refused.value.type == ERR_DELIVERY_REJECTED
        assert "HTTP 401" in hooks.dead_letters.read()[0]["error"]

        body, headers = sender(url, tmp_path).request(event(2), time.time())
        tampered = await post(url, body.replace(b"note 2", b"note X"), headers)
        unsigned = await post(url, body, {"Content-Type": "application/json"})
        legacy_only = await post(url, body, {k: v for k, v in headers.items() if not k.startswith("webhook-")})
    assert (tampered.status_code, tampered.json()) == (401, {"error": "signature does not match the body"})
    assert unsigned.status_code == 401 and "webhook-id" in unsigned.json()["error"]
    assert legacy_only.status_code == 401 and "Standard Webhooks" in legacy_only.json()["error"]
    assert written(out) == []


async def test_a_stale_timestamp_is_refused_as_a_replay(tmp_path):
    async with receiving(tmp_path / "events") as (url, _):
        hooks = sender(url, tmp_path)
        old = await post(url, *hooks.request(event(1), time.time() - 600))
        ahead = await post(url, *hooks.request(event(2), time.time() + 600))
    for answer in (old, ahead):
        assert answer.status_code == 401 and "refused as stale" in answer.json()["error"]
    assert written(tmp_path / "events") == []


async def test_an_oversized_body_is_refused_413(tmp_path):
    async with receiving(tmp_path / "events") as (url, _):
        big = event(1).model_copy(update={"detail": {"text": "x" * MAX_BODY}})
        answer = await post(url, *sender(url, tmp_path).request(big, time.time()))
    assert answer.status_code == 413 and "error" in answer.json()
    assert written(tmp_path / "events") == []


async def test_a_body_that_does_not_arrive_in_time_is_refused_408(tmp_path):
    async with receiving(tmp_path / "events", read_timeout=0.5) as (url, _):
        host_port = url.removeprefix("http://").split("/")[0]
        host, port = host_port.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f'POST {PATH} HTTP/1.1\r\nHost: {host_port}\r\nContent-Length: 100\r\n\r\n{{"id": '.encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)  # the rest of the body never comes
        writer.close()
    assert status.startswith(b"HTTP/1.1 408")
    assert written(tmp_path / "events") == []


GOOD = event(1).model_dump(mode="json")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "body: not JSON"),
        (b"[]", "must be an object {id, type, case_id, seq, at, actor, tier, status"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "tier"}).encode(), "tier: is required"),
        (json.dumps(GOOD | {"tier": "boss"}).encode(), "tier: "),
        (json.dumps(GOOD | {"seq": "first"}).encode(), "seq: "),
        (json.dumps(GOOD | {"seq": 2**64}).encode(), "seq: "),
        (json.dumps(GOOD | {"at": "2026-11-23T09:00:00"}).encode(), "at: must carry its offset from UTC"),
        (json.dumps(GOOD | {"at": "yesterday"}).encode(), "at: "),
        (json.dumps(GOOD | {"at": "0001-01-01T00:00:00+14:00"}).encode(), "at: is out of range once taken to UTC"),
        (json.dumps(GOOD | {"id": "x" * 401}).encode(), "id: "),
        (json.dumps(GOOD | {"detail": []}).encode(), "detail: "),
    ],
    ids=[
        "not-json",
        "array",
        "missing",
        "bad-enum",
        "bad-int",
        "huge-int",
        "naive-time",
        "bad-time",
        "before-year-1-in-utc",
        "long-id",
        "detail",
    ],
)
async def test_a_body_that_is_not_an_event_is_refused_400_naming_the_field(tmp_path, body, named):
    async with receiving(tmp_path / "events") as (url, _):
        headers = {"Content-Type": "application/json", **signed_headers([SECRET], "msg-1", body, int(time.time()))}
        answer = await post(url, body, headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(("WebhookEvent: ", "body: ")) and named in answer.json()["error"]
    assert written(tmp_path / "events") == []


async def test_a_line_torn_by_a_crash_is_cut_off_and_the_next_event_starts_clean(tmp_path):
    out = tmp_path / "events"
    path = day_path(out, MONDAY.date())
    path.parent.mkdir(parents=True)
    whole = sender("http://crm.invalid/hooks", tmp_path).request(event(1), 0)[0].decode()
    path.write_text(whole + "\n" + whole[:40])  # the second write never finished (and was never answered)
    async with receiving(out) as (url, _):
        await sender(url, tmp_path).publish([event(1), event(2)])
    assert [e["seq"] for e in lines(out, MONDAY.date())] == [1, 2]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_memory_keeps_the_ids_of_the_last_days_touched_and_an_older_day_is_read_again(tmp_path):
    out = tmp_path / "events"
    days = [MONDAY + timedelta(days=n) for n in range(4)]
    async with receiving(out, days_kept=2) as (url, sink):
        hooks = sender(url, tmp_path)
        await hooks.publish([event(n, at) for n, at in enumerate(days)])
        assert sink.files.days_in_memory == [days[2].date(), days[3].date()]
        await hooks.publish([event(0, days[0]), event(9, days[0])])  # Monday again: its ids read from its file
        assert sink.files.days_in_memory == [days[3].date(), days[0].date()]
    assert [e["seq"] for e in lines(out, days[0].date())] == [0, 9]
    assert [len(lines(out, d.date())) for d in days] == [2, 1, 1, 1]


async def test_one_receiver_per_folder(tmp_path):
    async with receiving(tmp_path / "events"):
        with pytest.raises(ConfigError, match="another events receiver is writing there"):
            EventsSink(tmp_path / "events", [SECRET], tolerance=300)
    EventsSink(tmp_path / "events", [SECRET], tolerance=300).close()  # free again once the first has stopped


def test_the_secret_is_its_own_else_the_webhooks_and_a_weak_one_is_refused_by_name():
    hook = WebhookSettings(url="http://crm.invalid/hooks", secret=NEW_SECRET, previous_secrets=[SECRET])
    assert secrets_from(DeliverySettings(webhook=hook)) == [NEW_SECRET, SECRET]
    own = DeliverySettings(webhook=hook, events_sink={"secret": SECRET})
    assert secrets_from(own) == [SECRET]
    with pytest.raises(ConfigError, match="ESCALATIONS_EVENTS_SINK__SECRET is not set"):
        secrets_from(None)
    with pytest.raises(ConfigError, match="ESCALATIONS_EVENTS_SINK__SECRET is too short"):
        secrets_from(DeliverySettings(events_sink={"secret": "short"}))
    weak = DeliverySettings(webhook=WebhookSettings(url="http://crm.invalid/hooks", secret="whsec_c2hvcnQ="))
    with pytest.raises(ConfigError, match="ESCALATIONS_WEBHOOK__SECRET is too short"):
        secrets_from(weak)
    env = {"ESCALATIONS_EVENTS_SINK__SECRET": SECRET, "ESCALATIONS_EVENTS_SINK__PREVIOUS_SECRETS": f'["{NEW_SECRET}"]'}
    assert secrets_from(DeliverySettings.load(env)) == [SECRET, NEW_SECRET]


async def test_duckdb_reads_the_folder_back_with_its_day_partitions(tmp_path):
    out = tmp_path / "events"
    async with receiving(out) as (url, _):
        hooks = sender(url, tmp_path)
        batch = [event(n, MONDAY if n < 5 else TUESDAY, case_id=f"C-{1000 + n % 3}") for n in range(8)]
        await hooks.publish(batch)
        await hooks.publish(batch)
    rows = duckdb.sql(
        f"SELECT CAST(date AS VARCHAR), count(*), count(DISTINCT id) FROM "
        f"read_json('{out}/*/*.jsonl', format = 'newline_delimited', hive_partitioning = true) "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert rows == [("2026-11-23", 5, 5), ("2026-11-24", 3, 3)]
    # What `escalations report --events DIR` reads: the folder as the report's source.
    con = source.connect(out)
    assert con.execute("SELECT count(*), count(DISTINCT case_id) FROM events").fetchone() == (8, 3)
    assert con.execute(
        "SELECT count(*) FROM events WHERE date_trunc('day', \"at\") < DATE '2026-11-24'"
    ).fetchone() == (5,)


async def test_every_change_of_a_real_case_lands_once(env, settings, tmp_path):
    """A worker with its webhook at the receiver: a case's events from opening to resolving, each once."""
    out = tmp_path / "events"
    async with receiving(out) as (url, _):
        configured = settings.model_copy(
            update={"delivery": DeliverySettings(webhook=WebhookSettings(url=url, secret=SECRET))}
        )
        async with build_worker(env.client, configured):
            handle = await open_case(env.client, case_input("fast"), task_queue_name=settings.task_queue)
            owner = (await owned(handle)).owner.id
            await handle.execute_update("acknowledge", AcknowledgeInput(actor=owner), result_type=TimelineEntry)
            resolve = ResolveInput(actor=owner, resolution="Refunded", root_cause="billing_error", kb_article="KB-1")
            await handle.execute_update("resolve", resolve, result_type=TimelineEntry)

            async def landed() -> list[dict]:
                found = [e for path in written(out) for e in map(json.loads, path.read_text().splitlines())]
                mine = [e for e in found if e["case_id"] == handle.id.removeprefix("escalation-")]
                return mine if any(e["type"] == "escalation.resolved" for e in mine) else []

            events = await eventually(landed, timeout=30)
    types = [e["type"] for e in sorted(events, key=lambda e: e["seq"])]
    assert types[0] == "escalation.opened" and {"escalation.acknowledged", "escalation.resolved"} <= set(types)
    assert len({e["id"] for e in events}) == len(events)
    for e in events:
        assert day_path(out, datetime.fromisoformat(e["at"]).date()).exists()


@pytest.mark.server  # starts the CLI as a process
async def test_the_command_receives_until_sigterm_then_exits_0(tmp_path):
    out, port = tmp_path / "events", free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "escalations"),
        "events-sink",
        "--listen",
        f"{LOOPBACK}:{port}",
        "--out",
        str(out),
        env=clean | {"ESCALATIONS_EVENTS_SINK__SECRET": SECRET, "ESCALATIONS_DATA_DIR": str(tmp_path / "data")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        announced = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        url = f"http://{LOOPBACK}:{port}{PATH}"
        assert announced.startswith(f"events sink on {url}")
        await sender(url, tmp_path).publish([event(1), event(2, TUESDAY)])
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    assert [len(lines(out, d.date())) for d in (MONDAY, TUESDAY)] == [1, 1]
    logged = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    stored = [line for line in logged if line["event"] == "event_stored"]
    assert [line["id"] for line in stored] == [event(1).id, event(2).id]
    assert "note 1" not in err.decode()  # the event's detail is never logged


async def test_a_field_a_later_release_adds_is_kept_not_refused(tmp_path):
    body = json.dumps(GOOD | {"region": "eu-west"}).encode()
    async with receiving(tmp_path / "events") as (url, _):
        headers = {"Content-Type": "application/json", **signed_headers([SECRET], "msg-1", body, int(time.time()))}
        answer = await post(url, body, headers)
    assert answer.status_code == 200, answer.text
    (kept,) = lines(tmp_path / "events", MONDAY.date())
    assert kept["region"] == "eu-west" and kept["id"] == GOOD["id"]
