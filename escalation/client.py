"""Starting and finding cases from other services. Validates input before anything reaches Temporal."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from escalation.constants import SA_CUSTOMER, SA_SEVERITY, SA_STATUS, WORKFLOW_TYPE, task_queue, workflow_id
from escalation.models import CaseState, EscalationInput, EscalationOutcome, Status


R = TypeVar("R")


class CaseAlreadyOpen(Exception):
    """A case with this id is still open; it was not started a second time."""

    def __init__(self, case_id: str, run_id: str | None) -> None:
        super().__init__(f"case {case_id} is already open (workflow {workflow_id(case_id)}"
                         + (f", run {run_id}" if run_id else "") + "); drive the open case instead")
        self.case_id = case_id
        self.run_id = run_id


async def open_case(client: Client, inp: EscalationInput | dict[str, Any], *,
                    task_queue_name: str | None = None) -> WorkflowHandle[Any, EscalationOutcome]:
    """Start the Escalation workflow for a case. Raises pydantic.ValidationError for bad input and
    CaseAlreadyOpen when the case is open already; a closed case's id may be used again."""
    case = inp if isinstance(inp, EscalationInput) else EscalationInput.model_validate(inp)
    if case.carried is not None:
        raise ValueError("carried: internal to the workflow; leave it out when opening a case")
    try:
        return await client.start_workflow(
            WORKFLOW_TYPE,
            case,
            id=workflow_id(case.case_id),
            task_queue=task_queue_name or task_queue(),
            result_type=EscalationOutcome,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"{case.case_id}: {case.summary[:150]}",
            static_details=f"Customer {case.customer.name} ({case.customer.id}), {case.severity.value}, "
                           f"{case.category}, opened by {case.opened_by} via {case.channel.value}",
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(SearchAttributeKey.for_keyword(SA_CUSTOMER), case.customer.id),
                SearchAttributePair(SearchAttributeKey.for_keyword(SA_SEVERITY), case.severity.value),
                SearchAttributePair(SearchAttributeKey.for_keyword(SA_STATUS), Status.OPEN.value),
            ]),
        )
    except WorkflowAlreadyStartedError as err:
        raise CaseAlreadyOpen(case.case_id, getattr(err, "run_id", None)) from None


async def execute_update(handle: WorkflowHandle, update: str, arg: Any, *, result_type: type[R],
                         attempts: int = 5, update_id: str | None = None) -> R:
    """Run an update, retrying (with the same update id, so it is applied once) when the server says the
    case was briefly not ready: that happens while a long case hands over to a new run. A caller that
    retries on its own passes its idempotency key as `update_id`: a repeat returns the first result."""
    update_id = update_id or str(uuid.uuid4())
    for attempt in range(1, attempts + 1):
        try:
            return await handle.execute_update(update, arg, id=update_id, result_type=result_type)
        except RPCError as err:
            if attempt == attempts or not _not_ready(err):
                raise
            await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _not_ready(err: RPCError) -> bool:
    return any("WorkflowNotReadyFailure" in d.type_url for d in err.grpc_status.details)


def case_handle(client: Client, case_id: str) -> WorkflowHandle[Any, EscalationOutcome]:
    return client.get_workflow_handle(workflow_id(case_id), result_type=EscalationOutcome)


async def case_state(handle: WorkflowHandle, *, wait: float = 10.0) -> CaseState:
    """The `state` query, waiting (up to `wait` seconds) while a just-started case loads its policy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            return await handle.query("state", result_type=CaseState)
        except RPCError:
            if loop.time() > deadline:
                raise
        except Exception as err:  # WorkflowQueryFailedError while opening
            if "still opening" not in str(err) or loop.time() > deadline:
                raise
        await asyncio.sleep(0.05)
