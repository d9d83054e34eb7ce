"""The demo `make run` opens, against the real dev server and worker with the demo policy and roster: the
case that should climb on an SLA breach does."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest_asyncio

from escalation.client import case_handle, case_state
from escalation.config import Settings
from escalation.dev import demo
from tests.conftest import IDENTITY
from worker import build_worker

CONFIG = Path(__file__).resolve().parent.parent / "config"


def uncapped_demo_roster(folder: Path) -> Path:
    """The demo roster without its caps on open cases, written into `folder`: other tests' cases on the shared
    server are held by reps of the same names and would fill them."""
    roster = folder / "roster.toml"
    roster.write_text(
        "".join(
            line
            for line in (CONFIG / "roster.toml").read_text().splitlines(keepends=True)
            if not line.startswith("max_cases")
        )
    )
    return roster


@pytest_asyncio.fixture
async def demo_settings(env, tmp_path):
    """The demo's policies and roster. The roster's caps on open cases are left out: other tests' cases on
    this shared server are held by reps of the same names and would fill them."""
    roster = uncapped_demo_roster(tmp_path)
    settings = Settings(
        task_queue=f"demo-test-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path / "data",
        policy_dir=CONFIG / "policies",
        roster_path=roster,
        identity=IDENTITY,
    )
    async with build_worker(env.client, settings):
        yield settings


async def test_the_demo_case_left_unacknowledged_climbs_on_its_missed_target(env, demo_settings):
    scenario = next(s for s in demo.SCENARIOS if s.drive is demo.accepted_never_acknowledged)
    case_id = f"{scenario.case_id}-{uuid.uuid4().hex[:6]}"  # the demo's case as it is, under an id of its own
    await demo.run_scenario(
        env.client, demo_settings, dataclasses.replace(scenario, case=scenario.case | {"case_id": case_id})
    )
    state = await case_state(case_handle(env.client, case_id))
    climbed = [e for e in state.timeline if e.kind == "escalated"]
    assert [(e.tier, e.detail["from_tier"], e.detail["to_tier"], e.detail["reason"]) for e in climbed] == [
        ("agent", "agent", "team_lead", "sla_breach")
    ]
    assert climbed[0].detail["detail"].startswith("acknowledge target at agent missed (due ")
    # The agent had accepted it (owned, not on hold) but never acknowledged; the team lead then did.
    kinds = [e.kind for e in state.timeline]
    assert kinds.index("assignment_accepted") < kinds.index("breached") < kinds.index("acknowledged")
    assert state.tier == "team_lead" and state.status == "resolved" and state.breaches == 1
