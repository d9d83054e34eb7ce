"""Webhook signatures in the Standard Webhooks format (https://www.standardwebhooks.com), outbound and inbound.

A signed request carries three headers:

    webhook-id: <the message id>            outbound, the event id: receivers dedupe on it
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">

with one `v1,...` per secret, separated by spaces, while a secret is being rotated. Any Standard Webhooks
library verifies them (Python `standardwebhooks`, Node `standardwebhooks`, Svix's libraries). Signatures are
made by the `standardwebhooks` package; verification is ours, so that the clock is injectable, the tolerance
configurable and a malformed header a refusal rather than a crash.

Secrets: `whsec_<base64>` as the standard has them (the key is the decoded bytes); any other secret, as
configured before this format, is used as its UTF-8 bytes (a receiver hands it to its library as a raw key).

The earlier header, `Escalation-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with
the secret as written, is still sent beside them and still accepted inbound, in this release only: it goes
in the next one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from escalation.constants import (
    SIGNATURE_HEADER,
    SIGNATURE_TOLERANCE_SECONDS,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)

SECRET_PREFIX = "whsec_"
STANDARD_HEADERS = (WEBHOOK_ID_HEADER, WEBHOOK_TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER)


class SignatureError(Exception):
    """The request is not signed by someone holding the secret, or is too old: refuse it."""


@dataclass(frozen=True)
class Verified:
    """What a request that passed the check was signed with."""

    timestamp: int
    id: str | None  # webhook-id; None under the legacy header, which signs no id
    legacy: bool = False  # signed with the Escalation-Signature header only


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: `whsec_<base64>` decoded, any other secret as its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError(f"a secret starting with {SECRET_PREFIX} must be base64 after it") from None
    else:
        key = secret.encode()
    if not key:
        raise ValueError("a secret must not be empty")
    return key


def secrets_from_text(value: Any) -> Any:
    """A list of secrets given as text (an environment variable): a JSON list, as pydantic-settings reads it."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValueError('expected a JSON list of secrets, e.g. ["whsec_..."]') from None
    return value


def check_secrets(value: Any) -> Any:
    """A settings validator: every secret (a SecretStr or a list of them) must stand for a key."""
    for secret in value if isinstance(value, list) else [value]:
        if secret is not None:
            signing_key(secret.get_secret_value())
    return value


def sign(secret: str, msg_id: str, body: bytes, timestamp: int) -> str:
    """One `v1,<base64>` signature of `body` sent as message `msg_id` at `timestamp` (unix seconds)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(signing_key(secret)).sign(msg_id=msg_id, timestamp=moment, data=body.decode())


def sign_legacy(secrets: Iterable[str], body: bytes, timestamp: int) -> str:
    """The Escalation-Signature header's value, one v1 per secret (sent this release only)."""
    return ",".join([f"t={timestamp}", *(f"v1={_legacy_digest(s, body, timestamp)}" for s in secrets)])


def signed_headers(secrets: Sequence[str], msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that sign a request: webhook-id, webhook-timestamp, webhook-signature with one signature
    per secret (the current one first), and the legacy Escalation-Signature."""
    return {
        WEBHOOK_ID_HEADER: msg_id,
        WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
        WEBHOOK_SIGNATURE_HEADER: " ".join(sign(s, msg_id, body, timestamp) for s in secrets),
        SIGNATURE_HEADER: sign_legacy(secrets, body, timestamp),  # removed in the next release
    }


def verify(
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> Verified:
    """Check a request's signature headers against its raw body; any of `secrets` may have signed it (one
    is being rotated). Standard Webhooks headers are checked when present, else the legacy header. Raises
    SignatureError saying what is wrong (never which secret was close)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    given = {name.lower(): value for name, value in headers.items()}
    legacy = given.get(SIGNATURE_HEADER.lower())
    if legacy and not any(name in given for name in STANDARD_HEADERS):
        return Verified(_verify_legacy(keys, legacy, body, now, tolerance), None, legacy=True)
    missing = [name for name in STANDARD_HEADERS if not given.get(name)]
    if missing:
        raise SignatureError(f"signature header{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}")
    msg_id, stamp = given[WEBHOOK_ID_HEADER], given[WEBHOOK_TIMESTAMP_HEADER]
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise SignatureError(f"{WEBHOOK_TIMESTAMP_HEADER} is not a time in unix seconds")
    timestamp = int(stamp)
    _check_fresh(timestamp, now, tolerance)
    try:
        body.decode()
    except UnicodeDecodeError:
        raise SignatureError("the body is not UTF-8 text: its signature cannot be checked") from None
    expected = [base64.b64decode(sign(key, msg_id, body, timestamp).partition(",")[2]) for key in keys]
    offered: list[bytes] = []
    for item in given[WEBHOOK_SIGNATURE_HEADER].split():
        version, _, value = item.partition(",")
        if version == "v1":
            try:
                offered.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):  # not base64 (ValueError: non-ASCII text)
                continue
    if not any(hmac.compare_digest(e, o) for e in expected for o in offered):
        raise SignatureError("signature does not match the body")
    return Verified(timestamp, msg_id)


def _check_fresh(timestamp: int, now: float, tolerance: float) -> None:
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"signature timestamp is {int(now - timestamp)} s away from now "
            f"(more than {tolerance:g} s): refused as stale"
        )


def _legacy_digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def _verify_legacy(secrets: list[str], header: str, body: bytes, now: float, tolerance: float) -> int:
    """The Escalation-Signature header (`t=<unix seconds>,v1=<hex>`), accepted this release only."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError(f"{SIGNATURE_HEADER} has no timestamp (expected t=<unix seconds>,v1=<hex>)") from None
    _check_fresh(timestamp, now, tolerance)
    expected = [_legacy_digest(key, body, timestamp).encode() for key in secrets]
    given = parts.get("v1", [])
    # Compared as bytes: compare_digest refuses non-ASCII text, which a forged header may well carry.
    if not any(hmac.compare_digest(e, g.encode("utf-8", "surrogateescape")) for e in expected for g in given):
        raise SignatureError("signature does not match the body")
    return timestamp
