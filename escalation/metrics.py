"""The product's metrics: their names, and what each new timeline entry counts.

Activities record theirs (messages sent, routing) through `activity.metric_meter()`; the workflow its own through `workflow.metric_meter()` (nothing is recorded while it replays), from one
place: every new timeline entry goes through `measures`. Labels are tiers, clocks, kinds, outcomes, channels
and reasons from fixed lists: never a case id, a person or free text, so a label never has unbounded values.
The worker serves them with the SDK's own (`temporal_*`) on ESCALATIONS_METRICS_ADDRESS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from escalation.domain.models import CaseState, TimelineEntry

CASES_OPENED = "escalations_cases_opened"
ESCALATIONS = "escalations_escalated"
SLA_BREACHES = "escalations_sla_breaches"
TIME_TO_ACKNOWLEDGE = "escalations_time_to_acknowledge_seconds"
TIME_TO_RESOLVE = "escalations_time_to_resolve_seconds"
OFFERS = "escalations_offers"
OFFER_AMOUNT = "escalations_offer_amount"
CALLBACKS = "escalations_callbacks"
FOLLOWUPS = "escalations_followups"
REOPENS = "escalations_reopens"
MESSAGES_FAILED = "escalations_messages_failed"
MESSAGES_SENT = "escalations_messages_sent"
MESSAGE_ATTEMPTS_FAILED = "escalations_message_attempts_failed"
ROUTING_DECISIONS = "escalations_routing_decisions"
ROUTING_LATENCY = "escalations_routing_latency_seconds"

# name -> (instrument, what it counts): the README's table and the check of the dashboard and alerts.
METRICS: dict[str, tuple[Literal["counter", "histogram"], str]] = {
    CASES_OPENED: ("counter", "cases opened, by first tier, severity and channel"),
    ESCALATIONS: ("counter", "moves up the ladder, by from_tier, to_tier and reason"),
    SLA_BREACHES: ("counter", "SLA targets missed, by tier and clock (acknowledge, resolve, callback)"),
    TIME_TO_ACKNOWLEDGE: ("histogram", "from a tier's acknowledge clock starting to the acknowledgement, by tier"),
    TIME_TO_RESOLVE: ("histogram", "from opening to resolving, by the resolving tier"),
    OFFERS: ("counter", "offers, by tier, kind and outcome (proposed, accepted, declined)"),
    OFFER_AMOUNT: ("histogram", "the amounts of those offers, by tier, kind and outcome"),
    CALLBACKS: ("counter", "callback outcomes recorded, by outcome"),
    FOLLOWUPS: ("counter", "check-in answers, by answer (fixed, not_fixed)"),
    REOPENS: ("counter", "cases reopened by a 'not fixed' answer, by tier"),
    MESSAGES_FAILED: ("counter", "messages given up on (refused for good or still failing), by channel and kind"),
    MESSAGES_SENT: ("counter", "messages handed over, by channel and kind (activity)"),
    MESSAGE_ATTEMPTS_FAILED: ("counter", "attempts to send a message that failed (retried), by channel and kind"),
    ROUTING_DECISIONS: ("counter", "routing answers, by tier and outcome (owner, nobody)"),
    ROUTING_LATENCY: ("histogram", "how long a routing answer took, by tier"),
}


# Histogram buckets: seconds for the times (a minute to two days), currency units for the amounts.
BUCKETS: dict[str, list[float]] = {
    TIME_TO_ACKNOWLEDGE: [60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400],
    TIME_TO_RESOLVE: [300, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400],
    ROUTING_LATENCY: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    OFFER_AMOUNT: [5, 10, 25, 50, 100, 250, 500, 1000, 5000],
}


@dataclass(frozen=True)
class Measure:
    """One value for one metric: added to a counter or recorded in a histogram."""

    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def _offer(state: CaseState, entry: TimelineEntry, outcome: str) -> list[Measure]:
    offer = next((o for o in state.offers if o.id == entry.detail.get("offer_id")), None)
    if offer is None:
        return []
    labels = {"tier": offer.tier.value, "kind": offer.kind.value, "outcome": outcome}
    return [Measure(OFFERS, 1, labels), Measure(OFFER_AMOUNT, float(offer.amount), labels)]


def measures(entry: TimelineEntry, state: CaseState) -> list[Measure]:
    """What a new timeline entry counts, read from the entry and the state it was recorded in."""
    d, tier = entry.detail, entry.tier.value
    match entry.kind:
        case "opened":
            return [
                Measure(
                    CASES_OPENED,
                    1,
                    {"tier": tier, "severity": str(d.get("severity")), "channel": str(d.get("channel"))},
                )
            ]
        case "escalated":
            labels = {
                "from_tier": str(d.get("from_tier")),
                "to_tier": str(d.get("to_tier")),
                "reason": str(d.get("reason")),
            }
            return [Measure(ESCALATIONS, 1, labels)]
        case "breached":
            return [Measure(SLA_BREACHES, 1, {"tier": tier, "clock": str(d.get("clock"))})]
        case "acknowledged":
            clock = state.acknowledge_clock
            if clock is None:
                return []
            return [Measure(TIME_TO_ACKNOWLEDGE, (entry.at - clock.started_at).total_seconds(), {"tier": tier})]
        case "resolved":
            return [Measure(TIME_TO_RESOLVE, (entry.at - state.opened_at).total_seconds(), {"tier": tier})]
        case "offer_proposed":
            return _offer(state, entry, "proposed")
        case "offer_accepted":
            return _offer(state, entry, "accepted")
        case "offer_declined":
            return _offer(state, entry, "declined")
        case "callback_outcome":
            return [Measure(CALLBACKS, 1, {"outcome": str(d.get("outcome"))})]
        case "followup_answered":
            return [Measure(FOLLOWUPS, 1, {"answer": str(d.get("answer"))})]
        case "reopened":
            return [Measure(REOPENS, 1, {"tier": tier})]
        case "delivery_failed":
            return [Measure(MESSAGES_FAILED, 1, {"channel": str(d.get("channel")), "kind": str(d.get("message_kind"))})]
    return []
