"""SMS and voice calls through a provider-agnostic HTTP gateway: a JSON POST per message.

The body is built from the configured template (string values are Jinja2 templates), so a hosted
provider or an in-house gateway plugs in by configuration. The message key goes in the
Idempotency-Key header: a retried activity sends the same key, and the gateway drops the repeat.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from jinja2.sandbox import SandboxedEnvironment

from activities.delivery import address_of
from activities.http import post
from activities.render import Templates
from escalation.constants import IDEMPOTENCY_HEADER
from escalation.delivery.settings import GatewaySettings
from escalation.domain.rules.step import Message


class HttpGateway:
    def __init__(self, settings: GatewaySettings, templates: Templates) -> None:
        self.settings = settings
        self.templates = templates
        self._jinja = SandboxedEnvironment(autoescape=False)  # values end up JSON-encoded, not in markup

    def body(self, message: Message, phone: str) -> dict[str, Any]:
        fields = dict(
            to=phone,
            channel=message.channel.value,
            text=self.templates.render(message).text.strip(),
            subject=message.subject,
            key=message.key,
            case_id=message.case_id,
            kind=message.kind.value,
            recipient=message.to.name,
        )
        return self._fill(self.settings.body, fields)

    def _fill(self, value: Any, fields: dict[str, str]) -> Any:
        if isinstance(value, str):
            return self._jinja.from_string(value).render(fields)
        if isinstance(value, dict):
            return {k: self._fill(v, fields) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill(v, fields) for v in value]
        return value

    async def deliver(self, message: Message) -> str:
        phone, what = address_of(message)
        s = self.settings
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: message.key}
        if s.auth is not None:
            headers[s.auth_header] = s.auth.get_secret_value()
        content = json.dumps(self.body(message, phone)).encode()
        async with httpx.AsyncClient(timeout=s.timeout) as client:
            response = await post(client, s.url_for(message.channel), content=content, headers=headers, what=what)
        return f"gateway:{response.status_code}"
