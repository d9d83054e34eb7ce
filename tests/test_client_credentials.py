"""The client side of "who may act": the project client puts a credential on every start, update,
update-with-start and signal it sends (minted for the actor the command names, a ready-made one, or one given
per case), the CLI signs for --as and mints credentials and keys, and the temporal CLI attaches the same header.

A tiny workflow on the dev server (`Probe`) reads the header in a workflow interceptor of this test, so what is
checked is what the server delivered to a worker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import RawValue, WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)
from typer.testing import CliRunner

from escalation.cli import app
from escalation.client import Case, EscalationClient, connect
from escalation.client.credentials import use_credential, with_credentials
from escalation.config import ConfigError, Settings
from escalation.constants import workflow_id
from escalation.domain.models import AcknowledgeInput, NoteInput
from escalation.identity import HEADER, IdentitySettings, Signer, Verifier, new_key, token_from_header
from tests.conftest import _binary

# ----- a workflow that tells what headers it was sent


@workflow.defn(name="HeaderProbe", sandboxed=False)
class Probe:
    """Records the credential each start, update and signal carried (None: no header); answers any update with a
    timeline entry whose detail holds the credential, so the typed client and the CLI can call it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.current: str | None = None

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(dynamic=True)
    async def any_update(self, name: str, args: Sequence[RawValue]) -> dict[str, Any]:
        return {
            "seq": len(self.seen),
            "at": workflow.now().isoformat(),
            "kind": name,
            "actor": "probe",
            "tier": "agent",
            "detail": {"credential": self.current},
        }

    @workflow.signal(dynamic=True)
    def any_signal(self, name: str, args: Sequence[RawValue]) -> None:
        pass

    @workflow.query
    def headers(self) -> list[dict[str, Any]]:
        return self.seen


def _token(headers: Any) -> str | None:
    payload = headers.get(HEADER)
    return None if payload is None else token_from_header(payload)


def _record(kind: str, name: str, headers: Any) -> str | None:
    probe = workflow.instance()
    assert isinstance(probe, Probe)
    token = _token(headers)
    probe.seen.append({"kind": kind, "name": name, "credential": token})
    probe.current = token
    return token


class _Inbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        _record("start", "HeaderProbe", input.headers)
        return await self.next.execute_workflow(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        _record("update", input.update, input.headers)
        return await self.next.handle_update_handler(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        _record("signal", input.signal, input.headers)
        await self.next.handle_signal(input)


class HeaderInterceptor(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _Inbound


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "identity.jwks"
    new_key(path, kid="test-1")
    return path


@pytest.fixture
def identity(keys: Path) -> IdentitySettings:
    return IdentitySettings(keys=str(keys))


@pytest.fixture
def verifier(identity: IdentitySettings) -> Verifier:
    return Verifier.from_settings(identity)


@pytest_asyncio.fixture
async def probe_queue(env: WorkflowEnvironment) -> AsyncIterator[str]:
    queue = f"header-probe-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[Probe], interceptors=[HeaderInterceptor()]):
        yield queue


def connection(env: WorkflowEnvironment) -> dict[str, str]:
    return {"address": env.client.service_client.config.target_host, "namespace": env.client.namespace}


async def start_probe(client: Client, queue: str, arg: Any = None, *, case_id: str | None = None) -> Any:
    return await client.start_workflow(
        "HeaderProbe",
        arg if arg is not None else {},
        id=workflow_id(case_id or f"PROBE-{uuid.uuid4().hex[:8]}"),
        task_queue=queue,
        execution_timeout=timedelta(minutes=5),
    )


async def seen(client: Client, handle: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """What the probe recorded, in the order it ran (a start runs after the updates of its first task)."""
    records = await client.get_workflow_handle(handle.id).query("headers")
    return [r for r in records if kind is None or r["kind"] == kind]


# ----- the project client


async def test_connect_signs_starts_updates_and_signals_for_the_actor_they_name(env, probe_queue, identity, verifier):
    client = await connect(Settings(**connection(env), identity=identity))
    handle = await start_probe(client, probe_queue, {"opened_by": "ana", "summary": "x"})
    await handle.execute_update("acknowledge", AcknowledgeInput(actor="ben"))  # a pydantic model
    await handle.execute_update("add_note", {"actor": "cy", "text": "hello"})  # a mapping
    await handle.signal("poke", {"actor": "dee"})
    await handle.execute_update("anything", {"no_actor": True})
    await handle.execute_update("acknowledge", {"actor": "system"})  # reserved: nothing is minted for it
    # The start is recorded when the run begins, which may be after the first update of the same task.
    records = sorted(await seen(client, handle), key=lambda r: r["kind"] != "start")
    names = [(r["kind"], r["name"]) for r in records]
    assert names == [
        ("start", "HeaderProbe"),
        ("update", "acknowledge"),
        ("update", "add_note"),
        ("signal", "poke"),
        ("update", "anything"),
        ("update", "acknowledge"),
    ]
    subjects = [None if r["credential"] is None else verifier.verify(r["credential"]).subject for r in records]
    assert subjects == ["ana", "ben", "cy", "dee", None, None]
    await handle.terminate("test done")


async def test_update_with_start_carries_a_credential_on_both_halves(env, probe_queue, identity, verifier):
    client = await connect(Settings(**connection(env), identity=identity))
    wid = workflow_id(f"PROBE-{uuid.uuid4().hex[:8]}")
    start = WithStartWorkflowOperation(
        "HeaderProbe",
        {"opened_by": "ana"},
        id=wid,
        task_queue=probe_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        execution_timeout=timedelta(minutes=5),
    )
    await client.execute_update_with_start_workflow(
        "add_note", NoteInput(actor="ben", text="x"), start_workflow_operation=start
    )
    handle = await start.workflow_handle()
    records = await seen(client, handle)
    assert sorted((r["kind"], verifier.verify(r["credential"]).subject) for r in records) == [
        ("start", "ana"),
        ("update", "ben"),
    ]
    await handle.terminate("test done")


async def test_a_service_acting_for_reps_says_so(env, probe_queue, identity, verifier):
    client = await connect(Settings(**connection(env), identity=identity.model_copy(update={"acting_service": "crm"})))
    handle = await start_probe(client, probe_queue)
    await handle.execute_update("acknowledge", {"actor": "ana"})
    claims = verifier.verify((await seen(client, handle, "update"))[-1]["credential"])
    assert (claims.subject, claims.acting_service) == ("ana", "crm")
    await handle.terminate("test done")


async def test_a_ready_made_credential_is_sent_as_it_is_and_none_is_sent_without_one(env, probe_queue, identity):
    signer = Signer.from_settings(identity)
    assert signer is not None
    ready = signer.mint("crm-service")
    given = await connect(Settings(**connection(env), identity=IdentitySettings(credential=ready)))
    handle = await start_probe(given, probe_queue, {"opened_by": "ana"})
    await handle.execute_update("acknowledge", {"actor": "ben"})
    assert [r["credential"] for r in await seen(given, handle)] == [ready, ready]
    await handle.terminate("test done")

    bare = await connect(Settings(**connection(env)))
    handle = await start_probe(bare, probe_queue, {"opened_by": "ana"})
    await handle.execute_update("acknowledge", {"actor": "ben"})
    assert [r["credential"] for r in await seen(bare, handle)] == [None, None]
    await handle.terminate("test done")


async def test_a_credential_given_per_case_or_per_block_wins(env, probe_queue, identity, verifier):
    signer = Signer.from_settings(identity)
    assert signer is not None
    esc = EscalationClient(await connect(Settings(**connection(env), identity=identity)), task_queue=probe_queue)
    handle = await start_probe(esc.temporal, probe_queue, case_id=(case_id := f"PROBE-{uuid.uuid4().hex[:8]}"))
    customer = signer.mint("customer", case_id=case_id, checkin=1)

    entry = await esc.case(case_id).acknowledge({"actor": "ana"})
    assert verifier.verify(entry.detail["credential"]).subject == "ana"
    entry = await esc.case(case_id, credential=customer).followup_response({"answer": "fixed", "checkin": 1})
    assert entry.detail["credential"] == customer
    minted: list[str] = []

    def fresh() -> str:
        minted.append(signer.mint("customer", case_id=case_id))
        return minted[-1]

    entry = await Case(handle, case_id, credential=fresh).followup_response({"answer": "fixed"})
    assert entry.detail["credential"] == minted[-1]
    with use_credential(customer):
        await handle.execute_update("followup_response", {"answer": "fixed"})
    with use_credential(lambda: None):  # a function that has none leaves it to the client's own
        await handle.execute_update("acknowledge", {"actor": "ben"})
    records = await seen(esc.temporal, handle, "update")
    assert records[-2]["credential"] == customer and verifier.verify(records[-1]["credential"]).subject == "ben"
    await handle.terminate("test done")


async def test_with_credentials_adds_the_interceptor_to_an_existing_client(env, probe_queue, identity, verifier):
    client = with_credentials(env.client, identity)
    handle = await start_probe(client, probe_queue, {"opened_by": "ana"})
    assert verifier.verify((await seen(client, handle, "start"))[0]["credential"]).subject == "ana"
    await handle.terminate("test done")


async def test_a_key_file_others_can_read_stops_connect_with_the_setting_named(env, keys):
    os.chmod(keys, 0o644)
    with pytest.raises(ConfigError, match=r"identity: .*chmod 600"):
        await connect(Settings(**connection(env), identity=IdentitySettings(keys=str(keys))))


# ----- the CLI


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def cli_env(keys: Path) -> dict[str, str]:
    return {"ESCALATIONS_IDENTITY__KEYS": str(keys), "ESCALATIONS_CREDENTIAL": "", "ESCALATIONS_ACTOR": ""}


async def test_the_cli_signs_for_as_and_sends_a_given_credential(env, probe_queue, keys, verifier, runner):
    client = await connect(Settings(**connection(env)))
    case_id = f"PROBE-{uuid.uuid4().hex[:8]}"
    handle = await start_probe(client, probe_queue, case_id=case_id)
    base = ["--address", connection(env)["address"], "--namespace", connection(env)["namespace"]]

    def run(*args: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        result = runner.invoke(app, [*base, *args, "--json"], env=cli_env(keys) | (extra_env or {}))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    for spelling in ("--as", "--actor", "-a"):
        entry = await asyncio.to_thread(run, "note", case_id, "hello", spelling, "ana")
        assert verifier.verify(entry["detail"]["credential"]).subject == "ana"
    entry = await asyncio.to_thread(run, "ack", case_id, extra_env={"ESCALATIONS_ACTOR": "ben"})
    assert verifier.verify(entry["detail"]["credential"]).subject == "ben"
    # followup (no actor) carries a customer credential for the case and check-in.
    entry = await asyncio.to_thread(run, "followup", case_id, "fixed", "--checkin", "2")
    claims = verifier.verify(entry["detail"]["credential"])
    assert (claims.subject, claims.case_id, claims.checkin) == ("customer", case_id, 2)
    # A given credential goes as it is: the option, @FILE, or ESCALATIONS_CREDENTIAL.
    ready = Signer.from_settings(IdentitySettings(keys=str(keys)))
    assert ready is not None
    token = ready.mint("crm-service")
    (keys.parent / "token").write_text(token + "\n")
    for given, extra in (
        (["--credential", token], {}),
        (["--credential", f"@{keys.parent / 'token'}"], {}),
        ([], {"ESCALATIONS_CREDENTIAL": token}),
    ):
        result = await asyncio.to_thread(
            runner.invoke, app, [*base, *given, "ack", case_id, "--as", "ana", "--json"], env=cli_env(keys) | extra
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["detail"]["credential"] == token
    await handle.terminate("test done")


def test_the_ack_command_takes_as_for_actor(runner):
    result = runner.invoke(app, ["ack", "--help"])
    assert result.exit_code == 0 and "--actor" in result.stdout and "--as" in result.stdout


def test_credential_new_key_makes_and_rotates_a_0600_jwks(tmp_path, runner):
    path = tmp_path / "keys" / "identity.jwks"
    first = runner.invoke(app, ["credential", "new-key", str(path), "--kid", "k1", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"file": str(path), "kid": "k1", "keys": ["k1"]}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    second = runner.invoke(app, ["credential", "new-key", str(path), "--kid", "k2"])
    assert second.exit_code == 0 and "new key k2 (HS256) signs from now on" in second.stdout
    assert [k["kid"] for k in json.loads(path.read_text())["keys"]] == ["k2", "k1"]
    third = runner.invoke(app, ["credential", "new-key", str(path), "--kid", "k3", "--keep", "2", "--json"])
    assert json.loads(third.stdout)["keys"] == ["k3", "k2"]
    again = runner.invoke(app, ["credential", "new-key", str(path), "--kid", "k3"])
    assert again.exit_code == 8 and "'k3' is there already" in again.output
    bad = runner.invoke(app, ["credential", "new-key", str(path), "--alg", "none"])
    assert bad.exit_code == 2 and "HS256, RS256, ES256, EdDSA" in bad.output
    # From the settings when no file is named.
    env = {"ESCALATIONS_IDENTITY__KEYS": str(path)}
    assert runner.invoke(app, ["credential", "new-key", "--kid", "k4"], env=env).exit_code == 0
    assert json.loads(path.read_text())["keys"][0]["kid"] == "k4"


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA", "ES256"])
def test_credential_new_key_writes_the_public_jwks_for_verifiers(tmp_path, runner, algorithm):
    private, public = tmp_path / "signing.jwks", tmp_path / "public.jwks"
    made = runner.invoke(app, ["credential", "new-key", str(private), "--alg", algorithm, "--public", str(public)])
    assert made.exit_code == 0, made.output
    assert all("d" not in k for k in json.loads(public.read_text())["keys"])
    minted = runner.invoke(app, ["credential", "mint", "--as", "ana", "--key", str(private)])
    assert minted.exit_code == 0, minted.output
    verified = runner.invoke(
        app,
        ["credential", "verify", "-", "--json"],
        input=minted.stdout,
        env={"ESCALATIONS_IDENTITY__KEYS": str(public)},
    )
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["subject"] == "ana"


def test_credential_mint_prints_a_credential_others_can_send(keys, verifier, runner):
    env = cli_env(keys)
    plain = runner.invoke(app, ["credential", "mint", "--as", "ana"], env=env)
    assert plain.exit_code == 0, plain.output
    assert verifier.verify(plain.stdout.strip()).subject == "ana"
    acting = runner.invoke(
        app, ["credential", "mint", "--as", "ana", "--for-service", "crm", "--ttl", "10m", "--json"], env=env
    )
    shown = json.loads(acting.stdout)
    claims = verifier.verify(shown["credential"])
    assert (claims.subject, claims.acting_service) == ("ana", "crm") and shown["claims"]["acting_service"] == "crm"
    assert (claims.expires_at - (claims.expires_at - timedelta(minutes=10))).total_seconds() == 600
    customer = runner.invoke(
        app, ["credential", "mint", "--as", "customer", "--case", "C-1", "--checkin", "1"], env=env
    )
    assert verifier.verify(customer.stdout.strip()).case_id == "C-1"
    checked = runner.invoke(app, ["credential", "verify", plain.stdout.strip()], env=env)
    assert checked.exit_code == 0 and checked.stdout.startswith("ana, key test-1, expires ")


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["mint", "--as", "system"], {}, 3, "'system' is reserved"),
        (["mint", "--as", "customer"], {}, 3, "must name its case"),
        (["mint", "--as", "ana", "--ttl", "2h"], {}, 3, "at most 1:00:00"),
        (["mint", "--as", "ana", "--ttl", "soon"], {}, 2, "not a duration"),
        (["mint", "--as", "ana"], {"ESCALATIONS_IDENTITY__KEYS": ""}, 8, "no signing key"),
        (["verify", "not-a-token"], {}, 3, "credential refused: the credential is not a JWT"),
        (["verify", "a.b.c"], {}, 3, "credential refused"),
    ],
)
def test_credential_commands_refuse_with_the_reason_and_exit_code(keys, runner, args, env, code, message):
    result = runner.invoke(app, ["credential", *args], env=cli_env(keys) | env)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_credential_mint_refuses_a_key_file_others_can_read(keys, runner):
    os.chmod(keys, 0o644)
    result = runner.invoke(app, ["credential", "mint", "--as", "ana"], env=cli_env(keys))
    assert result.exit_code == 8 and f"chmod 600 {keys}" in result.output


# ----- the temporal CLI


async def test_the_temporal_cli_attaches_the_same_header(env, probe_queue, keys, verifier, runner):
    """temporal workflow update execute --headers escalations-credential='"<jwt>"' (the value is JSON: a string)."""
    client = await connect(Settings(**connection(env)))
    handle = await start_probe(client, probe_queue)
    minted = runner.invoke(app, ["credential", "mint", "--as", "ana"], env=cli_env(keys))
    token = minted.stdout.strip()
    command = [
        _binary("temporal"),
        "workflow",
        "update",
        "execute",
        "--address",
        connection(env)["address"],
        "--namespace",
        connection(env)["namespace"],
        "--workflow-id",
        handle.id,
        "--name",
        "acknowledge",
        "--input",
        json.dumps({"actor": "ana"}),
        "--headers",
        f"{HEADER}={json.dumps(token)}",
    ]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    record = (await seen(client, handle, "update"))[-1]
    assert record["credential"] == token and verifier.verify(record["credential"]).subject == "ana"
    await handle.terminate("test done")
