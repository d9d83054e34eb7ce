"""Credentials (escalation.identity): minting, verifying and every way a credential is refused; keys as a JWKS
file or URL, rotation, the 0600 rule for secret key files; the header format other SDKs write."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from escalation.config import ConfigError, Settings
from escalation.identity import (
    AUDIENCE,
    HEADER,
    Claims,
    CredentialRefused,
    IdentitySettings,
    KeyProblem,
    Signer,
    Verifier,
    header_payload,
    new_key,
    token_from_header,
    unverified_claims,
)
from escalation.identity.keys import build_set, load_set, public_jwk, write_public
from tests.servers import LOOPBACK

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def keyfile(folder: Path, algorithm: str = "HS256", name: str = "identity.jwks", **kw: Any) -> Path:
    path = folder / name
    new_key(path, algorithm=algorithm, **kw)
    return path


def pair(folder: Path, algorithm: str = "HS256", **settings: Any) -> tuple[Signer, Verifier]:
    path = keyfile(folder, algorithm)
    ids = IdentitySettings(keys=str(path), **settings)
    signer = Signer.from_settings(ids)
    assert signer is not None
    return signer, Verifier.from_settings(ids)


def jwks(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["keys"]


def secret_of(path: Path, index: int = 0) -> tuple[str, bytes]:
    key = jwks(path)[index]
    return key["kid"], base64.urlsafe_b64decode(key["k"] + "=" * (-len(key["k"]) % 4))


def claims(**extra: Any) -> dict[str, Any]:
    issued = int(NOW.timestamp())
    return {"sub": "ana", "aud": AUDIENCE, "iat": issued, "exp": issued + 300} | extra


def refused(verifier: Verifier, token: str, *, now: datetime = NOW) -> str:
    with pytest.raises(CredentialRefused) as caught:
        verifier.verify(token, now=now)
    reason = str(caught.value)
    assert reason == caught.value.reason
    assert not any(len(part) > 8 and part in reason for part in [token, *token.split(".")])  # never the token
    return reason


# ----- what a credential says


def test_a_minted_credential_verifies_with_what_it_says(tmp_path):
    signer, verifier = pair(tmp_path)
    token = signer.mint("ana", now=NOW)
    assert verifier.verify(token, now=NOW) == Claims(
        subject="ana", key_id=signer.kid, expires_at=NOW + timedelta(minutes=5)
    )
    acting = verifier.verify(signer.mint("ana", acting_service="crm", now=NOW), now=NOW)
    assert (acting.subject, acting.acting_service) == ("ana", "crm")
    customer = verifier.verify(signer.mint("customer", case_id="C-1", checkin=2, now=NOW), now=NOW)
    assert (customer.subject, customer.case_id, customer.checkin) == ("customer", "C-1", 2)
    assert customer.expires_at == NOW + timedelta(minutes=2)  # customer_ttl


def test_the_payload_is_standard_jwt_claims(tmp_path):
    signer, _ = pair(tmp_path, issuer="https://crm.example")
    token = signer.mint("ana", acting_service="crm", now=NOW)
    header = jwt.get_unverified_header(token)
    body = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "HS256", "typ": "JWT", "kid": signer.kid}
    assert body["sub"] == "ana" and body["aud"] == AUDIENCE and body["iss"] == "https://crm.example"
    assert body["act"] == {"sub": "crm"} and body["exp"] - body["iat"] == 300 and body["jti"]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_asymmetric_keys_sign_with_the_private_file_and_verify_with_the_public_jwks(tmp_path, algorithm):
    private = keyfile(tmp_path, algorithm, name="signing.jwks")
    public = tmp_path / "public.jwks"
    write_public(public, jwks(private))
    assert oct(public.stat().st_mode & 0o777) == "0o644" and "d" not in jwks(public)[0]
    signer = Signer.from_settings(IdentitySettings(keys=str(public), signing_keys=private))
    assert signer is not None
    verifier = Verifier.from_settings(IdentitySettings(keys=str(public)))
    assert Signer.from_settings(IdentitySettings(keys=str(public))) is None  # public keys cannot sign
    token = signer.mint("ben", now=NOW)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert verifier.verify(token, now=NOW).subject == "ben"
    # A verifier given only the private file verifies with its public half.
    assert Verifier.from_settings(IdentitySettings(signing_keys=private)).verify(token, now=NOW).subject == "ben"


def test_settings_without_keys_neither_sign_nor_verify(tmp_path):
    assert Signer.from_settings(IdentitySettings()) is None
    with pytest.raises(KeyProblem, match="ESCALATIONS_IDENTITY__KEYS"):
        Verifier.from_settings(IdentitySettings())


# ----- refusals


def test_a_forged_signature_is_refused(tmp_path):
    _, verifier = pair(tmp_path)
    kid, _ = secret_of(tmp_path / "identity.jwks")
    forged = jwt.encode(claims(), b"x" * 64, algorithm="HS256", headers={"kid": kid})
    assert "bad signature" in refused(verifier, forged)
    # Another file's key under the same kid is a forgery too.
    other = keyfile(tmp_path, name="other.jwks", kid=kid)
    forger = Signer.from_settings(IdentitySettings(keys=str(other)))
    assert forger is not None
    assert "bad signature" in refused(verifier, forger.mint("ana", now=NOW))


def test_expiry_has_a_small_leeway_and_then_is_refused(tmp_path):
    signer, verifier = pair(tmp_path)
    token = signer.mint("ana", now=NOW)
    assert verifier.verify(token, now=NOW + timedelta(minutes=5, seconds=30)).subject == "ana"
    assert "expired at 2026-11-29T10:05:00Z" in refused(verifier, token, now=NOW + timedelta(minutes=5, seconds=31))


def test_a_credential_not_yet_valid_is_refused(tmp_path):
    signer, verifier = pair(tmp_path)
    token = signer.mint("ana", now=NOW + timedelta(minutes=2))
    assert "not valid before 2026-11-29T10:02:00Z" in refused(verifier, token)
    kid, key = secret_of(tmp_path / "identity.jwks")
    future = jwt.encode(
        {k: v for k, v in claims(iat=int(NOW.timestamp()) + 120).items()}, key, algorithm="HS256", headers={"kid": kid}
    )
    assert "issued in the future" in refused(verifier, future)


def test_wrong_audience_and_wrong_issuer_are_refused(tmp_path):
    _, verifier = pair(tmp_path)
    kid, key = secret_of(tmp_path / "identity.jwks")

    def sign(body: dict[str, Any]) -> str:
        return jwt.encode(body, key, algorithm="HS256", headers={"kid": kid})

    assert "wrong audience" in refused(verifier, sign(claims(aud="billing")))
    assert "no audience" in refused(verifier, sign({k: v for k, v in claims().items() if k != "aud"}))
    assert verifier.verify(sign(claims(aud=["billing", AUDIENCE])), now=NOW).subject == "ana"
    strict = Verifier.from_settings(IdentitySettings(keys=str(tmp_path / "identity.jwks"), issuer="https://idp"))
    assert "wrong issuer" in refused(strict, sign(claims(iss="https://evil")))
    assert "wrong issuer" in refused(strict, sign(claims()))
    assert strict.verify(sign(claims(iss="https://idp")), now=NOW).subject == "ana"


def test_an_unknown_key_id_or_none_is_refused(tmp_path):
    _, verifier = pair(tmp_path)
    _, key = secret_of(tmp_path / "identity.jwks")
    assert "unknown key id 'nope'" in refused(verifier, jwt.encode(claims(), key, headers={"kid": "nope"}))
    assert "no key id" in refused(verifier, jwt.encode(claims(), key))


def test_algorithm_none_is_refused(tmp_path):
    _, verifier = pair(tmp_path)
    kid, _ = secret_of(tmp_path / "identity.jwks")
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": kid})
    assert "algorithm 'none' is not allowed" in refused(verifier, unsigned)
    # Also with an empty signature grafted onto a real header.
    assert "not allowed" in refused(verifier, unsigned.rstrip(".") + ".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_an_hs256_credential_signed_with_an_rsa_public_key_is_refused(tmp_path):
    """Algorithm confusion: the public key's bytes used as an HMAC secret under the RSA key's kid."""
    private = keyfile(tmp_path, "RS256")
    public = tmp_path / "public.jwks"
    write_public(public, jwks(private))
    verifier = Verifier.from_settings(IdentitySettings(keys=str(public)))
    rsa = jwt.PyJWK(jwks(public)[0]).key
    kid = jwks(public)[0]["kid"]
    for secret in (
        rsa.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        rsa.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwks(public)[0]).encode(),
    ):
        signing_input = (
            f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(claims()).encode())}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        reason = refused(verifier, f"{signing_input}.{_b64(mac)}")
        assert f"algorithm HS256 does not match key '{kid}', which is for RS256" in reason


def test_a_key_is_used_only_with_its_declared_algorithm(tmp_path):
    path = tmp_path / "keys.jwks"
    new_key(path, kid="hs")
    document = json.loads(path.read_text())
    document["keys"].append({**public_jwk(document["keys"][0]), "kid": "old", "alg": "HS512"})
    path.write_text(json.dumps(document))
    verifier = Verifier.from_settings(IdentitySettings(keys=str(path)))
    _, key = secret_of(path)
    reason = refused(verifier, jwt.encode(claims(), key, algorithm="HS256", headers={"kid": "old"}))
    assert "key id 'old' uses algorithm 'HS512', which is not allowed" in reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"sub": "system"}, "'system' is reserved for the workflow itself"),
        ({"sub": "customer"}, "a customer credential must name its case"),
        ({"sub": ""}, "names no subject"),
        ({"sub": None}, "names no subject"),
        ({"sub": 7}, "names no subject"),
        ({"sub": "ana\n"}, "names no subject"),
        ({"exp": None}, "no expiry"),
        ({"exp": "soon"}, '"exp" is not a time'),
        ({"exp": int(NOW.timestamp()) + 13 * 3600}, "lives longer than the 1:00:00 allowed"),
        ({"iat": int(NOW.timestamp()) - 13 * 3600}, "lives longer than the 1:00:00 allowed"),
        ({"act": "crm"}, '"act" must be {"sub": <service id>}'),
        ({"act": {"sub": "system"}}, "'system' cannot act for anyone"),
        ({"sub": "customer", "case": "C-1", "checkin": "two"}, '"checkin" is not a check-in number'),
    ],
)
def test_claims_that_are_refused(tmp_path, body, reason):
    _, verifier = pair(tmp_path)
    kid, key = secret_of(tmp_path / "identity.jwks")
    full = {k: v for k, v in (claims() | body).items() if v is not None}
    assert reason in refused(verifier, jwt.encode(full, key, algorithm="HS256", headers={"kid": kid}))


def test_missing_oversized_and_malformed_credentials_are_refused(tmp_path):
    _, verifier = pair(tmp_path)
    assert "no credential" in refused(verifier, "")
    assert "no credential" in refused(verifier, "   ")
    assert "not a JWT" in refused(verifier, "eyJhbGciOiJIUzI1NiJ9")
    assert "not a JWT" in refused(verifier, "a.b.c")
    kid, key = secret_of(tmp_path / "identity.jwks")
    big = jwt.encode(claims(note="x" * 9000), key, algorithm="HS256", headers={"kid": kid})
    assert "larger than 8 KiB" in refused(verifier, big)
    with pytest.raises(CredentialRefused, match="no credential"):
        verifier.verify(None, now=NOW)  # type: ignore[arg-type]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_any_tampered_byte_is_refused(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("tamper")
    signer, verifier = pair(folder)
    token = signer.mint("ana", acting_service="crm", now=NOW)
    parts = [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]
    which = data.draw(st.integers(0, 2), label="segment")
    at = data.draw(st.integers(0, len(parts[which]) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    changed = bytearray(parts[which])
    changed[at] ^= 1 << bit
    parts[which] = bytes(changed)
    tampered = ".".join(_b64(p) for p in parts)
    refused(verifier, tampered)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_is_refused_without_being_quoted(text):
    verifier = Verifier(build_set({"keys": [{"kty": "oct", "kid": "k", "k": _b64(b"s" * 32)}]}, "test", signing=False))
    with pytest.raises(CredentialRefused) as caught:
        verifier.verify(text, now=NOW)
    assert len(text) < 8 or text not in str(caught.value)


# ----- minting refuses what no verifier would take


def test_minting_refuses_reserved_and_unbounded_credentials(tmp_path):
    signer, _ = pair(tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        signer.mint("system")
    with pytest.raises(ValueError, match="must name its case"):
        signer.mint("customer")
    with pytest.raises(ValueError, match="at most 1:00:00"):
        signer.mint("ana", ttl=timedelta(hours=2))
    with pytest.raises(ValueError, match="service id"):
        signer.mint("ana", acting_service="system")


def test_unverified_claims_reads_an_expired_credential(tmp_path):
    signer, _ = pair(tmp_path)
    token = signer.mint("ana", acting_service="crm", now=NOW - timedelta(days=30))
    assert unverified_claims(token).acting_service == "crm"
    with pytest.raises(CredentialRefused):
        unverified_claims("not a token")


# ----- keys: files, modes, rotation, URLs


def test_a_secret_key_file_others_can_read_is_refused(tmp_path):
    path = keyfile(tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    os.chmod(path, 0o644)
    for build in (Signer.from_settings, Verifier.from_settings):
        with pytest.raises(KeyProblem) as caught:
            build(IdentitySettings(keys=str(path)))
        assert str(path) in str(caught.value) and f"chmod 600 {path}" in str(caught.value)
        assert json.loads(path.read_text())["keys"][0]["k"] not in str(caught.value)
    os.chmod(path, 0o640)
    with pytest.raises(KeyProblem, match="mode 0640"):
        Verifier.from_settings(IdentitySettings(keys=str(path)))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not a JWKS"),
        ('{"keys": {}}', "must be a list"),
        ("[]", "not a JWKS"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}', 'no key id ("kid")'),
        ('{"keys": [{"kty": "oct", "kid": "short", "k": "c2hvcnQ"}]}', "shorter than 256 bits"),
        (
            '{"keys": [{"kty": "RSA", "kid": "r", "use": "enc", "n": "x", "e": "AQAB"}]}',
            "no key we can verify with (r is for enc, not for signatures)",
        ),
    ],
)
def test_unusable_key_files_are_named(tmp_path, content, problem):
    path = tmp_path / "bad.jwks"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyProblem) as caught:
        Verifier.from_settings(IdentitySettings(keys=str(path)))
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_a_missing_key_file_is_named(tmp_path):
    with pytest.raises(KeyProblem, match="key file not found"):
        Verifier.from_settings(IdentitySettings(keys=str(tmp_path / "nowhere.jwks")))


async def test_rotation_old_kid_verifies_until_removed_and_new_credentials_use_the_new_kid(tmp_path):
    path = keyfile(tmp_path, kid="2026-01")
    ids = IdentitySettings(keys=str(path))
    verifier = Verifier.from_settings(ids)
    old_signer = Signer.from_settings(ids)
    assert old_signer is not None
    old = old_signer.mint("ana", now=NOW)

    new_key(path, kid="2026-02")  # rotate: the new key goes first
    assert [k["kid"] for k in jwks(path)] == ["2026-02", "2026-01"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    signer = Signer.from_settings(ids)
    assert signer is not None and signer.kid == "2026-02"
    new = signer.mint("ana", now=NOW)
    assert jwt.get_unverified_header(new)["kid"] == "2026-02"
    assert "unknown key id '2026-02'" in refused(verifier, new)  # until the verifier reads the file again
    await verifier.refresh()
    assert verifier.verify(new, now=NOW).key_id == "2026-02"
    assert verifier.verify(old, now=NOW).key_id == "2026-01"  # the old key still verifies

    new_key(path, kid="2026-03", keep=2)  # the oldest is dropped
    await verifier.refresh()
    assert "unknown key id '2026-01'" in refused(verifier, old)
    assert verifier.verify(new, now=NOW).subject == "ana"
    # A configured kid signs instead of the first.
    pinned = Signer.from_settings(IdentitySettings(keys=str(path), signing_kid="2026-02"))
    assert pinned is not None and pinned.kid == "2026-02"
    with pytest.raises(KeyProblem, match="no signing key with key id 'gone'"):
        Signer.from_settings(IdentitySettings(keys=str(path), signing_kid="gone"))


async def test_a_refresh_that_fails_keeps_the_keys_in_use(tmp_path):
    signer, verifier = pair(tmp_path)
    token = signer.mint("ana", now=NOW)
    (tmp_path / "identity.jwks").write_text("broken")
    with pytest.raises(KeyProblem):
        await verifier.refresh()
    assert verifier.verify(token, now=NOW).subject == "ana"


class _JwksServer:
    """A JWKS on a loopback HTTP server in a thread (the verifier fetches it synchronously when built)."""

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
        self.status = 200
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    with _JwksServer() as server:
        yield server


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
async def test_a_jwks_url_verifies_and_a_refresh_picks_up_a_new_key(tmp_path, jwks_server, algorithm):
    private = keyfile(tmp_path, algorithm, name="signing.jwks", kid="one")
    jwks_server.document = {"keys": [public_jwk(k) for k in jwks(private)]}
    verifier = Verifier.from_settings(IdentitySettings(keys=jwks_server.url))
    assert jwks_server.fetches == 1
    first = Signer.from_settings(IdentitySettings(signing_keys=private))
    assert first is not None
    assert verifier.verify(first.mint("ana", now=NOW), now=NOW).subject == "ana"
    assert jwks_server.fetches == 1  # verifying fetches nothing

    new_key(private, algorithm=algorithm, kid="two")
    second = Signer.from_settings(IdentitySettings(signing_keys=private))
    assert second is not None and second.kid == "two"
    token = second.mint("ben", now=NOW)
    assert "unknown key id 'two'" in refused(verifier, token)
    jwks_server.document = {"keys": [public_jwk(k) for k in jwks(private)]}
    await verifier.refresh()
    assert verifier.verify(token, now=NOW).key_id == "two"

    jwks_server.status = 503
    with pytest.raises(KeyProblem, match="HTTP 503"):
        await verifier.refresh()
    assert verifier.verify(token, now=NOW).key_id == "two"  # the keys in use stay


def test_a_jwks_url_must_hold_public_keys_only(tmp_path, jwks_server):
    jwks_server.document = {"keys": jwks(keyfile(tmp_path))}
    with pytest.raises(KeyProblem, match="public keys only"):
        Verifier.from_settings(IdentitySettings(keys=jwks_server.url))
    with pytest.raises(KeyProblem, match="signing keys come from a file"):
        load_set(jwks_server.url, signing=True)


def test_an_unreachable_jwks_url_is_named(tmp_path):
    from tests.servers import free_port

    url = f"http://{LOOPBACK}:{free_port()}/jwks.json"
    with pytest.raises(KeyProblem, match="cannot fetch the JWKS"):
        Verifier.from_settings(IdentitySettings(keys=url))


# ----- the header


def test_the_header_is_a_json_string_as_every_sdk_writes_it(tmp_path):
    signer, _ = pair(tmp_path)
    token = signer.mint("ana", now=NOW)
    payload = header_payload(token)
    assert payload.metadata["encoding"] == b"json/plain" and payload.data == json.dumps(token).encode()
    converter = DataConverter.default.payload_converter
    assert converter.from_payload(payload, str) == token
    assert token_from_header(converter.to_payload(token)) == token
    assert token_from_header(Payload(metadata={"encoding": b"binary/plain"}, data=token.encode())) == token


@pytest.mark.parametrize(
    "payload",
    [
        None,
        Payload(metadata={"encoding": b"json/plain"}, data=b"42"),
        Payload(metadata={"encoding": b"json/plain"}, data=b"{not json"),
        Payload(metadata={"encoding": b"json/protobuf"}, data=b"{}"),
        Payload(metadata={}, data=b"x"),
        Payload(metadata={"encoding": b"binary/plain"}, data=b"\xff\xfe"),
    ],
)
def test_a_header_that_holds_no_token_is_refused_naming_the_header(payload):
    with pytest.raises(CredentialRefused) as caught:
        token_from_header(payload)
    assert f"'{HEADER}'" in str(caught.value)


# ----- settings


def test_identity_settings_come_from_escalations_identity_variables(tmp_path):
    env = {
        "ESCALATIONS_IDENTITY__KEYS": "https://idp.example/.well-known/jwks.json",
        "ESCALATIONS_IDENTITY__SIGNING_KEYS": str(tmp_path / "signing.jwks"),
        "ESCALATIONS_IDENTITY__ISSUER": "https://crm.example",
        "ESCALATIONS_IDENTITY__TTL": "10m",
        "ESCALATIONS_IDENTITY__CUSTOMER_TTL": "1m",
        "ESCALATIONS_IDENTITY__LEEWAY": "5s",
        "ESCALATIONS_IDENTITY__MAX_LIFETIME": "1h",
        "ESCALATIONS_IDENTITY__JWKS_REFRESH": "1m",
        "ESCALATIONS_IDENTITY__ACTING_SERVICE": "crm",
        "ESCALATIONS_CREDENTIAL": "eyJ.token.here",
    }
    ids = Settings.from_env(env).identity
    assert ids.keys == env["ESCALATIONS_IDENTITY__KEYS"] and ids.keys_file is None
    assert ids.signing_keys == tmp_path / "signing.jwks" and ids.issuer == "https://crm.example"
    assert (ids.ttl, ids.customer_ttl, ids.leeway, ids.max_lifetime, ids.jwks_refresh) == (
        timedelta(minutes=10),
        timedelta(minutes=1),
        timedelta(seconds=5),
        timedelta(hours=1),
        timedelta(minutes=1),
    )
    assert ids.acting_service == "crm" and ids.credential_token() == "eyJ.token.here"
    defaults = Settings.from_env({"ESCALATIONS_DATA_DIR": str(tmp_path)}).identity
    assert (defaults.keys, defaults.ttl, defaults.customer_ttl, defaults.leeway, defaults.max_lifetime) == (
        None,
        timedelta(minutes=5),
        timedelta(minutes=2),
        timedelta(seconds=30),
        timedelta(hours=1),
    )
    assert Settings().identity == IdentitySettings()  # constructed in code: nothing from the environment


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ESCALATIONS_IDENTITY__TTL": "13h"},
            "identity.ttl (ESCALATIONS_IDENTITY__TTL): must be at most max_lifetime",
        ),
        ({"ESCALATIONS_IDENTITY__LEEWAY": "soon"}, "identity.leeway (ESCALATIONS_IDENTITY__LEEWAY)"),
        ({"ESCALATIONS_IDENTITY__KEYS": "ftp://x/jwks"}, "identity.keys (ESCALATIONS_IDENTITY__KEYS)"),
        ({"ESCALATIONS_IDENTITY__JWKS_REFRESH": "0s"}, "must be longer than zero"),
    ],
)
def test_bad_identity_settings_name_the_variable_and_never_the_credential(env, message):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env | {"ESCALATIONS_CREDENTIAL": "eyJsecret.token.value"})
    assert message in str(caught.value)
    assert "eyJsecret" not in str(caught.value)


# ----- the embedded default: `make run`'s dev key


def test_make_run_generates_the_dev_key_once_and_everything_next_to_it_uses_it(tmp_path, monkeypatch):
    from escalation.dev.devrun import with_dev_key

    monkeypatch.delenv("ESCALATIONS_IDENTITY__KEYS", raising=False)
    data = tmp_path / "data"
    settings = with_dev_key(Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}))
    path = data / "identity.jwks"
    assert settings.identity.keys == str(path.resolve())
    assert oct(path.stat().st_mode & 0o777) == "0o600" and jwks(path)[0]["kid"].startswith("dev-")
    assert os.environ["ESCALATIONS_IDENTITY__KEYS"] == str(path.resolve())
    kid = jwks(path)[0]["kid"]
    again = with_dev_key(Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}))  # a restart keeps the key
    assert jwks(path)[0]["kid"] == kid and len(jwks(path)) == 1
    # The CLI and a worker beside it find the key in the data directory without any setting.
    beside = Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}).identity
    assert beside.keys == str(data / "identity.jwks")
    signer = Signer.from_settings(beside)
    assert signer is not None and Verifier.from_settings(again.identity).verify(signer.mint("ana")).subject == "ana"
    # Keys that are set win over the dev key.
    other = keyfile(tmp_path, name="prod.jwks")
    assert Settings.from_env(
        {"ESCALATIONS_DATA_DIR": str(data), "ESCALATIONS_IDENTITY__KEYS": str(other)}
    ).identity.keys == str(other)
    # A dev key others can read stops `make run` before anything starts.
    os.chmod(path, 0o644)
    with pytest.raises(KeyProblem, match="chmod 600"):
        with_dev_key(Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}))


_TIMES = st.one_of(
    st.none(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([True, "1795946400", [], {}]),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(exp=_TIMES, nbf=_TIMES, iat=_TIMES)
def test_any_time_claims_are_verified_or_refused_never_a_crash(tmp_path_factory, exp, nbf, iat):
    folder = tmp_path_factory.mktemp("times")
    _, verifier = pair(folder)
    kid, key = secret_of(folder / "identity.jwks")
    body = {"sub": "ana", "aud": AUDIENCE} | {
        name: value for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)) if value is not None
    }
    token = jwt.encode(body, key, algorithm="HS256", headers={"kid": kid})
    try:
        claims = verifier.verify(token, now=NOW)
    except CredentialRefused:
        return
    assert NOW - timedelta(seconds=30) <= claims.expires_at <= NOW + timedelta(hours=1, seconds=30)


def test_a_jwks_url_is_https_unless_it_is_on_this_machine():
    with pytest.raises(ValueError, match="must be https://"):
        IdentitySettings(keys="http://idp.example.com/.well-known/jwks.json")
    assert IdentitySettings(keys="http://127.0.0.1:8080/jwks.json").keys == "http://127.0.0.1:8080/jwks.json"
    assert IdentitySettings(keys="https://idp.example.com/jwks.json").keys_file is None
