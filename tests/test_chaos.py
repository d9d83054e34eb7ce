"""The fault-injection run, small enough for every CI run: live cases on a dev server (SQLite) with the
worker as its own process, both killed with SIGKILL on a seeded schedule. Every case must end as its
journey says, nothing may be lost or doubled, no case may be stuck, and every history must replay.
`make chaos` runs the full size (200 cases, 20 worker kills, 3 server kills) with a calm baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from bench.chaos.run import Config, run_phase


@pytest.mark.slow
async def test_worker_and_server_killed_lose_nothing_and_every_history_replays(tmp_path: Path):
    cfg = Config(cases=24, worker_kills=4, server_kills=1, seed=11, storm=40.0, deadline=300.0)
    phase = await run_phase("storm", cfg, tmp_path, kills=True)
    assert sum(phase.kills.values()) == 5, phase.kills
    assert phase.replay_failures == {}
    assert phase.stuck == []
    assert phase.problems == []
    assert len(phase.lateness) == sum(1 for kind in phase.journeys.values() if kind == "breach")
