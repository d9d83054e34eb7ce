"""The small HTTP endpoints of ours (the wallboard page, the codec server, the inbound endpoint, the events
receiver): where they listen, whether only this machine can reach them (then they may go without a credential),
and how they answer what goes wrong (JSON, always)."""

from __future__ import annotations

import ipaddress
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from escalation.config import ConfigError

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host`: localhost or a loopback address."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def parse_address(address: str, setting: str = "--web") -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:8080', ':8080' (every address) -> (host, port); ConfigError when it is not."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{setting}: give HOST:PORT, e.g. 127.0.0.1:8080 (got {address!r})")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


async def listen(app: web.Application, address: str, what: str) -> tuple[web.AppRunner, str]:
    """Serve `app` on `address` (HOST:PORT). Returns the runner (clean it up to stop) and the URL it answers on
    (the port the system chose, for port 0); ConfigError, naming `what`, when it cannot listen there."""
    host, port = parse_address(address, what)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as err:
        await runner.cleanup()
        raise ConfigError(f"{what}: cannot listen on {address}: {err.strerror or err}") from None
    bound = runner.addresses[0] if runner.addresses else (host, port)
    shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
    return runner, f"http://{shown}:{bound[1]}/"


def json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def json_errors(failed: str, failure: str, *, logged: frozenset[int] = frozenset()) -> Middleware:
    """A middleware by which every answer is JSON: aiohttp's own refusals (unknown path, wrong method, body too
    large; those in `logged` also logged as `<failed without _failed>_refused`) as well as a failure of the
    endpoint, answered 500 with `failure` and logged as `failed` in one line (where it failed, never the request)."""
    refused = failed.removesuffix("_failed") + "_refused"

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            text = exc.text or ""
            message = exc.reason if not text or text.startswith(f"{exc.status}: ") else text
            if exc.status in logged:
                log.warning(refused, status=exc.status, remote=request.remote)
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            return json_error(exc.status, message, **allow)
        except Exception as err:
            frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
            log.error(
                failed,
                method=request.method,
                path=request.path,
                error=type(err).__name__,
                at=f"{Path(frame.filename).name}:{frame.lineno}" if frame else None,
            )
            return json_error(500, failure)

    return middleware
