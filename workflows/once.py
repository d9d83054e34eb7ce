"""An update is applied once per case, not once per run.

Temporal drops a repeated update id within one run of a workflow. A case continues as new when its history
grows long, and a caller that resends a command (with the same update id, as the client does after a
refusal it may retry) can reach the next run, which knew nothing of the first: the note was written twice.
This worker interceptor answers a repeat from the case's record of recent update ids, which travels with the
case across continue-as-new (escalation.domain.carry.CarriedCase.answered), with the first answer; the command is
neither validated nor applied again.
"""

from __future__ import annotations

from typing import Any, Protocol

from temporalio import workflow
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

# Histories in which a resent command was applied twice in a later run replay as they were written.
ONCE_ACROSS_RUNS_PATCH = "update-once-across-runs"


class Remembers(Protocol):
    def knows(self, update_id: str) -> bool: ...

    async def answer(self, update_id: str) -> Any: ...

    def remember(self, update_id: str, result: Any) -> None: ...


class AnsweredOnce(Interceptor):
    """Worker interceptor: a repeat of an update id the case answered in an earlier run gets that answer."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _AnsweredOnce


def _case() -> Remembers | None:
    instance = workflow.instance()
    return instance if all(hasattr(instance, name) for name in ("knows", "answer", "remember")) else None


class _AnsweredOnce(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        case = _case()
        if case is not None and case.knows(input.id):
            return  # answered before: taken, and answered again below
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        case = _case()
        if case is not None and case.knows(input.id) and workflow.patched(ONCE_ACROSS_RUNS_PATCH):
            return await case.answer(input.id)
        result = await super().handle_update_handler(input)
        if case is not None:
            case.remember(input.id, result)
        return result
