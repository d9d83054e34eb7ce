"""The data converter every client and worker of escalations uses: pydantic JSON, plus clear errors, and the
payload codec that encrypts every payload (escalation.protect) when the settings have keys.

A payload that does not match the contract (a start input, an update argument) raises an
ApplicationError of type InvalidArgument that names each field and says why, and is not retryable.
Raised while a worker decodes a start input it fails that case at once (instead of retrying a
workflow task forever); raised while decoding an update argument it rejects the update. A payload
encrypted with a key this process does not have is treated the same way: a caller's input is refused
for good, naming the key id; anything else (an activity's result, a case's own state) fails its workflow
task, which is retried until the worker has the key.

`data_converter` is the plain one (no encryption); `data_converter_for(settings)` is what every process
of ours connects with.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import temporalio.api.common.v1
from pydantic import BaseModel, ValidationError
from temporalio.common import HeaderCodecBehavior
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from escalation.client.contract import UPDATES
from escalation.constants import ERR_INVALID_ARGUMENT
from escalation.domain.models import EscalationInput, as_recorded
from escalation.domain.refusal import describe
from escalation.protect.codec import ENCODING, UNDECRYPTED

if TYPE_CHECKING:
    from escalation.config import Settings

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


class PayloadNotDecrypted(Exception):
    """A payload still encrypted when it reached the converter: this process lacks its key (the message names
    it). Not an ApplicationError, so a workflow task that meets it is retried until the worker has the key."""


class EncryptedPayloadConverter(EncodingPayloadConverter):
    """Payloads the codec could not decrypt (escalation.protect.codec, lenient): a caller's input is refused for
    good (InvalidArgument naming the key id: the case fails at once, the update is rejected); anything else
    raises PayloadNotDecrypted. Never writes a payload."""

    @property
    def encoding(self) -> str:
        return ENCODING.decode()

    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        return None

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        why = payload.metadata.get(UNDECRYPTED, b"").decode("utf-8", "replace") or (
            "payload is encrypted and this process has no codec keys (ESCALATIONS_CODEC__KEYS)"
        )
        model = type_hint if isinstance(type_hint, type) and issubclass(type_hint, BaseModel) else None
        if model is not None and model in _CALLER_INPUTS:
            raise _invalid(f"{model.__name__}: {why}")
        raise PayloadNotDecrypted(why)


@functools.cache
def _encoding_converters() -> tuple[EncodingPayloadConverter, ...]:
    """Built once and shared. The SDK builds a new payload converter for every serialization context (each
    case, each activity, with the codec) only to replace it at once, and a new pydantic converter would also
    start with no validators cached: both cost a case's every task CPU."""
    json_converter = ContractJSONPayloadConverter()
    return (
        *(
            json_converter if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ),
        EncryptedPayloadConverter(),
    )


class ContractPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(*_encoding_converters())


data_converter = DataConverter(payload_converter_class=ContractPayloadConverter)


def header_codec(converter: DataConverter) -> HeaderCodecBehavior:
    """Headers (the credential every command carries) are encrypted like payloads whenever payloads are: a JWT kept
    in plain history could be lifted and replayed while it lives. Workers decrypt them before the credential is
    read; a header another SDK sends in plain text is read as it is."""
    return HeaderCodecBehavior.CODEC if converter.payload_codec is not None else HeaderCodecBehavior.NO_CODEC


def data_converter_for(settings: Settings) -> DataConverter:
    """The data converter for `settings`: with the AES-256-GCM payload codec when they have codec keys (and it is
    not turned off), else the plain `data_converter`. Raises ConfigError for keys that cannot be used, or for a
    codec turned on without keys."""
    from escalation.protect import payload_codec

    codec = payload_codec(settings)
    if codec is None:
        return data_converter
    return DataConverter(payload_converter_class=ContractPayloadConverter, payload_codec=codec)
