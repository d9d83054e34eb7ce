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
    CompositePayloadConverter, DataConverter, DefaultPayloadConverter, JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from escalation.constants import ERR_INVALID_ARGUMENT
from escalation.contract import UPDATES
from escalation.models import EscalationInput


def shape(model: type[BaseModel]) -> str:
    """A payload model's fields as a caller writes them, optional ones marked: '{actor, note?}'."""
    return "{" + ", ".join(name + ("" if field.is_required() else "?")
                           for name, field in model.model_fields.items()) + "}"


_JSON_KINDS = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "an array"}


def describe(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """'customer.time_zone: 'Mars/Olympus' is not an IANA time zone ...; amount: ...'. A payload that is not
    an object at all says which object `model` expects: 'AcknowledgeInput: must be an object {actor, note?},
    not null'."""
    parts = []
    for e in err.errors(include_url=False):
        if not e["loc"] and e["type"] == "model_type" and model is not None:
            got = _JSON_KINDS.get(type(e["input"]), "something else")
            parts.append(f"must be an object {shape(model)}, not {got}")
            continue
        where = ".".join(str(p) for p in e["loc"]) or err.title
        parts.append(f"{where}: {_reason(e)}")
    return f"{err.title}: " + "; ".join(parts) if parts else str(err)


def _reason(e: Any) -> str:
    """Why one field was refused, with the limit and the size of what was sent, never the value itself (it
    may be a megabyte, or someone's personal data)."""
    kind, ctx, given = e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field (check the spelling)"
    if kind in ("string_too_long", "too_long") and "max_length" in ctx:
        unit = "characters" if isinstance(given, str) else "items"
        size = f"{len(given):,} {unit}, over" if hasattr(given, "__len__") else "over"
        return f"is {size} the limit of {ctx['max_length']:,}"
    if kind in ("string_too_short", "too_short") and "min_length" in ctx:
        return "must not be empty" if ctx["min_length"] == 1 else f"must have at least {ctx['min_length']}"
    if kind == "decimal_max_digits":
        return f"has more than {ctx['max_digits']} digits (at most {'9' * (ctx['max_digits'] - 2)}.99)"
    if kind == "decimal_whole_digits":
        return f"has more than {ctx['whole_digits']} digits before the decimal point"
    if kind == "decimal_max_places":
        return f"has more than {ctx['decimal_places']} decimal places"
    return e["msg"].removeprefix("Value error, ")


# The most one start input or one update argument may weigh, as sent. Every field has its own bound
# (escalation.models); this one also stops a payload padded with whitespace or unknown fields, and stays well
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
        if model is not None and model in _CALLER_INPUTS and len(payload.data) > MAX_INPUT_BYTES:
            if model is not EscalationInput or b'"carried"' not in payload.data:  # a continued run's own state
                raise _invalid(f"{name}: {_heaviest(payload.data)}is {len(payload.data):,} bytes, over the limit "
                               f"of {MAX_INPUT_BYTES:,} bytes for one input")
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as err:
            raise _invalid(describe(err, model)) from None
        except Exception as err:  # noqa: BLE001 - anything else a decoder or validator raised
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
        super().__init__(*(json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                           for c in DefaultPayloadConverter.default_encoding_payload_converters))


data_converter = DataConverter(payload_converter_class=ContractPayloadConverter)
