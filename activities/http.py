"""POSTing to other systems (SMS/voice gateway, webhooks) under the delivery failure contract."""

from __future__ import annotations

import httpx

from activities.delivery import rejected, unavailable
from escalation.delivery.redact import excerpt

# 4xx answers that mean "later", not "never".
RETRY_LATER = {408, 425, 429}


async def post(
    client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str], what: str
) -> httpx.Response:
    """POST; return a 2xx response. Raise `unavailable` (retried) on timeouts, connection errors, 5xx and
    408/425/429, `rejected` (not retried) on any other answer (4xx, or a redirect nobody follows). The error
    keeps an excerpt of the answer with anything like a credential redacted: receivers echo headers."""
    try:
        response = await client.post(url, content=content, headers=headers)
    except httpx.TransportError as err:  # connect, read and write errors and timeouts
        raise unavailable(what, excerpt(f"{type(err).__name__} {err}")) from None
    if response.is_success:
        return response
    reason = f"HTTP {response.status_code} {excerpt(response.reason_phrase)}: {excerpt(response.text)}".strip()
    if response.status_code >= 500 or response.status_code in RETRY_LATER:
        raise unavailable(what, reason)
    raise rejected(what, reason)
