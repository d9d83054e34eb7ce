"""The performance figures of issue 18, each against a baseline measured in the same run on the same server.

    python -m bench [--full] [--only breach,burst,lifecycle,memory,routing,report]    (make bench)

One dev server (in memory) for the run, the project's worker (`python -m worker`, the production entry
point, with the benchmark's roster and policies) and a worker for the bare baselines as processes of their
own, and this process as the client that signs every command as the rep it names. Each figure prints one
line: `name: value (ratio to its baseline), target T: OK|MISS`. Sizes: SIZES below (quick, then --full).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.testing import ActivityEnvironment

from activities.load import list_holders
from activities.route import RouteActivities, open_cases
from bench.bare import TIMER, UPDATES
from escalation.client import Case, EscalationClient, connect
from escalation.client.converter import data_converter_for
from escalation.client.credentials import use_credential
from escalation.client.errors import EscalationError
from escalation.config import Settings
from escalation.constants import SA_CUSTOMER, SA_OWNER, SA_STATUS, SEARCH_ATTRIBUTES, WORKFLOW_TYPE
from escalation.domain.models import CaseState, EscalationInput, Status, Tier
from escalation.domain.roster import RosterStore, load_roster
from escalation.domain.rules import routing
from escalation.domain.rules.step import Assign
from escalation.identity import CUSTOMER, IdentitySettings, Signer, ensure_key
from escalation.protect.codec import new_key as new_codec_key
from escalation.protect.settings import CodecSettings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ROSTER = HERE / "roster.toml"
POLICIES = HERE / "policies"
T = TypeVar("T")

# Quick mode (make bench, under 10 minutes on 2 shared cores) and --full (the sizes).
SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "breach": 200,
        "breach_workers": (1,),
        "burst": 200,
        "lifecycles": 30,
        "memory": (300,),
        "routing": (200, 2000),
        "worker": {},  # the SDK's defaults: 1,000 cached cases, a 10 s sticky queue
    },
    "full": {
        "breach": 2000,
        "breach_workers": (1, 2),
        "burst": 1000,
        "lifecycles": 200,
        "memory": (1000, 5000),
        "routing": (200, 10_000),
        # Deployed as the README says for this many open cases: a cache that holds them all (so a wave of
        # breaches replays nothing), and cases kept on their worker for a minute under load.
        "worker": {"ESCALATIONS_MAX_CACHED_WORKFLOWS": "8000", "ESCALATIONS_STICKY_QUEUE_TIMEOUT": "60s"},
    },
}
FIGURES = ("breach", "burst", "lifecycle", "memory", "routing", "report")
CONCURRENCY = 10  # lifecycles driven at once
# The routing figure's open cases live in a namespace of their own, so they weigh on no other figure.
ROUTING_NAMESPACE = "routing"
ACK_WITHIN = 5  # seconds from the breach calendar's opening to the acknowledge target


# ----- the line each figure prints


@dataclass
class Line:
    name: str
    value: str
    ratio: str
    target: str
    ok: bool

    def __str__(self) -> str:
        return f"{self.name}: {self.value} ({self.ratio}), target {self.target}: {'OK' if self.ok else 'MISS'}"


def percentile(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return math.nan
    return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


def say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


# ----- server and workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_binary() -> str:
    found = Path(sys.executable).parent / "temporal"
    return str(found) if found.exists() else "temporal"


@dataclass
class Bench:
    """The run's server, its workers and the client."""

    mode: str
    workdir: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)
    keys: Path = field(init=False)
    codec_keys: Path = field(init=False)
    policy_dir: Path = field(init=False)
    client: Client | None = None
    signer: Signer | None = None
    queue: str = "bench"
    bare_queue: str = "bench-bare"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def __post_init__(self) -> None:
        self.keys = self.workdir / "identity.jwks"
        ensure_key(self.keys)
        # Customer data encrypted as in production (escalation.protect), for the cases and the baselines alike.
        self.codec_keys = self.workdir / "codec.jwks"
        new_codec_key(self.codec_keys)
        self.policy_dir = self.workdir / "policies"
        shutil.copytree(POLICIES, self.policy_dir)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def size(self) -> dict[str, Any]:
        return SIZES[self.mode]

    def start_server(self) -> None:
        args = [temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(self.port)]
        args += ["--log-level", "error", "--namespace", ROUTING_NAMESPACE]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def start_worker(self, queue: str | None = None, name: str = "worker", **env: str) -> subprocess.Popen:
        """The project's worker as production runs it (`python -m worker`), on the benchmark's roster and policies."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ESCALATIONS_"))}
        settings = {
            "TEMPORAL_ADDRESS": self.address,
            "ESCALATIONS_TASK_QUEUE": queue or self.queue,
            "ESCALATIONS_DATA_DIR": str(self.workdir / f"data-{name}"),
            "ESCALATIONS_POLICY_DIR": str(self.policy_dir),
            "ESCALATIONS_ROSTER": str(ROSTER),
            "ESCALATIONS_IDENTITY__KEYS": str(self.keys),
            "ESCALATIONS_CODEC__KEYS": str(self.codec_keys),
            "ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT": "1s",
        }
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=ROOT,
            env=clean | settings | self.size["worker"] | env,
            stdout=log,
            stderr=log,
        )
        self.processes.append(proc)
        WORKERS.append(proc)
        return proc

    def start_bare_worker(self, queue: str | None = None, name: str = "bare") -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bare", self.address, queue or self.bare_queue, str(self.codec_keys)],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        self.processes.append(proc)
        WORKERS.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        if proc in WORKERS:
            WORKERS.remove(proc)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            self.stop(proc)

    @property
    def settings(self) -> Settings:
        return Settings(
            address=self.address,
            identity=IdentitySettings(keys=str(self.keys)),
            codec=CodecSettings(keys=self.codec_keys),
        )

    async def connect(self) -> Client:
        settings = self.settings
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client = await connect(settings)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        self.signer = Signer.from_settings(settings.identity)
        return self.client

    @property
    def cases(self) -> EscalationClient:
        assert self.client is not None
        return EscalationClient(self.client, task_queue=self.queue)


def case_input(customer: str, policy: str = "bench", opened_by: str = "agent-00") -> EscalationInput:
    return EscalationInput.model_validate(
        {
            "case_id": f"B-{uuid.uuid4().hex[:12]}",
            "customer": {
                "id": customer,
                "name": "Dana Doe",
                "email": "dana@example.org",
                "time_zone": "Europe/Berlin",
                "preferred_channel": "email",
            },
            "channel": "call",
            "category": "billing",
            "skills": ["billing"],
            "severity": "high",
            "summary": "Charged twice for the November invoice",
            "desired_outcome": "Refund of the duplicate charge",
            "opened_by": opened_by,
            "policy": policy,
        }
    )


async def gather_limited(limit: int, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


WORKERS: list[subprocess.Popen] = []  # the run's worker processes: a benchmark stops at once when one dies


def workers_alive() -> None:
    dead = [f"process {p.pid} (exit {p.returncode})" for p in WORKERS if p.poll() is not None]
    if dead:
        raise RuntimeError(f"a worker process exited: {', '.join(dead)} (see its log in the run's folder)")


async def until(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers_alive()
        if await check():
            return True
        await asyncio.sleep(interval)
    return await check()


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


def of_customer(customer: str, *terms: str) -> str:
    return " AND ".join([f'WorkflowType = "{WORKFLOW_TYPE}"', f'{SA_CUSTOMER} = "{customer}"', *terms])


async def open_many(bench: Bench, customer: str, n: int, policy: str = "bench", limit: int = 50) -> list[Case]:
    esc = bench.cases
    return await gather_limited(limit, [lambda: esc.open(case_input(customer, policy)) for _ in range(n)])


async def all_held(bench: Bench, customer: str, n: int, timeout: float) -> bool:
    assert bench.client is not None
    client = bench.client
    query = of_customer(customer, 'ExecutionStatus = "Running"', f"{SA_OWNER} IS NOT NULL")
    return await until(lambda: _at_least(count(client, query), n), timeout)


async def _at_least(value: Awaitable[int], expected: int) -> bool:
    return await value >= expected


async def states(cases: list[Case], limit: int = 20) -> list[CaseState]:
    """The state of every case that answers; a case whose workflow task is failing at that moment (a worker
    overloaded past its task timeouts) is left out, and the figure counts it as not recorded."""

    async def state(case: Case) -> CaseState | None:
        for _ in range(3):
            try:
                return await case.state()
            except EscalationError:
                await asyncio.sleep(2)
        return None

    found = await gather_limited(limit, [functools.partial(state, c) for c in cases])
    return [s for s in found if s is not None]


async def bare_timers(bench: Bench, n: int, due: datetime, limit: int = 50) -> list[WorkflowHandle]:
    assert bench.client is not None
    client = bench.client

    async def start() -> WorkflowHandle:
        return await client.start_workflow(
            TIMER, due, id=f"bare-{uuid.uuid4().hex[:12]}", task_queue=bench.bare_queue, result_type=float
        )

    return await gather_limited(limit, [start for _ in range(n)])


# ----- breach precision


def breach_policy(bench: Bench, name: str, opens: datetime) -> None:
    """A ladder whose calendar opens at `opens` today (UTC): every case opened before then has its acknowledge
    target at the same instant, `opens` + ACK_WITHIN, like a queue of cases waiting for the morning shift."""
    today = opens.strftime("%a").lower()[:3]
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    hours = ", ".join(
        f'{d} = ["{opens.strftime("%H:%M")}-24:00"]' if d == today else f'{d} = ["00:00-24:00"]' for d in days
    )
    text = (POLICIES / "bench.toml").read_text()
    text = text.replace('name = "bench"', f'name = "{name}"').replace('calendar = "always"', 'calendar = "shift"')
    text = text.replace('acknowledge_within = "1h"', f'acknowledge_within = "{ACK_WITHIN}s"', 1)
    text += f'\n[calendars.shift]\ntime_zone = "UTC"\nhours = {{ {hours} }}\n'
    (bench.policy_dir / f"{name}.toml").write_text(text)


def next_minute(after: datetime) -> datetime:
    return (after + timedelta(minutes=1)).replace(second=0, microsecond=0)


async def breach(bench: Bench, workers: int) -> Line:
    n = bench.size["breach"]
    assert bench.client is not None
    extra = [bench.start_worker(name=f"worker-{i + 2}") for i in range(workers - 1)]
    try:
        # The baseline: n bare one-timer workflows due at the same instant.
        # Due well after the last start (2,000 starts took up to 150 s here): a timer started after its instant
        # would measure the start's delay, not the timer's.
        due = datetime.now(UTC) + timedelta(seconds=n / 8 + 10)
        handles = await bare_timers(bench, n, due)
        started = datetime.now(UTC)
        bare = await gather_limited(100, [h.result for h in handles])  # the server caps concurrent long polls
        say(f"bare timers: {n} started {(due - started).total_seconds():.0f} s before their instant")
        if started > due:
            say("some bare timers started after their instant: the baseline's p99 includes their start delay")
        # The cases: opened before their calendar opens, so their acknowledge targets fall due together.
        opens = next_minute(datetime.now(UTC) + timedelta(seconds=n / 15 + 10))
        name = f"breach-{workers}-{bench.tag}"
        breach_policy(bench, name, opens)
        customer = f"breach-{workers}-{bench.tag}"
        cases = await open_many(bench, customer, n, policy=name)
        say(f"{n} cases opened; their acknowledge target is {opens + timedelta(seconds=ACK_WITHIN):%H:%M:%S}")
        client = bench.client
        climbed = of_customer(customer, f'EscalationTier = "{Tier.TEAM_LEAD.value}"')
        wait = (opens - datetime.now(UTC)).total_seconds() + ACK_WITHIN
        await until(lambda: _at_least(count(client, climbed), n), timeout=wait + 300, interval=2)
        late = []
        for state in await states(cases):
            for entry in state.timeline:
                if entry.kind == "breached" and entry.detail.get("clock") == "acknowledge":
                    late.append((entry.at - datetime.fromisoformat(entry.detail["due_at"])).total_seconds())
                    break
        got, base = percentile(late, 0.99), percentile(bare, 0.99)
        missing = n - len(late)
        ratio = got / base if base > 0 else math.inf
        return Line(
            f"breach_precision[{workers} worker{'s' if workers > 1 else ''}, {n} due at once]",
            f"p99 {got:.2f} s late, p50 {percentile(late, 0.5):.2f} s, max {max(late, default=math.nan):.2f} s"
            + (f", {missing} not recorded" if missing else ""),
            f"{ratio:.2f}x bare one-timer p99 {base:.2f} s",
            "<= 1.5x bare",
            ratio <= 1.5 and not missing,
        )
    finally:
        for proc in extra:
            bench.stop(proc)


# ----- burst


async def burst(bench: Bench) -> Line:
    """`n` cases opened as fast as the client can, on top of the cases already open (the breach figure's):
    each must be owned or offered within 30 s of its opening, none left unassigned."""
    n = bench.size["burst"]
    assert bench.client is not None
    client = bench.client
    already = await count(client, f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running"')
    customer = f"burst-{bench.tag}"
    t0 = time.monotonic()
    cases = await open_many(bench, customer, n, limit=200)
    opened = time.monotonic() - t0
    await all_held(bench, customer, n, timeout=120)
    waits, unassigned = [], 0
    for state in await states(cases):
        opened_at = state.timeline[0].at
        held = next((e.at for e in state.timeline if e.kind in ("assignment_offered", "assigned")), None)
        if held is None or any(e.kind == "unassigned" for e in state.timeline):
            unassigned += 1
        else:
            waits.append((held - opened_at).total_seconds())
    # The baseline: as many bare workflows started as fast, time from start to their first workflow task.
    due = datetime.now(UTC)
    handles = await bare_timers(bench, n, due, limit=200)
    bare = await gather_limited(100, [h.result for h in handles])  # the server caps concurrent long polls
    worst, base = max(waits, default=math.inf), max(bare)
    return Line(
        f"burst[{n} opened on {already} open]",
        f"slowest owned/offered after {worst:.1f} s (p50 {percentile(waits, 0.5):.1f} s; opened at "
        f"{n / opened:.0f}/s), {unassigned} unassigned",
        f"{worst / base:.1f}x bare first task {base:.2f} s",
        "<= 30 s and none unassigned",
        worst <= 30 and unassigned == 0,
    )


# ----- lifecycle


async def lifecycle(bench: Bench, case: Case) -> None:
    """Open (done), acknowledge, offer, answer, resolve, one check-in, "fixed": the issue's full lifecycle."""
    s = await case.state()
    while routing.holder(s) is None:
        await asyncio.sleep(0.2)
        s = await case.state()
    rep = routing.holder(s)
    assert rep is not None
    await case.acknowledge({"actor": rep})  # accepts the offer too
    offer = await case.propose_offer({"actor": rep, "kind": "goodwill", "amount": "20", "description": "Voucher"})
    await case.record_offer_response({"actor": rep, "offer_id": offer.id, "answer": "accepted"})
    await case.resolve({"actor": rep, "resolution": "Refunded", "root_cause": "billing_error", "kb_missing": True})
    s = await case.state()
    while not (s.checkins and s.checkins[0].sent_at):
        await asyncio.sleep(0.2)
        s = await case.state()
    assert bench.signer is not None
    with use_credential(bench.signer.mint(CUSTOMER, case_id=case.case_id, checkin=1)):
        await case.followup_response({"answer": "fixed", "checkin": 1})
    await case.outcome()


async def bare_lifecycle(client: Client, queue: str) -> None:
    handle = await client.start_workflow(UPDATES, id=f"bare-{uuid.uuid4().hex[:12]}", task_queue=queue)
    for name in ("acknowledge", "propose_offer", "record_offer_response", "resolve", "followup_response"):
        await handle.execute_update("step", name)
    await handle.result()


async def history_counts(handle: WorkflowHandle) -> Counter[str]:
    history = await handle.fetch_history()
    return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events)


async def lifecycles(bench: Bench) -> list[Line]:
    n = bench.size["lifecycles"]
    assert bench.client is not None
    client = bench.client
    customer = f"life-{bench.tag}"
    esc = bench.cases
    t0 = time.monotonic()
    opened: list[Case] = []

    async def one() -> None:
        case = await esc.open(case_input(customer))
        opened.append(case)
        await lifecycle(bench, case)

    await gather_limited(CONCURRENCY, [one for _ in range(n)])
    rate = n / (time.monotonic() - t0)
    t0 = time.monotonic()
    await gather_limited(CONCURRENCY, [lambda: bare_lifecycle(client, bench.bare_queue) for _ in range(n)])
    bare_rate = n / (time.monotonic() - t0)
    first = client.get_workflow_handle(opened[0].workflow_id)
    events = await history_counts(first)
    (bench.workdir / "lifecycle-history.json").write_text((await first.fetch_history()).to_json())
    handle = await client.start_workflow(UPDATES, id=f"bare-{uuid.uuid4().hex[:12]}", task_queue=bench.bare_queue)
    for name in ("acknowledge", "propose_offer", "record_offer_response", "resolve", "followup_response"):
        await handle.execute_update("step", name)
    await handle.result()
    bare_events = await history_counts(handle)
    total, bare_total = sum(events.values()), sum(bare_events.values())
    (bench.workdir / "lifecycle-events.json").write_text(json.dumps({"case": events, "bare": bare_events}, indent=1))
    say("events by type: " + ", ".join(f"{k} {v}" for k, v in events.most_common()))
    return [
        Line(
            "lifecycle_events",
            f"{total} history events per case ({events['WORKFLOW_TASK_COMPLETED']} workflow tasks, "
            f"{events['ACTIVITY_TASK_SCHEDULED']} activities, {events['TIMER_STARTED']} timers, "
            f"{events['UPSERT_WORKFLOW_SEARCH_ATTRIBUTES']} upserts)",
            f"{total / bare_total:.1f}x bare {bare_total}",
            "<= 40",
            total <= 40,
        ),
        Line(
            f"lifecycle_rate[{n} cases, {CONCURRENCY} at once]",
            f"{rate:.2f} cases/s",
            f"{rate / bare_rate:.2f}x bare {bare_rate:.2f}/s",
            ">= 0.5x bare",
            rate >= 0.5 * bare_rate,
        ),
    ]


# ----- memory


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def settled_rss(pid: int, seconds: float = 3.0) -> int:
    """The process's RSS once it has stopped growing for a moment (the last tasks finishing)."""
    last = rss_kb(pid)
    while True:
        await asyncio.sleep(seconds)
        now = rss_kb(pid)
        if now <= last * 1.01:
            return now
        last = now


async def memory(bench: Bench) -> list[Line]:
    """Worker RSS per cached case: a worker of its own with a cache larger than the cases it holds, RSS after a
    few cases against RSS with `n` more open and routed; the bare worker the same with one-timer workflows."""
    return [await memory_at(bench, n) for n in bench.size["memory"]]


async def memory_at(bench: Bench, n: int) -> Line:
    assert bench.client is not None
    client = bench.client
    queue = f"memory-{n}-{bench.tag}"
    proc = bench.start_worker(queue, name=f"memory-{n}", ESCALATIONS_MAX_CACHED_WORKFLOWS=str(n + 100))
    bare_proc = bench.start_bare_worker(f"{queue}-bare", name=f"memory-bare-{n}")
    esc = EscalationClient(client, task_queue=queue)
    customer = f"memory-{n}-{bench.tag}"
    far = datetime.now(UTC) + timedelta(hours=1)

    async def start_bare() -> WorkflowHandle:
        return await client.start_workflow(
            TIMER, far, id=f"bare-{uuid.uuid4().hex[:12]}", task_queue=f"{queue}-bare", result_type=float
        )

    try:
        warm = await gather_limited(10, [lambda: esc.open(case_input(customer)) for _ in range(20)])
        await all_held(bench, customer, len(warm), timeout=60)
        before = await settled_rss(proc.pid)
        await gather_limited(50, [lambda: esc.open(case_input(customer)) for _ in range(n)])
        await all_held(bench, customer, n + len(warm), timeout=60 + n / 5)
        after = await settled_rss(proc.pid)
        per_case = (after - before) / n

        bare = await gather_limited(10, [start_bare for _ in range(20)])
        await asyncio.sleep(3)
        bare_before = await settled_rss(bare_proc.pid)
        bare += await gather_limited(50, [start_bare for _ in range(n)])
        await asyncio.sleep(3)
        bare_after = await settled_rss(bare_proc.pid)
        bare_per = max(bare_after - bare_before, 1) / n
        for h in bare:
            await h.terminate("benchmark done")
    finally:
        bench.stop(proc)
        bench.stop(bare_proc)
    return Line(
        f"memory[{n} cached cases]",
        f"{per_case:.0f} KB worker RSS per cached case ({before / 1024:.0f} MB -> {after / 1024:.0f} MB)",
        f"{per_case / bare_per:.1f}x bare one-timer {bare_per:.1f} KB",
        "<= 60 KB",
        per_case <= 60,
    )


# ----- routing


async def fill(client: Client, reps: list[str], n: int, tag: str) -> None:
    """Open cases as visibility sees them: Escalation executions with an owner and the open status, on a queue
    no worker polls (the routing figure is about counting them, not running them)."""
    keys = {name: SearchAttributeKey.for_keyword(name) for name in (SA_OWNER, SA_STATUS)}

    async def start(i: int) -> None:
        await client.start_workflow(
            WORKFLOW_TYPE,
            id=f"filler-{tag}-{uuid.uuid4().hex[:12]}",
            task_queue=f"nobody-{tag}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(keys[SA_OWNER], reps[i % len(reps)]),
                    SearchAttributePair(keys[SA_STATUS], Status.OPEN.value),
                ]
            ),
        )

    await gather_limited(100, [functools.partial(start, i) for i in range(n)])


async def decisions(client: Client, route: RouteActivities, n: int = 30, before: int = 5) -> tuple[list, list]:
    """Seconds per decision: the activity as the worker runs it (the load index), `n` decisions spread over a few
    seconds (the index lists again meanwhile); then `before` decisions as before the index, one visibility list
    over the candidates each."""
    env = ActivityEnvironment(client=client)
    roster = load_roster(ROSTER)
    candidates = [r.id for r in roster.qualified(Tier.AGENT, ["billing"], "en")]

    def ask(i: int) -> Assign:
        return Assign(
            case_id=f"R-{i}", tier=Tier.AGENT, stint=1, skills=["billing"], language="en", at=datetime.now(UTC)
        )

    now, old = [], []
    for i in range(n):
        t0 = time.perf_counter()
        await env.run(route.find_owner, ask(i))
        now.append(time.perf_counter() - t0)
        await asyncio.sleep(0.1)
    for i in range(before):
        t0 = time.perf_counter()
        loads = await open_cases(client, candidates)
        routing.choose(roster, ask(i), loads, datetime.now(UTC))
        old.append(time.perf_counter() - t0)
    return now, old


async def route_figure(bench: Bench) -> Line:
    few, many = bench.size["routing"]
    client = await Client.connect(
        bench.address, namespace=ROUTING_NAMESPACE, data_converter=data_converter_for(bench.settings)
    )
    agents = [r.id for r in load_roster(ROSTER).reps if r.tier == Tier.AGENT]
    held = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND {SA_OWNER} IS NOT NULL'
    open_now = await count(client, held)
    await fill(client, agents, max(0, few - open_now), bench.tag)
    await until(lambda: _at_least(count(client, held), few), timeout=30)  # visibility has them all
    route = RouteActivities(RosterStore(ROSTER))
    at_few = await count(client, held)
    now_few, before_few = await decisions(client, route)
    t0 = time.monotonic()
    await fill(client, agents, many - at_few, bench.tag)
    await until(lambda: _at_least(count(client, held), many), timeout=60)
    say(f"{many - at_few} open cases added in {time.monotonic() - t0:.0f} s")
    at_many = await count(client, held)
    route = RouteActivities(RosterStore(ROSTER))  # a worker starting with this many open
    now_many, before_many = await decisions(client, route)
    t0 = time.perf_counter()
    await list_holders(client)
    listing = time.perf_counter() - t0
    p50, p50_few = percentile(now_many, 0.5), percentile(now_few, 0.5)
    old, old_few = percentile(before_many, 0.5), percentile(before_few, 0.5)
    ratio = p50 / p50_few
    return Line(
        f"routing[{at_many} open vs {at_few}]",
        f"{p50 * 1000:.1f} ms per decision p50 (first {now_many[0] * 1000:.0f} ms, p99 "
        f"{percentile(now_many, 0.99) * 1000:.0f} ms; one visibility list per decision before: "
        f"{old * 1000:.0f} ms, {old / old_few:.1f}x; the index's background listing {listing:.2f} s)",
        f"{ratio:.2f}x at {at_few} open {p50_few * 1000:.1f} ms",
        "<= 2x",
        ratio <= 2,
    )


# ----- the pattern report


def report_figure() -> list[Line]:
    from bench import report  # DuckDB and the insight extra, for this figure only

    return report.figure()


# ----- the run


async def run(mode: str, only: list[str]) -> list[Line]:
    workdir = Path(tempfile.mkdtemp(prefix="escalations-bench-"))
    bench = Bench(mode, workdir)
    lines: list[Line] = []
    started = time.monotonic()
    sizes = ", ".join(f"{k} {v}" for k, v in bench.size.items())
    print(f"# {mode} mode ({sizes}); logs in {workdir}", flush=True)
    try:
        bench.start_server()
        await bench.connect()
        bench.start_worker()
        bench.start_bare_worker()
        await asyncio.sleep(3)
        workers_alive()

        async def figure(name: str, make: Callable[[], Awaitable[Line | list[Line]]]) -> None:
            if name not in only:
                return
            t0 = time.monotonic()
            got = await make()
            for line in got if isinstance(got, list) else [got]:
                lines.append(line)
                print(line, flush=True)
            say(f"{name} took {time.monotonic() - t0:.0f} s")

        for workers in bench.size["breach_workers"]:
            await figure("breach", functools.partial(breach, bench, workers))
        await figure("burst", lambda: burst(bench))
        await figure("lifecycle", lambda: lifecycles(bench))
        await figure("memory", lambda: memory(bench))
        await figure("routing", lambda: route_figure(bench))
        # The pattern report over a million events (bench/report.py): no server, the same size in both modes.
        await figure("report", lambda: asyncio.to_thread(report_figure))
    finally:
        bench.stop_all()
    print(f"# {sum(line.ok for line in lines)}/{len(lines)} OK in {time.monotonic() - started:.0f} s", flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (about an hour)")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"comma-separated figures: {', '.join(FIGURES)}")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    # The routing figure runs the routing activity in this process: its log lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    lines = asyncio.run(run("full" if args.full else "quick", only))
    return 0 if all(line.ok for line in lines) else 1
