"""Every log line a case's work writes names the case: a worker interceptor binds the case id, workflow id, run
id, tier and activity name (structlog context variables) around each activity, so activities log with plain
`log.info(...)` and need no per-call plumbing.

The tier is the case's tier when the workflow scheduled the activity: the workflow side of the interceptor
reads it from the case's `EscalationTier` search attribute and passes it in a header of the activity (a header
is no command: histories replay as before). Workflow code logs through `workflow.logger`, whose lines carry
the same fields from the SDK's workflow info (escalation.logs renders them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import SearchAttributeKey
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from escalation.constants import SA_TIER
from escalation.logs import case_of

TIER_HEADER = "escalation-tier"
_TIER = SearchAttributeKey.for_keyword(SA_TIER)
_JSON = {"encoding": b"json/plain"}


def activity_fields(info: activity.Info, headers: Mapping[str, Payload]) -> dict[str, Any]:
    """The fields every line of this activity carries: case_id, workflow_id, run_id, activity, and tier when the
    workflow passed one."""
    fields: dict[str, Any] = {
        "case_id": case_of(info.workflow_id),
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity": info.activity_type,
    }
    if (tier := tier_of(headers)) is not None:
        fields["tier"] = tier
    return {k: v for k, v in fields.items() if v is not None}


def tier_of(headers: Mapping[str, Payload]) -> str | None:
    """The tier header's value, or None (absent, or not a short JSON string)."""
    payload = headers.get(TIER_HEADER)
    if payload is None or len(payload.data) > 64:
        return None
    try:
        value = json.loads(payload.data)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


class LogContext(Interceptor):
    """Worker interceptor: activities log with the case, workflow, run, tier and activity name bound."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityContext(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _WorkflowTier


class _ActivityContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # Each activity runs in a task of its own: what is bound here stays with it.
        with structlog.contextvars.bound_contextvars(**activity_fields(activity.info(), input.headers)):
            return await super().execute_activity(input)


class _WorkflowTier(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_TierHeader(outbound))


class _TierHeader(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        tier = workflow.info().typed_search_attributes.get(_TIER)
        if tier is not None:
            input.headers = {**input.headers, TIER_HEADER: Payload(metadata=_JSON, data=json.dumps(tier).encode())}
        return super().start_activity(input)
