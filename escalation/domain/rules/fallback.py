"""Where a message goes when its channel failed for good: the customer on the next channel they can be
reached on (in their order of preference), an owner or the escalation contact through the team queue.
The team queue is the last resort: when it fails too, the timeline says so and the case goes on."""

from __future__ import annotations

from typing import NamedTuple

from escalation.domain.models import ContactChannel, TimelineEntry
from escalation.domain.rules.step import Message, Recipient, Step


class Route(NamedTuple):
    to: Recipient
    channel: ContactChannel


def next_route(step: Step, message: Message) -> Route | None:
    tried = [*message.attempted, message.channel]
    to = message.to
    if to.kind == "customer":
        channel = next((c for c in step.state.input.customer.contact_channels() if c not in tried), None)
        return Route(to, channel) if channel else None
    if to.kind in ("owner", "escalation_contact"):
        return Route(step.team(), ContactChannel.EMAIL)
    return None


def resend(step: Step, entry: TimelineEntry, message: Message, route: Route, error: str) -> None:
    """Send `message` again by `route`, keyed on the failure's timeline entry (so stable as well)."""
    subject, body = message.subject, message.body
    if route.to.id != message.to.id:  # the team hears who could not be reached, and why
        subject = f"[{message.to.name} unreachable] {subject}"
        body = (
            f"{message.to.name} could not be reached by {message.channel.value} ({error[:200]}). "
            f"Please make sure someone picks this up.\n\n{body}"
        )
    step.send(
        entry, message.kind, route.to, route.channel, subject, body, attempted=[*message.attempted, message.channel]
    )
