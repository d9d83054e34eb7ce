"""Recording case events for other systems (CRM, data warehouse, reporting)."""

from __future__ import annotations

from temporalio import activity

from activities.delivery import EventSink
from escalation.models import CaseEvent


class RecordActivities:
    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    @activity.defn(name="record_events")
    async def record_events(self, events: list[CaseEvent]) -> None:
        await self.sink.publish(events)
