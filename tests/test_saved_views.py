"""The README's saved views ("Watching it run"), run as written with the `temporal` CLI against a dev server of
this module's own, where cases stand in each view: each query must run and find exactly the cases it names."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from escalation.client import EscalationClient, open_case
from escalation.domain.models import Status
from tests.cases import case_input, eventually
from tests.conftest import _binary, dev_server, make_settings
from worker import build_worker

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- saved-views -->"


def saved_views(readme: str, marker: str = MARKER) -> dict[str, str]:
    """View name (the comment above it) -> its command, from the ```sh block after the marker."""
    block = readme.split(marker, 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    views: dict[str, str] = {}
    name = None
    for line in block.strip().splitlines():
        if line.startswith("# "):
            name = line[2:].split(" (")[0].strip().lower()
        elif line.startswith("$T workflow list"):
            assert name, f"a saved view without a name: {line}"
            views[name] = line
    return views


def test_the_readme_names_the_saved_views():
    views = saved_views((ROOT / "README.md").read_text(encoding="utf-8"))
    assert set(views) == {"breaching in the next hour", "at manager", "waiting on the customer", "reopened", "no owner"}


@pytest_asyncio.fixture(scope="module")
async def views_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of this module's own: the views list every running case on it."""
    environment = await dev_server()
    yield environment
    await environment.shutdown()


def _found(command: str, address: str) -> set[str]:
    """The case ids the README's command lists (run by bash as written, JSON output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env |= {"T": _binary("temporal"), "TEMPORAL_ADDRESS": address}
    done = subprocess.run(
        ["bash", "-c", f"{command} --output json"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    text = done.stdout.strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    return {re.sub(r"^escalation-", "", r["execution"]["workflowId"]) for r in rows}


async def each_finds_exactly(queries: dict[str, str], expected: dict[str, set[str]], client) -> None:
    """Each README query, run with the `temporal` CLI, lists exactly its expected case ids (once visibility has
    caught up)."""
    address = client.service_client.config.target_host
    for name, command in queries.items():

        async def matches(command=command, name=name):
            found = await asyncio.to_thread(_found, command, address)
            assert found == expected[name], f"{name}: found {sorted(found)}, expected {sorted(expected[name])}"
            return True

        await eventually(matches, timeout=10, interval=0.2)


async def test_each_saved_view_finds_exactly_its_cases(views_env, tmp_path):
    client = views_env.client
    settings = make_settings(tmp_path, "views")
    esc = EscalationClient(client)
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"C-{name}-{tag}" for name in ("agent", "manager", "waiting", "reopened", "nobody")}

    async def opened(name: str, policy: str = "standard", **overrides):
        await open_case(client, case_input(policy, case_id=ids[name], **overrides), task_queue_name=settings.task_queue)
        case = esc.case(ids[name])

        async def routed():
            s = await case.state()
            return s if s.owner is not None or any(e.kind == "unassigned" for e in s.timeline) else None

        await eventually(routed, timeout=30)
        return case

    async with build_worker(client, settings):
        # At agent, owned by its agent: acknowledge target in 5 minutes.
        await opened("agent")
        # At manager, acknowledged: resolve target in 8 hours.
        manager = await opened("manager")
        await manager.escalate({"actor": "ana", "reason": "needs_authority", "target_tier": "manager"})

        async def at_manager():
            s = await manager.state()
            return s.owner is not None and s.owner.tier.value == "manager" and s

        owner = (await eventually(at_manager, timeout=30)).owner
        await manager.acknowledge({"actor": owner.id})
        # Acknowledged, then waiting on the customer: the resolve clock is paused.
        waiting = await opened("waiting")
        owner = (await waiting.state()).owner
        await waiting.acknowledge({"actor": owner.id})
        await waiting.wait_on_customer({"actor": owner.id, "reason": "bank statement"})
        # Resolved, then the customer says it is not fixed: reopened with the rep who resolved it, who takes it
        # up again (acknowledged: its resolve clock runs two hours, out of the next hour's breaches).
        reopened = await opened("reopened", policy="fast")
        owner = (await reopened.state()).owner
        await reopened.resolve(
            {"actor": owner.id, "resolution": "refunded", "root_cause": "billing_error", "kb_article": "KB-1"}
        )

        async def checkin_sent():
            s = await reopened.state()
            return bool(s.checkins) and s.checkins[0].sent_at is not None

        await eventually(checkin_sent, timeout=30)
        await reopened.followup_response({"answer": "not_fixed", "checkin": 1})

        async def back_with_owner():
            s = await reopened.state()
            return s.status == Status.OPEN and s.reopens == 1 and s.owner is not None and s

        await reopened.acknowledge({"actor": (await eventually(back_with_owner, timeout=30)).owner.id})
        # A skill nobody has: nobody at any tier, so it climbs to manager with no owner.
        nobody = await opened("nobody", skills=["astrology"])

        async def climbed():
            s = await nobody.state()
            return s.tier is not None and s.tier.value == "manager" and s.owner is None and s.status == Status.OPEN

        await eventually(climbed, timeout=30)

        expected = {
            "breaching in the next hour": {ids["agent"], ids["nobody"]},
            "at manager": {ids["manager"], ids["nobody"]},
            "waiting on the customer": {ids["waiting"]},
            "reopened": {ids["reopened"]},
            "no owner": {ids["nobody"]},
        }
        await each_finds_exactly(saved_views((ROOT / "README.md").read_text(encoding="utf-8")), expected, client)
