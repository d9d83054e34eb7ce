"""The contract of the `Escalation` workflow as data: start input, updates and queries with their argument
and result models, outcome and events. The typed client, the CLI and the JSON Schemas in schemas/ are
driven by these tables, and a test checks them against the workflow: a new update, query or event model
is added here once. No temporalio import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

from escalation.domain.events import WebhookEvent
from escalation.domain.models import (
    AcceptInput,
    AcknowledgeInput,
    Brief,
    Callback,
    CallbackOutcomeInput,
    CancelCallbackInput,
    CaseEvent,
    CaseState,
    CloseInput,
    CustomerRepliedInput,
    DeEscalateInput,
    EscalateInput,
    EscalationInput,
    EscalationOutcome,
    FollowUpResponseInput,
    ForgetInput,
    NoteInput,
    Offer,
    OfferInput,
    OfferResponseInput,
    ReassignInput,
    RescheduleCallbackInput,
    ResolveInput,
    ScheduleCallbackInput,
    TimelineEntry,
    WaitOnCustomerInput,
)

A = TypeVar("A", bound=BaseModel)  # an update's argument
R = TypeVar("R", bound=BaseModel)  # its result


@dataclass(frozen=True)
class Update(Generic[A, R]):
    name: str
    arg: type[A]
    result: type[R]


@dataclass(frozen=True)
class Query(Generic[R]):
    name: str
    result: type[R]


ACKNOWLEDGE = Update("acknowledge", AcknowledgeInput, TimelineEntry)
ESCALATE = Update("escalate", EscalateInput, TimelineEntry)
DE_ESCALATE = Update("de_escalate", DeEscalateInput, TimelineEntry)
ADD_NOTE = Update("add_note", NoteInput, TimelineEntry)
PROPOSE_OFFER = Update("propose_offer", OfferInput, Offer)
RECORD_OFFER_RESPONSE = Update("record_offer_response", OfferResponseInput, Offer)
WAIT_ON_CUSTOMER = Update("wait_on_customer", WaitOnCustomerInput, TimelineEntry)
CUSTOMER_REPLIED = Update("customer_replied", CustomerRepliedInput, TimelineEntry)
RESOLVE = Update("resolve", ResolveInput, TimelineEntry)
CLOSE = Update("close", CloseInput, TimelineEntry)
FOLLOWUP_RESPONSE = Update("followup_response", FollowUpResponseInput, TimelineEntry)
ACCEPT = Update("accept", AcceptInput, TimelineEntry)
REASSIGN = Update("reassign", ReassignInput, TimelineEntry)
SCHEDULE_CALLBACK = Update("schedule_callback", ScheduleCallbackInput, Callback)
RESCHEDULE_CALLBACK = Update("reschedule_callback", RescheduleCallbackInput, Callback)
CANCEL_CALLBACK = Update("cancel_callback", CancelCallbackInput, Callback)
RECORD_CALLBACK_OUTCOME = Update("record_callback_outcome", CallbackOutcomeInput, Callback)
FORGET = Update("forget", ForgetInput, TimelineEntry)

UPDATES: tuple[Update, ...] = (
    ACKNOWLEDGE,
    ESCALATE,
    DE_ESCALATE,
    ADD_NOTE,
    PROPOSE_OFFER,
    RECORD_OFFER_RESPONSE,
    WAIT_ON_CUSTOMER,
    CUSTOMER_REPLIED,
    RESOLVE,
    CLOSE,
    FOLLOWUP_RESPONSE,
    ACCEPT,
    REASSIGN,
    SCHEDULE_CALLBACK,
    RESCHEDULE_CALLBACK,
    CANCEL_CALLBACK,
    RECORD_CALLBACK_OUTCOME,
    FORGET,
)
# None: every command is an update, so the caller learns whether it was taken (a bad signal is dropped).
SIGNALS: tuple[Update, ...] = ()

STATE = Query("state", CaseState)
BRIEF = Query("brief", Brief)
QUERIES: tuple[Query, ...] = (STATE, BRIEF)

START = EscalationInput
RESULT = EscalationOutcome
# Models other systems receive as events (outbox lines, webhooks). Add new event payloads here.
EVENTS: tuple[type[BaseModel], ...] = (CaseEvent, WebhookEvent)

Mode = Literal["validation", "serialization"]


def payloads() -> dict[type[BaseModel], Mode]:
    """Every payload of the contract: what callers send is described as accepted ("validation"), what
    they receive as produced ("serialization": money is a string, for example)."""
    found: dict[type[BaseModel], Mode] = {START: "validation"}
    for update in (*UPDATES, *SIGNALS):
        found[update.arg] = "validation"
    outputs: list[type[BaseModel]] = [*(u.result for u in UPDATES), *(q.result for q in QUERIES), RESULT, *EVENTS]
    for model in outputs:
        if found.get(model, "serialization") != "serialization":
            raise ValueError(f"{model.__name__} is both sent and received; give each direction its own model")
        found[model] = "serialization"
    return found
