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
from escalation.domain.models import EscalationInput
from escalation.domain.refusal import describe

# The most one start input or one update argument may weigh, as sent. Every field has its own bound
# (escalation.domain.models); this one also stops a payload padded with whitespace or unknown fields, and stays well
# under Temporal's payload limits (2 MB refused, 512 KB warned) so no input can make history too large to write.
MAX_INPUT_BYTES = 128 * 1024


_CALLER_INPUTS: frozenset[type] = frozenset({EscalationInput, *(u.arg for u in UPDATES)})


class ContractJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """Decoding never fails a workflow task: whatever goes wrong (a broken contract, an oversized payload, a
    number the decimal context cannot hold, bytes that are not UTF-8 JSON) becomes a non-retryable
    InvalidArgument naming the input and the field."""

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        model = type_hint if isinstance(type_hint, type) and issubclass(type_hint, BaseModel) else None
        name = model.__name__ if model is not None else "payload"
        oversized = model is not None and model in _CALLER_INPUTS and len(payload.data) > MAX_INPUT_BYTES
        # Except a continued run's own state: an input that carries the case may be larger.
        if oversized and (model is not EscalationInput or b'"carried"' not in payload.data):
            raise _invalid(
                f"{name}: {_heaviest(payload.data)}is {len(payload.data):,} bytes, over the limit "
                f"of {MAX_INPUT_BYTES:,} bytes for one input"
            )
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as err:
            raise _invalid(describe(err, model)) from None
        except Exception as err:
            raise _invalid(f"{name}: could not be decoded ({type(err).__name__}: {str(err)[:200]})") from None


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
