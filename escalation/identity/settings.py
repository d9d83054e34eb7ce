"""Identity settings: which keys verify credentials, which key signs them, and how long credentials live.

Read from ESCALATIONS_IDENTITY__<FIELD> (e.g. ESCALATIONS_IDENTITY__KEYS=/etc/escalations/identity.jwks), and
ESCALATIONS_CREDENTIAL for a ready-made credential a caller sends as it is. Keys are always a JWKS (RFC 7517):
a file of secret `oct` keys (HS256) that both signs and verifies (the embedded default, mode 0600), or a public
JWKS (a file, or an http(s) URL) that verifies RS256, ES256 or EdDSA credentials, with a private JWK/JWKS file
for the services of ours that sign (`signing_keys`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from escalation.domain.models import Duration
from escalation.environment import ENV_PREFIX, NESTED_DELIMITER, EnvSettings

SECTION = "identity"
IDENTITY_PREFIX = f"{ENV_PREFIX}{SECTION.upper()}{NESTED_DELIMITER}"  # ESCALATIONS_IDENTITY__
CREDENTIAL_ENV = f"{ENV_PREFIX}CREDENTIAL"  # ESCALATIONS_CREDENTIAL
# The signing key `make run` generates in its data directory; used when no keys are named (Settings.from_env).
DEV_KEYS_FILE = "identity.jwks"


def is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


class IdentitySettings(EnvSettings):
    """How credentials are signed and verified. Constructed in code it holds what it is given; `read` fills it
    from ESCALATIONS_IDENTITY__<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=IDENTITY_PREFIX)

    # The JWKS that verifies credentials: a file path, or an http(s) URL (fetched when the verifier is built and
    # every `jwks_refresh`). None: no keys, so nothing can be verified (and nothing signed, unless signing_keys).
    keys: str | None = None
    # The private JWK or JWKS our own services sign with (the worker, the inbound endpoint, the CLI in dev).
    # None: `keys` when it is a file holding secret (oct) or private keys, else this process does not sign.
    signing_keys: Path | None = None
    # The key id (kid) to sign with; None: the first key of the signing set (a rotation puts the new one first).
    signing_kid: str | None = None
    # "iss" put on credentials this process signs, and required of every credential verified; None: not checked.
    issuer: str | None = None
    # A credential that lives longer than this (from "iat", else from now, to "exp") is refused.
    max_lifetime: Duration = timedelta(hours=1)
    # How long a credential this process signs lives; a customer's (minted by the inbound endpoint) lives shorter.
    ttl: Duration = timedelta(minutes=5)
    customer_ttl: Duration = timedelta(minutes=2)
    # Clock skew tolerated on "exp", "nbf" and "iat".
    leeway: Duration = timedelta(seconds=30)
    # How often a verifier reads its JWKS again (file or URL), so added and removed keys take effect.
    jwks_refresh: Duration = timedelta(minutes=5)
    # This client is a service acting for the reps its commands name: credentials it signs carry
    # "act": {"sub": acting_service}. None: it signs as the rep named.
    acting_service: str | None = None
    # A ready-made credential (a JWT) sent as it is with every command; wins over signing (ESCALATIONS_CREDENTIAL).
    credential: SecretStr | None = Field(default=None, validation_alias=CREDENTIAL_ENV)

    @classmethod
    def setting_name(cls, field_name: str) -> str:
        alias = cls.model_fields[field_name].validation_alias
        return alias if isinstance(alias, str) else f"{IDENTITY_PREFIX}{field_name}".upper()

    @field_validator("keys")
    @classmethod
    def _keys_named(cls, keys: str | None) -> str | None:
        if keys is not None and not keys.strip():
            return None
        if keys is not None and "://" in keys and not is_url(keys):
            raise ValueError("a JWKS file path, or an https:// (or http://) URL")
        if keys is not None and keys.startswith("http://") and not _loopback(keys):
            # Whoever sits in the middle of a plain fetch swaps the keys and signs as anyone.
            raise ValueError("a JWKS URL must be https:// (http:// only on this machine: localhost, 127.0.0.1, [::1])")
        return keys

    @field_validator("ttl", "customer_ttl", "jwks_refresh", "max_lifetime")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("ttl", "customer_ttl")
    @classmethod
    def _within_max_lifetime(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        # A field check, not a model one: a model check's error would quote every value, the credential too.
        longest = info.data.get("max_lifetime")
        if longest is not None and value > longest:
            raise ValueError(f"must be at most max_lifetime ({longest})")
        return value

    @property
    def keys_file(self) -> Path | None:
        """`keys` when it names a file (not a URL)."""
        return None if self.keys is None or is_url(self.keys) else Path(self.keys)

    def credential_token(self) -> str | None:
        return None if self.credential is None else self.credential.get_secret_value().strip() or None
