"""Customer data protection on a real dev server: a worker and a client of their own with the AES-256-GCM payload
codec (the rest of the suite keeps payloads plain). The raw history holds no name, email, phone, summary or note;
the project client reads it all back; keys rotate; a payload under an unknown key is a clear error naming its key
id; search attributes, summary, details, log lines and files hold no personal data; erasure leaves the case running
with the details gone, and is refused for a rep without the permission."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from escalation.client import EscalationClient
from escalation.client.converter import data_converter_for, header_codec
from escalation.client.errors import InvalidArgument, NotPermitted
from escalation.config import Settings
from escalation.domain.rules.erasure import TOMBSTONE
from escalation.identity import ensure_key as ensure_identity_key
from escalation.protect import AesGcmCodec, CodecSettings, PayloadKeyProblem, PayloadKeys, new_key
from escalation.protect.codec import ENCODING, KEY_ID, WORKFLOW_ID
from tests.cases import case_input, eventually
from tests.conftest import IDENTITY_KEYS, make_settings, signing
from worker import build_worker
from workflows import Escalation
from workflows.replay import replay_interceptors

SECRETS = [
    "Dana Doe",
    "dana@example.org",
    "+49 30 1234567",
    "Charged twice for the November invoice",
    "Refund of the duplicate charge",
    "lives above the bakery",
]


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message (history events, their maps and lists)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


def leaked(blob: bytes | str) -> list[str]:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    return [s for s in SECRETS if s in text]


@dataclass
class Protected:
    settings: Settings
    keys: Path
    client: Client
    esc: EscalationClient
    plain: Client  # the suite's own client: what anyone with the namespace (or the database) reads


async def codec_client(env: WorkflowEnvironment, settings: Settings) -> Client:
    return await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=(converter := data_converter_for(settings)),
        header_codec_behavior=header_codec(converter),
        interceptors=signing(),
    )


@pytest_asyncio.fixture
async def protected(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Protected]:
    keys = tmp_path / "codec.jwks"
    new_key(keys, kid="k1")
    settings = make_settings(tmp_path, "codec").model_copy(update={"codec": CodecSettings(keys=keys, enabled=True)})
    client = await codec_client(env, settings)
    async with build_worker(client, settings):
        yield Protected(settings, keys, client, EscalationClient(client, task_queue=settings.task_queue), env.client)


def customer_case(**overrides):
    return case_input(
        "standard",
        **{"customer": {**case_input().customer.model_dump(), "id": f"cust-{uuid.uuid4().hex[:8]}"}, **overrides},
    )


async def owned_by(esc: EscalationClient, case_id: str) -> str:
    async def owner() -> str | None:
        s = await esc.case(case_id).state()
        return s.owner.id if s.owner else (s.pending_assignment.rep.id if s.pending_assignment else None)

    return await eventually(owner)


async def test_the_raw_history_holds_no_personal_data_and_the_project_client_reads_it_all(protected, tmp_path):
    p = protected
    inp = customer_case()
    with structlog.testing.capture_logs() as logged:
        case = await p.esc.open(inp)
        await owned_by(p.esc, inp.case_id)
        await case.add_note({"actor": "sam", "text": "lives above the bakery"})
        await eventually(lambda: _events_written(p.settings))
    handle = p.plain.get_workflow_handle(case.workflow_id)
    history = await handle.fetch_history()
    raw = b"".join(e.SerializeToString() for e in history.events)
    assert inp.customer.id.encode() in raw  # the search attribute is plain, so the check does read plain text
    assert not leaked(raw), "personal data in the raw history"
    found = [pl for e in history.events for pl in payloads_in(e)]
    encrypted = [pl for pl in found if pl.metadata.get("encoding") == ENCODING]
    plain = [pl for pl in found if pl.metadata.get("encoding") != ENCODING]
    assert encrypted and {pl.metadata[KEY_ID] for pl in encrypted} == {b"k1"}
    # Payloads name their case's workflow (headers are encoded without it): the codec server logs whose they are.
    assert {pl.metadata.get(WORKFLOW_ID) for pl in encrypted} - {None} == {case.workflow_id.encode()}
    # The summary the UI shows is a payload like any other: encrypted too.
    assert history.events[0].user_metadata.summary.metadata["encoding"] == ENCODING
    # Only search attributes stay plain (ids and codes); the credential header is encrypted too.
    assert not leaked(b"".join(pl.SerializeToString() for pl in plain))
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.header.fields["escalations-credential"].metadata["encoding"] == ENCODING
    assert b"eyJ" not in raw  # no JWT to lift from the history

    # The project client (with the codec) reads everything back.
    state = await case.state()
    assert state.input.customer.name == "Dana Doe" and state.notes[-1].detail["text"] == "lives above the bakery"
    assert (await case.brief()).customer.startswith("Dana Doe")

    # What the UI shows without the codec server: summary, details and search attributes hold no personal data.
    desc = await p.client.get_workflow_handle(case.workflow_id).describe()
    shown = [await desc.static_summary() or "", await desc.static_details() or ""]
    metadata = await p.client.get_workflow_handle(case.workflow_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    shown.append(metadata.current_details)
    shown += [str(pair.value) for pair in desc.typed_search_attributes]
    assert inp.case_id in shown[0] and not leaked("\n".join(shown)), shown

    # Nothing the worker logged holds personal data.
    assert logged and not leaked(repr(logged))
    # Files with customer data are readable by the worker's user alone.
    for path in (p.settings.outbox_path, p.settings.events_path):
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # The history replays with the codec.
    converter = data_converter_for(p.settings)
    replayer = Replayer(
        workflows=[Escalation],
        data_converter=converter,
        header_codec_behavior=header_codec(converter),
        interceptors=replay_interceptors(),
    )
    await replayer.replay_workflow(history)


async def _events_written(settings: Settings) -> bool:
    return settings.events_path.exists() and settings.outbox_path.exists()


async def test_keys_rotate_old_ids_still_decrypt_and_new_payloads_use_the_new_key(env, protected):
    p = protected
    inp = customer_case()
    case = await p.esc.open(inp)
    await owned_by(p.esc, inp.case_id)
    new_key(p.keys, kid="k2")  # first: it encrypts from now on; k1 stays to decrypt
    rotated = await codec_client(env, p.settings)
    after = EscalationClient(rotated, task_queue=p.settings.task_queue).case(inp.case_id)
    await after.add_note({"actor": "sam", "text": "lives above the bakery"})
    state = await after.state()  # k1 payloads (the start) and k2 payloads (the note) both read
    assert state.input.customer.name == "Dana Doe" and state.notes[-1].detail["text"] == "lives above the bakery"
    history = await p.plain.get_workflow_handle(case.workflow_id).fetch_history()
    used = {pl.metadata[KEY_ID] for e in history.events for pl in payloads_in(e) if KEY_ID in pl.metadata}
    assert used == {b"k1", b"k2"}
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata[KEY_ID] == b"k1"
    note_update = next(e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes"))
    arg = note_update.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads[0]
    assert arg.metadata[KEY_ID] == b"k2"


async def test_a_payload_under_an_unknown_key_is_refused_naming_the_key_id(env, protected, tmp_path):
    p = protected
    other_keys = tmp_path / "other.jwks"
    new_key(other_keys, kid="stranger-7")
    stranger = p.settings.model_copy(update={"codec": CodecSettings(keys=other_keys)})
    client = await codec_client(env, stranger)
    esc = EscalationClient(client, task_queue=p.settings.task_queue)
    # A case started with a key the worker lacks fails at once (no workflow task retried for ever), naming it.
    with pytest.raises(InvalidArgument, match="stranger-7"):
        await esc.open(customer_case())
    # An update under that key is refused; the case goes on.
    inp = customer_case()
    await p.esc.open(inp)
    await owned_by(p.esc, inp.case_id)
    with pytest.raises(InvalidArgument, match="stranger-7"):
        await esc.case(inp.case_id).add_note({"actor": "sam", "text": "from elsewhere"})
    assert (await p.esc.case(inp.case_id).state()).status.value == "open"
    # The codec itself says which key it lacks.
    [sealed] = await AesGcmCodec(PayloadKeys.load(other_keys)).encode([Payload(data=b"x")])
    with pytest.raises(PayloadKeyProblem, match=r"key id 'stranger-7', which is not among the codec keys \(k1"):
        await AesGcmCodec(PayloadKeys.load(p.keys)).decode([sealed])


async def test_forget_erases_the_customer_and_leaves_the_case_running(protected):
    p = protected
    inp = customer_case()
    case = await p.esc.open(inp)
    await owned_by(p.esc, inp.case_id)
    await case.add_note({"actor": "sam", "text": "lives above the bakery"})
    first_run = (await case.handle.describe()).run_id
    # An agent may not: the policy's permissions say a supervisor or above.
    [(case_id, refused)] = await p.esc.forget_customer(inp.customer.id, {"actor": "ana"})
    assert case_id == inp.case_id and isinstance(refused, NotPermitted) and "supervisor" in str(refused)
    assert (await case.state()).input.customer.name == "Dana Doe"

    [(case_id, entry)] = await p.esc.forget_customer(inp.customer.id, {"actor": "sam", "reference": "GDPR-1"})
    assert entry.kind == "forgotten" and entry.detail["reference"] == "GDPR-1"

    async def next_run() -> str | None:
        desc = await p.client.get_workflow_handle(case.workflow_id).describe()
        return desc.run_id if desc.run_id != first_run and desc.status == WorkflowExecutionStatus.RUNNING else None

    run_id = await eventually(next_run, timeout=60)  # held messages get up to 30 s to go before the hand-over
    state = await p.esc.case(inp.case_id).state()
    assert state.status.value == "open" and state.owner is not None
    assert state.input.customer.name == TOMBSTONE and state.input.customer.email is None
    assert not leaked(state.model_dump_json() + (await p.esc.case(inp.case_id).brief()).model_dump_json())
    # The new run's history holds none of it, even decrypted; the first run's goes with its retention.
    history = await p.client.get_workflow_handle(case.workflow_id, run_id=run_id).fetch_history()
    codec = AesGcmCodec(PayloadKeys.load(p.keys))
    opened = await codec.decode([pl for e in history.events for pl in payloads_in(e)])
    assert not leaked(b"".join(pl.data for pl in opened))
    # It keeps taking commands.
    await p.esc.case(inp.case_id).add_note({"actor": "sam", "text": "called about the refund"})
    # Both runs replay with today's code: the forget, the hand-over, and the run after it.
    converter = data_converter_for(p.settings)
    replayer = Replayer(
        workflows=[Escalation],
        data_converter=converter,
        header_codec_behavior=header_codec(converter),
        interceptors=replay_interceptors(),
    )
    for run in (first_run, run_id):
        await replayer.replay_workflow(await p.client.get_workflow_handle(case.workflow_id, run_id=run).fetch_history())


def test_the_suite_keeps_payloads_plain_and_the_dev_key_is_found_beside_make_run(tmp_path):
    assert make_settings(tmp_path).codec.enabled is False
    data = tmp_path / "data"
    data.mkdir()
    assert Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}).codec.keys is None
    new_key(data / "codec.jwks")
    # Only beside `make run`'s own identity key: a process given other keys (the tests' CLIs) stays as it is.
    assert Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}).codec.keys is None
    ensure_identity_key(data / "identity.jwks")
    assert Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}).codec.keys == data / "codec.jwks"
    given = {"ESCALATIONS_DATA_DIR": str(data), "ESCALATIONS_IDENTITY__KEYS": str(IDENTITY_KEYS)}
    assert Settings.from_env(given).codec.keys is None
    off = Settings.from_env({"ESCALATIONS_DATA_DIR": str(data), "ESCALATIONS_CODEC__ENABLED": "false"})
    assert off.codec.keys is None and data_converter_for(off).payload_codec is None
    os.chmod(data / "codec.jwks", 0o644)
    with pytest.raises(Exception, match="chmod 600"):
        data_converter_for(Settings.from_env({"ESCALATIONS_DATA_DIR": str(data)}))


def test_encryption_required_without_keys_stops_with_the_setting_named(tmp_path):
    settings = Settings.from_env({"ESCALATIONS_DATA_DIR": str(tmp_path), "ESCALATIONS_CODEC__ENABLED": "true"})
    with pytest.raises(Exception, match="ESCALATIONS_CODEC__KEYS"):
        data_converter_for(settings)


async def test_compression_round_trip_and_tampered_metadata_refused(tmp_path):
    new_key(tmp_path / "k.jwks", kid="k1")
    codec = AesGcmCodec(PayloadKeys.load(tmp_path / "k.jwks"), compress_above=100)
    big = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"a" * 5000 + b'"')
    [sealed] = await codec.encode([big])
    assert sealed.metadata["compression"] == b"zlib" and len(sealed.data) < 500
    assert (await codec.decode([sealed])) == [big]
    sealed.metadata[WORKFLOW_ID] = b"escalation-C-other"
    with pytest.raises(PayloadKeyProblem, match="does not authenticate"):
        await codec.decode([sealed])
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert (await codec.decode([plain])) == [plain]  # written before encryption: read as it is
    await asyncio.sleep(0)


async def test_the_temporal_cli_reads_a_case_through_the_codec_server_with_a_readers_credential(protected):
    import base64
    import json
    import subprocess
    import sys

    from escalation.identity import Signer
    from escalation.protect.server import CodecServer, start
    from tests.conftest import IDENTITY
    from tests.servers import LOOPBACK, free_port

    p = protected
    inp = customer_case()
    case = await p.esc.open(inp)
    await owned_by(p.esc, inp.case_id)
    address = f"{LOOPBACK}:{free_port()}"
    runner, url = await start(CodecServer.from_settings(p.settings, address=address), address)
    signer = Signer.from_settings(IDENTITY)
    assert signer is not None
    temporal = str(Path(sys.executable).parent / "temporal")
    target = p.client.service_client.config.target_host

    def show(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [temporal, "workflow", "show", "-w", case.workflow_id, "--address", target, "--output", "json", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def started_input(done: subprocess.CompletedProcess) -> bytes:
        assert done.returncode == 0, done.stderr
        events = json.loads(done.stdout)["events"]
        payload = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
        return (
            base64.b64decode(payload["data"]) if isinstance(payload.get("data"), str) else json.dumps(payload).encode()
        )

    try:
        assert not leaked(started_input(await asyncio.to_thread(show)))  # no codec: encrypted
        sam = f"Bearer {signer.mint('sam')}"
        read = started_input(await asyncio.to_thread(show, "--codec-endpoint", url, "--codec-auth", sam))
        assert b"Dana Doe" in read
        ana = f"Bearer {signer.mint('ana')}"
        refused = await asyncio.to_thread(show, "--codec-endpoint", url, "--codec-auth", ana)
        assert b"Dana Doe" not in (refused.stdout + refused.stderr).encode()
    finally:
        await runner.cleanup()
