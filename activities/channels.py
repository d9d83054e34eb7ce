"""Picks the backend for each message and for events, from the delivery settings.

Email goes over SMTP, SMS and calls through the HTTP gateway, events to the webhook: each only when
configured, otherwise to the outbox / events file, so a development setup needs nothing external.
Team queues get the address the settings give their tier; a team without one reads the outbox.
"""

from __future__ import annotations

from pathlib import Path

from activities.delivery import EventSink, MessageDelivery, OutboxDelivery, OutboxEvents
from activities.email import SmtpEmail
from activities.gateway import HttpGateway
from activities.render import Templates
from activities.webhooks import WebhookEvents
from escalation.delivery.settings import DeliverySettings
from escalation.domain.models import ContactChannel
from escalation.domain.rules.step import Message


class ChannelDelivery:
    def __init__(
        self, backends: dict[ContactChannel, MessageDelivery], outbox: MessageDelivery, settings: DeliverySettings
    ) -> None:
        self.backends = backends
        self.outbox = outbox
        self.settings = settings

    def address(self, message: Message) -> Message:
        """A team recipient gets its tier's configured address (none: it stays as it is)."""
        to = message.to
        if to.kind == "team" and to.tier is not None and not to.email:
            team_email = self.settings.team_address(to.tier)
            if team_email:
                return message.model_copy(update={"to": to.model_copy(update={"email": team_email})})
        return message

    def backend(self, message: Message) -> MessageDelivery:
        if message.to.kind == "team" and not message.to.email:
            return self.outbox  # a team without an address reads its queue in the outbox
        return self.backends.get(message.channel, self.outbox)

    async def deliver(self, message: Message) -> str:
        message = self.address(message)
        return await self.backend(message).deliver(message)


def build_delivery(settings: DeliverySettings | None, outbox_path: Path) -> MessageDelivery:
    outbox = OutboxDelivery(outbox_path)
    if settings is None:
        return outbox
    templates = Templates(settings.templates_dir)
    backends: dict[ContactChannel, MessageDelivery] = {}
    if settings.smtp:
        backends[ContactChannel.EMAIL] = SmtpEmail(settings.smtp, templates)
    if settings.gateway:
        gateway = HttpGateway(settings.gateway, templates)
        backends[ContactChannel.SMS] = backends[ContactChannel.CALL] = gateway
    return ChannelDelivery(backends, outbox, settings)


def build_events(settings: DeliverySettings | None, events_path: Path) -> EventSink:
    if settings is not None and settings.webhook is not None:
        return WebhookEvents(settings.webhook, events_path.with_name("webhook-dead-letters.jsonl"))
    return OutboxEvents(events_path)
