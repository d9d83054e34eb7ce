"""Finding cases through Temporal visibility: filters become a list query over the case search
attributes, and each execution found becomes a `CaseSummary` (no query to the workflow needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey

from escalation.constants import (
    SA_CATEGORY,
    SA_CHANNEL,
    SA_CUSTOMER,
    SA_ESCALATION_RISK,
    SA_ESCALATIONS,
    SA_FIRST_CONTACT,
    SA_FOLLOWUP_ANSWER,
    SA_GRANTED,
    SA_HIGHEST_TIER,
    SA_KB_MISSING,
    SA_OWNER,
    SA_REOPENS,
    SA_ROOT_CAUSE,
    SA_SEVERITY,
    SA_SLA_BREACH,
    SA_SLA_DUE,
    SA_STATUS,
    SA_TIER,
    WORKFLOW_ID_PREFIX,
    WORKFLOW_TYPE,
)
from escalation.domain.models import Channel, FollowUpAnswer, Identifier, RootCause, Severity, Status, Tier

TIER = SearchAttributeKey.for_keyword(SA_TIER)
STATUS = SearchAttributeKey.for_keyword(SA_STATUS)
OWNER = SearchAttributeKey.for_keyword(SA_OWNER)
CUSTOMER = SearchAttributeKey.for_keyword(SA_CUSTOMER)
SEVERITY = SearchAttributeKey.for_keyword(SA_SEVERITY)
SLA_DUE = SearchAttributeKey.for_datetime(SA_SLA_DUE)
SLA_BREACH = SearchAttributeKey.for_keyword(SA_SLA_BREACH)
REOPENS = SearchAttributeKey.for_int(SA_REOPENS)
CATEGORY = SearchAttributeKey.for_keyword(SA_CATEGORY)
CHANNEL = SearchAttributeKey.for_keyword(SA_CHANNEL)
ROOT_CAUSE = SearchAttributeKey.for_keyword_list(SA_ROOT_CAUSE)
KB_MISSING = SearchAttributeKey.for_bool(SA_KB_MISSING)
HIGHEST_TIER = SearchAttributeKey.for_keyword(SA_HIGHEST_TIER)
ESCALATIONS = SearchAttributeKey.for_int(SA_ESCALATIONS)
GRANTED = SearchAttributeKey.for_float(SA_GRANTED)
FIRST_CONTACT = SearchAttributeKey.for_bool(SA_FIRST_CONTACT)
FOLLOWUP_ANSWER = SearchAttributeKey.for_keyword(SA_FOLLOWUP_ANSWER)
ESCALATION_RISK = SearchAttributeKey.for_float(SA_ESCALATION_RISK)
# The workflow upserts these; list queries read them.
SEARCH_KEYS: dict[str, SearchAttributeKey[Any]] = {
    key.name: key
    for key in (
        TIER,
        STATUS,
        OWNER,
        CUSTOMER,
        SEVERITY,
        SLA_DUE,
        REOPENS,
        SLA_BREACH,
        CATEGORY,
        CHANNEL,
        ROOT_CAUSE,
        KB_MISSING,
        HIGHEST_TIER,
        ESCALATIONS,
        GRANTED,
        FIRST_CONTACT,
        FOLLOWUP_ANSWER,
        ESCALATION_RISK,
    )
}
# How each kind of constants.SEARCH_ATTRIBUTES is registered through the operator service.
INDEXED_TYPES: dict[str, IndexedValueType.ValueType] = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


class CaseFilter(BaseModel):
    """Which cases to list. Values are checked (identifiers, enum values), so they are safe to quote."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier | None = None
    status: Status | None = None
    owner: Identifier | None = None
    customer: Identifier | None = None
    severity: Severity | None = None
    # Cases whose next SLA instant (acknowledge or resolve target) is before this: what breaches next. A
    # target missed and still owed keeps its instant, so such cases are always found.
    due_before: datetime | None = None
    # The pattern dimensions (escalation.domain.rules.dimensions).
    category: Identifier | None = None
    channel: Channel | None = None
    root_cause: RootCause | None = None
    kb_missing: bool | None = None
    highest_tier: Tier | None = None
    min_escalations: Annotated[int, Field(ge=0, le=1000)] | None = None
    first_contact_resolved: bool | None = None
    followup: FollowUpAnswer | None = None
    min_risk: Annotated[float, Field(ge=0, le=1)] | None = None
    # Completed cases too. Without it only running cases are listed (unless `status` asks for closed ones).
    include_closed: bool = False

    @field_validator("due_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (for example 2026-11-24T09:00:00Z)")
        return value

    def query(self) -> str:
        terms = [f'WorkflowType = "{WORKFLOW_TYPE}"']
        for key, value in (
            (TIER, self.tier),
            (STATUS, self.status),
            (OWNER, self.owner),
            (CUSTOMER, self.customer),
            (SEVERITY, self.severity),
            (CATEGORY, self.category),
            (CHANNEL, self.channel),
            (ROOT_CAUSE, self.root_cause),
            (HIGHEST_TIER, self.highest_tier),
            (FOLLOWUP_ANSWER, self.followup),
        ):
            if value is not None:
                terms.append(f'{key.name} = "{value}"')
        for flag, wanted in ((KB_MISSING, self.kb_missing), (FIRST_CONTACT, self.first_contact_resolved)):
            if wanted is not None:
                terms.append(f"{flag.name} = {'true' if wanted else 'false'}")
        if self.min_escalations is not None:
            terms.append(f"{ESCALATIONS.name} >= {self.min_escalations}")
        if self.min_risk is not None:
            terms.append(f"{ESCALATION_RISK.name} >= {self.min_risk!r}")
        if self.due_before is not None:
            due = self.due_before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            terms.append(f'{SLA_DUE.name} < "{due}"')
        if not self.include_closed and self.status is None:
            terms.append('ExecutionStatus = "Running"')
        else:  # a long case hands over to a fresh run now and then: list each case once
            terms.append('ExecutionStatus != "ContinuedAsNew"')
        return " AND ".join(terms)


def holding_query(rep_ids: list[str]) -> str:
    """Open cases these reps hold, as owner or as the rep a case is offered to: what routing counts as
    their load (running executions only; a terminated case keeps its last attributes)."""
    reps = ", ".join(f'"{r}"' for r in rep_ids)
    return (
        f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" '
        f'AND {STATUS.name} = "{Status.OPEN.value}" AND {OWNER.name} IN ({reps})'
    )


class CaseSummary(BaseModel):
    """One case as visibility sees it: enough for a queue view."""

    case_id: str
    workflow_id: str
    run_id: str
    tier: Tier | None
    status: Status | None
    owner: str | None
    customer: str | None
    severity: Severity | None
    sla_due_at: datetime | None
    # "unowned" / "owned": an SLA target was missed and is still owed (sla_due_at is the missed instant).
    sla_breach: str | None = None
    # The pattern dimensions (None on cases from before them, until their next run).
    category: str | None = None
    channel: str | None = None
    highest_tier: Tier | None = None
    escalations: int | None = None
    root_causes: list[str] = []
    kb_missing: bool | None = None
    granted: float | None = None
    first_contact_resolved: bool | None = None
    followup: str | None = None
    risk: float | None = None
    opened_at: datetime  # start of the current run (later than the opening if the case continued as new)
    closed_at: datetime | None
    # The workflow's own status: running, completed, failed, terminated...
    execution: str

    @classmethod
    def from_execution(cls, ex: WorkflowExecution) -> CaseSummary:
        sa = ex.typed_search_attributes
        status = ex.status or WorkflowExecutionStatus.RUNNING
        values: dict[str, Any] = dict(
            tier=sa.get(TIER),
            status=sa.get(STATUS),
            owner=sa.get(OWNER),
            customer=sa.get(CUSTOMER),
            severity=sa.get(SEVERITY),
            sla_due_at=sa.get(SLA_DUE),
            sla_breach=sa.get(SLA_BREACH),
            category=sa.get(CATEGORY),
            channel=sa.get(CHANNEL),
            highest_tier=sa.get(HIGHEST_TIER),
            escalations=sa.get(ESCALATIONS),
            root_causes=list(sa.get(ROOT_CAUSE) or []),
            kb_missing=sa.get(KB_MISSING),
            granted=sa.get(GRANTED),
            first_contact_resolved=sa.get(FIRST_CONTACT),
            followup=sa.get(FOLLOWUP_ANSWER),
            risk=sa.get(ESCALATION_RISK),
        )
        return cls(
            case_id=ex.id.removeprefix(WORKFLOW_ID_PREFIX),
            workflow_id=ex.id,
            run_id=ex.run_id,
            opened_at=ex.start_time,
            closed_at=ex.close_time,
            execution=status.name.lower(),
            **values,
        )
