"""Another SDK drives a case: a Node service with the official TypeScript client (tests/node/caller.mjs) attaches
the same credential header through a client interceptor, and the worker verifies it like the project's own.

`.ci/run` installs the Node client from npm (`npm ci` in tests/node); where Node or the install is missing the
test is skipped, saying so."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from escalation.client import EscalationClient
from escalation.identity import Signer
from tests.cases import case_input, eventually
from tests.conftest import IDENTITY

NODE_CALLER = Path(__file__).parent / "node"
SIGNER = Signer.from_settings(IDENTITY)
assert SIGNER is not None


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node caller cannot run")
    if not (NODE_CALLER / "node_modules" / "@temporalio" / "client").is_dir():
        pytest.skip("the Node client is not installed: run `npm ci` in tests/node (.ci/run does)")
    return node


async def _call(env, case_id: str, update: str, argument: dict, token: str | None) -> tuple[int, dict]:
    address = env.client.service_client.config.target_host
    environment = {"PATH": "/usr/bin:/bin", "TEMPORAL_ADDRESS": address}
    if token is not None:
        environment["ESCALATIONS_CREDENTIAL"] = token
    done = await asyncio.to_thread(
        subprocess.run,
        [_node(), "caller.mjs", case_id, update, json.dumps(argument)],
        cwd=NODE_CALLER,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


async def test_a_node_service_signs_its_commands_with_the_same_header(env, worker, settings):
    _node()
    esc = EscalationClient(env.client, task_queue=settings.task_queue)
    case = await esc.open(case_input("standard"))

    async def owner() -> str | None:
        s = await case.state()
        return s.owner.id if s.owner else None

    rep = await eventually(owner)
    code, refused = await _call(env, case.case_id, "acknowledge", {"actor": rep}, token=None)
    assert code == 1 and refused["type"] == "Unauthenticated"
    assert "the command carries no credential" in refused["error"]
    code, refused = await _call(env, case.case_id, "acknowledge", {"actor": rep}, token=SIGNER.mint("maya"))
    assert code == 1 and refused["type"] == "NotPermitted" and f"'{rep}' is not who sent this" in refused["error"]
    code, entry = await _call(env, case.case_id, "acknowledge", {"actor": rep, "note": "from node"}, SIGNER.mint(rep))
    assert code == 0, entry
    assert entry["kind"] == "acknowledged" and entry["actor"] == rep
    assert (await case.state()).acknowledged_by == rep
