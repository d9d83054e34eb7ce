"""The small HTTP endpoints of ours (the wallboard page, the codec server): where they listen, and whether only
this machine can reach them (then they may go without a credential)."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from escalation.config import ConfigError


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
