"""The wallboard as a read-only web page (`escalations board --web HOST:PORT`): the figures of escalation.board
(open cases per tier and status, the next breaches with a countdown, unowned cases, each rep's load and
state, breaches and escalations in the last hour from the workers' metrics), redrawn by the browser every few
seconds. Also as JSON on /board.json. Case ids, tiers, statuses, severities and rep ids only.

Bound to a loopback address it needs no login. Bound anywhere else, every request (but /healthz) needs
`Authorization: Bearer <credential>`: a credential of a rep or a service, verified with the identity keys
(escalation.identity, ESCALATIONS_IDENTITY__KEYS); without keys the page refuses to start there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from escalation.board import CASE_COLUMNS, Board, MetricsWindow, gather_board
from escalation.client import EscalationClient
from escalation.config import ConfigError
from escalation.domain.formatting import instant
from escalation.identity import CUSTOMER, CredentialRefused, IdentitySettings, KeyProblem, Verifier
from escalation.web import is_loopback, listen, parse_address

log = structlog.get_logger()

Clock = Callable[[], datetime]


# ----- the page (pure)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str = "", empty: str = "none") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    if not rows:
        return f'<table class="{css}"><tr>{head}</tr><tr><td colspan="{len(headers)}" class="none">{empty}</td></tr></table>'
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


STYLE = """
body { background: #111; color: #eee; font: 16px/1.35 system-ui, sans-serif; margin: 1.2em; }
h1 { font-size: 1.5em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1em 0 .3em; color: #9cf; }
.at { color: #aaa; } .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(30em, 1fr)); gap: 1em; }
table { border-collapse: collapse; width: 100%; } th, td { padding: .2em .6em; text-align: left; white-space: nowrap; }
th { color: #aaa; font-weight: normal; border-bottom: 1px solid #444; } td { border-bottom: 1px solid #222; }
td.none { color: #777; } .figure { font-size: 2.4em; font-weight: bold; } .label { color: #aaa; }
.hour { display: flex; gap: 3em; } .note { color: #fc6; } .late { color: #f66; }
"""


def page(board: Board, now: datetime, refresh: float) -> str:
    """The board as an HTML page that reloads itself every `refresh` seconds. Every value is escaped."""
    statuses = list(next(iter(board.counts.values()), {}))
    counts = _table(
        ["tier", *(s.value for s in statuses)],
        [[t.value, *(str(by[s]) for s in statuses)] for t, by in board.counts.items()],
        "counts",
    )
    reps = _table(
        ["rep", "tier", "open cases", "state"],
        [
            [
                r.rep_id,
                r.tier.value if r.tier else "-",
                f"{r.open_cases}/{r.max_cases}" if r.max_cases is not None else str(r.open_cases),
                r.state or "-",
            ]
            for r in board.reps
        ],
        "reps",
    )
    hour = board.last_hour
    if hour is None:
        last_hour = (
            '<p class="none">no metrics read (start the board with --metrics, or set ESCALATIONS_METRICS_ADDRESS)</p>'
        )
    else:
        span = "last hour" if hour.full_hour else f"since {instant(hour.since, seconds=True)}"
        missing = (
            f'<p class="note">metrics not reachable: {escape(", ".join(hour.unreachable))}</p>'
            if hour.unreachable
            else ""
        )
        last_hour = (
            f'<div class="hour"><div><div class="figure" id="breaches-last-hour">{hour.breaches}</div>'
            f'<div class="label">SLA breaches, {escape(span)}</div></div>'
            f'<div><div class="figure" id="escalations-last-hour">{hour.escalations}</div>'
            f'<div class="label">escalations, {escape(span)}</div></div></div>{missing}'
        )
    notes = []
    if not board.complete:
        notes.append(f"lists below the counts are from the first {board.listed} of {board.running} running cases")
    if board.roster_problem is not None:
        notes.append(f"roster not readable, rep states missing: {board.roster_problem}")
    seconds = max(1, round(refresh))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{seconds}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Escalations board</title><style>{STYLE}</style></head>
<body>
<h1>Escalations board</h1>
<div class="at">at {escape(instant(board.at, seconds=True))}, redrawn every {seconds}s</div>
<div class="grid">
<section><h2>{board.running} running case(s)</h2>{counts}</section>
<section><h2>Breaches and escalations</h2>{last_hour}</section>
<section><h2>Next breaches</h2>{_table(CASE_COLUMNS, [c.row(now) for c in board.next_breaches], "breaches")}</section>
<section><h2>Unowned: {len(board.unowned)}</h2>{_table(CASE_COLUMNS, [c.row(now) for c in board.unowned], "unowned")}</section>
<section><h2>Reps</h2>{reps}</section>
</div>
{"".join(f'<p class="note">{escape(n)}</p>' for n in notes)}
</body></html>
"""


# ----- the server


class Wallboard:
    """The board's figures for the page: read from visibility (and the metrics) at most every `fresh_for`
    seconds, however many screens show it."""

    def __init__(
        self,
        esc: EscalationClient,
        *,
        roster_path: Path | None,
        breaches: int = 10,
        metrics: MetricsWindow | None = None,
        fresh_for: float = 2.0,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.esc = esc
        self.roster_path = roster_path
        self.breaches = breaches
        self.metrics = metrics
        self.fresh_for = fresh_for
        self.clock = clock
        self._last: tuple[float, Board] | None = None
        self._lock = asyncio.Lock()

    async def board(self) -> Board:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.fresh_for:
                return self._last[1]
            now = self.clock()
            found = await gather_board(self.esc, now, roster_path=self.roster_path, breaches=self.breaches)
            if self.metrics is not None:
                found.last_hour = await self.metrics.sample(now)
            self._last = (time.monotonic(), found)
            return found


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bearer(verifier: Verifier) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="escalations board"'}
        if scheme.lower() != "bearer" or not token.strip():
            return web.json_response(
                {"error": "this board needs a credential: send Authorization: Bearer <credential>"},
                status=401,
                headers=challenge,
            )
        try:
            claims = verifier.verify(token.strip())
        except CredentialRefused as err:
            log.warning("board_refused", reason=err.reason, remote=request.remote)
            return web.json_response({"error": err.reason}, status=401, headers=challenge)
        if claims.subject == CUSTOMER:
            return web.json_response({"error": "the board is for reps and services, not customers"}, status=403)
        return await handler(request)

    return check


def build_app(wall: Wallboard, *, refresh: float, verifier: Verifier | None = None) -> web.Application:
    """GET / (the page), /board.json (the same figures), /healthz. With `verifier`, a bearer credential on every
    request but /healthz."""

    async def index(_: web.Request) -> web.Response:
        found = await wall.board()
        return web.Response(text=page(found, wall.clock(), refresh), content_type="text/html", charset="utf-8")

    async def as_json(_: web.Request) -> web.Response:
        found = await wall.board()
        return web.Response(text=found.model_dump_json(), content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[_bearer(verifier)] if verifier is not None else [])
    app.router.add_get("/", index)
    app.router.add_get("/board.json", as_json)
    app.router.add_get("/healthz", health)
    return app


def verifier_for(address: str, identity: IdentitySettings) -> Verifier | None:
    """None for a loopback address (no login); else the verifier of the identity settings (ConfigError when they
    name no keys: the board then does not start)."""
    host, _ = parse_address(address)
    if is_loopback(host):
        return None
    try:
        return Verifier.from_settings(identity)
    except KeyProblem as err:
        raise ConfigError(
            f"the board on {address} is reachable from other machines, so every request needs a credential, "
            f"and {err}; or bind it to 127.0.0.1 (no login there)"
        ) from None


async def start(
    wall: Wallboard, address: str, *, refresh: float, verifier: Verifier | None
) -> tuple[web.AppRunner, str]:
    """Serve the board on `address` (HOST:PORT), with a bearer credential on every request when `verifier` is
    given. Returns the runner (clean it up to stop) and the page's URL."""
    host, _ = parse_address(address)
    if verifier is None and not is_loopback(host):
        raise ConfigError(f"--web: {address} is reachable from other machines: a verifier is needed there")
    return await listen(build_app(wall, refresh=refresh, verifier=verifier), address, "--web")


async def serve(
    wall: Wallboard, address: str, *, refresh: float, verifier: Verifier | None, announce: Callable[[str], None]
) -> None:
    """Serve until cancelled (Ctrl-C); the verifier's keys are read again as it asks (a JWKS file or URL)."""
    runner, url = await start(wall, address, refresh=refresh, verifier=verifier)
    stop = asyncio.Event()
    keep_fresh = asyncio.create_task(verifier.keep_fresh(stop)) if verifier is not None else None
    reading = asyncio.create_task(_keep_reading(wall, refresh, stop))
    announce(f"wallboard on {url}" + ("" if verifier is None else " (a bearer credential on every request)"))
    try:
        await asyncio.Event().wait()
    finally:
        stop.set()
        for task in (keep_fresh, reading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await runner.cleanup()


async def _keep_reading(wall: Wallboard, refresh: float, stop: asyncio.Event) -> None:
    """Read the board every `refresh` seconds whether or not a screen shows it, so the metrics' hour has its
    readings (and the next screen gets a fresh board at once)."""
    while not stop.is_set():
        try:
            await wall.board()
        except Exception as err:  # visibility or the metrics not answering: the next round tries again
            log.warning("board_not_read", error=f"{type(err).__name__}: {err}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), refresh)
