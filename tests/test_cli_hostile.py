"""Bad input to the `escalations` commands, their settings files and the policies, as a careless or hostile
caller would give it: every one gets one clear line naming the file, field or setting, and its exit code,
never a traceback; a policy or roster file broken while the worker runs never loses a case; text stored in
a case never drives the terminal it is shown on.

The commands run as installed console scripts (`escalations`, `escalations-worker`, `escalations-inbound`)
against a real dev server and a worker on the test's event loop, whose policies and roster are copies the
tests may break."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from escalation.cli import app, views
from escalation.client import Case, EscalationClient
from escalation.client.errors import InvalidArgument, UnknownPolicy
from escalation.config import Settings
from escalation.constants import WORKFLOW_TYPE, workflow_id
from escalation.delivery.settings import CONFIG_ENV
from escalation.domain.models import CaseState
from escalation.domain.policy import PolicyError, PolicyStore, load_policy_file
from escalation.domain.roster import RosterError, RosterStore
from escalation.search import CaseSummary
from tests.cases import case_input, eventually
from tests.conftest import IDENTITY, IDENTITY_KEYS
from worker import build_worker

TESTS = Path(__file__).parent
BIN = Path(sys.executable).parent

# A policy file as it may be read while it is being written or after a careless edit: (label, content).
BROKEN_POLICIES = [
    ("half-written", b'name = "fast"\nversion = "test-fast-2"\n[[tiers]]\nname = "agent"\nacknowledge_wi'),
    ("not UTF-8", b'name = "fast"\nversion = "\xff\xfe"\n'),
    (
        "fails validation",
        b'name = "fast"\nversion = "test-fast-2"\n[[tiers]]\nname = "nobody"\n'
        b'acknowledge_within = "1h"\nresolve_within = "2h"\n',
    ),
    ("empty", b""),
]


# ----- helpers


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any Temporal or escalation settings of the machine running it, but with
    the test run's identity keys (the CLI signs each command for the rep it names, the worker verifies)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    return env | {"ESCALATIONS_IDENTITY__KEYS": str(IDENTITY_KEYS), "ESCALATIONS_CODEC__ENABLED": "false"} | extra


def run(
    script: str, *args: str, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BIN / script), *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


def assert_clear(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exit `code`, no traceback anywhere, and stderr says each of `words`."""
    shown = f"{done.args[1:]} -> {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr, shown
    assert done.returncode == code, shown
    for word in words:
        assert word in done.stderr, f"{word!r} missing: {shown}"


def write_case(folder: Path, **overrides) -> tuple[str, Path]:
    inp = case_input(**overrides)
    path = folder / f"{inp.case_id}.json"
    path.write_text(inp.model_dump_json(exclude_none=True))
    return inp.case_id, path


class Live:
    """A worker on the dev server whose policies folder and roster are copies the test may break."""

    def __init__(self, env, settings: Settings) -> None:
        self.env = env
        self.settings = settings
        self.client = EscalationClient(env.client, task_queue=settings.task_queue)
        self.folder = settings.data_dir.parent

    @property
    def connection(self) -> list[str]:
        return [
            "--address",
            self.env.client.service_client.config.target_host,
            "--namespace",
            self.env.client.namespace,
            "--task-queue",
            self.settings.task_queue,
        ]

    async def cli(
        self, *args: str, env: dict[str, str] | None = None, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run, "escalations", *self.connection, *args, env=env, input=input)

    def policy(self, name: str) -> Path:
        return self.settings.policy_dir / f"{name}.toml"

    async def state(self, case_id: str) -> CaseState:
        async def opened() -> CaseState | None:
            s = await self.client.case(case_id).state()
            return s if s.timeline and s.timeline[-1].kind in ("assigned", "unassigned", "offered") else None

        return await eventually(opened)


@pytest_asyncio.fixture
async def live(env, tmp_path: Path) -> AsyncIterator[Live]:
    policies = tmp_path / "policies"
    shutil.copytree(TESTS / "policies", policies)
    roster = tmp_path / "roster.toml"
    shutil.copy(TESTS / "roster.toml", roster)
    settings = Settings(
        task_queue=f"escalations-hostile-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        policy_dir=policies,
        roster_path=roster,
        identity=IDENTITY,
    )
    async with build_worker(env.client, settings):
        yield Live(env, settings)


# ----- files the CLI reads


def test_case_files_that_cannot_be_read_are_named_with_the_reason(tmp_path):
    """Nothing is sent for any of these: the file is refused before the CLI connects."""
    files = {
        "latin1.json": '{"case_id": "C-1", "summary": "Stra\xdfe"}'.encode("latin-1"),
        "binary.json": b"\x00\x01\x02\xff",
        "notjson.json": b"case_id: C-1\n",
        "truncated.json": b'{"case_id": "C-1", "customer": {',
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder").mkdir()
    table = [  # (file, exit code, words)
        ("latin1.json", 3, ["latin1.json: line 1: not UTF-8 text (byte 0xdf)"]),
        ("binary.json", 3, ["binary.json: line 1: not UTF-8 text (byte 0xff)"]),
        ("notjson.json", 3, ["notjson.json: not valid JSON: Expecting value: line 1 column 1"]),
        ("truncated.json", 3, ["truncated.json: not valid JSON", "line 1"]),
        ("deep.json", 3, ["deep.json: not valid JSON: nested too deeply"]),
        ("missing.json", 3, ["missing.json: cannot read: No such file or directory"]),
        ("folder", 3, ["folder: cannot read: Is a directory"]),
    ]
    for name, code, words in table:
        assert_clear(run("escalations", "--address", "localhost:1", "open", str(tmp_path / name)), code, *words)
    # stdin, as bytes that are not UTF-8
    assert_clear(
        run("escalations", "--address", "localhost:1", "open", "-", input=b'{"a": "\xe9"}'),
        3,
        "stdin: line 1: not UTF-8 text (byte 0xe9)",
    )


@pytest.mark.parametrize(
    ("label", "content", "words"),
    [
        ("TOML syntax", b'[smtp]\nhost = "relay.local\n', ["not valid TOML", "(at line 2, column"]),
        ("not UTF-8", b'[smtp]\nhost = "r\xe9lay"\n', ["line 2: not UTF-8 text (byte 0xe9)"]),
        ("a folder", None, ["no delivery config file at"]),
    ],
)
def test_a_broken_delivery_file_is_one_line_for_every_entry_point(tmp_path, label, content, words):
    """The CLI, the worker and the inbound endpoint read the same settings: each names the file and the line."""
    path = tmp_path / "delivery.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    env = clean_env(
        **{CONFIG_ENV: str(path), "TEMPORAL_ADDRESS": "localhost:1", "ESCALATIONS_INBOUND__SECRET": "s" * 40}
    )
    for script, args, code in (
        ("escalations", ["list"], 8),
        ("escalations-worker", [], 1),
        ("escalations-inbound", [], 1),
    ):
        done = run(script, *args, env=env)
        assert_clear(done, code, str(path), *words)
        plain = [line for line in done.stderr.splitlines() if not line.startswith("{")]  # the worker also logs JSON
        assert len(plain) == 1, (script, done.stderr)


# ----- values on the command line


async def test_bad_values_name_the_field_and_change_nothing(live, tmp_path):
    case_id, path = write_case(tmp_path, policy="fast")
    assert_clear(await live.cli("open", str(path)), 0)
    before = await live.state(case_id)
    agent = before.owner.id if before.owner else "ana"
    table = [  # (arguments, exit code, words on stderr)
        (
            ["offer", case_id, "-a", agent, "--kind", "goodwill", "--amount", "1e309", "--description", "x"],
            3,
            ["amount"],
        ),
        (
            ["offer", case_id, "-a", agent, "--kind", "goodwill", "--amount", "9" * 30, "--description", "x"],
            3,
            ["amount"],
        ),
        (["offer", case_id, "-a", agent, "--kind", "goodwill", "--amount", "NaN", "--description", "x"], 3, ["amount"]),
        (["wait", case_id, "-a", agent, "--reason", "photo", "--limit", "99999999999999d"], 3, ["limit"]),
        (["wait", case_id, "-a", agent, "--reason", "photo", "--limit", "-5m"], 3, ["limit", "must be positive"]),
        (["wait", case_id, "-a", agent, "--reason", "photo", "--limit", "P99999999999D"], 3, ["limit"]),
        (
            ["callback", "schedule", case_id, "-a", agent, "--at", "earliest", "--window", "-5m"],
            3,
            ["window", "must be positive"],
        ),
        (["note", case_id, "fine\x1b[2J\x1b[31mPAY NOW", "-a", agent], 3, ["text"]),
        (["followup", case_id, "fixed", "--checkin", "99999999999999999999999"], 3, ["checkin"]),
        (["list", "--due-before", "-5m"], 2, ["--due-before", "must be positive"]),
        (["list", "--due-before", "99999999999999d"], 2, ["--due-before", "must be at most"]),
        (["list", "--due-before", "2026-13-45T09:00:00Z"], 2, ["--due-before", "not an ISO time"]),
        (["list", "--limit", "-1"], 2, ["--limit"]),
        (["watch", case_id, "--interval", "nan"], 2, ["--interval"]),
        (["--retry-timeout", "inf", "show", case_id], 2, ["--retry-timeout"]),
        (["show", case_id, "--timeline", "1e9"], 2, ["--timeline"]),
    ]
    results = await asyncio.gather(*(live.cli(*args) for args, _, _ in table))
    for (_, code, words), done in zip(table, results, strict=True):
        assert_clear(done, code, *words)
        assert 'day" identifier' not in done.stderr and "InvalidOperation" not in done.stderr, done.stderr
    after = await live.client.case(case_id).state()
    assert [e.kind for e in after.timeline] == [e.kind for e in before.timeline]


# ----- policies


async def test_an_unknown_policy_is_refused_before_start_when_the_folder_is_known(live, tmp_path):
    case_id, path = write_case(tmp_path, policy="gold")
    folder = str(live.settings.policy_dir)
    by_option = await live.cli("--policy-dir", folder, "open", str(path))
    by_env = await live.cli("open", str(path), env=clean_env(ESCALATIONS_POLICY_DIR=folder))
    for done in (by_option, by_env):
        assert_clear(done, 7, "policy: unknown policy 'gold' (known: brisk, durable, fast,")
        assert "opened" not in done.stdout
    with pytest.raises(RPCError) as missing:  # nothing was started
        await live.env.client.get_workflow_handle(workflow_id(case_id)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_an_unknown_policy_the_workers_refuse_is_reported_not_opened(live, tmp_path):
    """The CLI cannot see the workers' folder: the start goes out, the case fails in its first task, and `open`
    says so with exit 7 instead of "opened"."""
    _, path = write_case(tmp_path, policy="gold")
    done = await live.cli("open", str(path))
    assert_clear(done, 7, "unknown policy 'gold'", "fast")
    assert "opened" not in done.stdout
    # A policy file that appeared after the worker started and was never valid: tried a few times, then refused.
    live.policy("platinum").write_text('version = "p1"\n[[tiers]]\nname = "agent"\n')
    _, path = write_case(tmp_path, policy="platinum")
    done = await live.cli("open", str(path), "--json")
    assert_clear(done, 7, "policy file platinum.toml is invalid", "tiers.0.acknowledge_within")
    assert done.stdout == ""
    # The library client: the same refusal, typed.
    with pytest.raises(UnknownPolicy, match="unknown policy 'gold'"):
        await live.client.open(case_input("gold"))


async def test_a_start_the_workers_refuse_as_input_is_reported_as_invalid_argument(live):
    """Input the worker refuses in the first task (here a workflow id that is not escalation-<case_id>, as a
    caller of another SDK may send) is what the client's wait after a start reports, typed."""
    inp = case_input("fast")
    handle = await live.env.client.start_workflow(
        WORKFLOW_TYPE, inp, id=f"elsewhere-{inp.case_id}", task_queue=live.settings.task_queue
    )
    with pytest.raises(InvalidArgument, match="workflow id: a case's workflow id must be"):
        await Case(handle, inp.case_id, opened=True)._until_open(10)


@pytest.mark.parametrize(("label", "content"), BROKEN_POLICIES, ids=[b[0] for b in BROKEN_POLICIES])
async def test_a_policy_broken_while_the_worker_runs_keeps_its_last_valid_version(live, tmp_path, label, content):
    live.policy("fast").write_bytes(content)
    case_id, path = write_case(tmp_path, policy="fast")
    with structlog.testing.capture_logs() as logged:
        done = await live.cli("open", str(path))
        assert_clear(done, 0)
        assert f"opened case {case_id}" in done.stdout
        state = await live.state(case_id)
    assert state.policy_version == "test-fast-1" and state.tier == "agent"
    kept = [e for e in logged if e["event"] == "policy_invalid_kept_last_valid"]
    assert len(kept) == 1, logged
    line = kept[0]
    assert line["policy"] == "fast" and line["file"] == str(live.policy("fast"))
    assert line["version_in_force"] == "test-fast-1" and "fast.toml" in line["error"]
    assert line["log_level"] == "warning"
    # Mended: the next case gets the new version, and nothing more is logged.
    fixed = (TESTS / "policies" / "fast.toml").read_text().replace("test-fast-1", "test-fast-2")
    live.policy("fast").write_text(fixed)
    mended = await live.client.open(case_input("fast"))
    assert (await live.state(mended.case_id)).policy_version == "test-fast-2"


async def test_a_policy_file_that_vanishes_for_a_moment_is_waited_for(live, caplog):
    """An editor that removes the file and writes it anew: the activity tries again instead of failing the case.
    (A new case reads its policy in a local activity, whose attempts only the worker's log shows.)"""
    saved = live.policy("fast").read_bytes()
    live.policy("fast").unlink()
    caplog.set_level(logging.WARNING, logger="temporalio.activity")
    case = await live.client.open(case_input("fast"), wait=0)

    async def retrying() -> bool:
        return any(
            "'activity_type': 'load_policy'" in r.getMessage() and "'attempt': 2" in r.getMessage()
            for r in caplog.records
        )

    await eventually(retrying)
    live.policy("fast").write_bytes(saved)
    assert (await live.state(case.case_id)).policy_version == "test-fast-1"


async def test_a_roster_broken_while_the_worker_runs_keeps_routing(live, tmp_path):
    live.settings.roster_path.write_bytes(b'[[reps]]\nid = "ana"\nname = "Ana\n')  # half-written
    with structlog.testing.capture_logs() as logged:
        case = await live.client.open(case_input("fast"))
        state = await live.state(case.case_id)
    assert state.owner is not None and state.owner.id in ("ana", "ben")
    kept = [e for e in logged if e["event"] == "roster_invalid_kept_last_valid"]
    assert kept and kept[0]["file"] == str(live.settings.roster_path) and "roster.toml" in kept[0]["error"]


def test_store_keeps_the_last_valid_version_and_logs_once_per_broken_file(tmp_path):
    shutil.copy(TESTS / "policies" / "fast.toml", tmp_path / "fast.toml")
    store = PolicyStore(tmp_path)
    assert store.warm() == [] and store.seen("fast")
    (tmp_path / "fast.toml").write_bytes(b'version = "x"\n[[tiers]]\nname = "agent"\n')
    with pytest.raises(PolicyError):
        store.get("fast")  # strict: the worker's start-up check and `policies` validation
    with structlog.testing.capture_logs() as logged:
        assert store.in_force("fast").version == "test-fast-1"
        assert store.in_force("fast").version == "test-fast-1"
    assert [e["event"] for e in logged] == ["policy_invalid_kept_last_valid"]
    assert "Dana" not in json.dumps(logged) and "acknowledge_within: is required" in logged[0]["error"]
    # A file that was never valid, and a name with no file, are errors as before.
    (tmp_path / "other.toml").write_bytes(b"\xff")
    with pytest.raises(PolicyError, match=r"other.toml: line 1: not UTF-8"):
        store.in_force("other")
    with pytest.raises(PolicyError, match="unknown policy 'gold'"):
        store.in_force("gold")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy_file(tmp_path / "other.toml")

    roster = tmp_path / "roster.toml"
    shutil.copy(TESTS / "roster.toml", roster)
    reps = RosterStore(roster)
    reps.warm()
    roster.write_bytes(b"[[reps]\n")
    with pytest.raises(RosterError, match=r"roster roster.toml: not valid TOML"):
        reps.get()
    assert len(reps.in_force().reps) > 1


# ----- unexpected errors


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    boom = (
        "import sys, escalation.cli as cli\n"
        "def boom(file): raise RuntimeError('the disk\\nis on fire')\n"
        "cli.read_case_file = boom\n"
        "sys.argv = ['escalations', '--address', 'localhost:1', 'open', 'case.json']\n"
        "cli.entrypoint()\n"
    )
    plain = subprocess.run([sys.executable, "-c", boom], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (
        "error: unexpected RuntimeError: the disk is on fire (set ESCALATIONS_DEBUG=1 to see the traceback)"
    )
    debug = subprocess.run(
        [sys.executable, "-c", boom], capture_output=True, text=True, timeout=60, env=clean_env(ESCALATIONS_DEBUG="1")
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "RuntimeError" in debug.stderr


def test_an_unexpected_error_inside_a_command_is_one_line(monkeypatch):
    async def broken(*_args, **_kwargs):
        raise KeyError("profile")

    monkeypatch.setattr(EscalationClient, "connect", broken)
    result = CliRunner().invoke(app, ["--address", "localhost:1", "list"])
    assert result.exit_code == 1 and not isinstance(result.exception, KeyError)
    assert result.stderr.startswith("error: unexpected KeyError: 'profile'")


# ----- what a terminal is sent

HOSTILE = "ok\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\rFORGED\x9b31m\u202egnp.exe\x00"


def test_printable_escapes_controls_and_keeps_lines_and_tabs():
    shown = views.printable(HOSTILE + "\nnext\tcolumn")
    assert shown == (
        "ok\\x1b[2J\\x1b]8;;http://evil.example\\x07click\\x1b]8;;\\x07\\x0dFORGED\\x9b31m"
        "\\u202egnp.exe\\x00\nnext\tcolumn"
    )
    assert views.json_printable(json.dumps({"a": "\x9b\u2028"}, ensure_ascii=False)) == '{"a": "\\u009b\\u2028"}'
    assert json.loads(views.json_printable(json.dumps({"a": "x\x9by"}, ensure_ascii=False))) == {"a": "x\x9by"}


async def test_text_stored_in_old_cases_never_drives_the_terminal(live, monkeypatch):
    """Cases opened before input was checked may hold escape sequences: show, watch and list print them
    escaped (and a table cell is never read as markup)."""
    case = await live.client.open(case_input("fast"))
    real = await live.state(case.case_id)
    brief = await case.brief()
    entry = real.timeline[-1].model_copy(update={"actor": "ana\x1b[8m", "detail": {"note": HOSTILE}})
    customer = real.input.customer.model_copy(update={"name": "Dana\x1b]0;owned\x07"})
    stored = real.model_copy(
        update={"timeline": [*real.timeline[:-1], entry], "input": real.input.model_copy(update={"customer": customer})}
    )
    summary = CaseSummary.model_construct(
        case_id=case.case_id,
        workflow_id=case.workflow_id,
        run_id="r",
        tier=real.tier,
        status=real.status,
        owner="[link=http://evil.example]ana[/link]\x1b[5m",
        customer="cust\x9b2J",
        severity=None,
        sla_due_at=None,
        sla_breach=None,
        opened_at=real.opened_at,
        closed_at=None,
        execution="running",
    )

    async def state(self, **_):
        return stored

    async def brief_(self):
        return brief.model_copy(update={"text": brief.text + "\n" + HOSTILE})

    async def ending(self):
        return None

    async def listed(self, *_args, **_kwargs):
        return [summary]

    monkeypatch.setattr(Case, "state", state)
    monkeypatch.setattr(Case, "brief", brief_)
    monkeypatch.setattr(Case, "ending", ending)
    monkeypatch.setattr(EscalationClient, "list_cases", listed)
    runner = CliRunner()
    base = live.connection
    outputs = []
    for args in (
        ["show", case.case_id],
        ["show", case.case_id, "--json"],
        ["watch", case.case_id, "--timeout", "0"],
        ["list"],
    ):
        result = await asyncio.to_thread(runner.invoke, app, [*base, *args])
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    for out in outputs:
        assert not any(ch in out for ch in "\x1b\x9b\x07\x00\r\u202e"), repr(out)
    show, as_json, watch, table = outputs
    assert "\\x1b[2J" in show and "Dana\\x1b]0;owned\\x07" in show and "ana\\x1b[8m" in show
    assert json.loads(as_json)["state"]["input"]["customer"]["name"] == "Dana\x1b]0;owned\x07"  # data unchanged
    assert "\\x0dFORGED" in watch
    assert "[link=http://evil.example]ana[/link]\\x1b[5m" in table and "cust\\x9b2J" in table
