"""The codec server over real HTTP on loopback (escalation.protect.server): Temporal's /encode and /decode for the
UI and the temporal CLI. No credential 401, a wrong origin refused, a credential without the permission 403, a
good one decodes and encodes; who decoded which case's workflow is logged, never the contents."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import structlog
from temporalio.api.common.v1 import Payload

from escalation.config import ConfigError, Settings
from escalation.identity import Signer
from escalation.protect import AesGcmCodec, CodecSettings, PayloadKeys, new_key
from escalation.protect.server import CodecServer, start
from tests.conftest import IDENTITY, TESTS, make_settings
from tests.servers import LOOPBACK, free_port

UI = "http://localhost:8233"
SECRET = b'{"name":"Dana Doe","email":"dana@example.org"}'


def settings_for(tmp_path: Path) -> Settings:
    keys = tmp_path / "codec.jwks"
    new_key(keys, kid="k1")
    roster = tmp_path / "roster.toml"
    roster.write_text(
        (TESTS / "roster.toml").read_text()
        + '\n[[services]]\nid = "privacy"\nname = "Privacy desk"\nmay = ["read_customer_data"]\n'
        + '\n[[services]]\nid = "crm"\nname = "Helpdesk"\nacts_for_reps = true\nmay = ["*"]\n'
    )
    return make_settings(tmp_path).model_copy(
        update={"codec": CodecSettings(keys=keys, ui_origins=[UI]), "roster_path": roster}
    )


def token(subject: str, **kw) -> str:
    signer = Signer.from_settings(IDENTITY)
    assert signer is not None
    return signer.mint(subject, **kw)


def body(payloads: list[Payload]) -> dict:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def read(answer: dict) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in answer["payloads"]
    ]


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Settings, AesGcmCodec]]:
    settings = settings_for(tmp_path)
    address = f"{LOOPBACK}:{free_port()}"
    runner, url = await start(CodecServer.from_settings(settings, address=address), address)
    codec = AesGcmCodec(PayloadKeys.load(settings.codec.keys), workflow_id="escalation-C-1001")
    try:
        yield url, settings, codec
    finally:
        await runner.cleanup()


async def sealed(codec: AesGcmCodec) -> list[Payload]:
    return await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=SECRET)])


async def test_no_credential_is_401_and_a_bad_one_too(served):
    url, _, codec = served
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/decode", json=body(await sealed(codec)))
        assert answer.status_code == 401 and "Bearer" in answer.headers["WWW-Authenticate"]
        assert b"Dana" not in answer.content
        forged = token("sam")[:-4] + "AAAA"
        answer = await http.post(
            f"{url}/decode", json=body(await sealed(codec)), headers={"Authorization": f"Bearer {forged}"}
        )
        assert answer.status_code == 401


async def test_only_the_ui_origin_may_call_it_from_a_browser(served):
    url, _, codec = served
    sam = {"Authorization": f"Bearer {token('sam')}"}
    async with httpx.AsyncClient() as http:
        preflight = await http.options(
            f"{url}/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == UI
        assert "X-Namespace" in preflight.headers["Access-Control-Allow-Headers"]
        evil = await http.options(f"{url}/decode", headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil.headers
        stolen = await http.post(
            f"{url}/decode", json=body(await sealed(codec)), headers=sam | {"Origin": "https://evil.example"}
        )
        assert stolen.status_code == 403 and b"Dana" not in stolen.content
        good = await http.post(f"{url}/decode", json=body(await sealed(codec)), headers=sam | {"Origin": UI})
        assert good.status_code == 200 and good.headers["Access-Control-Allow-Origin"] == UI


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ({"subject": "ana"}, 403),  # an agent
        ({"subject": "tara"}, 403),  # a team lead
        ({"subject": "sam"}, 200),  # a supervisor
        ({"subject": "maya"}, 200),  # a manager
        ({"subject": "roster"}, 403),  # a service the roster does not give read_customer_data
        ({"subject": "privacy"}, 200),  # a service it does
        ({"subject": "ana", "acting_service": "crm"}, 403),  # a service acting for an agent: the agent's right
        ({"subject": "sam", "acting_service": "crm"}, 200),
        ({"subject": "customer", "case_id": "C-1001"}, 403),  # a customer reads no case here
    ],
)
async def test_the_roster_decides_who_reads_customer_data(served, who, status):
    url, _, codec = served
    subject = who.pop("subject")
    headers = {"Authorization": f"Bearer {token(subject, **who)}", "X-Namespace": "default"}
    with structlog.testing.capture_logs() as logged:
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{url}/decode", json=body(await sealed(codec)), headers=headers)
    assert answer.status_code == status, answer.text
    if status != 200:
        assert b"Dana" not in answer.content
        return
    [plain] = read(answer.json())
    assert plain.data == SECRET and plain.metadata["encoding"] == b"json/plain"
    [line] = [e for e in logged if e["event"] == "payloads_decoded"]
    assert line["by"] == subject and line["workflow_ids"] == ["escalation-C-1001"] and line["payloads"] == 1
    assert "Dana" not in repr(logged)


async def test_encode_round_trips_and_another_namespace_is_refused(served):
    url, settings, codec = served
    headers = {"Authorization": f"Bearer {token('sam')}"}
    plain = Payload(metadata={"encoding": b"json/plain"}, data=SECRET)
    async with httpx.AsyncClient() as http:
        encoded = await http.post(f"{url}/encode", json=body([plain]), headers=headers)
        assert encoded.status_code == 200
        [sealed_back] = read(encoded.json())
        assert sealed_back.metadata["encoding"] == b"binary/encrypted" and b"Dana" not in sealed_back.data
        assert (await codec.decode([sealed_back])) == [plain]
        other = await http.post(
            f"{url}/decode", json=body([sealed_back]), headers=headers | {"X-Namespace": "someone-else"}
        )
        assert other.status_code == 403
        junk = await http.post(f"{url}/decode", content=b"not json", headers=headers)
        assert junk.status_code == 400
    # Not the key it knows: a clear refusal naming the key id.
    other_keys = settings.codec.keys.with_name("other.jwks")
    new_key(other_keys, kid="elsewhere")
    [strange] = await AesGcmCodec(PayloadKeys.load(other_keys)).encode([plain])
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/decode", json=body([strange]), headers=headers)
    assert answer.status_code == 422 and "elsewhere" in answer.json()["error"]


async def test_loopback_without_a_credential_only_when_asked_and_only_on_loopback(tmp_path):
    settings = settings_for(tmp_path)
    with pytest.raises(ConfigError, match="loopback"):
        CodecServer.from_settings(settings, address="0.0.0.0:8234", allow_loopback_anonymous=True)
    address = f"{LOOPBACK}:{free_port()}"
    runner, url = await start(
        CodecServer.from_settings(settings, address=address, allow_loopback_anonymous=True), address
    )
    codec = AesGcmCodec(PayloadKeys.load(settings.codec.keys))
    try:
        with structlog.testing.capture_logs() as logged:
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"{url}/decode", json=body(await sealed(codec)), headers={"Origin": UI})
                assert answer.status_code == 200 and read(answer.json())[0].data == SECRET
                # A credential given is still checked: an agent stays refused.
                refused = await http.post(
                    f"{url}/decode", json=body(await sealed(codec)), headers={"Authorization": f"Bearer {token('ana')}"}
                )
                assert refused.status_code == 403
        assert [e["by"] for e in logged if e["event"] == "payloads_decoded"] == ["anonymous (loopback)"]
    finally:
        await runner.cleanup()
    assert json.dumps(body([])) == '{"payloads": []}'


def test_a_reps_own_read_customer_data_overrides_their_tier():
    from escalation.domain.principal import Principal
    from escalation.domain.roster import Roster

    roster = Roster.model_validate(
        {
            "reps": [
                {"id": "ana", "name": "Ana", "tier": "agent", "read_customer_data": True},
                {"id": "sam", "name": "Sam", "tier": "supervisor", "read_customer_data": False},
                {"id": "sol", "name": "Sol", "tier": "supervisor"},
            ],
            "services": [{"id": "bi", "name": "Reporting", "may": ["*"]}],
        }
    )

    def refusal(who: str, kind: str = "rep") -> str | None:
        return roster.customer_data_refusal(Principal(id=who, kind=kind, may=["*"] if kind == "service" else []))

    assert refusal("ana") is None and refusal("sol") is None
    assert "may not read customer data" in (refusal("sam") or "")
    assert "read_customer_data" in (refusal("bi", "service") or "")  # "*" is every command, not this
    with pytest.raises(ValueError, match="unknown command"):
        Roster.model_validate({"services": [{"id": "x", "name": "X", "may": ["read_everything"]}]})
