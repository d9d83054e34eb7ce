"""Credentials: signed JWTs that say who acts on a case, minted by `Signer` and checked by `Verifier`.

A credential names its subject ("sub": a rep id, a service id, or "customer" with the case it answers for),
the service acting for that rep if any ("act": {"sub": service}, RFC 8693), and when it expires. It is carried
in the Temporal header HEADER as a JSON string. Verification never does network I/O (it runs in a workflow's
update validator): a JWKS from a URL is fetched when the verifier is built and on `refresh()`. Every refusal
says what is wrong in words safe to show the caller, and never quotes the credential.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict
from temporalio.api.common.v1 import Payload

from escalation.identity.keys import ALGORITHMS, KeyProblem, KeySet, build_set, has_signing_keys, load_set
from escalation.identity.keys import fetch_document_async as _fetch
from escalation.identity.keys import read_document as _read
from escalation.identity.settings import IDENTITY_PREFIX, IdentitySettings, is_url

log = logging.getLogger(__name__)

HEADER = "escalations-credential"
AUDIENCE = "escalations"
SYSTEM = "system"  # only the workflow itself acts as "system": no credential may name it
CUSTOMER = "customer"  # only with the case (and check-in) the customer answers for
MAX_TOKEN_BYTES = 8 * 1024
MAX_ID = 200  # a subject or service id longer than this is no rep's id
_SHOWN = 40  # at most this much of a value from the credential is quoted in a refusal


class Claims(BaseModel):
    """What a verified credential says."""

    model_config = ConfigDict(frozen=True)

    subject: str  # "sub": a rep id, a service id, or "customer"
    acting_service: str | None = None  # "act": {"sub": service}: the service acting for the rep in `subject`
    case_id: str | None = None  # "case": the case a customer credential answers for
    checkin: int | None = None  # "checkin": which check-in a customer credential answers
    key_id: str  # the "kid" that signed it
    expires_at: datetime  # UTC


class CredentialRefused(Exception):
    """A credential that cannot be accepted; str(err) is the reason, safe to show the caller (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shown(value: Any) -> str:
    """A value from a credential, quoted short and printable."""
    text = str(value)
    text = "".join(c if c.isprintable() else "?" for c in text[:_SHOWN]) + ("…" if len(text) > _SHOWN else "")
    return repr(text)


def _at(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} seconds since 1970"


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry its time zone")
    return now


def _is_number(value: Any) -> bool:
    """A time claim: a finite number (JSON may hold NaN and Infinity; an int may be too large for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID and value.isprintable() and value == value.strip()


def _header(token: Any) -> dict[str, Any]:
    """The JOSE header of a token shaped like a JWT, or a refusal (missing, too large, not a JWT)."""
    if not isinstance(token, str) or not token.strip():
        raise CredentialRefused(f"no credential: send a signed credential in the '{HEADER}' header")
    if len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
        raise CredentialRefused(f"the credential is larger than {MAX_TOKEN_BYTES // 1024} KiB")
    if token.count(".") != 2:
        raise CredentialRefused("the credential is not a JWT (header.payload.signature)")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise CredentialRefused("the credential is not a JWT (its header cannot be read)") from None
    return header


def _claims(payload: Any, kid: str) -> Claims:
    """The claims of a credential whose signature and times were checked (or, unverified, are trusted)."""
    if not isinstance(payload, dict):
        raise CredentialRefused("the credential's payload is not a JSON object")
    sub = payload.get("sub")
    if not _id(sub):
        raise CredentialRefused('the credential names no subject ("sub": a rep or service id)')
    if sub == SYSTEM:
        raise CredentialRefused(f"'{SYSTEM}' is reserved for the workflow itself; no credential may name it")
    act = payload.get("act")
    acting: str | None = None
    if act is not None:
        if not isinstance(act, dict) or not _id(act.get("sub")):
            raise CredentialRefused('the credential\'s "act" must be {"sub": <service id>}')
        acting = act["sub"]
        if acting in (SYSTEM, CUSTOMER):
            raise CredentialRefused(f"'{acting}' cannot act for anyone")
    case = payload.get("case")
    if case is not None and not _id(case):
        raise CredentialRefused('the credential\'s "case" is not a case id')
    checkin = payload.get("checkin")
    if checkin is not None and (not isinstance(checkin, int) or isinstance(checkin, bool) or checkin < 0):
        raise CredentialRefused('the credential\'s "checkin" is not a check-in number')
    if sub == CUSTOMER and case is None:
        raise CredentialRefused('a customer credential must name its case ("case")')
    exp: Any = payload.get("exp")
    if not _is_number(exp):
        raise CredentialRefused('the credential has no expiry ("exp"); every credential must expire')
    try:
        expires = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        raise CredentialRefused('the credential\'s expiry ("exp") is not a time') from None
    return Claims(subject=sub, acting_service=acting, case_id=case, checkin=checkin, key_id=kid, expires_at=expires)


def unverified_claims(token: str) -> Claims:
    """The claims of `token` without checking its signature or times: only for a token already verified (the
    replayed update handler reads what its validator verified). Raises CredentialRefused when unreadable."""
    header = _header(token)
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise CredentialRefused("the credential is not a JWT (its payload cannot be read)") from None
    return _claims(payload, str(header.get("kid", "")))


def header_payload(token: str) -> Payload:
    """The Temporal header value carrying `token`: a JSON string, as the default payload converter writes it."""
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(token).encode())


def token_from_header(payload: Payload | None) -> str:
    """The token a HEADER payload carries: a JSON string (json/plain) or the raw token (binary/plain)."""
    if payload is None:
        raise CredentialRefused(f"no credential: send a signed credential in the '{HEADER}' header")
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"json/plain":
        try:
            token = json.loads(payload.data)
        except (ValueError, RecursionError):
            token = None
        if not isinstance(token, str):
            raise CredentialRefused(f"the '{HEADER}' header must hold the credential as a JSON string")
        return token
    if encoding == b"binary/plain":
        try:
            return payload.data.decode("ascii")
        except UnicodeDecodeError:
            raise CredentialRefused(f"the '{HEADER}' header is not a JWT (not ASCII text)") from None
    raise CredentialRefused(
        f"the '{HEADER}' header must be a JSON string (json/plain) or raw bytes (binary/plain), "
        f"not {_shown(encoding.decode('ascii', 'replace'))}"
    )


class Signer:
    """Mints credentials with the first key of a signing set (or the key `kid` names)."""

    def __init__(
        self,
        keys: KeySet,
        *,
        kid: str | None = None,
        issuer: str | None = None,
        ttl: timedelta = timedelta(minutes=5),
        customer_ttl: timedelta = timedelta(minutes=2),
        max_lifetime: timedelta = timedelta(hours=12),
    ) -> None:
        key = keys.keys[0] if kid is None else keys.get(kid)
        if key is None:
            raise KeyProblem(f"{keys.source}: no signing key with key id {kid!r} (it has {', '.join(keys.kids)})")
        self.key = key
        self.issuer = issuer
        self.ttl = ttl
        self.customer_ttl = customer_ttl
        self.max_lifetime = max_lifetime

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> Signer | None:
        """The signer the settings name (`signing_keys`, else `keys` when that file holds secret or private
        keys); None when they name no signing key. Raises KeyProblem for a key file that cannot be used."""
        path = signing_path(settings)
        if path is None:
            return None
        return cls(
            load_set(path, signing=True),
            kid=settings.signing_kid,
            issuer=settings.issuer,
            ttl=settings.ttl,
            customer_ttl=settings.customer_ttl,
            max_lifetime=settings.max_lifetime,
        )

    @property
    def kid(self) -> str:
        return self.key.kid

    def mint(
        self,
        subject: str,
        *,
        acting_service: str | None = None,
        case_id: str | None = None,
        checkin: int | None = None,
        ttl: timedelta | None = None,
        now: datetime | None = None,
    ) -> str:
        """A credential for `subject` (a rep or service id, or "customer" with `case_id`), acting through
        `acting_service` if given, valid for `ttl` (default: the settings' ttl, customer_ttl for a customer).
        Raises ValueError for what no verifier would accept."""
        if not _id(subject):
            raise ValueError(f"subject must be a rep or service id (got {_shown(subject)})")
        if subject == SYSTEM:
            raise ValueError(f"'{SYSTEM}' is reserved for the workflow itself; no credential may name it")
        if subject == CUSTOMER and case_id is None:
            raise ValueError("a customer credential must name its case (case_id)")
        if acting_service is not None and (not _id(acting_service) or acting_service in (SYSTEM, CUSTOMER)):
            raise ValueError(f"acting_service must be a service id (got {_shown(acting_service)})")
        ttl = ttl if ttl is not None else self.customer_ttl if subject == CUSTOMER else self.ttl
        if not timedelta(0) < ttl <= self.max_lifetime:
            raise ValueError(f"ttl must be longer than zero and at most {self.max_lifetime} (got {ttl})")
        issued = int(_now(now).timestamp())
        claims: dict[str, Any] = {
            "sub": subject,
            "aud": AUDIENCE,
            "iat": issued,
            "nbf": issued,
            "exp": issued + max(int(ttl.total_seconds()), 1),
            "jti": uuid.uuid4().hex,
        }
        if self.issuer is not None:
            claims["iss"] = self.issuer
        if acting_service is not None:
            claims["act"] = {"sub": acting_service}
        if case_id is not None:
            claims["case"] = case_id
        if checkin is not None:
            claims["checkin"] = checkin
        return jwt.encode(claims, self.key.jwk.key, algorithm=self.key.algorithm, headers={"kid": self.key.kid})


def signing_path(settings: IdentitySettings) -> Path | None:
    if settings.signing_keys is not None:
        return settings.signing_keys
    keys_file = settings.keys_file
    if keys_file is not None and has_signing_keys(keys_file):
        return keys_file
    return None


class Verifier:
    """Verifies credentials against every key of a JWKS (so an old key verifies until it is removed)."""

    def __init__(
        self,
        keys: KeySet,
        *,
        source: str | Path | None = None,
        issuer: str | None = None,
        leeway: timedelta = timedelta(seconds=30),
        max_lifetime: timedelta = timedelta(hours=12),
        refresh_interval: timedelta = timedelta(minutes=5),
    ) -> None:
        self.keys = keys
        self.source = None if source is None else str(source)  # what `refresh` reads again; None: fixed keys
        self.issuer = issuer
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.refresh_interval = refresh_interval

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> Verifier:
        """The verifier for the settings' `keys` (a JWKS file, or a URL fetched now), else the public halves of
        `signing_keys`. Raises KeyProblem when neither is set or the keys cannot be used."""
        source: str | Path | None = settings.keys if settings.keys is not None else settings.signing_keys
        if source is None:
            raise KeyProblem(
                f"no keys to verify credentials with: set {IDENTITY_PREFIX}KEYS to a JWKS file or URL "
                "(`escalations credential new-key FILE` makes one)"
            )
        return cls(
            load_set(source),
            source=source,
            issuer=settings.issuer,
            leeway=settings.leeway,
            max_lifetime=settings.max_lifetime,
            refresh_interval=settings.jwks_refresh,
        )

    async def refresh(self) -> None:
        """Read the JWKS file or URL again. On failure the keys in use stay, and KeyProblem is raised."""
        if self.source is None:
            return
        if is_url(self.source):
            document = await _fetch(self.source)
        else:
            document = await asyncio.to_thread(_read, Path(self.source))
        keys = build_set(document, self.source, signing=False)
        if keys.kids != self.keys.kids:
            log.info("identity keys changed: %s (were %s)", ", ".join(keys.kids), ", ".join(self.keys.kids))
        self.keys = keys

    async def keep_fresh(self, stop: asyncio.Event | None = None) -> None:
        """Refresh every `refresh_interval` until `stop` is set (or the task is cancelled); a failed refresh is
        logged and the keys in use stay."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.refresh_interval.total_seconds())
                return
            except TimeoutError:
                pass
            try:
                await self.refresh()
            except KeyProblem as err:
                log.warning("identity keys not refreshed, the ones in use stay: %s", err)

    def verify(self, token: str, *, now: datetime | None = None) -> Claims:
        """The claims of `token` once its signature, audience, issuer and times check out; CredentialRefused
        with the reason otherwise. Synchronous, no I/O."""
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise CredentialRefused(
                f"the credential's algorithm {_shown(algorithm)} is not allowed ({', '.join(ALGORITHMS)})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise CredentialRefused('the credential names no key id ("kid") in its header')
        keys = self.keys  # one set for the whole check, even if a refresh replaces it meanwhile
        key = keys.get(kid)
        if key is None:
            why = keys.skipped.get(kid)
            raise CredentialRefused(
                f"key id {_shown(kid)} {why}"
                if why
                else f"unknown key id {_shown(kid)}: not among the keys we verify with"
            )
        if key.algorithm != algorithm:
            raise CredentialRefused(
                f"the credential's algorithm {algorithm} does not match key {_shown(kid)}, which is for {key.algorithm}"
            )
        try:
            payload = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[key.algorithm],
                options={
                    "verify_signature": True,
                    "verify_exp": False,  # times, audience and issuer are checked below, against `now`
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise CredentialRefused(f"bad signature: the credential was not signed by key {_shown(kid)}") from None
        except jwt.InvalidTokenError:
            raise CredentialRefused("the credential is not a JWT (its payload cannot be read)") from None
        self._check_audience_and_issuer(payload)
        self._check_times(payload, _now(now).timestamp())
        return _claims(payload, kid)

    def _check_audience_and_issuer(self, payload: dict[str, Any]) -> None:
        aud = payload.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if AUDIENCE not in audiences:
            raise CredentialRefused(
                f"wrong audience: the credential is for {_shown(aud)}, not '{AUDIENCE}'"
                if aud is not None
                else f"the credential names no audience (\"aud\": '{AUDIENCE}')"
            )
        if self.issuer is not None and payload.get("iss") != self.issuer:
            raise CredentialRefused(
                f"wrong issuer: the credential was issued by {_shown(payload.get('iss'))}, not {_shown(self.issuer)}"
            )

    def _check_times(self, payload: dict[str, Any], now: float) -> None:
        leeway = self.leeway.total_seconds()
        exp, nbf, iat = payload.get("exp"), payload.get("nbf"), payload.get("iat")
        if exp is None:
            raise CredentialRefused('the credential has no expiry ("exp"); every credential must expire')
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and not _is_number(value):
                raise CredentialRefused(f'the credential\'s "{name}" is not a time (seconds since 1970)')
        if now > exp + leeway:
            raise CredentialRefused(f"the credential expired at {_at(exp)}")
        if nbf is not None and now + leeway < nbf:
            raise CredentialRefused(f"the credential is not valid before {_at(nbf)}")
        if iat is not None and now + leeway < iat:
            raise CredentialRefused(f"the credential was issued in the future ({_at(iat)})")
        longest = self.max_lifetime.total_seconds() + leeway
        start = iat if iat is not None else nbf if nbf is not None else now
        if exp - start > longest or exp - now > longest:
            raise CredentialRefused(f"the credential lives longer than the {self.max_lifetime} allowed")
