"""Where messages and events go: the seams (MessageDelivery, EventSink), the failure contract every
backend follows, and the default backend, an outbox of JSON lines a person can read. The real
backends (SMTP, the SMS/voice gateway, webhooks) live beside it; activities/channels.py picks them.

Delivery is at least once: a retried activity may hand the same message over twice, so every
message and event carries a stable key and the outbox writes each key once.

Failures: `unavailable` (down, timed out, 5xx, SMTP 4xx) is retried by the activity with backoff;
`rejected` (HTTP 4xx, SMTP 5xx, no address) is not, and the workflow falls back to the next route.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from temporalio.exceptions import ApplicationError

from escalation.constants import ERR_DELIVERY_REJECTED, ERR_DELIVERY_UNAVAILABLE
from escalation.domain.models import CaseEvent, ContactChannel
from escalation.domain.rules.step import Message
from escalation.files import append_private


def rejected(what: str, reason: str) -> ApplicationError:
    """A permanent refusal: retrying cannot help, so the activity fails at once."""
    return ApplicationError(f"{what}: {reason}", type=ERR_DELIVERY_REJECTED, non_retryable=True)


def unavailable(what: str, reason: str) -> ApplicationError:
    """A passing failure: the activity retries with backoff."""
    return ApplicationError(f"{what}: {reason}", type=ERR_DELIVERY_UNAVAILABLE)


def address_of(message: Message) -> tuple[str, str]:
    """(the recipient's address on the message's channel, what is being sent, for errors). A recipient
    without an address there is a permanent refusal: the fallback route may have one."""
    to = message.to
    what = f"{message.channel.value} to {to.id}"
    email = message.channel == ContactChannel.EMAIL
    address = to.email if email else to.phone
    if not address:
        raise rejected(what, f"{to.id} has no {'email address' if email else 'phone number'}")
    return address, what


class MessageDelivery(Protocol):
    async def deliver(self, message: Message) -> str:
        """Hand the message over; return a receipt. Raise to have the activity retried."""
        ...


# Told how many events of a batch have been handed over so far, so a retry can start after them.
Progress = Callable[[int], None]


class EventSink(Protocol):
    async def publish(self, events: list[CaseEvent], progress: Progress | None = None) -> None: ...


class JsonLinesOutbox:
    """Appends one JSON object per line, skipping keys it has already written."""

    def __init__(self, path: Path, key_field: str) -> None:
        self.path = Path(path)
        self.key_field = key_field
        self._keys: set[str] | None = None
        self._lock = asyncio.Lock()

    def _load_keys(self) -> set[str]:
        keys: set[str] = set()
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        keys.add(json.loads(line)[self.key_field])
                    except (ValueError, KeyError):
                        continue  # a torn last line from a crash; the retry writes it again
        return keys

    def _append(self, records: list[dict]) -> int:
        if self._keys is None:
            self._keys = self._load_keys()
        fresh = [r for r in records if r[self.key_field] not in self._keys]
        if fresh:
            with append_private(self.path) as f:  # customer data: readable by the worker's user alone
                f.write("".join(json.dumps(r, default=str) + "\n" for r in fresh))
                f.flush()
            self._keys.update(r[self.key_field] for r in fresh)
        return len(fresh)

    async def append(self, records: list[dict]) -> int:
        async with self._lock:
            return await asyncio.to_thread(self._append, records)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


class OutboxDelivery:
    def __init__(self, path: Path) -> None:
        self.outbox = JsonLinesOutbox(path, "key")

    async def deliver(self, message: Message) -> str:
        await self.outbox.append([message.model_dump(mode="json")])
        return f"outbox:{message.key}"


class OutboxEvents:
    def __init__(self, path: Path) -> None:
        self.outbox = JsonLinesOutbox(path, "id")

    async def publish(self, events: list[CaseEvent], progress: Progress | None = None) -> None:
        await self.outbox.append([e.model_dump(mode="json") for e in events])
        if progress is not None:
            progress(len(events))
