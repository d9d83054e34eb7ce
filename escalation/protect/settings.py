"""Payload protection settings: the AES-256-GCM keys that encrypt every payload a case writes to Temporal, and the
codec server that shows them decrypted to the people allowed to read customer data.

Read from ESCALATIONS_CODEC__<FIELD>, e.g. ESCALATIONS_CODEC__KEYS=/etc/escalations/codec.jwks. The keys are a
JWKS of secret `oct` keys marked `"use": "enc"`, `"alg": "A256GCM"` (the first encrypts; every key decrypts), in a
file readable by its owner alone, or the same JSON in ESCALATIONS_CODEC__KEY_SET (a secret store's variable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from escalation.environment import ENV_PREFIX, NESTED_DELIMITER, EnvSettings

SECTION = "codec"
CODEC_PREFIX = f"{ENV_PREFIX}{SECTION.upper()}{NESTED_DELIMITER}"  # ESCALATIONS_CODEC__
# The key `make run` generates in its data directory; used when no keys are named (Settings.from_env).
DEV_CODEC_KEYS_FILE = "codec.jwks"
DEFAULT_COMPRESS_ABOVE = 1024  # bytes: a payload larger than this is compressed (zlib) before it is encrypted
DEFAULT_SERVER_ADDRESS = "127.0.0.1:8234"


def _yes_no(value: Any) -> Any:
    """ "true", "1", "yes", "on" or "false", "0", "no", "off" (any case); empty: unset."""
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ValueError("true or false (1/0, yes/no, on/off)")
    return value


def _origins(value: Any) -> Any:
    """Origins separated by commas or spaces, as an environment variable holds them."""
    if isinstance(value, str):
        return [o for o in value.replace(",", " ").split() if o]
    return value


class CodecSettings(EnvSettings):
    """How payloads are encrypted. Constructed in code it holds what it is given; `read` fills it from
    ESCALATIONS_CODEC__<FIELD>."""

    model_config = SettingsConfigDict(env_prefix=CODEC_PREFIX)

    # The key file (a JWKS of A256GCM keys, mode 0600); None: ESCALATIONS_CODEC__KEY_SET, else the dev key in
    # the data directory when `make run` made one, else no encryption.
    keys: Path | None = None
    # The same JWKS as text (from a secret store), instead of a file.
    key_set: SecretStr | None = None
    # True: encrypt, and refuse to start without keys; False: payloads in plain text (a warning at start);
    # None (unset): encrypt whenever keys are found.
    enabled: Annotated[bool | None, BeforeValidator(_yes_no)] = None
    # Payloads larger than this many bytes are compressed (zlib) before encryption; None: never.
    compress_above: int | None = Field(default=DEFAULT_COMPRESS_ABOVE, ge=0)
    # `escalations codec-server`: where it listens, and the web origins (the Temporal UI's) allowed to call it.
    server_address: str = DEFAULT_SERVER_ADDRESS
    ui_origins: Annotated[list[str], BeforeValidator(_origins)] = Field(default_factory=list)

    @classmethod
    def setting_name(cls, field_name: str) -> str:
        return f"{CODEC_PREFIX}{field_name}".upper()

    @field_validator("ui_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") != 2:
                raise ValueError(f"{origin!r} is not a web origin (scheme://host[:port], e.g. http://localhost:8233)")
        return [o.rstrip("/") for o in origins]

    @property
    def configured(self) -> bool:
        """Keys are named (a file or the key set itself)."""
        return self.keys is not None or self.key_set is not None
