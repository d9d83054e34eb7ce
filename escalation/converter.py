"""The data converter every client and worker of escalations uses: pydantic JSON, plus clear errors.

A payload that does not match the contract (a start input, an update argument) raises an
ApplicationError of type InvalidArgument that names each field and says why, and is not retryable.
Raised while a worker decodes a start input it fails that case at once (instead of retrying a
workflow task forever); raised while decoding an update argument it rejects the update.
"""

from __future__ import annotations

from typing import Any

import temporalio.api.common.v1
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter, DataConverter, DefaultPayloadConverter, JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from escalation.constants import ERR_INVALID_ARGUMENT


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
    for e in err.errors(include_url=False, include_context=False):
        if not e["loc"] and e["type"] == "model_type" and model is not None:
            got = _JSON_KINDS.get(type(e["input"]), "something else")
            parts.append(f"must be an object {shape(model)}, not {got}")
            continue
        where = ".".join(str(p) for p in e["loc"]) or err.title
        reason = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            reason = "is required"
        elif e["type"] == "extra_forbidden":
            reason = "is not a known field (check the spelling)"
        parts.append(f"{where}: {reason}")
    return f"{err.title}: " + "; ".join(parts) if parts else str(err)


class ContractJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as err:
            model = type_hint if isinstance(type_hint, type) and issubclass(type_hint, BaseModel) else None
            raise ApplicationError(describe(err, model), type=ERR_INVALID_ARGUMENT, non_retryable=True) from None


class ContractPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        json_converter = ContractJSONPayloadConverter()
        super().__init__(*(json_converter if isinstance(c, JSONPlainPayloadConverter) else c
                           for c in DefaultPayloadConverter.default_encoding_payload_converters))


data_converter = DataConverter(payload_converter_class=ContractPayloadConverter)
