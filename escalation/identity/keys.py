"""Keys as a JWKS (RFC 7517), the one format for every key: read from a file or an http(s) URL, each key tied to
its one algorithm, and new keys generated (and rotated in) for `escalations credential new-key` and `make run`.

A file that holds secret material (an `oct` key, or a private key: a "d" member) must be readable by its owner
alone (mode 0600): any other mode is refused, naming the file and `chmod 600`. A JWKS served from a URL must
hold public keys only.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from escalation.identity.settings import is_url

# The algorithms a credential may use; "none" never, and each key verifies only its own algorithm.
ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")
# The members of an asymmetric JWK that are private: without them it is the public key.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
MIN_SECRET_BYTES = 32  # an HS256 key shorter than the hash (256 bits) is refused
FETCH_TIMEOUT = 10.0  # seconds for a JWKS URL to answer
MAX_JWKS_BYTES = 1_000_000


class KeyProblem(ValueError):
    """A key file or URL that cannot be used; the message names it and what to do (never key material)."""


@dataclass(frozen=True)
class Key:
    """One key of a set: its id, the one algorithm it may be used with, and the key itself (PyJWT's)."""

    kid: str
    algorithm: str
    jwk: PyJWK
    secret: bool  # symmetric (oct): the same key signs and verifies


@dataclass(frozen=True)
class KeySet:
    """The usable keys of a JWKS in file order (the first signs), and the kids left out with the reason."""

    source: str
    keys: tuple[Key, ...]
    skipped: Mapping[str, str]

    def get(self, kid: str) -> Key | None:
        return next((k for k in self.keys if k.kid == kid), None)

    @property
    def kids(self) -> list[str]:
        return [k.kid for k in self.keys]


def _algorithm(jwk: Mapping[str, Any]) -> str | None:
    """The algorithm a JWK is for: its "alg", else the one its type implies (oct HS256, RSA RS256, EC P-256
    ES256, OKP Ed25519/Ed448 EdDSA); None when the type implies none we allow."""
    if "alg" in jwk:
        return str(jwk["alg"])
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "oct":
        return "HS256"
    if kty == "RSA":
        return "RS256"
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv in ("Ed25519", "Ed448"):
        return "EdDSA"
    return None


def holds_secrets(jwk: Mapping[str, Any]) -> bool:
    return jwk.get("kty") == "oct" or any(m in jwk for m in PRIVATE_MEMBERS)


def public_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of an asymmetric JWK (an oct key has none: it is returned as it is)."""
    if jwk.get("kty") == "oct":
        return dict(jwk)
    return {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}


def _entries(document: Any, source: str) -> list[dict[str, Any]]:
    """The keys of a JWKS ({"keys": [...]}) or of a single JWK."""
    if isinstance(document, dict) and "keys" in document:
        keys = document["keys"]
        if not isinstance(keys, list):
            raise KeyProblem(f'{source}: "keys" must be a list of JWKs')
    elif isinstance(document, dict) and "kty" in document:
        keys = [document]
    else:
        raise KeyProblem(f'{source}: not a JWKS (an object with "keys") nor a JWK (an object with "kty")')
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            raise KeyProblem(f"{source}: key {i + 1} is not a JSON object")
    return keys


def build_set(document: Any, source: str, *, signing: bool) -> KeySet:
    """The usable keys of `document`. For verifying, asymmetric keys are reduced to their public half; for
    signing, only keys with secret material count. Keys for encryption ("use": "enc") or an algorithm we do not
    allow are left out (listed in `skipped`); a key we cannot read, or none left, is a KeyProblem."""
    usable: list[Key] = []
    skipped: dict[str, str] = {}
    for i, entry in enumerate(_entries(document, source)):
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            raise KeyProblem(f'{source}: key {i + 1} has no key id ("kid"); every key needs one, so keys can rotate')
        if entry.get("use", "sig") != "sig":
            skipped[kid] = f"is for {entry.get('use')!s}, not for signatures"
            continue
        algorithm = _algorithm(entry)
        if algorithm not in ALGORITHMS:
            skipped[kid] = (
                f"uses algorithm {algorithm or entry.get('kty')!r}, which is not allowed ({', '.join(ALGORITHMS)})"
            )
            continue
        if signing and not holds_secrets(entry):
            skipped[kid] = "is a public key (it cannot sign)"
            continue
        if any(k.kid == kid for k in usable):
            raise KeyProblem(f"{source}: key id {kid!r} appears twice")
        material = entry if signing else public_jwk(entry)
        try:
            jwk = PyJWK(material, algorithm=algorithm)
        except (PyJWKError, ValueError, TypeError) as err:
            raise KeyProblem(f"{source}: key {kid!r} cannot be read as an {algorithm} key: {err}") from None
        secret = entry.get("kty") == "oct"
        if secret and len(_b64(entry.get("k", ""))) < MIN_SECRET_BYTES:
            raise KeyProblem(f"{source}: key {kid!r} is shorter than {MIN_SECRET_BYTES * 8} bits; generate a new one")
        usable.append(Key(kid=kid, algorithm=algorithm, jwk=jwk, secret=secret))
    if not usable:
        what = "key that can sign (a secret oct key, or a private key)" if signing else "key we can verify with"
        left = "; ".join(f"{kid} {why}" for kid, why in skipped.items())
        raise KeyProblem(f"{source}: no {what}" + (f" ({left})" if left else ""))
    return KeySet(source=source, keys=tuple(usable), skipped=skipped)


def _b64(text: Any) -> bytes:
    try:
        return base64.urlsafe_b64decode(str(text) + "=" * (-len(str(text)) % 4))
    except ValueError:
        return b""


def check_private(path: Path, document: Any) -> None:
    """A file with secret material must be readable by its owner alone."""
    if os.name == "nt":  # pragma: no cover - no POSIX modes
        return
    try:
        entries = _entries(document, str(path))
    except KeyProblem:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 and any(holds_secrets(e) for e in entries):
        raise KeyProblem(
            f"{path} holds secret keys but can be read by others (mode {mode:04o}); "
            f"make it readable by its owner alone: chmod 600 {path}"
        )


def read_document(path: Path) -> Any:
    """The JSON of a key file, refusing a file with secrets that others can read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"{path}: key file not found") from None
    except OSError as err:
        raise KeyProblem(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise KeyProblem(f"{path}: not a JWKS (not JSON text)") from None
    check_private(path, document)
    return document


def parse_fetched(body: bytes, url: str) -> Any:
    if len(body) > MAX_JWKS_BYTES:
        raise KeyProblem(f"{url}: the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise KeyProblem(f"{url}: did not answer with a JWKS (not JSON)") from None
    if any(holds_secrets(e) for e in _entries(document, url)):
        raise KeyProblem(f"{url}: a JWKS served over HTTP must hold public keys only (it has secret or private keys)")
    return document


def fetch_document(url: str) -> Any:
    """The JWKS at `url` (blocking: when a verifier is built)."""
    import httpx

    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT)  # no redirects: never from https to anywhere else
    except httpx.HTTPError as err:
        raise KeyProblem(f"{url}: cannot fetch the JWKS: {type(err).__name__}: {err}") from None
    if response.status_code != 200:
        raise KeyProblem(f"{url}: cannot fetch the JWKS: HTTP {response.status_code}")
    return parse_fetched(response.content, url)


async def fetch_document_async(url: str) -> Any:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as http:
            response = await http.get(url)
    except httpx.HTTPError as err:
        raise KeyProblem(f"{url}: cannot fetch the JWKS: {type(err).__name__}: {err}") from None
    if response.status_code != 200:
        raise KeyProblem(f"{url}: cannot fetch the JWKS: HTTP {response.status_code}")
    return parse_fetched(response.content, url)


def load_set(source: str | Path, *, signing: bool = False) -> KeySet:
    """The keys of a JWKS file or URL (a URL never signs)."""
    text = str(source)
    if is_url(text):
        if signing:
            raise KeyProblem(f"{text}: signing keys come from a file of ours, never a URL")
        return build_set(fetch_document(text), text, signing=False)
    return build_set(read_document(Path(source)), text, signing=signing)


def has_signing_keys(path: Path) -> bool:
    """Whether the file holds secret or private keys (so it can sign); False when it cannot be read."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
        return any(holds_secrets(e) for e in _entries(document, str(path)))
    except (OSError, ValueError, KeyProblem, RecursionError):
        return False


# ----- generating and rotating keys


def generate_jwk(algorithm: str = "HS256", kid: str | None = None) -> dict[str, Any]:
    """A new signing key as a JWK (with its secret or private members)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    kid = kid or f"{algorithm.lower()}-{secrets.token_hex(4)}"
    jwk: dict[str, Any]
    if algorithm == "HS256":
        k = base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()
        jwk = {"kty": "oct", "k": k}
    elif algorithm == "RS256":
        jwk = RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=3072), as_dict=True)
    elif algorithm == "ES256":
        jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    elif algorithm == "EdDSA":
        jwk = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate(), as_dict=True)
    else:
        raise KeyProblem(f"algorithm {algorithm!r} is not one we sign with ({', '.join(ALGORITHMS)})")
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def write_private(path: Path, document: Mapping[str, Any]) -> None:
    """Write a JWKS readable by its owner alone (0600), atomically: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_public(path: Path, keys: Iterable[Mapping[str, Any]]) -> None:
    """Write the public JWKS of `keys` (asymmetric keys only: an oct key has no public half), mode 0644."""
    public = [public_jwk(k) for k in keys if k.get("kty") != "oct"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"keys": public}, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_key(path: Path, *, algorithm: str = "HS256", kid: str | None = None, keep: int | None = None) -> dict[str, Any]:
    """Put a new key first in the JWKS file at `path` (created, 0600, when missing), so it signs from now on,
    while the keys already there still verify; `keep` keeps that many keys in all (the newest), dropping the
    oldest. Returns the new key (a JWK with its secret)."""
    existing: list[dict[str, Any]] = []
    if path.exists():
        existing = _entries(read_document(path), str(path))
    jwk = generate_jwk(algorithm, kid)
    add_key(path, existing, jwk, keep=keep)
    return jwk


def add_key(
    path: Path, existing: list[dict[str, Any]], jwk: dict[str, Any], *, keep: int | None, standby: bool = False
) -> None:
    """Write the key file at `path` (0600) with `jwk` added to the `existing` keys: first, so it is used from now
    on, or last with `standby` (only read until it is put first); `keep` keeps that many keys in all (the newest)."""
    if any(e.get("kid") == jwk["kid"] for e in existing):
        raise KeyProblem(f"{path}: key id {jwk['kid']!r} is there already; pick another --kid")
    keys = [*existing, jwk] if standby and existing else [jwk, *existing]
    if keep is not None:
        if keep < 1:
            raise KeyProblem("keep must be at least 1 (the new key)")
        keys = keys[:keep]
    write_private(path, {"keys": keys})


def ensure_key(path: Path, *, algorithm: str = "HS256") -> bool:
    """A signing key in `path`, generating one (0600) when the file does not exist; True when it was created."""
    if path.exists():
        return False
    new_key(path, algorithm=algorithm, kid=f"dev-{secrets.token_hex(4)}")
    return True
