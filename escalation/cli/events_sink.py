"""`escalations events-sink`: the receiver that lands the event webhook in day files for reporting
(escalation.delivery.events_sink)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from escalation import logs
from escalation.cli import Code, _guarded, app, fail, say
from escalation.config import ConfigError
from escalation.delivery.events_sink import LISTEN_SETTING, EventsSink, secrets_from, serve
from escalation.delivery.settings import EventsSinkSettings
from escalation.web import parse_address


@app.command(
    "events-sink",
    epilog="Example: ESCALATIONS_EVENTS_SINK__SECRET=whsec_... escalations events-sink --out /var/lib/escalations/events"
    "  |  the worker: ESCALATIONS_WEBHOOK__URL=http://127.0.0.1:8089/events  |  "
    "escalations report --events /var/lib/escalations/events",
)
def events_sink(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help=f"Where to listen (else {LISTEN_SETTING}, 127.0.0.1:8089)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="The folder of the day files, DIR/date=YYYY-MM-DD/events.jsonl (else ESCALATIONS_EVENTS_SINK__OUT, "
            "else the data folder's events/).",
        ),
    ] = None,
) -> None:
    """Receive the event webhook (POST /events, signed with ESCALATIONS_EVENTS_SINK__SECRET, else the webhook's
    secret) and append each event once to DIR/date=YYYY-MM-DD/events.jsonl, on disk before it answers 200. Runs
    until SIGTERM or Ctrl-C, then answers the events it has received and exits 0."""

    def build() -> tuple[EventsSink, str]:
        settings = ctx.obj.settings()
        own = settings.delivery.events_sink if settings.delivery is not None else EventsSinkSettings()
        address = listen or own.listen
        parse_address(address, "--listen" if listen else LISTEN_SETTING)
        folder = out or own.out or settings.data_dir / "events"
        try:
            return EventsSink(folder, secrets_from(settings.delivery), tolerance=own.tolerance), address
        except OSError as err:
            raise ConfigError(f"{folder}: cannot write there: {err.strerror or err}") from None

    logs.configure()
    sink, address = _guarded(build)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(sink, address, announce=say, stop=stop)

    try:
        asyncio.run(main())
    except ConfigError as err:
        fail(str(err), Code.UNREACHABLE)
    finally:
        sink.close()
