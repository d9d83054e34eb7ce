"""What people see, in a real browser (Debian's headless `chromium`, driven over the DevTools protocol): the
Temporal UI's workflow list and a case's page for a case opened with the raw `temporal` CLI, and the
wallboard's web page. Skipped, saying why, where chromium is not installed (`.ci/run` installs it).

With ESCALATIONS_SCREENSHOTS=<folder> the screenshots go there too (the README's docs/ui-case.png,
docs/ui-list.png and docs/wallboard.png are made so)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from escalation.client import EscalationClient
from escalation.domain.rules.display import static_summary
from escalation.identity import HEADER, Signer
from tests.cases import case_input, eventually, worker_process
from tests.conftest import IDENTITY, IDENTITY_KEYS, _binary, dev_server
from tests.servers import free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
)
SHOTS = os.environ.get("ESCALATIONS_SCREENSHOTS")
# Every frame's text: the UI shows a case's summary and details as markdown in iframes of its own.
ALL_TEXT = """(() => {
  const texts = [document.body ? document.body.innerText : ""];
  for (const f of document.querySelectorAll("iframe")) {
    try { texts.push(f.contentDocument.body.innerText); } catch (e) {}
  }
  return texts.join("\\n");
})()"""


class Browser:
    """Headless chromium over the DevTools protocol: load a page, read its text as it fills in (the UI is an
    app that keeps polling, so `--dump-dom` and `--virtual-time-budget` may never settle on it), screenshot."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        assert CHROMIUM is not None
        self.folder = tempfile.mkdtemp(prefix="escalations-chromium-")
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # tests run as root in CI
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                f"--user-data-dir={self.folder}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.calls = 0

    async def __aenter__(self) -> Browser:
        port_file = Path(self.folder) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, f"chromium exited with {self.process.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port within 30s"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            page = next(t for t in await answer.json() if t["type"] == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        return self

    async def __aexit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
            await self.session.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        number = self.calls
        await self.ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 30)
            if message.get("id") == number:
                assert "error" not in message, message["error"]
                return message["result"]

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def text(self) -> str:
        found = await self.call("Runtime.evaluate", expression=ALL_TEXT, returnByValue=True)
        return str(found["result"].get("value") or "")

    async def shows(self, *wanted: str | re.Pattern[str], timeout: float = 30) -> str:
        """The page's text once every wanted string (or pattern) is in it."""

        async def check() -> str | None:
            text = await self.text()
            missing = [w for w in wanted if (w.search(text) is None if isinstance(w, re.Pattern) else w not in text)]
            assert not missing, f"not on the page: {missing}\n--- the page:\n{text[-3000:]}"
            return text

        return await eventually(check, timeout=timeout, interval=0.5)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(SHOTS) / path.name)


@pytest_asyncio.fixture(scope="module")
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A dev server of this module's own with its web UI on."""
    ui_port = free_port()
    environment = await dev_server(ui=True, ui_port=ui_port)
    yield environment, ui_port
    await environment.shutdown()


async def _stop(process: asyncio.subprocess.Process) -> bytes:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    try:
        _, err = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        _, err = await process.communicate()
    return err or b""


@needs_chromium
async def test_the_ui_and_the_wallboard_read_like_the_case(ui_env, tmp_path):
    env, ui_port = ui_env
    address = env.client.service_client.config.target_host
    metrics_port, board_port = free_port(), free_port()
    worker, queue, _ = await worker_process(
        env,
        tmp_path,
        "screens",
        ESCALATIONS_IDENTITY__KEYS=str(IDENTITY_KEYS),
        ESCALATIONS_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
    )
    suffix = queue.rsplit("-", 1)[1]
    customer = {"id": "cust-screens", "name": "Dana Doe", "email": "dana@example.org", "phone": "+49 30 1234567"}
    inp = case_input("standard", customer=customer, opened_by=f"ana-{suffix}")
    wid = f"escalation-{inp.case_id}"
    board = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "escalations"),
        "--address",
        address,
        "board",
        "--web",
        f"127.0.0.1:{board_port}",
        "--interval",
        "1",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
        "--roster",
        str(tmp_path / "roster.toml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
    )
    try:
        # The board has read the worker's metrics once before anything happens: what it counts is growth.
        async def metrics_read() -> bool:
            async with httpx.AsyncClient() as http:
                try:
                    answer = (await http.get(f"http://127.0.0.1:{board_port}/board.json")).json()
                except (httpx.HTTPError, ValueError):
                    return False
            hour = answer.get("last_hour")
            return bool(hour) and not hour.get("unreachable")

        await eventually(metrics_read, timeout=60)
        # Opened with the raw temporal CLI, signed for the agent who opens it.
        case_file = tmp_path / "case.json"
        case_file.write_text(inp.model_dump_json(exclude_none=True))
        token = Signer.from_settings(IDENTITY).mint(inp.opened_by)  # type: ignore[union-attr]
        started = await asyncio.to_thread(
            subprocess.run,
            [
                _binary("temporal"),
                "workflow",
                "start",
                "--address",
                address,
                "--type",
                "Escalation",
                "--task-queue",
                queue,
                "--workflow-id",
                wid,
                "--input-file",
                str(case_file),
                "--headers",
                f"{HEADER}={json.dumps(token)}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert started.returncode == 0, started.stderr
        case = EscalationClient(env.client).case(inp.case_id)

        async def owner_at(tier: str) -> str | None:
            s = await case.state()
            return s.owner.id if s.tier is not None and s.tier.value == tier and s.owner is not None else None

        agent = await eventually(lambda: owner_at("agent"), timeout=30)
        await case.escalate({"actor": agent, "reason": "needs_authority", "target_tier": "manager"})
        manager = await eventually(lambda: owner_at("manager"), timeout=30)

        async with Browser() as browser:
            # The workflow list, as the "at manager" saved view: the case is in it.
            view = quote("WorkflowType = 'Escalation' AND EscalationTier = 'manager'")
            await browser.open(f"http://127.0.0.1:{ui_port}/namespaces/default/workflows?query={view}")
            await browser.shows(wid, "Escalation")
            await browser.screenshot(tmp_path / "ui-list.png")

            # The case's page: its summary (no personal data) and its current details.
            run_id = (await env.client.get_workflow_handle(wid).describe()).run_id
            await browser.open(f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{wid}/{run_id}/user-metadata")
            text = await browser.shows(static_summary(inp), f"open at manager, owner {manager}")
            for personal in ("Dana Doe", "dana@example.org", "+49 30 1234567", inp.summary):
                assert personal not in text, personal
            await browser.screenshot(tmp_path / "ui-case.png")

            # The wallboard: the case at manager, its owner's load, and the escalation of the last hour.
            await browser.open(f"http://127.0.0.1:{board_port}/")
            text = await browser.shows(
                "Escalations board", inp.case_id, manager, re.compile(r"\b[1-9]\d*\s+escalations, (since|last hour)")
            )
            assert "Dana" not in text and "cust-screens" not in text and "example.org" not in text
            await browser.screenshot(tmp_path / "wallboard.png")
    finally:
        board_err = await _stop(board)
        worker_err = await _stop(worker)
    assert b"Traceback" not in board_err, board_err.decode()[-2000:]
    assert b"Traceback" not in worker_err, worker_err.decode()[-2000:]
