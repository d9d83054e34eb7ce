"""HMAC-SHA256 signatures over timestamp + body, as GitHub and Stripe sign their webhooks.

The header reads `t=<unix seconds>,v1=<hex digest>`, the digest taken over `b"<t>." + body` with the
shared secret. Signing the timestamp with the body lets a receiver refuse replays of old requests.
Used for outbound event webhooks and for inbound follow-up answers; receivers can copy `verify`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from escalation.constants import SIGNATURE_TOLERANCE_SECONDS


class SignatureError(Exception):
    """The request is not signed by someone holding the secret, or is too old: refuse it."""


def digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={digest(secret, body, timestamp)}"


def verify(
    secrets: str | Iterable[str],
    header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> int:
    """Check `header` against `body`; return its timestamp. Several secrets are accepted while one is
    being rotated. Raises SignatureError saying what is wrong (never which secret was close)."""
    if not header:
        raise SignatureError("signature header is missing")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("signature header has no timestamp (expected t=<unix seconds>,v1=<hex>)") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"signature timestamp is {int(now - timestamp)} s away from now "
            f"(more than {tolerance:g} s): refused as stale"
        )
    given = parts.get("v1", [])
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    expected = [digest(key, body, timestamp).encode() for key in keys]
    # Compared as bytes: compare_digest refuses non-ASCII text, which a forged header may well carry.
    if not any(hmac.compare_digest(e, g.encode("utf-8", "surrogateescape")) for e in expected for g in given):
        raise SignatureError("signature does not match the body")
    return timestamp
