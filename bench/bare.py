"""Baselines for the benchmarks: bare workflows that do only what a case's figure needs, measured on the
same server in the same run as the cases, so the ratios hold on a noisy machine.

- `BareTimer`: one timer to an absolute instant; returns how late its workflow task ran (breach precision,
  burst, memory per cached workflow).
- `BareUpdates`: takes the lifecycle's updates (acknowledge, offer, answer, resolve, the follow-up answer)
  and waits one second between resolve and the follow-up answer, as a case waits for its check-in.

    python -m bench.bare ADDRESS TASK_QUEUE [CODEC_KEYS]    # a worker for them (the benchmark starts it)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

TIMER = "BenchTimer"
UPDATES = "BenchUpdates"
LIFECYCLE_UPDATES = ("acknowledge", "propose_offer", "record_offer_response", "resolve", "followup_response")


@workflow.defn(name=TIMER)
class BareTimer:
    @workflow.run
    async def run(self, due: datetime) -> float:
        wait = (due - workflow.now()).total_seconds()
        if wait > 0:
            await workflow.sleep(wait)
        return (workflow.now() - due).total_seconds()


@workflow.defn(name=UPDATES)
class BareUpdates:
    def __init__(self) -> None:
        self.taken: list[str] = []
        self.checked_in = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: "resolve" in self.taken)
        await workflow.sleep(timedelta(seconds=1))  # the check-in
        self.checked_in = True
        await workflow.wait_condition(lambda: len(self.taken) == len(LIFECYCLE_UPDATES))
        return len(self.taken)

    @workflow.update
    async def step(self, name: str) -> int:
        if name == "followup_response":
            await workflow.wait_condition(lambda: self.checked_in)
        self.taken.append(name)
        return len(self.taken)


async def serve(address: str, task_queue: str, codec_keys: str | None = None) -> None:
    # Outside the workflows' sandbox: the cases' data converter, with their payload codec when given its keys.
    from pathlib import Path

    from escalation.client.converter import data_converter_for
    from escalation.config import Settings
    from escalation.protect.settings import CodecSettings

    codec = CodecSettings(keys=Path(codec_keys)) if codec_keys else CodecSettings(enabled=False)
    client = await Client.connect(address, data_converter=data_converter_for(Settings(codec=codec)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[BareTimer, BareUpdates], max_cached_workflows=20_000):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:4]))
