"""`python -m bench.chaos`: the fault-injection run (see bench.chaos.run). Exits 1 when a target is missed."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from bench.chaos.run import Config, main_async
from escalation import logs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--worker-kills", type=int, default=20)
    parser.add_argument("--server-kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--storm", type=float, default=150.0, help="seconds over which the kills are spread")
    parser.add_argument("--no-calm", action="store_true", help="skip the no-kill baseline phase")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the worker processes, e.g. ESCALATIONS_STICKY_QUEUE_TIMEOUT=3s",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep servers' data and logs here")
    args = parser.parse_args()
    # The client's own retries while the server is down are expected here: keep the output to the figures.
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet))))
    cfg = Config(
        cases=args.cases,
        worker_kills=args.worker_kills,
        server_kills=args.server_kills,
        seed=args.seed,
        storm=args.storm,
        calm=not args.no_calm,
        worker_env=dict(item.split("=", 1) for item in args.worker_env),
    )
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        ok = asyncio.run(main_async(cfg, args.workdir or Path(tmp)))
    logs.leave(0 if ok else 1)


if __name__ == "__main__":
    main()
