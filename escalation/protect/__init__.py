"""Customer data protection: every payload encrypted (AES-256-GCM, rotating keys: `codec`), the codec server that
shows payloads decrypted to people allowed to read customer data (`server`), and the settings of both
(`settings`: ESCALATIONS_CODEC__*). See the README's "Protecting customer data"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from escalation.identity.keys import KeyProblem
from escalation.protect.codec import AesGcmCodec, KeyRing, PayloadKeyProblem, PayloadKeys, ensure_key, new_key
from escalation.protect.settings import CODEC_PREFIX, DEV_CODEC_KEYS_FILE, CodecSettings

if TYPE_CHECKING:
    from escalation.config import Settings

log = structlog.get_logger()

__all__ = [
    "CODEC_PREFIX",
    "DEV_CODEC_KEYS_FILE",
    "AesGcmCodec",
    "CodecSettings",
    "KeyRing",
    "PayloadKeyProblem",
    "PayloadKeys",
    "announce",
    "codec_keys",
    "ensure_key",
    "key_ring",
    "new_key",
    "payload_codec",
]


def key_ring(codec: CodecSettings) -> KeyRing | None:
    """The settings' keys, read again from their file when it changes (a rotation), None when they name none.
    Raises ConfigError like `codec_keys`."""
    from escalation.config import ConfigError

    if codec.keys is not None:
        try:
            return KeyRing.from_file(codec.keys)
        except KeyProblem as err:
            raise ConfigError(f"codec: {err}") from None
    keys = codec_keys(codec)
    return None if keys is None else KeyRing(keys)


def codec_keys(codec: CodecSettings) -> PayloadKeys | None:
    """The keys the settings name (a file, else the key set's text), None when they name none. Raises ConfigError
    naming the setting for keys that cannot be used (missing, readable by others, not AES-256-GCM keys)."""
    from escalation.config import ConfigError

    try:
        if codec.keys is not None:
            return PayloadKeys.load(codec.keys)
        if codec.key_set is not None:
            return PayloadKeys.from_text(codec.key_set.get_secret_value(), f"{CODEC_PREFIX}KEY_SET")
    except KeyProblem as err:
        raise ConfigError(f"codec: {err}") from None
    return None


def payload_codec(settings: Settings, *, strict: bool = False) -> AesGcmCodec | None:
    """The codec for `settings`, or None when payloads stay plain (turned off, or no keys and not required).
    Lenient by default (for the data converter; see escalation.protect.codec)."""
    from escalation.config import ConfigError

    codec = settings.codec
    if codec.enabled is False:
        return None
    keys = key_ring(codec)
    if keys is None:
        if codec.enabled:
            raise ConfigError(
                f"codec: {CODEC_PREFIX}ENABLED is true but no keys are named: set {CODEC_PREFIX}KEYS to a key file "
                f"(`escalations codec new-key FILE` makes one) or {CODEC_PREFIX}KEY_SET"
            )
        return None
    return AesGcmCodec(keys, compress_above=codec.compress_above, strict=strict)


def announce(settings: Settings) -> None:
    """Say at start whether payloads are encrypted: a warning when customer data goes to Temporal in plain text
    because ENABLED is false. With no keys and encryption not turned off, refuse (ConfigError): plain payloads are
    a decision, never a default."""
    from escalation.config import ConfigError

    codec = settings.codec
    if codec.enabled is False:
        log.warning(
            "payload_encryption_off",
            reason=f"{CODEC_PREFIX}ENABLED is false: customer data is written to Temporal in plain text",
        )
        return
    keys = codec_keys(codec)
    if keys is None:
        raise ConfigError(
            f"codec: no keys to encrypt customer data with: set {CODEC_PREFIX}KEYS (a key file: `escalations codec "
            f"new-key FILE`), or {CODEC_PREFIX}ENABLED=false to write it to Temporal in plain text on purpose"
        )
    log.info("payload_encryption_on", key_id=keys.newest[0], keys=len(keys.keys), source=keys.source)
