"""Fault-injection run: live cases on a dev server (SQLite) with the worker as its own process, the worker
and the server killed with SIGKILL on a seeded schedule, then every history replayed and every case
checked against the end its journey must reach.

    python -m bench.chaos [--cases 200] [--worker-kills 20] [--server-kills 3] [--seed 7]

A calm phase (the same journeys, no kills) runs first on its own server, so breach lateness under the
storm is printed as a ratio against the calm run measured on the same machine minutes earlier.

Journeys (each case draws one from the seed):
- ack: acknowledged by its owner, a note, resolved, the check-in answered "fixed": closed, no breach.
- breach: nobody acknowledges at agent; the 20 s target breaches once and the case climbs to team lead,
  whose owner acknowledges and resolves it: closed, exactly one breach.
- callback: acknowledged, a callback booked a few seconds ahead and reached, resolved: closed, no breach.

Checked at the end: every run of every case replays with the current code; no case is stuck (workflow
task failing) or open; each case ended as its journey says; every event id and message key appears
exactly once, every event sequence has no gap, and every message a workflow handed to delivery is in
the outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Replayer

from escalation.client.converter import data_converter
from escalation.client.credentials import CredentialInterceptor, use_credential
from escalation.constants import SEARCH_ATTRIBUTES, workflow_id
from escalation.domain.models import (
    AcknowledgeInput,
    CallbackOutcomeInput,
    CaseState,
    EscalationInput,
    FollowUpResponseInput,
    NoteInput,
    ResolveInput,
    ScheduleCallbackInput,
    Status,
    Tier,
)
from escalation.domain.rules.step import Message
from escalation.identity import IdentitySettings, Signer, ensure_key
from workflows import Escalation
from workflows.replay import replay_interceptors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
JOURNEYS = ("ack", "breach", "callback")
T = TypeVar("T")


@dataclass
class Config:
    cases: int = 200
    worker_kills: int = 20
    server_kills: int = 3
    seed: int = 7
    storm: float = 150.0  # seconds over which the kills are spread
    deadline: float = 420.0  # a journey not done by then is reported (a stuck case never ends)
    calm: bool = True  # run the no-kill phase first for the lateness baseline
    worker_env: dict[str, str] = field(default_factory=dict)  # extra ESCALATIONS_* for the worker


@dataclass
class Phase:
    name: str
    journeys: dict[str, str] = field(default_factory=dict)
    finished: dict[str, str] = field(default_factory=dict)  # case -> "ok" or what went wrong
    lateness: list[float] = field(default_factory=list)  # seconds each breach was recorded after its due
    replay_failures: dict[str, str] = field(default_factory=dict)
    stuck: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    runs: int = 0
    kills: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temporal_binary() -> str:
    found = Path(sys.executable).parent / "temporal"
    return str(found) if found.exists() else "temporal"


def start_sqlite_server(db: Path, port: int) -> subprocess.Popen:
    """A dev server on SQLite file `db` (kept across restarts), with the search attributes registered."""
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(db),
        "--port",
        str(port),
        "--headless",
        "--log-level",
        "error",
        "--ip",
        "127.0.0.1",
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
    ]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Processes:
    """The dev server and the worker as separate processes that can be killed and restarted."""

    def __init__(self, workdir: Path, cfg: Config) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.cfg = cfg
        self.server: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.worker_log = workdir / "worker.log"  # every worker started appends to it
        # The run's signing key: the driver signs each command for the rep it names, the worker verifies.
        self.keys = workdir / "identity.jwks"
        ensure_key(self.keys)

    def start_server(self) -> None:
        self.server = start_sqlite_server(self.workdir / "temporal.db", self.port)

    def start_worker(self) -> None:
        env = (
            os.environ
            | {
                "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}",
                "ESCALATIONS_TASK_QUEUE": "chaos",
                "ESCALATIONS_DATA_DIR": str(self.workdir / "data"),
                "ESCALATIONS_POLICY_DIR": str(HERE / "policies"),
                "ESCALATIONS_ROSTER": str(HERE / "roster.toml"),
                "ESCALATIONS_IDENTITY__KEYS": str(self.keys),
                "ESCALATIONS_CODEC__ENABLED": "false",  # the run replays every history with the plain converter
            }
            | self.cfg.worker_env
        )
        with self.worker_log.open("ab") as log:  # the worker keeps its own copy of the file
            self.worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log)

    @staticmethod
    def _kill(proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def kill_worker(self) -> None:
        self._kill(self.worker)

    def kill_server(self) -> None:
        self._kill(self.server)

    def stop(self) -> None:
        for proc in (self.worker, self.server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def customer(keys: Path, case_id: str) -> str:
    """The customer's credential for their case, as the signed inbound endpoint mints it."""
    signer = Signer.from_settings(IdentitySettings(keys=str(keys)))
    assert signer is not None
    return signer.mint("customer", case_id=case_id, ttl=timedelta(minutes=30))


async def connect(port: int, keys: Path | None = None, timeout: float = 30.0) -> Client:
    """A client of the run's server; with `keys`, its commands are signed for the rep each names."""
    deadline = time.monotonic() + timeout
    signing = [CredentialInterceptor.from_settings(IdentitySettings(keys=str(keys)))] if keys is not None else []
    while True:
        try:
            return await Client.connect(f"127.0.0.1:{port}", data_converter=data_converter, interceptors=signing)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def persist(what: Callable[[], Awaitable[T]], *, until: float) -> T:
    """Retry through crashes: the server or the worker may be down for a while at any moment."""
    delay = 0.2
    while True:
        try:
            # A call cut off by a server restart can hang past its own RPC timeout: bound it here too.
            return await asyncio.wait_for(what(), 30)
        except WorkflowUpdateFailedError:
            raise  # the case refused the command: retrying it changes nothing
        except (TimeoutError, RPCError, RuntimeError) as err:
            retry: Exception = err
        except Exception as err:  # update and query failures from a case whose task is failing
            if "already started" in str(err):
                raise
            retry = err
        if time.monotonic() > until:
            raise TimeoutError(f"gave up: {retry}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 3.0)


class Driver:
    """Drives one phase's cases through their journeys while the storm goes on."""

    def __init__(self, client: Client, phase: Phase, until: float, keys: Path) -> None:
        self.client = client
        self.phase = phase
        self.until = until
        self.keys = keys

    def handle(self, case_id: str):
        return self.client.get_workflow_handle(workflow_id(case_id))

    async def state(self, case_id: str) -> CaseState:
        handle = self.handle(case_id)
        return await persist(
            lambda: handle.query("state", result_type=CaseState, rpc_timeout=timedelta(seconds=5)), until=self.until
        )

    async def wait_for(self, case_id: str, check: Callable[[CaseState], bool], interval: float = 2.0) -> CaseState:
        while True:
            s = await self.state(case_id)
            if check(s):
                return s
            if time.monotonic() > self.until:
                raise TimeoutError(f"{case_id}: not reached (tier {s.tier}, status {s.status.value})")
            await asyncio.sleep(interval)

    async def update(self, case_id: str, step: str, name: str, arg: Any, result_type: type = dict) -> Any:
        # A fixed update id per step: a retry after a crash is applied once.
        handle = self.handle(case_id)
        return await persist(
            lambda: handle.execute_update(
                name, arg, id=f"{case_id}-{step}", result_type=result_type, rpc_timeout=timedelta(seconds=10)
            ),
            until=self.until,
        )

    async def open(self, case_id: str, policy: str) -> None:
        inp = EscalationInput.model_validate(
            {
                "case_id": case_id,
                "policy": policy,
                "channel": "call",
                "category": "billing",
                "skills": ["billing"],
                "severity": "high",
                "summary": "Charged twice",
                "desired_outcome": "Refund",
                "opened_by": "ana",
                "customer": {
                    "id": f"cust-{case_id}",
                    "name": "Chaos Customer",
                    "email": "customer@example.org",
                    "phone": "+49 30 1234567",
                    "time_zone": "Europe/Berlin",
                    "lifetime_value": "100",
                    "preferred_channel": "email",
                },
            }
        )

        async def start() -> None:
            try:
                await self.client.start_workflow(
                    "Escalation", inp, id=workflow_id(case_id), task_queue="chaos", rpc_timeout=timedelta(seconds=10)
                )
            except Exception as err:  # a start whose answer was lost in a crash: the case is there
                if "already started" not in str(err).lower() and "AlreadyStarted" not in type(err).__name__:
                    raise

        await persist(start, until=self.until)

    async def journey(self, case_id: str, kind: str) -> None:
        # Only the breach journey runs on the 20 s acknowledge target; the others must never breach, however
        # long the storm keeps the driver from acknowledging.
        await self.open(case_id, "chaos" if kind == "breach" else "chaos-patient")
        if kind == "breach":
            s = await self.wait_for(case_id, lambda s: s.tier == Tier.TEAM_LEAD and s.owner is not None)
        else:
            s = await self.wait_for(case_id, lambda s: s.owner is not None)
        assert s.owner is not None  # what it waited for
        owner = s.owner.id
        await self.update(case_id, "ack", "acknowledge", AcknowledgeInput(actor=owner, note="on it"))
        await self.update(case_id, "note", "add_note", NoteInput(actor=owner, text="Customer calmer"))
        if kind == "callback":
            # "earliest": due as soon as it is booked (the customer has no contact window), however long the
            # storm held the command up; the outcome is recorded once the case says the call is due.
            await self.update(
                case_id,
                "callback",
                "schedule_callback",
                ScheduleCallbackInput(actor=owner, at="earliest", window=timedelta(minutes=30)),
            )
            await self.wait_for(case_id, lambda s: bool(s.callbacks) and s.callbacks[0].due_at < datetime.now(UTC))
            await self.update(
                case_id,
                "reached",
                "record_callback_outcome",
                CallbackOutcomeInput(actor=owner, callback_id="callback-1", outcome="reached"),
            )
        await self.update(
            case_id,
            "resolve",
            "resolve",
            ResolveInput(actor=owner, resolution="Refunded", root_cause="billing_error", kb_article="KB-1"),
        )
        await self.wait_for(case_id, lambda s: any(c.sent_at for c in s.checkins))
        with use_credential(customer(self.keys, case_id)):
            await self.update(case_id, "fixed", "followup_response", FollowUpResponseInput(answer="fixed"))
        await self.wait_for(case_id, lambda s: s.status == Status.CLOSED)

    async def run_case(self, case_id: str, kind: str) -> None:
        try:
            await self.journey(case_id, kind)
            self.phase.finished[case_id] = "ok"
        except Exception as err:
            self.phase.finished[case_id] = f"{type(err).__name__}: {err}"[:300]


async def storm(procs: Processes, cfg: Config, phase: Phase, rng: random.Random, done: asyncio.Event) -> None:
    """Kill the worker and the server at seeded moments, restarting each after a short outage."""
    plan = sorted(
        [(rng.uniform(5, cfg.storm), "worker") for _ in range(cfg.worker_kills)]
        + [(rng.uniform(10, cfg.storm), "server") for _ in range(cfg.server_kills)]
    )
    start = time.monotonic()
    for at, what in plan:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        if done.is_set():
            return
        if what == "worker":
            procs.kill_worker()
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            procs.start_worker()
        else:
            procs.kill_server()
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            procs.start_server()
        phase.kills[what] += 1


async def histories(client: Client) -> list[WorkflowHistory]:
    """Every run of every case (continue-as-new makes several runs of one case)."""
    found: list[WorkflowHistory] = []
    sem = asyncio.Semaphore(8)

    async def one(wid: str, run_id: str) -> None:
        async with sem:
            found.append(await client.get_workflow_handle(wid, run_id=run_id).fetch_history())

    tasks = [one(w.id, w.run_id) async for w in client.list_workflows("WorkflowType = 'Escalation'")]
    await asyncio.gather(*tasks)
    return found


def sent_keys(history: WorkflowHistory) -> list[str]:
    """Keys of the messages this run handed to delivery (send_message activities scheduled)."""
    keys = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name != "send_message":
            continue
        [message] = data_converter.payload_converter.from_payloads(list(attrs.input.payloads), [Message])
        keys.append(message.key)
    return keys


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def check(client: Client, procs: Processes, phase: Phase) -> None:
    """Replay every run, find stuck or unfinished cases, and count lost or doubled events and messages."""
    runs = await histories(client)
    phase.runs = len(runs)
    replayer = Replayer(workflows=[Escalation], data_converter=data_converter, interceptors=replay_interceptors())
    for history in runs:
        try:
            await replayer.replay_workflow(history)
        except Exception as err:
            phase.replay_failures[history.workflow_id] = str(err).split("\n")[0][:200]
    # A closed case completes once its last messages and events are handed over.
    settle = time.monotonic() + 60
    while True:
        running = [
            wf async for wf in client.list_workflows("WorkflowType = 'Escalation' AND ExecutionStatus = 'Running'")
        ]
        if not running or time.monotonic() > settle:
            break
        await asyncio.sleep(1)
    for wf in running:
        desc = await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
        if desc.raw_description.pending_workflow_task.attempt > 1:
            phase.stuck.append(wf.id)
        phase.problems.append(f"{wf.id}: still running")

    data = procs.workdir / "data"
    events = read_lines(data / "events.jsonl")
    ids = Counter(e["id"] for e in events)
    doubled = [i for i, n in ids.items() if n > 1]
    if doubled:
        phase.problems.append(f"{len(doubled)} event id(s) recorded twice, e.g. {doubled[0]}")
    seqs: dict[str, set[int]] = {}
    for e in events:
        seqs.setdefault(e["case_id"], set()).add(e["seq"])
    for case_id in phase.journeys:
        got = seqs.get(case_id, set())
        if got != set(range(1, max(got, default=0) + 1)) or not got:
            phase.problems.append(f"{case_id}: events missing (seq {sorted(got)[:5]}...)")
    outbox = read_lines(data / "outbox.jsonl")
    keys = Counter(m["key"] for m in outbox)
    twice = [k for k, n in keys.items() if n > 1]
    if twice:
        phase.problems.append(f"{len(twice)} message key(s) delivered twice, e.g. {twice[0]}")
    handed = {k for h in runs for k in sent_keys(h)}
    lost = handed - set(keys)
    if lost:
        phase.problems.append(
            f"{len(lost)} message(s) handed to delivery but not in the outbox, e.g. {sorted(lost)[0]}"
        )


async def finals(client: Client, phase: Phase) -> None:
    """Each case's end against its journey, and how late each breach was recorded."""
    sem = asyncio.Semaphore(8)

    async def one(case_id: str, kind: str) -> None:
        async with sem:
            try:
                s = await client.get_workflow_handle(workflow_id(case_id)).query(
                    "state", result_type=CaseState, rpc_timeout=timedelta(seconds=20)
                )
            except Exception as err:
                phase.problems.append(f"{case_id}: state unreadable ({str(err)[:120]})")
                return
        want = 1 if kind == "breach" else 0
        if s.status != Status.CLOSED or (s.outcome and s.outcome.value) != "resolved":
            phase.problems.append(f"{case_id} ({kind}): ended {s.status.value}/{s.outcome}")
        if s.breaches != want:
            phase.problems.append(f"{case_id} ({kind}): {s.breaches} breach(es), expected {want}")
        for entry in s.timeline:
            if entry.kind == "breached" and entry.detail.get("due_at"):
                due = datetime.fromisoformat(entry.detail["due_at"])
                phase.lateness.append((entry.at - due).total_seconds())

    await asyncio.gather(*(one(c, k) for c, k in phase.journeys.items()))


Inspect = Callable[[Client, Phase], Awaitable[None]]


async def run_phase(name: str, cfg: Config, workdir: Path, *, kills: bool, inspect: Inspect | None = None) -> Phase:
    """One phase on its own server. `inspect` runs after the checks, while the server and worker still run."""
    phase = Phase(name)
    rng = random.Random(f"{cfg.seed}-{name}")
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(workdir, cfg)
    procs.start_server()
    started = time.monotonic()
    try:
        client = await connect(procs.port, procs.keys)
        procs.start_worker()
        until = time.monotonic() + cfg.deadline
        driver = Driver(client, phase, until, procs.keys)
        phase.journeys = {f"{name[0].upper()}-{i:03d}": rng.choice(JOURNEYS) for i in range(cfg.cases)}
        done = asyncio.Event()
        chaos = asyncio.create_task(storm(procs, cfg, phase, rng, done)) if kills else None
        cases = []
        gap = 0.8 * cfg.storm / max(cfg.cases, 1)  # cases keep opening while the storm goes on
        for case_id, kind in phase.journeys.items():
            cases.append(asyncio.create_task(driver.run_case(case_id, kind)))
            await asyncio.sleep(rng.uniform(0.0, 2 * gap))
        await asyncio.gather(*cases)
        done.set()
        if chaos is not None:
            await chaos
        # The storm is over: one healthy server and worker for the checks.
        if procs.server is None or procs.server.poll() is not None:
            procs.start_server()
        if procs.worker is None or procs.worker.poll() is not None:
            procs.start_worker()
        client = await connect(procs.port, procs.keys)
        phase.seconds = time.monotonic() - started
        await finals(client, phase)
        await check(client, procs, phase)
        failed = [f"{c} ({phase.journeys[c]}): {result}" for c, result in phase.finished.items() if result != "ok"]
        phase.problems[:0] = failed  # first: they explain the rest
        if inspect is not None:
            await inspect(client, phase)
    finally:
        procs.stop()
    return phase


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(calm: Phase | None, stormy: Phase) -> bool:
    """Print the figures; True when every target is met."""
    ok = True

    def line(name: str, value: str, good: bool, target: str) -> None:
        nonlocal ok
        ok &= good
        print(f"{name}: {value}, target {target}: {'OK' if good else 'MISS'}")

    for phase in filter(None, (calm, stormy)):
        late = phase.lateness
        print(
            f"[{phase.name}] {len(phase.journeys)} cases, {phase.runs} runs, kills {dict(phase.kills) or 'none'}, "
            f"{phase.seconds:.0f} s; breach lateness p50 {percentile(late, 0.5):.2f} s, "
            f"p99 {percentile(late, 0.99):.2f} s, max {max(late, default=0):.2f} s ({len(late)} breaches)"
        )
        line(f"{phase.name} replay failures", str(len(phase.replay_failures)), not phase.replay_failures, "0")
        line(f"{phase.name} stuck cases", str(len(phase.stuck)), not phase.stuck, "0")
        line(
            f"{phase.name} cases off their journey, lost or doubled", str(len(phase.problems)), not phase.problems, "0"
        )
        for wid, why in sorted(phase.replay_failures.items())[:10]:
            print(f"  replay {wid}: {why}")
        for problem in phase.problems[:10]:
            print(f"  {problem}")
    if calm is not None and calm.lateness and stormy.lateness:
        base, got = percentile(calm.lateness, 0.99), percentile(stormy.lateness, 0.99)
        ratio = got / max(base, 0.05)
        line(
            "breach lateness p99 under the storm",
            f"{got:.2f} s ({ratio:.2f}x the calm run's {base:.2f} s)",
            ratio <= 2.0,
            "<= 2x",
        )
    return ok


async def main_async(cfg: Config, workdir: Path) -> bool:
    calm = await run_phase("calm", cfg, workdir / "calm", kills=False) if cfg.calm else None
    stormy = await run_phase("storm", cfg, workdir / "storm", kills=True)
    return report(calm, stormy)
