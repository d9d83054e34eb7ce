"""Builders and helpers shared by the workflow tests."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle

from escalation.client import case_state
from escalation.domain.models import CaseState, EscalationInput

T = TypeVar("T")
TESTS = Path(__file__).parent


def case_input(policy: str = "standard", **overrides: Any) -> EscalationInput:
    data: dict[str, Any] = {
        "case_id": f"C-{uuid.uuid4().hex[:10]}",
        "customer": {
            "id": "cust-42",
            "name": "Dana Doe",
            "email": "dana@example.org",
            "phone": "+49 30 1234567",
            "time_zone": "Europe/Berlin",
            "lifetime_value": "4200",
            "preferred_channel": "email",
        },
        "channel": "call",
        "category": "billing",
        "skills": ["billing"],
        "severity": "high",
        "summary": "Charged twice for the November invoice",
        "desired_outcome": "Refund of the duplicate charge",
        "opened_by": "ana",
        "policy": policy,
    }
    data.update(overrides)
    return EscalationInput.model_validate(data)


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns a truthy value or stops raising AssertionError, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError:
            if loop.time() > deadline:
                raise
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


async def state_of(handle: WorkflowHandle) -> CaseState:
    return await case_state(handle)


async def owned(handle: WorkflowHandle) -> CaseState:
    """Wait until routing has given the current tier an owner (or said nobody is available)."""

    async def check() -> CaseState | None:
        s = await case_state(handle)
        return s if s.timeline[-1].kind in ("assigned", "unassigned") or s.owner else None

    return await eventually(check)


async def worker_process(
    env: Any, tmp_path: Path, name: str, **extra: str
) -> tuple[asyncio.subprocess.Process, str, Path]:
    """`escalations-worker` as a process of its own, on a task queue and with reps of its own (the roster
    watcher reassigns every open case an inactive rep holds on the server, other tests' cases included); the
    roster watch's own service id stays.
    Returns the process, its task queue and its data folder; `extra` adds settings."""
    suffix = uuid.uuid4().hex[:6]
    roster = tmp_path / "roster.toml"
    roster.write_text(
        re.sub(r'^id = "(?!roster")([a-z]+)"$', rf'id = "\1-{suffix}"', (TESTS / "roster.toml").read_text(), flags=re.M)
    )
    queue, data = f"{name}-{suffix}", tmp_path / "data"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        cwd=TESTS.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean
        | {
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": env.client.namespace,
            "ESCALATIONS_TASK_QUEUE": queue,
            "ESCALATIONS_POLICY_DIR": str(TESTS / "policies"),
            "ESCALATIONS_ROSTER": str(roster),
            "ESCALATIONS_DATA_DIR": str(data),
            "ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT": "1s",
            # The test run's signing key: the worker verifies the tests' credentials and signs its roster watch's.
            "ESCALATIONS_IDENTITY__KEYS": os.environ["ESCALATIONS_IDENTITY__KEYS"],
            # The suite reads histories in plain JSON; encryption has tests of its own (test_codec.py).
            "ESCALATIONS_CODEC__ENABLED": "false",
        }
        | extra,
    )
    return process, queue, data


def as_customer(case_id: str, checkin: int | None = None):
    """Within the block, commands carry the customer's credential for `case_id`, as the signed inbound endpoint
    mints it (the only way a customer's answer reaches a case)."""
    from escalation.client.credentials import use_credential
    from escalation.identity import Signer
    from tests.conftest import IDENTITY

    signer = Signer.from_settings(IDENTITY)
    assert signer is not None
    return use_credential(signer.mint("customer", case_id=case_id, checkin=checkin))
