"""Case events POSTed to another system (CRM, data warehouse) as signed JSON, one request per event.

Each request carries the event id as Idempotency-Key and as webhook-id, signed in the Standard Webhooks format
over id, timestamp and body (escalation/delivery/signature.py): one signature per secret while a secret
rotates, and the legacy Escalation-Signature header too, this release only. Events of a batch go in order;
a retried batch sends them again and the receiver drops ids it has seen. An event the receiver refuses for
good (4xx) is kept in a dead-letter file, so it is never lost, and the activity fails without retrying.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import structlog
from temporalio.exceptions import ApplicationError

from activities.delivery import JsonLinesOutbox, Progress, rejected
from activities.http import post
from escalation.constants import ERR_DELIVERY_REJECTED, EVENT_TYPE_HEADER, IDEMPOTENCY_HEADER
from escalation.delivery.settings import WebhookSettings
from escalation.delivery.signature import signed_headers
from escalation.domain.events import WebhookEvent
from escalation.domain.models import CaseEvent

log = structlog.get_logger()


class WebhookEvents:
    def __init__(self, settings: WebhookSettings, dead_letters: Path) -> None:
        self.settings = settings
        self.dead_letters = JsonLinesOutbox(dead_letters, "id")
        # The current secret signs first; previous ones still sign while receivers move to the new one.
        self.secrets = [s.get_secret_value() for s in (settings.secret, *settings.previous_secrets)]

    def request(self, event: CaseEvent, now: float) -> tuple[bytes, dict[str, str]]:
        body = WebhookEvent.of(event).model_dump_json().encode()
        return body, {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: event.id,
            EVENT_TYPE_HEADER: event.type,
            **signed_headers(self.secrets, event.id, body, int(now)),
        }

    async def publish(self, events: list[CaseEvent], progress: Progress | None = None) -> None:
        refused: list[str] = []
        async with httpx.AsyncClient(timeout=self.settings.timeout) as client:
            for done, event in enumerate(events, start=1):
                body, headers = self.request(event, time.time())
                try:
                    await post(client, str(self.settings.url), content=body, headers=headers, what=f"event {event.id}")
                except ApplicationError as err:
                    if err.type != ERR_DELIVERY_REJECTED:
                        raise  # retried: the whole batch goes again, receivers drop what they have
                    await self.dead_letters.append([{**event.model_dump(mode="json"), "error": err.message}])
                    log.error("event_refused", id=event.id, type=event.type, error=err.message)
                    refused.append(event.id)
                if progress is not None:
                    progress(done)
        if refused:
            raise rejected(
                f"{len(refused)} event(s) refused", f"kept in {self.dead_letters.path.name}: " + ", ".join(refused)
            )
