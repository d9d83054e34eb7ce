"""Where messages and events go: SMTP, an SMS/voice HTTP gateway, event webhooks, inbound answers.

Read (`DeliverySettings.read`, pydantic-settings) from environment variables on top of a TOML file named by
ESCALATIONS_DELIVERY_CONFIG (optional); the environment wins: ESCALATIONS_<SECTION>__<FIELD> with a double
underscore, e.g. ESCALATIONS_SMTP__HOST, ESCALATIONS_GATEWAY__AUTH, ESCALATIONS_WEBHOOK__SECRET,
ESCALATIONS_TEAMS__AGENT, ESCALATIONS_EVENTS_SINK__SECRET. Whatever is not configured goes to the outbox
(messages) or the events file (events), so a development setup needs no mail server or gateway.
Secrets are `SecretStr`: they print as '**********' and are never logged.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jinja2 import TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from escalation.constants import SIGNATURE_TOLERANCE_SECONDS
from escalation.delivery import signature
from escalation.domain.models import ContactChannel, Tier
from escalation.environment import Environment, EnvSettings
from escalation.files import read_toml

CONFIG_ENV = "ESCALATIONS_DELIVERY_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587); refused if the server cannot
    TLS = "tls"  # implicit TLS from the first byte (port 465)
    NONE = "none"  # unencrypted: a relay on the same host or a test server only


class SmtpSettings(Section):
    host: str
    port: int | None = None  # 587 (starttls), 465 (tls), 25 (none)
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "Customer Care <care@localhost>"  # the From header; its domain ends each Message-ID
    ca_file: Path | None = None  # trust this CA as well (a relay with a private certificate)
    timeout: float = 20.0  # seconds per attempt; the activity retries after that

    @field_validator("ca_file")
    @classmethod
    def _ca_loads(cls, path: Path | None) -> Path | None:
        # Checked at start-up: a missing or broken CA file would otherwise fail every email for a day of retries.
        if path is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
            except FileNotFoundError:
                raise ValueError(f"CA file not found: {path}") from None
            except (OSError, ssl.SSLError) as err:
                raise ValueError(f"cannot load CA certificates from {path}: {err}") from None
        return path

    @property
    def effective_port(self) -> int:
        return self.port or {SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465, SmtpSecurity.NONE: 25}[self.security]


# What an SMS or call request looks like unless the gateway section says otherwise. String values are
# Jinja2 templates over these fields.
GATEWAY_FIELDS = ("to", "channel", "text", "subject", "key", "case_id", "kind", "recipient")
DEFAULT_GATEWAY_BODY: dict[str, Any] = {
    "to": "{{ to }}",
    "channel": "{{ channel }}",
    "text": "{{ text }}",
    "reference": "{{ key }}",
    "case_id": "{{ case_id }}",
}


class GatewaySettings(Section):
    url: AnyHttpUrl  # used for SMS and calls unless sms_url / call_url are set
    sms_url: AnyHttpUrl | None = None
    call_url: AnyHttpUrl | None = None
    auth_header: str = "Authorization"
    auth: SecretStr | None = None  # the header's value, e.g. "Bearer <token>"
    body: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_GATEWAY_BODY))
    timeout: float = 15.0

    @field_validator("body")
    @classmethod
    def _body_templates(cls, body: dict[str, Any]) -> dict[str, Any]:
        # Checked at start-up: a misspelt field would render empty into every request, and a syntax
        # error would fail every SMS and call.
        env = SandboxedEnvironment()

        def check(value: Any, where: str) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    check(item, f"{where}.{key}" if where else str(key))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    check(item, f"{where}[{i}]")
            elif isinstance(value, str):
                try:
                    unknown = meta.find_undeclared_variables(env.parse(value)) - set(GATEWAY_FIELDS)
                except TemplateSyntaxError as err:
                    raise ValueError(f"{where}: template error: {err.message}") from None
                if unknown:
                    raise ValueError(
                        f"{where}: unknown field {', '.join(sorted(unknown))}; "
                        f"templates may use {', '.join(GATEWAY_FIELDS)}"
                    )

        check(body, "")
        return body

    def url_for(self, channel: ContactChannel) -> str:
        chosen = {ContactChannel.SMS: self.sms_url, ContactChannel.CALL: self.call_url}.get(channel)
        return str(chosen or self.url)


class WebhookSettings(Section):
    url: AnyHttpUrl
    secret: SecretStr  # shared with the receiver, which verifies every request with it (whsec_<base64>)
    # While the secret rotates: earlier secrets, each still signing every request beside the current one.
    previous_secrets: list[SecretStr] = Field(default_factory=list)
    timeout: float = 10.0

    _secrets_from_text = field_validator("previous_secrets", mode="before")(signature.secrets_from_text)
    _secrets_valid = field_validator("secret", "previous_secrets")(signature.check_secrets)


class InboundSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8088
    secret: SecretStr | None = None  # the gateway signs answers with it; the endpoint refuses to start without
    # While the secret rotates: earlier secrets, answers signed with any of them still accepted.
    previous_secrets: list[SecretStr] = Field(default_factory=list)
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS

    _secrets_from_text = field_validator("previous_secrets", mode="before")(signature.secrets_from_text)
    # (the secret itself is checked by the endpoint, which names its variable)
    _secrets_valid = field_validator("previous_secrets")(signature.check_secrets)


class EventsSinkSettings(Section):
    """`escalations events-sink`: the receiver that lands the events webhook in day-partitioned files."""

    listen: str = "127.0.0.1:8089"  # HOST:PORT; loopback unless set otherwise (the events hold customer data)
    out: Path | None = None  # the folder of `date=YYYY-MM-DD/events.jsonl` files; None: `<data dir>/events`
    # None: the webhook section's secret and previous secrets, those the worker signs events with.
    secret: SecretStr | None = None
    # While the secret rotates: earlier secrets, events signed with any of them still accepted.
    previous_secrets: list[SecretStr] = Field(default_factory=list)
    tolerance: float = Field(default=SIGNATURE_TOLERANCE_SECONDS, gt=0, le=3600)

    _secrets_from_text = field_validator("previous_secrets", mode="before")(signature.secrets_from_text)
    # (the secret itself is checked by the receiver, which names its variable)
    _secrets_valid = field_validator("previous_secrets")(signature.check_secrets)


class DeliveryFile(TomlConfigSettingsSource):
    """The TOML file ESCALATIONS_DELIVERY_CONFIG names. It must exist; a file that cannot be read, is not UTF-8
    or is not TOML is a FileProblem (a ValueError) naming the file and the line."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_ENV}: no delivery config file at '{path}'")
        self.label = f"{CONFIG_ENV} file {path}"
        super().__init__(settings_cls, toml_file=path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return read_toml(Path(file_path), self.label)


class DeliverySettings(EnvSettings):
    """The delivery sections: ESCALATIONS_<SECTION>__<FIELD> over the file ESCALATIONS_DELIVERY_CONFIG names."""

    # A field set to "" in the environment is "" (an empty secret is refused, not taken from the file).
    model_config = SettingsConfigDict(env_ignore_empty=False)

    smtp: SmtpSettings | None = None
    gateway: GatewaySettings | None = None
    webhook: WebhookSettings | None = None
    inbound: InboundSettings = Field(default_factory=InboundSettings)
    events_sink: EventsSinkSettings = Field(default_factory=EventsSinkSettings)
    # Team channels: where an owner's notification goes when the owner cannot be reached, and where
    # "nobody available" goes. Tier -> email address; tiers without one use the outbox.
    teams: dict[Tier, str] = Field(default_factory=dict)
    templates_dir: Path | None = None  # templates here override the built-in ones, by file name

    @classmethod
    def file_sources(cls, environment: Environment) -> tuple[PydanticBaseSettingsSource, ...]:
        path = environment.env_vars.get(CONFIG_ENV.lower())
        return (DeliveryFile(cls, Path(path)),) if path else ()

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> DeliverySettings:
        """From the environment (default: this process's) over the file ESCALATIONS_DELIVERY_CONFIG names, which
        must exist. Raises FileNotFoundError, FileProblem, or pydantic's ValidationError naming the field."""
        return cls.read(env)

    @field_validator("templates_dir")
    @classmethod
    def _templates_dir_exists(cls, path: Path | None) -> Path | None:
        # A misspelt folder would silently fall back to the built-in templates.
        if path is not None and not path.is_dir():
            raise ValueError(f"templates folder not found: {path}")
        return path

    def team_address(self, tier: Tier) -> str | None:
        return self.teams.get(tier)

    def describe(self) -> dict[str, str]:
        """Where each channel goes, for the start-up log: hosts and URLs, never secrets."""
        smtp = self.smtp
        email = f"smtp {smtp.host}:{smtp.effective_port} ({smtp.security.value})" if smtp else "outbox"
        gateway = self.gateway
        return {
            "email": email,
            "sms": f"gateway {_public(gateway.url_for(ContactChannel.SMS))}" if gateway else "outbox",
            "call": f"gateway {_public(gateway.url_for(ContactChannel.CALL))}" if gateway else "outbox",
            "events": f"webhook {_public(str(self.webhook.url))}" if self.webhook else "events file",
        }


def _public(url: str) -> str:
    """A URL fit for logs: no user:password@ and no query string (either may hold a token)."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
