"""Every payload a case writes to Temporal, encrypted: a `PayloadCodec` with AES-256-GCM and rotating keys.

The format, for other languages (README "Protecting customer data"):

- The payload as Temporal would store it (`temporal.api.common.v1.Payload`, its metadata included) is serialized
  as protobuf; when longer than `compress_above` bytes it is compressed with zlib (RFC 1950).
- It is encrypted with AES-256-GCM under the newest key, with a fresh 12-byte random nonce. The stored payload's
  data is the nonce followed by the ciphertext and its 16-byte tag.
- The stored payload's metadata: `encoding` `binary/encrypted`, `encryption-cipher` `AES-256-GCM`,
  `encryption-key-id` the key's id, `compression` `zlib` when compressed, and `escalations-workflow-id` (the case's
  workflow id) when the SDK says which workflow it belongs to.
- The associated data binds that metadata: for each metadata key in sorted order, `key=value\\n` (UTF-8). A payload
  whose metadata was changed (another key id, another workflow id) does not decrypt.

Keys are a JWKS of secret keys: `{"keys": [{"kty": "oct", "kid": ..., "use": "enc", "alg": "A256GCM", "k": <32
bytes, base64url>}]}`; the first encrypts, every one decrypts, so a new key goes first and old ones stay until no
payload of a living case needs them. A payload whose key is missing (or that does not authenticate) is an error
naming its key id; inside the project's data converter it is handed on still encrypted, and the converter decides
(escalation.client.converter: a caller's input is refused for good, anything else retried until the key is there).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from escalation.identity.keys import KeyProblem, add_key, read_document, write_private

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
ALGORITHM = "A256GCM"
KEY_ID = "encryption-key-id"
CIPHER_KEY = "encryption-cipher"
COMPRESSION = "compression"
WORKFLOW_ID = "escalations-workflow-id"
# Set (in memory only) on a payload the lenient codec could not decrypt: why, for the data converter to say.
UNDECRYPTED = "escalations-undecrypted"
log = logging.getLogger(__name__)
NONCE_BYTES = 12
KEY_BYTES = 32
MAX_PLAIN_BYTES = 8 * 1024 * 1024  # a decompressed payload larger than this is refused (Temporal's limit is 2 MB)


class PayloadKeyProblem(ValueError):
    """A payload that cannot be decrypted; the message names its key id and what to do (never key material)."""

    def __init__(self, message: str, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


def _b64decode(text: Any) -> bytes:
    try:
        return base64.urlsafe_b64decode(str(text) + "=" * (-len(str(text)) % 4))
    except ValueError:
        return b""


@dataclass(frozen=True)
class PayloadKeys:
    """The keys of a codec key set in order: the first encrypts, every one decrypts."""

    source: str
    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, document: Any, source: str) -> PayloadKeys:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise KeyProblem(f'{source}: not a key set (a JSON object with "keys": [...])')
        found: list[tuple[str, bytes]] = []
        for i, entry in enumerate(document["keys"]):
            if not isinstance(entry, dict):
                raise KeyProblem(f"{source}: key {i + 1} is not a JSON object")
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid or not kid.isprintable() or len(kid) > 100:
                raise KeyProblem(f'{source}: key {i + 1} has no usable key id ("kid", up to 100 characters)')
            if entry.get("kty") != "oct" or entry.get("alg", ALGORITHM) != ALGORITHM:
                raise KeyProblem(f'{source}: key {kid!r} is not an AES-256-GCM key ("kty": "oct", "alg": "A256GCM")')
            if entry.get("use", "enc") != "enc":
                raise KeyProblem(f'{source}: key {kid!r} is not for encryption ("use": "enc")')
            key = _b64decode(entry.get("k", ""))
            if len(key) != KEY_BYTES:
                raise KeyProblem(f"{source}: key {kid!r} is not {KEY_BYTES * 8} bits; generate a new one")
            if any(k == kid for k, _ in found):
                raise KeyProblem(f"{source}: key id {kid!r} appears twice")
            found.append((kid, key))
        if not found:
            raise KeyProblem(f"{source}: no keys")
        return cls(source=source, keys=tuple(found))

    @classmethod
    def load(cls, path: Path) -> PayloadKeys:
        """The keys of a key file, refusing one that others can read (chmod 600)."""
        return cls.parse(read_document(Path(path)), str(path))

    @classmethod
    def from_text(cls, text: str, source: str) -> PayloadKeys:
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            raise KeyProblem(f"{source}: not a key set (not JSON text)") from None
        return cls.parse(document, source)

    @property
    def newest(self) -> tuple[str, bytes]:
        return self.keys[0]

    @property
    def ids(self) -> list[str]:
        return [kid for kid, _ in self.keys]

    def get(self, kid: str) -> bytes | None:
        return next((key for k, key in self.keys if k == kid), None)


class KeyRing:
    """The keys a codec uses, read again from their file when it changes (checked at most every `interval`
    seconds, and at once for a key id the codec does not know), so a rotation needs no restart. A file that cannot
    be read keeps the keys in use (logged)."""

    def __init__(self, keys: PayloadKeys, path: Path | None = None, *, interval: float = 1.0) -> None:
        self._keys = keys
        self.path = path
        self.interval = interval
        self._version = _version(path)
        self._checked = time.monotonic()

    @classmethod
    def from_file(cls, path: Path, *, interval: float = 1.0) -> KeyRing:
        return cls(PayloadKeys.load(path), path, interval=interval)

    def current(self) -> PayloadKeys:
        if self.path is not None and time.monotonic() - self._checked >= self.interval:
            self.reload()
        return self._keys

    def reload(self) -> bool:
        """Read the file again if it changed; True when other keys are in use now."""
        if self.path is None:
            return False
        self._checked = time.monotonic()
        version = _version(self.path)
        if version == self._version:
            return False
        try:
            keys = PayloadKeys.load(self.path)
        except KeyProblem as err:
            log.warning("codec_keys_not_reread: %s (the keys in use stay)", err)
            return False
        self._version = version
        changed = keys.keys != self._keys.keys
        if changed:
            log.info("codec keys changed: %s (were %s)", ", ".join(keys.ids), ", ".join(self._keys.ids))
        self._keys = keys
        return changed


def _version(path: Path | None) -> tuple[int, int, int] | None:
    try:
        st = None if path is None else path.stat()
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)


def associated_data(metadata: Mapping[str, bytes]) -> bytes:
    """What the tag binds: every metadata entry, sorted by key, as `key=value\\n`."""
    return b"".join(k.encode() + b"=" + metadata[k] + b"\n" for k in sorted(metadata))


class AesGcmCodec(PayloadCodec, WithSerializationContext):
    """Encrypts every payload with the newest key; decrypts with whichever key its id names.

    `strict` (the default) raises PayloadKeyProblem for a payload it cannot decrypt; the data converter's codec is
    lenient (`strict=False`): it hands such a payload on still encrypted, marked with the reason, for the converter
    to refuse or retry (see the module's docstring)."""

    def __init__(
        self,
        keys: PayloadKeys | KeyRing,
        *,
        compress_above: int | None = 1024,
        strict: bool = True,
        workflow_id: str | None = None,
    ) -> None:
        self.ring = keys if isinstance(keys, KeyRing) else KeyRing(keys)
        self.compress_above = compress_above
        self.strict = strict
        self.workflow_id = workflow_id

    @property
    def keys(self) -> PayloadKeys:
        return self.ring.current()

    def with_context(self, context: SerializationContext) -> Self:
        workflow_id = None
        if isinstance(context, (WorkflowSerializationContext, ActivitySerializationContext)):
            workflow_id = context.workflow_id
        if workflow_id == self.workflow_id:
            return self
        return type(self)(self.ring, compress_above=self.compress_above, strict=self.strict, workflow_id=workflow_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") == ENCODING:
            return payload  # encrypted already (handed on undecrypted): never twice
        kid, key = self.keys.newest
        plain = payload.SerializeToString()
        metadata = {"encoding": ENCODING, CIPHER_KEY: CIPHER, KEY_ID: kid.encode()}
        if self.compress_above is not None and len(plain) > self.compress_above:
            plain = zlib.compress(plain)
            metadata[COMPRESSION] = b"zlib"
        if self.workflow_id:
            metadata[WORKFLOW_ID] = self.workflow_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plain, associated_data(metadata))
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING or UNDECRYPTED in payload.metadata:
            return payload  # plain (written before encryption, or with it off): as it is
        try:
            return self._open(payload)
        except PayloadKeyProblem as err:
            if self.strict:
                raise
            undecrypted = Payload()
            undecrypted.CopyFrom(payload)
            undecrypted.metadata[UNDECRYPTED] = str(err).encode()
            return undecrypted

    def _open(self, payload: Payload) -> Payload:
        metadata = dict(payload.metadata)
        kid = metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        key = self.keys.get(kid)
        if key is None and self.ring.reload():  # a key added to the file a moment ago
            key = self.keys.get(kid)
        if key is None:
            known = ", ".join(self.keys.ids)
            raise PayloadKeyProblem(
                f"payload encrypted with key id {kid!r}, which is not among the codec keys ({known}; "
                f"{self.keys.source}): add that key to ESCALATIONS_CODEC__KEYS (keys are kept until no case needs them)",
                kid,
            )
        if metadata.get(CIPHER_KEY, CIPHER) != CIPHER or len(payload.data) < NONCE_BYTES + 16:
            raise PayloadKeyProblem(f"payload encrypted with key id {kid!r} is not AES-256-GCM as written here", kid)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, associated_data(metadata))
        except InvalidTag:
            raise PayloadKeyProblem(
                f"payload encrypted with key id {kid!r} does not authenticate: it (or its metadata) was altered, "
                "or the key of that id is not the one that encrypted it",
                kid,
            ) from None
        compression = metadata.get(COMPRESSION)
        if compression == b"zlib":
            unzip = zlib.decompressobj()
            plain = unzip.decompress(plain, MAX_PLAIN_BYTES)
            if unzip.unconsumed_tail:
                raise PayloadKeyProblem(f"payload under key id {kid!r} is larger than {MAX_PLAIN_BYTES} bytes", kid)
        elif compression is not None:
            raise PayloadKeyProblem(f"payload under key id {kid!r} uses compression {compression!r}, not zlib", kid)
        return Payload.FromString(plain)


# ----- generating and rotating keys


def generate_key(kid: str | None = None) -> dict[str, Any]:
    """A new AES-256-GCM key as a JWK."""
    kid = kid or f"codec-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    k = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode()
    return {"kty": "oct", "kid": kid, "use": "enc", "alg": ALGORITHM, "k": k}


def new_key(path: Path, *, kid: str | None = None, keep: int | None = None, standby: bool = False) -> dict[str, Any]:
    """Put a new key first in the key file at `path` (created 0600 when missing): it encrypts from now on, while
    the keys already there still decrypt. `standby` puts it last instead: it only decrypts until `use_key` puts it
    first (roll it out to every process first, so none meets a payload it cannot read). `keep` keeps that many keys
    in all (the newest). Returns the new key."""
    existing: list[dict[str, Any]] = []
    if path.exists():
        existing = list(read_document(path).get("keys", []))
        PayloadKeys.parse({"keys": existing}, str(path))
    jwk = generate_key(kid)
    add_key(path, existing, jwk, keep=keep, standby=standby)
    return jwk


def use_key(path: Path, kid: str) -> list[str]:
    """Put key `kid` first in the key file: it encrypts from now on. Returns the key ids in their new order."""
    existing = list(read_document(path).get("keys", []))
    PayloadKeys.parse({"keys": existing}, str(path))
    chosen = [e for e in existing if e.get("kid") == kid]
    if not chosen:
        known = ", ".join(str(e.get("kid")) for e in existing)
        raise KeyProblem(f"{path}: no key {kid!r} (it holds {known})")
    keys = chosen + [e for e in existing if e.get("kid") != kid]
    write_private(path, {"keys": keys})
    return [str(k["kid"]) for k in keys]


def ensure_key(path: Path) -> bool:
    """A codec key in `path`, generated (0600) when the file does not exist; True when it was created."""
    if path.exists():
        return False
    new_key(path, kid=f"dev-{secrets.token_hex(4)}")
    return True
