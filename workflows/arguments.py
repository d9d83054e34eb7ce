"""Every update of the `Escalation` workflow takes exactly one argument, its input model. Sent with none (the
`temporal` CLI without --input, an SDK call without args) or with several, the SDK would call the validator
with the wrong number of arguments and reject the update with a retryable `TypeError` that names a private
method. This worker interceptor refuses it first, as the contract's non-retryable `InvalidArgument` naming
the input model and its fields.

It checks before the validator, which runs only when an update arrives (never on replay), and changes no
handler: a recorded history replays exactly as before.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from escalation.client.contract import UPDATES
from escalation.constants import ERR_INVALID_ARGUMENT
from escalation.domain.refusal import shape

_INPUTS = {u.name: u.arg for u in UPDATES}


def wrong_kind(update: str, arg: object) -> str | None:
    """The refusal for `update` sent with something that is not its input model (null arrives as None: the
    SDK decodes a binary/null payload without asking the contract), or None when it is."""
    model = _INPUTS.get(update)
    if model is None or isinstance(arg, model):
        return None
    got = "null" if arg is None else type(arg).__name__
    return f"{model.__name__}: must be an object {shape(model)}, not {got}"


def wrong_count(update: str, given: int) -> str | None:
    """The refusal for `update` sent with `given` arguments, or None when the count is right."""
    model = _INPUTS.get(update)
    if model is None or given == 1:
        return None
    got = "none was given" if given == 0 else f"{given} were given"
    article = "an" if model.__name__[0] in "AEIOU" else "a"
    return f"{update} takes one argument, {article} {model.__name__} object: {shape(model)}; {got}"


class OneArgument(Interceptor):
    """Worker interceptor: an update of the contract sent with no argument, several, or null is refused as
    InvalidArgument (non-retryable), naming the input model."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _OneArgument


class _OneArgument(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        refusal = wrong_count(input.update, len(input.args)) or wrong_kind(input.update, input.args[0])
        if refusal is not None:
            raise ApplicationError(refusal, type=ERR_INVALID_ARGUMENT, non_retryable=True)
        super().handle_update_validator(input)
