"""The escalation rules as plain functions: (state, policy, command, now) -> (new state, effects).

No temporalio import, no I/O, no clock reads: the workflow feeds events in and turns effects into
activities and timers. Every function works on a copy and raises `RuleViolation` before changing
anything, so an update validator can run the very same function as a dry run.

A command's rule is written on a `Step` next to what it changes and named after the update that runs it;
`@command` makes it that function:

    @command
    def propose_offer(step: Step, cmd: OfferInput) -> None: ...

A new command is then its input model, its rule (exported here) and the workflow's handler.
"""

from escalation.domain.rules.brief import brief_facts, brief_text, build_brief
from escalation.domain.rules.callback import (
    cancel_callback,
    record_callback_outcome,
    reschedule_callback,
    schedule_callback,
)
from escalation.domain.rules.case import (
    acknowledge,
    add_note,
    advance,
    close,
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
    reassign,
    resolve,
)
from escalation.domain.rules.erasure import forget
from escalation.domain.rules.offer import propose_offer, record_offer_response
from escalation.domain.rules.pause import customer_replied, wait_on_customer
from escalation.domain.rules.routing import Routed, accept, holder
from escalation.domain.rules.sla import sla_due
from escalation.domain.rules.step import (
    Assign,
    Effect,
    Message,
    Recipient,
    Result,
    RuleViolation,
    Send,
    Step,
    command,
)

__all__ = [
    "Assign",
    "Effect",
    "Message",
    "Recipient",
    "Result",
    "Routed",
    "RuleViolation",
    "Send",
    "Step",
    "accept",
    "acknowledge",
    "add_note",
    "advance",
    "brief_facts",
    "brief_text",
    "build_brief",
    "cancel_callback",
    "close",
    "command",
    "customer_replied",
    "de_escalate",
    "delivery_failed",
    "describe_deadline",
    "escalate",
    "followup_response",
    "forget",
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
