"""The escalation rules as plain functions: (state, policy, command, now) -> (new state, effects).

No temporalio import, no I/O, no clock reads: the workflow feeds events in and turns effects into
activities and timers. Every function works on a copy and raises `RuleViolation` before changing
anything, so an update validator can run the very same function as a dry run.
"""

from escalation.domain.rules.brief import build_brief
from escalation.domain.rules.case import (
    Result,
    accept,
    acknowledge,
    add_note,
    advance,
    cancel_callback,
    close,
    customer_replied,
    de_escalate,
    delivery_failed,
    describe_deadline,
    escalate,
    followup_response,
    message_obsolete,
    next_deadline,
    open_case,
    outcome,
    owner_assigned,
    owner_found,
    propose_offer,
    reassign,
    record_callback_outcome,
    record_offer_response,
    reschedule_callback,
    resolve,
    schedule_callback,
    wait_on_customer,
)
from escalation.domain.rules.routing import Routed, holder
from escalation.domain.rules.sla import sla_due
from escalation.domain.rules.step import Assign, Effect, Message, Recipient, RuleViolation, Send

__all__ = [
    "Assign",
    "Effect",
    "Message",
    "Recipient",
    "Result",
    "Routed",
    "RuleViolation",
    "Send",
    "accept",
    "acknowledge",
    "add_note",
    "advance",
    "build_brief",
    "cancel_callback",
    "close",
    "customer_replied",
    "de_escalate",
    "delivery_failed",
    "describe_deadline",
    "escalate",
    "followup_response",
    "holder",
    "message_obsolete",
    "next_deadline",
    "open_case",
    "outcome",
    "owner_assigned",
    "owner_found",
    "propose_offer",
    "reassign",
    "record_callback_outcome",
    "record_offer_response",
    "reschedule_callback",
    "resolve",
    "schedule_callback",
    "sla_due",
    "wait_on_customer",
]
