"""Messages to people: owners, team queues, the escalation contact and customers."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.delivery import MessageDelivery
from escalation.domain.rules.step import Message

log = structlog.get_logger()


class NotifyActivities:
    def __init__(self, delivery: MessageDelivery) -> None:
        self.delivery = delivery

    @activity.defn(name="send_message")
    async def send_message(self, message: Message) -> str:
        receipt = await self.delivery.deliver(message)
        log.info(
            "message_sent",
            key=message.key,
            kind=message.kind.value,
            to=message.to.id,
            channel=message.channel.value,
            attempt=activity.info().attempt,
        )
        return receipt
