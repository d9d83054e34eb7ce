"""The fault-injection run at CI size: live cases on a dev server (SQLite) with the worker as its own
process, both killed with SIGKILL on a seeded schedule. Nothing may be lost or doubled; every case not
broken by the SDK fault (see the README's deploy section) ends as its journey says; and every case that
broke is one `escalations doctor` finds. `make chaos` runs the full size with a calm baseline."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from temporalio.client import Client

from bench.chaos.run import Config, Phase, run_phase
from escalation.cli import doctor
from escalation.constants import workflow_id


def about(problem: str, case_ids: set[str]) -> bool:
    return any(re.search(rf"\b{re.escape(c)}\b", problem) for c in case_ids)


async def test_worker_and_server_killed_lose_nothing_and_broken_cases_are_found(tmp_path: Path):
    found: dict[str, str] = {}
    broken: set[str] = set()

    async def inspect(client: Client, phase: Phase) -> None:
        # A case that broke and still runs must be on the doctor's list (stuck now, or latent with --deep).
        running = {wf.id async for wf in client.list_workflows(doctor.QUERY)}
        broken.update((set(phase.replay_failures) | set(phase.stuck)) & running)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120  # a task that only timed out counts as stuck after a minute
        while True:
            report = await doctor.diagnose(client, deep=True)
            found.update({f.workflow_id: f.state for f in report.cases})
            if broken <= set(found) or loop.time() > deadline:
                return
            await asyncio.sleep(5)

    cfg = Config(cases=24, worker_kills=4, server_kills=1, seed=11, storm=40.0, deadline=300.0)
    phase = await run_phase("storm", cfg, tmp_path, kills=True, inspect=inspect)

    assert sum(phase.kills.values()) == 5, phase.kills
    assert broken <= set(found), f"broken cases the doctor did not find: {broken - set(found)}"
    broken_cases = {c for c in phase.journeys if workflow_id(c) in broken | set(phase.replay_failures)}
    assert [p for p in phase.problems if not about(p, broken_cases)] == []
    breaches = sum(1 for c, kind in phase.journeys.items() if kind == "breach" and c not in broken_cases)
    assert len(phase.lateness) >= breaches
