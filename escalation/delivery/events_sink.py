"""The events receiver (`escalations events-sink`): lands the event webhook in day-partitioned files for reporting.

    POST /events   one WebhookEvent per request, as the worker sends them (activities/webhooks.py)
    webhook-id: <the event id>
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">   (one per secret while it rotates)

Each event is appended once, as one JSON line, to `<out>/date=YYYY-MM-DD/events.jsonl`, the UTC day of its `at`
(hive-style partitions: DuckDB, Spark or Athena read the folder as one table with a `date` column; `escalations
report --events <out>` reads it). The signature (any of the configured secrets, so one can rotate) and its
timestamp are checked before the body is read as an event. Answers, all JSON: 200 once the event is on disk,
flushed and fsynced (the sender retries until it gets a 2xx, so a crash loses nothing), or was there already
(`"duplicate": true`: a retried batch); 401 a bad or stale signature; 413 a body over MAX_BODY; 400 a body that is
not an event, naming the field; 408 a body that does not arrive within READ_TIMEOUT; 503 the disk refused the write
(nothing was kept: send it again). The sender keeps a 4xx event in its dead-letter file, so nothing is lost either.

Dedupe is exact: the ids of a day are read from its file the first time the day is touched, and kept for the
DAYS_KEPT days touched last (a day touched again later is read again), so memory holds at most DAYS_KEPT days of
ids. One process writes a folder (a lock file says so); writes are serialised by one lock, each fsynced before
its answer. A line torn by a crash (never answered 2xx) is cut off when its day is next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import structlog
from aiohttp import web
from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic_core import from_json

from escalation.config import ConfigError
from escalation.delivery.inbound import secret_problem
from escalation.delivery.settings import DeliverySettings, EventsSinkSettings
from escalation.delivery.signature import SignatureError, verify
from escalation.domain.events import WebhookEvent
from escalation.domain.refusal import describe
from escalation.files import append_private
from escalation.web import is_loopback, json_errors, listen, parse_address
from escalation.web import json_error as _error

log = structlog.get_logger()

PATH = "/events"
FILE_NAME = "events.jsonl"
LOCK_NAME = ".events-sink.lock"
# Far above any event the product sends (one command's text is at most 128 KiB as sent), far below what would hurt.
MAX_BODY = 1024 * 1024
MAX_SEQ = 2**63 - 1
MAX_ID = 400  # `<workflow id>/<opening>/<seq>`: a case id of 100 characters makes about 170
READ_TIMEOUT = 30.0  # seconds a body may take to arrive: a stalled sender does not hold a connection for ever
DAYS_KEPT = 3  # days whose ids stay in memory: today, yesterday (a day of retries) and one more
PRIVATE_DIR = 0o700
SECRET_SETTING = "ESCALATIONS_EVENTS_SINK__SECRET"
PREVIOUS_SECRETS_SETTING = "ESCALATIONS_EVENTS_SINK__PREVIOUS_SECRETS"
WEBHOOK_SECRET_SETTING = "ESCALATIONS_WEBHOOK__SECRET"
WEBHOOK_PREVIOUS_SETTING = "ESCALATIONS_WEBHOOK__PREVIOUS_SECRETS"
LISTEN_SETTING = "ESCALATIONS_EVENTS_SINK__LISTEN"


class ReceivedEvent(WebhookEvent):
    """An event as the receiver takes it: the webhook's body, its id bounded and its time an instant (kept in UTC)."""

    # A field a later release adds to events is kept, not refused: a receiver upgraded after the workers must not
    # turn their new events away (they would only pile up in the workers' dead letters). The body bounds its size.
    model_config = ConfigDict(title="WebhookEvent", extra="allow")

    id: Annotated[str, Field(min_length=1, max_length=MAX_ID)]
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]  # a 64-bit integer, as readers (DuckDB's BIGINT) take it

    @field_validator("at")
    @classmethod
    def _an_instant(cls, at: datetime) -> datetime:
        # Without an offset the UTC day (its partition) would be a guess.
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("must carry its offset from UTC, e.g. 2026-11-23T09:03:00Z")
        try:
            return at.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00: before year 1 in UTC, which no day file can hold
            raise ValueError("is out of range once taken to UTC") from None


def day_path(out: Path, day: date) -> Path:
    """The file of one UTC day's events under `out` (hive-style: `date=YYYY-MM-DD/events.jsonl`)."""
    return Path(out) / f"date={day.isoformat()}" / FILE_NAME


def _private_dir(path: Path) -> bool:
    """`path` made a folder readable by its owner alone (0700); True when it was created now."""
    try:
        path.mkdir(mode=PRIVATE_DIR)
        created = True
    except FileExistsError:
        created = False
    if os.name != "nt" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(PRIVATE_DIR)  # customer data: a folder others could list is closed first
    return created


def _fsync_dir(path: Path) -> None:
    """A new entry in `path` (a file, a folder) survives a crash once the folder itself is synced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DayFiles:
    """The day files under one folder: appends each event id once, durably. Blocking: call it from a thread,
    one call at a time. Holds the folder's lock file while open, so a second receiver cannot write there too."""

    def __init__(self, out: Path, *, days_kept: int = DAYS_KEPT) -> None:
        if days_kept < 1:
            raise ValueError("days_kept: at least 1")
        self.out = Path(out)
        self.days_kept = days_kept
        self._ids: OrderedDict[date, set[str]] = OrderedDict()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if _private_dir(self.out):
            _fsync_dir(self.out.parent)
        fd = os.open(self.out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"{self.out}: another events receiver is writing there") from None
        self._lock_fd: int | None = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    @property
    def days_in_memory(self) -> list[date]:
        return list(self._ids)

    def append(self, event: WebhookEvent) -> bool:
        """Append `event` to its day's file unless its id is there already; True when written. Returns once the
        line is on disk (fsynced, and its file and folder entries too when new). Raises OSError when the disk
        refuses; the file is then as it was before."""
        day = event.at.astimezone(UTC).date()
        ids = self._ids_of(day)
        if event.id in ids:
            return False
        path = day_path(self.out, day)
        new_dir = _private_dir(path.parent)
        new_file = not path.exists()
        line = memoryview(event.model_dump_json().encode() + b"\n")
        with append_private(path) as f:  # 0600; written through its descriptor, so nothing waits in a buffer
            fd = f.fileno()
            before = os.fstat(fd).st_size
            try:
                while line:
                    line = line[os.write(fd, line) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # no torn line left behind for the next event to follow
                    os.ftruncate(fd, before)
                raise
        if new_file:
            _fsync_dir(path.parent)
        if new_dir:
            _fsync_dir(self.out)
        ids.add(event.id)
        return True

    def _ids_of(self, day: date) -> set[str]:
        ids = self._ids.get(day)
        if ids is not None:
            self._ids.move_to_end(day)
            return ids
        ids = self._load(day)
        self._ids[day] = ids
        while len(self._ids) > self.days_kept:
            self._ids.popitem(last=False)
        return ids

    def _load(self, day: date) -> set[str]:
        """The ids in a day's file. A last line without its newline was torn by a crash before it was answered
        (the sender sends it again): it is cut off, so the next line starts clean."""
        path = day_path(self.out, day)
        ids: set[str] = set()
        try:
            f = path.open("r+b")
        except FileNotFoundError:
            return ids
        with f:
            whole = unreadable = 0
            for line in f:
                if not line.endswith(b"\n"):
                    break
                whole += len(line)
                try:
                    ids.add(from_json(line)["id"])  # pydantic's parser: a few times faster than json's
                except (ValueError, KeyError, TypeError):
                    unreadable += 1
            size = f.seek(0, os.SEEK_END)
            if whole < size:
                f.truncate(whole)
                f.flush()
                os.fsync(f.fileno())
                log.warning("events_sink_torn_line_dropped", day=day.isoformat(), bytes=size - whole)
            if unreadable:
                log.warning("events_sink_unreadable_lines", day=day.isoformat(), lines=unreadable)
        return ids


def _refusal(err: ValidationError) -> str:
    """What is wrong with a body that is not an event, naming the field (never echoing a value)."""
    for e in err.errors(include_url=False):
        if e["type"] == "json_invalid":
            return f"body: not JSON ({e['ctx'].get('error', 'invalid') if e.get('ctx') else 'invalid'})"
    return describe(err, ReceivedEvent)


# Every answer is JSON, a failure of the receiver too; a body over MAX_BODY is logged as refused.
_json_errors = json_errors(
    "events_sink_failed",
    "the receiver failed; the event may not have been kept: send it again",
    logged=frozenset({413}),
)


class EventsSink:
    """The receiver: verifies each request against `secrets` (the current one first, then earlier ones still
    accepted while it rotates), then appends its event to the day files under `out`. A context manager: it holds
    the folder's lock while open."""

    def __init__(
        self,
        out: Path,
        secrets: Sequence[str],
        *,
        tolerance: float,
        clock: Callable[[], float] = time.time,
        days_kept: int = DAYS_KEPT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        if not secrets:
            raise ValueError("the receiver needs at least one secret to verify events with")
        self.secrets = list(secrets)
        self.tolerance = tolerance
        self.clock = clock
        self.read_timeout = read_timeout
        self.files = DayFiles(out, days_kept=days_kept)
        # One write at a time: each checks the ids and appends under it, so two copies of an event sent at once
        # are written once.
        self._lock = asyncio.Lock()

    @property
    def out(self) -> Path:
        return self.files.out

    def close(self) -> None:
        self.files.close()

    def __enter__(self) -> EventsSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    async def receive(self, request: web.Request) -> web.Response:
        try:
            body = await asyncio.wait_for(request.read(), self.read_timeout)
        except TimeoutError:
            log.warning("events_sink_refused", status=408, remote=request.remote)
            # Answered and closed at once: aiohttp would otherwise wait for the rest of the body (10 s).
            answer = _error(408, f"the body did not arrive within {self.read_timeout:g} s", Connection="close")
            await answer.prepare(request)
            await answer.write_eof()
            if request.protocol is not None:
                request.protocol.force_close()
            return answer
        try:
            signed = verify(self.secrets, request.headers, body, now=self.clock(), tolerance=self.tolerance)
            if signed.legacy:
                raise SignatureError(
                    "sign with the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature); "
                    "the legacy Escalation-Signature alone is not taken here"
                )
        except SignatureError as err:
            log.warning("events_sink_refused", status=401, reason=str(err), remote=request.remote)
            return _error(401, str(err))
        try:
            event = ReceivedEvent.model_validate_json(body)
        except ValidationError as err:
            reason = _refusal(err)
            log.warning("events_sink_refused", status=400, reason=reason, remote=request.remote)
            return _error(400, reason)
        fields: dict[str, Any] = {"id": event.id, "type": event.type, "case_id": event.case_id}
        try:
            async with self._lock:
                written = await asyncio.to_thread(self.files.append, event)
        except OSError as err:
            log.error("events_sink_write_failed", **fields, error=err.strerror or type(err).__name__)
            return _error(503, f"the event could not be written ({err.strerror or 'disk error'}); send it again")
        day = event.at.date().isoformat()
        log.info("event_stored" if written else "event_duplicate", **fields, day=day)
        return web.json_response({"id": event.id, "day": day, "duplicate": not written})

    def app(self) -> web.Application:
        async def health(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application(client_max_size=MAX_BODY, middlewares=[_json_errors])
        app.router.add_post(PATH, self.receive)
        app.router.add_get("/healthz", health)
        return app


def secrets_from(delivery: DeliverySettings | None) -> list[str]:
    """The secrets the receiver verifies with: its own (ESCALATIONS_EVENTS_SINK__SECRET and previous ones), else
    the webhook's, those the worker signs events with. ConfigError naming the setting when none is usable."""
    sink = delivery.events_sink if delivery is not None else EventsSinkSettings()
    webhook = delivery.webhook if delivery is not None else None
    if sink.secret is not None:
        given = [(sink.secret, SECRET_SETTING)] + [(s, PREVIOUS_SECRETS_SETTING) for s in sink.previous_secrets]
    elif webhook is not None:
        given = [(webhook.secret, WEBHOOK_SECRET_SETTING)]
        given += [(s, WEBHOOK_PREVIOUS_SETTING) for s in webhook.previous_secrets]
    else:
        raise ConfigError(
            f"{SECRET_SETTING} is not set (nor {WEBHOOK_SECRET_SETTING}, the secret the worker signs events with): "
            "the receiver verifies every event with it"
        )
    secrets = [s.get_secret_value() for s, _ in given]
    problems = (secret_problem(value, setting) for value, (_, setting) in zip(secrets, given, strict=True))
    if problem := next((p for p in problems if p is not None), None):
        raise ConfigError(problem)
    return secrets


async def serve(
    sink: EventsSink, address: str, *, announce: Callable[[str], None], stop: asyncio.Event | None = None
) -> None:
    """Serve until `stop` is set (or the task is cancelled), then stop taking requests and let those under way
    finish: an event received is written and answered. A body still arriving is no longer read (aiohttp stops
    reading at shutdown): its request ends unanswered within READ_TIMEOUT, and the sender sends it again."""
    host, _ = parse_address(address, LISTEN_SETTING)
    runner, url = await listen(sink.app(), address, "events sink")
    if not is_loopback(host):
        # Each request is signed, so others cannot write; but the events carry customer data.
        log.warning("events_sink_reachable", address=address, advice="serve it behind TLS (a reverse proxy)")
    log.info("events_sink_started", url=url, out=str(sink.out))
    announce(f"events sink on {url.rstrip('/')}{PATH}, writing {sink.out}/date=YYYY-MM-DD/{FILE_NAME}")
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        log.info("events_sink_stopped")
