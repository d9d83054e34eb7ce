"""Messages to people: owners, team queues, the escalation contact and customers."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.delivery import MessageDelivery
from escalation import metrics
from escalation.domain.rules.step import Message

log = structlog.get_logger()


class NotifyActivities:
    def __init__(self, delivery: MessageDelivery) -> None:
        self.delivery = delivery

    @activity.defn(name="send_message")
    async def send_message(self, message: Message) -> str:
        labels = {"channel": message.channel.value, "kind": message.kind.value}
        meter = activity.metric_meter()
        try:
            receipt = await self.delivery.deliver(message)
        except Exception:
            meter.create_counter(metrics.MESSAGE_ATTEMPTS_FAILED).add(1, labels)
            raise
        meter.create_counter(metrics.MESSAGES_SENT).add(1, labels)
        log.info(
            "message_sent",
            key=message.key,
            kind=message.kind.value,
            to=message.to.id,
            channel=message.channel.value,
            attempt=activity.info().attempt,
        )
        return receipt
