"""Names other services code against. Worker, client, CLI, demo and tests import them from here."""

from __future__ import annotations

# Public contract: keep these stable.
WORKFLOW_TYPE = "Escalation"
WORKFLOW_ID_PREFIX = "escalation-"
DEFAULT_TASK_QUEUE = "escalations"
DEFAULT_POLICY = "default"
# Seconds a client (and the CLI) waits for a worker to take an update before saying none answered.
UPDATE_TIMEOUT = 60.0
# Seconds a client keeps resending (with the same update id) an update the case could not take for the moment.
RETRY_TIMEOUT = 30.0

# Search attributes (name -> Temporal indexed value type), registered on the server at start-up.
SA_TIER = "EscalationTier"
SA_STATUS = "EscalationStatus"
SA_OWNER = "Owner"
SA_CUSTOMER = "CustomerId"
SA_SEVERITY = "Severity"
SA_SLA_DUE = "SlaDueAt"
# "unowned" / "owned" while a missed SLA target is still owed (SlaDueAt then holds the missed instant).
SA_SLA_BREACH = "SlaBreach"
# How often a "not fixed" reopened the case; set from its first reopening (the "reopened" saved view).
SA_REOPENS = "Reopens"
# What the pattern questions filter on (escalation.domain.rules.dimensions), kept current on every case.
# SQL visibility allows 10 Keyword attributes per namespace: root causes are a KeywordList (a reopened case
# may have several), so the product's Keywords fill those 10 exactly.
SA_CATEGORY = "Category"
SA_CHANNEL = "Channel"
SA_ROOT_CAUSE = "RootCause"
SA_KB_MISSING = "KbMissing"
SA_HIGHEST_TIER = "HighestTier"
SA_ESCALATIONS = "Escalations"
SA_GRANTED = "GrantedTotal"
SA_FIRST_CONTACT = "FirstContactResolved"
SA_FOLLOWUP_ANSWER = "FollowUpAnswer"
SA_ESCALATION_RISK = "EscalationRisk"
SEARCH_ATTRIBUTES: dict[str, str] = {
    SA_TIER: "Keyword",
    SA_STATUS: "Keyword",
    SA_OWNER: "Keyword",
    SA_CUSTOMER: "Keyword",
    SA_SEVERITY: "Keyword",
    SA_SLA_DUE: "Datetime",
    SA_SLA_BREACH: "Keyword",
    SA_REOPENS: "Int",
    SA_CATEGORY: "Keyword",
    SA_CHANNEL: "Keyword",
    SA_ROOT_CAUSE: "KeywordList",
    SA_KB_MISSING: "Bool",
    SA_HIGHEST_TIER: "Keyword",
    SA_ESCALATIONS: "Int",
    SA_GRANTED: "Double",
    SA_FIRST_CONTACT: "Bool",
    SA_FOLLOWUP_ANSWER: "Keyword",
    SA_ESCALATION_RISK: "Double",
}
# The dimensions a case started before they existed leaves unset until its next run (patch "insight-searchable").
INSIGHT_SEARCH_ATTRIBUTES = (
    SA_CATEGORY,
    SA_CHANNEL,
    SA_ROOT_CAUSE,
    SA_KB_MISSING,
    SA_HIGHEST_TIER,
    SA_ESCALATIONS,
    SA_GRANTED,
    SA_FIRST_CONTACT,
    SA_FOLLOWUP_ANSWER,
    SA_ESCALATION_RISK,
)

# Error types carried by rejected updates and failed cases (ApplicationError.type).
ERR_INVALID_ARGUMENT = "InvalidArgument"
ERR_INVALID_STATE = "InvalidState"
ERR_UNKNOWN_POLICY = "UnknownPolicy"
# No credential, or one that does not verify or names nobody of the roster: nothing was applied.
ERR_UNAUTHENTICATED = "Unauthenticated"
# A verified person or service who may not do that on this case (policy permissions, own authority).
ERR_NOT_PERMITTED = "NotPermitted"
# The case takes no command for a moment (it is handing over to a new run): send the same command again.
ERR_CASE_UNAVAILABLE = "CaseUnavailable"


def workflow_id(case_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{case_id}"


def task_queue() -> str:
    """The task queue new cases start on: ESCALATIONS_TASK_QUEUE, else DEFAULT_TASK_QUEUE (read by the settings)."""
    from escalation.config import Settings  # the settings import this module

    return Settings.read().task_queue


# Delivery (messages, webhooks, inbound answers). Header names are part of the public contract.
ERR_DELIVERY_REJECTED = "DeliveryRejected"  # a permanent refusal (HTTP 4xx, SMTP 5xx): not retried
ERR_DELIVERY_UNAVAILABLE = "DeliveryUnavailable"  # down, timed out, 5xx, SMTP 4xx: retried with backoff
IDEMPOTENCY_HEADER = "Idempotency-Key"  # message key or event id, identical on every retry
# Standard Webhooks signature headers (standardwebhooks.com), on every signed request, outbound and inbound.
WEBHOOK_ID_HEADER = "webhook-id"  # outbound: the event id (as Idempotency-Key); inbound: the gateway's message id
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"  # unix seconds
# "v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>", one per secret, space-separated
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
# The earlier signature: still sent, and accepted inbound, this release only; removed in the next.
SIGNATURE_HEADER = "Escalation-Signature"  # "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"
EVENT_TYPE_HEADER = "Escalation-Event"
MESSAGE_KEY_HEADER = "Escalation-Key"  # on emails, beside the Message-ID derived from the key
SIGNATURE_TOLERANCE_SECONDS = 300  # a signed request older (or newer) than this is refused as stale
