"""The escalation rules as plain functions: (state, policy, command, now) -> (new state, effects).

No temporalio import, no I/O, no clock reads: the workflow feeds events in and turns effects into
activities and timers. Every function works on a copy and raises `RuleViolation` before changing
anything, so an update validator can run the very same function as a dry run.
"""

from escalation.domain.rules.case import (
    Result,
    accept,
    cancel_callback,
    describe_deadline,
    owner_found,
    reassign,
    record_callback_outcome,
    reschedule_callback,
    schedule_callback,
    acknowledge,
    add_note,
    advance,
    close,
    customer_replied,
    de_escalate,
    delivery_failed,
    escalate,
    followup_response,
    message_obsolete,
    next_deadline,
    open_case,
    outcome,
    owner_assigned,
    propose_offer,
    record_offer_response,
    resolve,
    wait_on_customer,
)
from escalation.domain.rules.sla import sla_due
from escalation.domain.rules.brief import build_brief
from escalation.domain.rules.routing import Routed, holder
from escalation.domain.rules.step import Assign, Effect, Message, Recipient, RuleViolation, Send

__all__ = [
    "Routed",
    "accept",
    "cancel_callback",
    "describe_deadline",
    "holder",
    "owner_found",
    "reassign",
    "record_callback_outcome",
    "reschedule_callback",
    "schedule_callback",
    "Assign",
    "Effect",
    "Message",
    "Recipient",
    "Result",
    "RuleViolation",
    "Send",
    "acknowledge",
    "add_note",
    "advance",
    "build_brief",
    "close",
    "customer_replied",
    "de_escalate",
    "delivery_failed",
    "escalate",
    "followup_response",
    "message_obsolete",
    "next_deadline",
    "open_case",
    "outcome",
    "owner_assigned",
    "propose_offer",
    "record_offer_response",
    "resolve",
    "sla_due",
    "wait_on_customer",
]
