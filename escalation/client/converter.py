"""The data converter every client and worker of escalations uses: pydantic JSON, plus clear errors.

A payload that does not match the contract (a start input, an update argument) raises an
ApplicationError of type InvalidArgument that names each field and says why, and is not retryable.
Raised while a worker decodes a start input it fails that case at once (instead of retrying a
workflow task forever); raised while decoding an update argument it rejects the update.
"""

from __future__ import annotations

import json
from typing import Any

import temporalio.api.common.v1
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from escalation.client.contract import UPDATES
from escalation.constants import ERR_INVALID_ARGUMENT
from escalation.domain.models import EscalationInput, as_recorded
from escalation.domain.refusal import describe

# The most one start input or one update argument may weigh, as sent. Every field has its own bound
# (escalation.domain.models); this one also stops a payload padded with whitespace or unknown fields, and stays well
# under Temporal's payload limits (2 MB refused, 512 KB warned) so no input can make history too large to write.
MAX_INPUT_BYTES = 128 * 1024


_CALLER_INPUTS: frozenset[type] = frozenset({EscalationInput, *(u.arg for u in UPDATES)})


class ContractJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """Reads payloads as history recorded them (`as_recorded`: the caller bounds of today are checked where a
    command is taken, so a case written before them still replays). A caller's input that cannot be decoded at
    all (a broken contract, a number the decimal context cannot hold, bytes that are not UTF-8 JSON) becomes a
    non-retryable InvalidArgument naming the input and the field; anything else (an activity's result, a
    query's answer) stays a plain error, so a workflow task is retried rather than the case failed."""

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        model = type_hint if isinstance(type_hint, type) and issubclass(type_hint, BaseModel) else None
        try:
            with as_recorded():
                return super().from_payload(payload, type_hint)
        except Exception as err:
            if model is None or model not in _CALLER_INPUTS:
                raise
            if isinstance(err, ValidationError):
                raise _invalid(describe(err, model)) from None
            raise _invalid(f"{model.__name__}: could not be decoded ({type(err).__name__}: {str(err)[:200]})") from None


def oversized(value: BaseModel) -> str | None:
    """The refusal for a caller's input heavier than MAX_INPUT_BYTES as JSON, or None. A continued run's own
    state (`EscalationInput.carried`) does not count."""
    data = value.__pydantic_serializer__.to_json(
        value, exclude={"carried"} if isinstance(value, EscalationInput) else None
    )
    if len(data) <= MAX_INPUT_BYTES:
        return None
    return (
        f"{type(value).__name__}: {_heaviest(data)}is {len(data):,} bytes, over the limit of "
        f"{MAX_INPUT_BYTES:,} bytes for one input"
    )


def _heaviest(data: bytes) -> str:
    """'note: ' when one field makes up most of an oversized object, to say which one to shorten."""
    try:
        fields = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(fields, dict) or not fields:
        return ""
    name, value = max(fields.items(), key=lambda kv: len(json.dumps(kv[1])))
    return f"{name}: the input with it " if len(json.dumps(value)) > len(data) // 2 else ""


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type=ERR_INVALID_ARGUMENT, non_retryable=True)


class ContractPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = ContractJSONPayloadConverter()
        super().__init__(
            *(
                json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


data_converter = DataConverter(payload_converter_class=ContractPayloadConverter)
