"""The events other systems receive (webhooks, the events file): one per timeline entry of a case.

An event's type is `escalation.<timeline kind>`; its `id` (`<workflow id>/<opening>/<seq>`) is the same
on every retry, so a receiver dedupes on it. The catalogue below is the list the README documents.
"""

from __future__ import annotations

from pydantic import ConfigDict

from escalation.domain.models import CaseEvent

EVENT_PREFIX = "escalation."

# Event type -> what happened.
EVENT_TYPES: dict[str, str] = {
    "escalation.opened": "a case was opened at its first tier (or the threat tier)",
    "escalation.assigned": "routing gave the current tier an owner",
    "escalation.unassigned": "nobody is available at the current tier; the team queue was told",
    "escalation.acknowledged": "the owner picked the case up; the acknowledge clock stopped",
    "escalation.escalated": "the case moved up the ladder (by hand, on an SLA breach, or with nobody free: no_capacity)",
    "escalation.de_escalated": "the case moved down the ladder",
    "escalation.breached": "an SLA target (acknowledge or resolve) was missed, or a callback's window (clock callback)",
    "escalation.note": "someone added a note (and maybe the customer's sentiment)",
    "escalation.offer_proposed": "compensation or goodwill was offered, within authority",
    "escalation.offer_accepted": "the customer accepted an offer",
    "escalation.offer_declined": "the customer declined an offer",
    "escalation.waiting_on_customer": "the resolve clock paused while waiting on the customer",
    "escalation.customer_replied": "the customer came back; the resolve clock runs again",
    "escalation.wait_expired": "the wait on the customer reached its limit",
    "escalation.resolved": "a fix was given; follow-up check-ins are planned",
    "escalation.followup_sent": "a follow-up check-in went to the customer",
    "escalation.followup_answered": "the customer answered a check-in (fixed / not fixed)",
    "escalation.reopened": "a 'not fixed' answer reopened the case at the tier that resolved it",
    "escalation.closed": "the case ended (resolved, customer_lost or legal)",
    "escalation.delivery_failed": "a message could not be delivered; the fallback route is named",
    "escalation.assignment_offered": "the case was offered to a rep, who must accept it in time (`rep`, `load`, `accept_by`)",
    "escalation.assignment_accepted": "the rep took the case offered to them (also by acknowledging it)",
    "escalation.assignment_expired": "the offer was not accepted in time; the next qualified rep is asked",
    "escalation.reassigned": "the case was taken from its owner (or offered rep) and routed again (`from_owner`, `reason`)",
    "escalation.callback_scheduled": "a callback was booked (`callback_id`, `owner`, `at`, `customer_time`, `owner_time`)",
    "escalation.callback_rescheduled": "a callback was moved (and maybe handed to another rep)",
    "escalation.callback_reminder": "the caller was reminded of a coming callback",
    "escalation.callback_due": "a callback (or its next attempt) is due now",
    "escalation.callback_outcome": "the caller recorded how it went (`outcome`, `attempt`, `next_attempt_at` on a retry)",
    "escalation.callback_reassigned": "a callback whose window passed went to the next qualified rep",
    "escalation.callback_missed": "nobody could take a missed callback; the customer was told",
    "escalation.callback_cancelled": "a callback was cancelled",
    "escalation.callbacks_cancelled": "resolving or closing the case called off its pending callbacks",
    "escalation.forgotten": "the customer's details and the case's free text were erased (right to erasure; `reference`)",
}


EXAMPLE = {
    "id": "escalation-C-1001/01a2087c-5b1e-7d3a-9c4f-2e8b6a1d0f37/4",
    "type": "escalation.acknowledged",
    "case_id": "C-1001",
    "seq": 4,
    "at": "2026-11-23T09:03:00Z",
    "actor": "ana",
    "tier": "agent",
    "status": "open",
    "owner": "ana",
    "detail": {"note": "calling the customer back"},
}


def _schema(schema: dict) -> None:
    schema["properties"]["type"]["examples"] = list(EVENT_TYPES)
    schema["examples"] = [EXAMPLE]


class WebhookEvent(CaseEvent):
    """Body of every webhook request: one change of one case. Dedupe on `id`; order a case's events by `seq`."""

    model_config = ConfigDict(json_schema_extra=_schema)

    @classmethod
    def of(cls, event: CaseEvent) -> WebhookEvent:
        return cls.model_validate(event.model_dump())
