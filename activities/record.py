"""Recording case events for other systems (CRM, data warehouse, reporting)."""

from __future__ import annotations

from pathlib import Path

import structlog
from temporalio import activity

from activities.delivery import EventSink, JsonLinesOutbox
from escalation.domain.models import CaseEvent

log = structlog.get_logger()


class RecordActivities:
    def __init__(self, sink: EventSink, dead_letters: Path) -> None:
        self.sink = sink
        self.dead_letters = JsonLinesOutbox(dead_letters, "id")

    @activity.defn(name="record_events")
    async def record_events(self, events: list[CaseEvent]) -> None:
        # A retry starts after the events an earlier attempt handed over (heartbeat details), so a slow
        # receiver cannot keep a long batch re-sending its first events until the attempt times out.
        details = activity.info().heartbeat_details
        start = int(details[0]) if details else 0
        await self.sink.publish(events[start:], progress=lambda done: activity.heartbeat(start + done))

    @activity.defn(name="dead_letter_events")
    async def dead_letter_events(self, events: list[CaseEvent]) -> None:
        """Events the receiver never took within the retry budget: kept on the worker's disk, keyed by
        event id, for ops to replay (receivers dedupe on the id)."""
        await self.dead_letters.append([e.model_dump(mode="json") for e in events])
        log.error(
            "events_dead_lettered",
            first=events[0].id,
            last=events[-1].id,
            count=len(events),
            file=self.dead_letters.path.name,
        )
