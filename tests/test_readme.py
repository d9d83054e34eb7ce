"""The README's walkthroughs, run as a newcomer would run them, so they cannot go stale.

A walkthrough is a ```sh block right after an `<!-- walkthrough -->` comment. Each command in it runs in bash
from the repository root, against a dev server of this module's own (routing counts every open case on the
server, so other tests' cases stay out of it) and a worker with the project's own policies and roster, as
`make run` has them. The commands reach them through the environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
ESCALATIONS_TASK_QUEUE, and ESCALATIONS_IDENTITY__KEYS for the signing key `make run` keeps in its data folder); `.venv/bin/` is this environment's, `--task-queue escalations` the worker's queue,
and a `watch`, which runs until Ctrl-C, takes one look (--timeout 0).

What a command prints follows it as `#  ` lines (a `#` and two spaces; a `# ` line is a comment): joined,
they must match the start of the output, whitespace aside, with `...` standing for anything. A trailing
`(exit N)` says the command fails with N; otherwise it must succeed. Between commands the test waits until
the walkthrough's cases have no activity or workflow task in flight (routing answers asynchronously; a person
typing the next command is slower than that), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from escalation.client.converter import data_converter
from escalation.config import Settings
from escalation.constants import workflow_id
from escalation.domain.models import EscalationInput
from tests.conftest import IDENTITY, IDENTITY_KEYS, dev_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = "<!-- walkthrough -->"
CASE_ID = re.compile(r"\bC-\d{4}\b")
SETTLE_TIMEOUT = 20.0


@dataclass
class Step:
    line: int  # where the command starts in README.md
    command: str
    expected: str = ""  # the `#  ` lines after it, joined
    exit: int = 0


@dataclass
class Walkthrough:
    line: int
    section: str
    steps: list[Step] = field(default_factory=list)

    @property
    def case_ids(self) -> list[str]:
        return sorted({c for s in self.steps for c in CASE_ID.findall(s.command)})


def walkthroughs(text: str) -> list[Walkthrough]:
    found: list[Walkthrough] = []
    lines = text.splitlines()
    section = ""
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("#").strip()
        if lines[i].strip() != MARKER:
            i += 1
            continue
        i += 1
        while not lines[i].strip():
            i += 1
        assert lines[i].strip() == "```sh", f"README.md:{i + 1}: {MARKER} must be followed by a ```sh block"
        walk = Walkthrough(line=i + 1, section=section)
        i += 1
        pending: list[str] = []
        while lines[i].strip() != "```":
            raw, start = lines[i], i
            while raw.endswith("\\"):  # a command continued on the next line
                i += 1
                raw = raw[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            if raw.startswith("#  "):
                assert walk.steps, f"README.md:{start + 1}: expected output before any command"
                pending.append(raw[3:].strip())
                continue
            _close(walk, pending)
            if not raw.strip() or raw.startswith("#"):
                continue
            walk.steps.append(Step(line=start + 1, command=raw))
        _close(walk, pending)
        found.append(walk)
        i += 1
    return found


def _close(walk: Walkthrough, pending: list[str]) -> None:
    """Attach the expected lines gathered so far to the last command."""
    if not pending:
        return
    expected = " ".join(pending)
    code = re.search(r"\(exit (\d+)\)\s*$", expected)
    if code:
        walk.steps[-1].exit = int(code.group(1))
        expected = expected[: code.start()].rstrip()
    walk.steps[-1].expected = expected
    pending.clear()


def matches(expected: str, output: str) -> bool:
    """`expected` (with `...` for anything) matches the start of `output`, whitespace runs counting as one."""
    squash = lambda s: re.sub(r"\s+", " ", s).strip()  # noqa: E731
    text = squash(output)
    parts = [squash(p) for p in squash(expected).split("...")]
    at = 0
    for n, part in enumerate(parts):
        if not part:
            continue
        if n == 0:
            if not text.startswith(part):
                return False
            at = len(part)
            continue
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


ASSIGNMENT = re.compile(r"^(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*=\S*(?:\s+#.*)?$")


def _runnable(command: str, task_queue: str) -> str:
    """The command as this test runs it: this environment's binaries, the worker's task queue, one look for
    `watch`."""
    bin_dir = str(Path(sys.executable).parent)
    command = command.replace(".venv/bin/", bin_dir + "/").replace(
        "--task-queue escalations", f"--task-queue {task_queue}"
    )
    code, comment = re.match(r"^(.*?)(\s+#\s.*)?$", command).groups()
    if re.search(r"\$E watch\b|escalations watch\b", code) and "--timeout" not in code:
        code += " --timeout 0"
    return code + (comment or "")


# ----- the servers: a dev server of this module's own, a worker with the project's config


@pytest_asyncio.fixture(scope="module")
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    address = request.config.getoption("--temporal-address")
    if address:
        from temporalio.client import Client

        yield WorkflowEnvironment.from_client(await Client.connect(address, data_converter=data_converter))
        return
    environment = await dev_server(interceptors=[])  # the README's commands sign for themselves
    yield environment
    await environment.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """As `make run` has it: the project's policies and roster."""
    return Settings(
        task_queue=f"readme-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        policy_dir=ROOT / "config" / "policies",
        roster_path=ROOT / "config" / "roster.toml",
        identity=IDENTITY,
    )


WALKTHROUGHS = walkthroughs(README.read_text())


def test_the_readme_has_walkthroughs_each_with_its_own_cases():
    assert len(WALKTHROUGHS) >= 3, "README.md: no walkthroughs marked with " + MARKER
    seen: dict[str, str] = {}
    for walk in WALKTHROUGHS:
        assert walk.case_ids, f"README.md:{walk.line}: a walkthrough without a case"
        for case_id in walk.case_ids:
            assert case_id not in seen, f"README.md:{walk.line}: {case_id} is used by '{seen[case_id]}' too"
            seen[case_id] = walk.section
        for step in walk.steps:  # dates written out go stale; say 'tomorrow 15:00', 'mon 15:00' or 'earliest'
            assert not re.search(r"\b20\d\d-\d\d-\d\d", step.command), f"README.md:{step.line}: a fixed date"
    # The example cases the walkthroughs open are valid start inputs, each its own case.
    examples = [EscalationInput.model_validate_json(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    assert len({e.case_id for e in examples}) == len(examples)


@pytest.mark.parametrize("walk", WALKTHROUGHS, ids=[w.section for w in WALKTHROUGHS])
async def test_walkthrough(walk: Walkthrough, env, worker, settings):
    client = env.client
    await _end(client, walk.case_ids, "the walkthrough starts again")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    run_env |= {
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "ESCALATIONS_TASK_QUEUE": settings.task_queue,
        "TEMPORAL_CONFIG_FILE": str(_no_profile(settings)),
        # The signing key the worker verifies with, as `make run` keeps one in its data folder.
        "ESCALATIONS_IDENTITY__KEYS": str(IDENTITY_KEYS),
    }
    setup: list[str] = []
    try:
        for step in walk.steps:
            if ASSIGNMENT.match(step.command):  # E=..., export ESCALATIONS_ACTOR=...: for every later command
                setup.append(_runnable(step.command, settings.task_queue))
                continue
            script = "\n".join([*setup, _runnable(step.command, settings.task_queue)])
            done = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-c", script],
                cwd=ROOT,
                env=run_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
            )
            where = f"README.md:{step.line}: {step.command}\n--- output (exit {done.returncode}):\n{done.stdout}"
            assert done.returncode == step.exit, where
            assert matches(step.expected, done.stdout), f"{where}--- expected:\n{step.expected}"
            await _settle(client, walk.case_ids)
    finally:
        await _end(client, walk.case_ids, "walkthrough finished")


def _no_profile(settings: Settings) -> Path:
    """An empty client config file: a profile on the machine running the tests must not redirect the commands."""
    path = settings.data_dir.parent / "temporal.toml"
    path.write_text("")
    return path


async def _settle(client, case_ids: list[str]) -> None:
    """Until no case of the walkthrough has an activity or a workflow task in flight (bounded)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + SETTLE_TIMEOUT
    while loop.time() < give_up:
        busy = False
        for case_id in case_ids:
            try:
                raw = (await client.get_workflow_handle(workflow_id(case_id)).describe()).raw_description
            except RPCError:
                continue  # not opened yet
            if raw.pending_activities or raw.HasField("pending_workflow_task"):
                busy = True
        if not busy:
            return
        await asyncio.sleep(0.05)


async def _end(client, case_ids: list[str], reason: str) -> None:
    for case_id in case_ids:
        with contextlib.suppress(RPCError):  # not running
            await client.get_workflow_handle(workflow_id(case_id)).terminate(reason)


def test_the_matcher():
    assert matches("opened case C-1 (workflow escalation-C-1)", "opened case C-1 (workflow escalation-C-1)\n")
    assert matches(
        "error: amount: 80 EUR ... team_lead (limit 100); ... exit 3",
        "error: amount: 80 EUR would bring ... team_lead (limit 100); the customer\nexit 3\n",
    )
    assert not matches("#... acknowledged at agent", "#3 2026-11-24 09:05:12 assignment_accepted at agent")
    assert matches("#... acknowledged at agent by ben", "#3 2026-11-24 09:05:12 acknowledged at agent by ben: x")
    assert not matches("callback-1 scheduled", "error: at: ...")
    walk = walkthroughs(
        "# S\n<!-- walkthrough -->\n```sh\nE=x\n$E a C-0001 \\\n  --b\n#  out\n#  more (exit 3)\n"
        "# a comment\n$E c C-0001  # why\n```\n"
    )[0]
    assert [(s.command, s.expected, s.exit) for s in walk.steps] == [
        ("E=x", "", 0),
        ("$E a C-0001 --b", "out more", 3),
        ("$E c C-0001  # why", "", 0),
    ]
    assert _runnable("$E watch C-1  # until it closes", "q").endswith("$E watch C-1 --timeout 0  # until it closes")


def test_callback_times_as_a_day_and_time_on_the_customers_clock():
    """The relative forms the callback walkthrough uses (`--at "tomorrow 22:00"`, `"mon 15:00"`)."""
    from datetime import datetime

    from escalation.cli import customer_day

    monday_1530_berlin = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    cases = {
        "tomorrow 22:00": "2026-12-01T22:00",
        "today 9:05": "2026-11-30T09:05",
        "mon 16:00": "2026-11-30T16:00",
        "Monday 15:00": "2026-12-07T15:00",  # today only while still ahead
        "sun 10:00": "2026-12-06T10:00",
        "FRI 08:00": "2026-12-04T08:00",
    }
    for given, wanted in cases.items():
        assert customer_day(given, "Europe/Berlin", monday_1530_berlin) == wanted, given
    # Their date, not ours: at 01:30 UTC on Tuesday it is still Monday evening in New York.
    assert (
        customer_day("tomorrow 10:00", "America/New_York", datetime(2026, 12, 1, 1, 30, tzinfo=UTC))
        == "2026-12-01T10:00"
    )
    for other in ("earliest", "2026-11-24T15:00", "monkey 10:00", "mon 25:00", "tomorrow"):
        assert customer_day(other, "Europe/Berlin", monday_1530_berlin) is None, other
