"""JSON logs, one object per line: structlog for our own code, and the same JSON for every line of Python
logging (workflow.logger in workflow code, temporalio's own loggers, core's lines forwarded to Python), with
the case, workflow, run, tier and activity they concern as fields (case_id, workflow_id, run_id, tier,
activity); on a terminal the same lines are rendered for reading. No personal data: contact details and free
text are redacted from every line. One line per failing workflow run instead of the SDK's traceback on every
retry."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NoReturn

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger
from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from escalation import metrics
from escalation.constants import SA_TIER, WORKFLOW_ID_PREFIX
from escalation.delivery.redact import REDACTED, redact

_SECRET_KEYS = ("password", "secret", "token", "api_key", "authorization")


def _redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "***"
    return event


# Fields whose value is a person's contact detail or text someone typed: never logged as they are.
PERSONAL_KEYS = frozenset(
    {
        "name",
        "customer_name",
        "owner_name",
        "rep_name",
        "email",
        "phone",
        "summary",
        "desired_outcome",
        "description",
        "comment",
        "note",
        "notes",
        "text",
        "body",
        "subject",
        "resolution",
        "answer_note",
    }
)
# Contact details wherever they stand in a line (an error quoting a request): email addresses and phone numbers
# written with their country code.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(r"\+\d[\d ()./-]{5,}\d")
_CONTACT_KEYS = frozenset({"email", "phone"})
_CONTACT = re.compile(r"@|^\+?[\d ()./-]{5,}$")
# Text from outside (receivers' and servers' answers) may carry credentials: escalation.delivery.redact hides them.
_ERROR_KEYS = frozenset({"error", "exception"})
_NOT_TEXT = frozenset({"level", "timestamp", "logger"})


def _scrub(text: str) -> str:
    return _PHONE.sub(REDACTED, _EMAIL.sub(REDACTED, text))


def _personal(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Contact details and free text out of a line: the fields that hold them are replaced, and email
    addresses and phone numbers are hidden in every other text (the message included)."""
    for key, value in list(event.items()):
        if key.lower() in _CONTACT_KEYS and isinstance(value, str) and not _CONTACT.search(value.strip()):
            continue  # a channel's backend ("email": "smtp"), not an address or a number
        if key.lower() in PERSONAL_KEYS and value is not None:
            event[key] = REDACTED
        elif isinstance(value, str) and key not in _NOT_TEXT:
            event[key] = _scrub(redact(value) if key in _ERROR_KEYS else value)
    return event


def _case_named(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """A line that names a case's workflow names the case too."""
    if "case_id" not in event and (case := case_of(event.get("workflow_id"))):
        event["case_id"] = case
    return event


def _renderer() -> Processor:
    """JSON lines; on a terminal, the console renderer (the same fields, for reading)."""
    stream = sys.__stderr__ or sys.stderr
    if stream is not None and stream.isatty():
        return structlog.dev.ConsoleRenderer()
    return structlog.processors.JSONRenderer()


def configure(level: str = "INFO") -> None:
    _json_logging(level)
    # httpx logs every request URL at INFO; a gateway URL may carry a token in its query string.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            _case_named,
            _personal,
            _renderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    watch_task_failures()
    _forward_core_logs()


# ----- Python logging as JSON
#
# workflow.logger, temporalio's loggers (worker shutdown, activity failures) and core's forwarded lines are
# Python logging records: rendered by the same processors as structlog's lines, so the worker's stream is
# JSON throughout. The SDK's context (workflow, run, activity, core's target and fields) becomes fields.

_RECORD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
# What the SDK attaches to a record: kept as fields by `_record_fields`, never dumped whole.
_TEMPORAL_EXTRAS = {
    "temporal_workflow",
    "temporal_activity",
    "temporal_log",
    "workflow_info",
    "activity_info",
    "__temporal_error_identifier",
}


_TIER = SearchAttributeKey.for_keyword(SA_TIER)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _record_fields(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """A Python logging record's context as fields: the logger, the case and run a workflow or activity
    line concerns, core's target and fields, and whatever the call passed in `extra`."""
    record: logging.LogRecord | None = event.get("_record")
    if record is None:
        return event
    event.setdefault("logger", record.name)
    found: dict[str, Any] = {}
    details = getattr(record, "temporal_workflow", None)
    if isinstance(details, dict):
        # (Not the update's id and name the SDK adds: work a handler started keeps them after it has returned.)
        found |= {
            k: details[k]
            for k in ("workflow_id", "run_id", "workflow_type", "namespace", "task_queue", "attempt")
            if k in details
        }
    activity = getattr(record, "temporal_activity", None)
    if isinstance(activity, dict):
        found |= {
            k: activity[k]
            for k in ("activity_type", "activity_id", "workflow_id", "namespace", "task_queue", "attempt")
            if k in activity
        }
        if "workflow_run_id" in activity:
            found["run_id"] = activity["workflow_run_id"]
        if "activity_type" in activity:
            found["activity"] = activity["activity_type"]
    info = getattr(record, "workflow_info", None)  # workflow.logger's (full_workflow_info_on_extra)
    if isinstance(info, workflow.Info):
        with contextlib.suppress(Exception):  # a search attribute of another type under the name
            if (tier := info.typed_search_attributes.get(_TIER)) is not None:
                found["tier"] = tier
    core = getattr(record, "temporal_log", None)
    if core is not None:
        found["target"] = core.target
        with contextlib.suppress(Exception):  # a field core could not convert: the message still goes
            found |= {k: _plain(v) for k, v in core.fields.items()}
    if case := case_of(found.get("workflow_id")):
        found["case_id"] = case
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and key not in _TEMPORAL_EXTRAS and not key.startswith("_"):
            found[key] = _plain(value)
    for key, value in found.items():
        event.setdefault(key, value)
    return event


class _JsonHandler(logging.StreamHandler):
    """The root handler `configure` installs (found again and replaced when it runs twice)."""


def _json_logging(level: str) -> None:
    shared: list[Processor] = [
        # What an activity bound (escalation.service.log_context) goes on its Python logging lines too.
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _record_fields,
        _redact,
    ]
    # The process's own stderr, beside structlog's lines: a stream swapped in for a while (a test capturing
    # output, a CLI runner) would be closed or foreign by the time a worker logs to it.
    handler = _JsonHandler(sys.__stderr__ or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _personal,
                _renderer(),
            ],
        )
    )
    root = logging.getLogger()
    # Ours from an earlier call, and plain-text stream handlers (a basicConfig somewhere) go; others such
    # as a test runner's capture handlers stay.
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler) or type(h) is logging.StreamHandler]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The SDK appends its context to the message as a dict's repr; the fields above carry it instead.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    # The whole workflow info on each record, for the case's tier (its search attribute) as a field.
    workflow.logger.full_workflow_info_on_extra = True


# ----- failing workflow tasks
#
# A workflow task that fails (a nondeterministic replay, a bug in workflow code) is retried by the server
# for as long as it fails. The SDK reports it on its own terms: the Python part logs a warning with a full
# traceback on every attempt; core (the SDK's Rust engine) reports a nondeterministic task once, by run id
# alone, straight to stderr. The filter below turns both into one JSON line per failing run that names the
# case and points at `escalations doctor`, which finds stuck cases and the reset that repairs each.

SDK_TASK_LOGGER = "temporalio.worker._workflow_instance"  # "Failed activation on workflow ..." (each attempt)
CORE_LOGGER = "temporalio.core"  # where temporal_runtime() forwards core's log lines
# The doctor replays histories under this namespace; their failures are its findings, not the worker's.
REPLAY_NAMESPACE = "escalations-doctor-replay"
TASK_FAILED_HINT = "the case is stuck until this is fixed: `escalations doctor` shows it and the reset that repairs it"
_MESSAGE_LIMIT = 200


def first_line(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def core_failure_message(text: str) -> str:
    """The message inside core's debug rendering of a failure ('Failure { failure: Some(Failure { message:
    "[TMPRL1100] Nondeterminism error: ...", ...'), or the text itself when it is not one."""
    found = re.search(r'message: "((?:[^"\\]|\\.)*)"', text)
    if not found:
        return text
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), found.group(1))


def case_of(workflow_id: str | None) -> str | None:
    if workflow_id and workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return workflow_id[len(WORKFLOW_ID_PREFIX) :]
    return None


# Core names a failing run by its run id only; the worker's interceptor remembers whose run it is.
_RUNS: OrderedDict[str, str] = OrderedDict()
_RUNS_KEPT = 10_000  # more than a worker caches
_runs_lock = threading.Lock()


def _remember_run(run_id: str, workflow_id: str) -> None:
    with _runs_lock:
        _RUNS[run_id] = workflow_id
        _RUNS.move_to_end(run_id)
        while len(_RUNS) > _RUNS_KEPT:
            _RUNS.popitem(last=False)


def _workflow_of(run_id: str) -> str | None:
    with _runs_lock:
        return _RUNS.get(run_id)


class _NameRun(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        _remember_run(info.run_id, info.workflow_id)  # plain bookkeeping outside the workflow's state
        return await super().execute_workflow(input)


class RunNames(Interceptor):
    """Worker interceptor: remembers the workflow id of every run the worker executes, so a failure core
    reports by run id alone is logged with its case."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _NameRun


@dataclass
class _TaskFailure:
    run_id: str
    workflow_id: str | None
    error: str
    message: str
    exc_info: Any = None


def _task_failure(record: logging.LogRecord) -> _TaskFailure | None:
    """The failing workflow task a record of the SDK reports, or None for any other record."""
    details = getattr(record, "temporal_workflow", None)
    if getattr(record, "__temporal_error_identifier", None) == "WorkflowTaskFailure" and isinstance(details, dict):
        if details.get("namespace") == REPLAY_NAMESPACE:
            return None
        err = record.exc_info[1] if record.exc_info else None
        return _TaskFailure(
            run_id=str(details.get("run_id")),
            workflow_id=details.get("workflow_id"),
            error=type(err).__name__ if err else "WorkflowTaskFailure",
            message=first_line(str(err) if err else record.getMessage()),
            exc_info=record.exc_info,
        )
    core = getattr(record, "temporal_log", None)
    if core is not None and core.message == "Failing workflow task":
        fields = core.fields
        run_id = str(fields.get("run_id", ""))
        text = str(fields.get("failure", ""))
        message = core_failure_message(text)
        error = (
            "NondeterminismError"
            if "NonDeterministic" in text or "Nondeterminism" in message
            else "WorkflowTaskFailure"
        )
        return _TaskFailure(run_id=run_id, workflow_id=_workflow_of(run_id), error=error, message=first_line(message))
    return None


class TaskFailureFilter(logging.Filter):
    """Installed on the SDK's loggers: each report of a failing workflow task is dropped and, the first time
    for its run (and again every `repeat_after` seconds while it keeps failing), replaced by one line
    `workflow_task_failed` with the case, the error and a hint. The traceback goes with the first line only."""

    def __init__(self, repeat_after: float = 600.0) -> None:
        super().__init__()
        self.repeat_after = repeat_after
        self._runs: OrderedDict[str, list[float]] = OrderedDict()  # run id -> [last logged at, failures seen]
        self._lock = threading.Lock()

    def failures(self, run_id: str) -> int:
        """How many reports of a failing task this filter has seen for the run."""
        with self._lock:
            seen = self._runs.get(run_id)
            return int(seen[1]) if seen else 0

    def filter(self, record: logging.LogRecord) -> bool:
        failure = _task_failure(record)
        if failure is None:
            return True
        now = time.monotonic()
        with self._lock:
            seen = self._runs.get(failure.run_id)
            first = seen is None
            if seen is None:
                seen = self._runs[failure.run_id] = [now, 0]
                while len(self._runs) > _RUNS_KEPT:
                    self._runs.popitem(last=False)
            seen[1] += 1
            due = first or now - seen[0] >= self.repeat_after
            if due:
                seen[0] = now
            failures = int(seen[1])
        if due:
            structlog.get_logger("escalation.worker").warning(
                "workflow_task_failed",
                case_id=case_of(failure.workflow_id),
                workflow_id=failure.workflow_id,
                run_id=failure.run_id,
                error=failure.error,
                message=failure.message,
                failures=failures,
                hint=TASK_FAILED_HINT,
                **({"exc_info": failure.exc_info} if first and failure.exc_info else {}),
            )
        return False


class _QuietReplays(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        details = getattr(record, "temporal_workflow", None)
        return not (isinstance(details, dict) and details.get("namespace") == REPLAY_NAMESPACE)


def quiet_replays() -> None:
    """The doctor's replays fail on purpose (that is what it looks for): keep the SDK from logging each."""
    sdk = logging.getLogger(SDK_TASK_LOGGER)
    if not any(isinstance(f, _QuietReplays) for f in sdk.filters):
        sdk.addFilter(_QuietReplays())


def watch_task_failures() -> TaskFailureFilter:
    """Install the filter on the SDK's loggers (once per process); returns the one installed."""
    loggers = [logging.getLogger(SDK_TASK_LOGGER), logging.getLogger(CORE_LOGGER)]
    installed = next((f for f in loggers[0].filters if isinstance(f, TaskFailureFilter)), None)
    if installed is None:
        installed = TaskFailureFilter()
    for logger in loggers:
        if installed not in logger.filters:
            logger.addFilter(installed)
    return installed


def temporal_runtime(metrics_address: str | None = None) -> Runtime:
    """A Temporal runtime whose core logs go through Python logging (as `temporalio.core`), so its report of
    a failing workflow task reaches the filter, and its other warnings the same stream as ours. With
    `metrics_address` (host:port) it serves Prometheus metrics there: the SDK's own and ours
    (escalation.metrics)."""
    # Core's target and fields become JSON fields (escalation.logs._record_fields), not part of the message.
    forwarding = LogForwardingConfig(
        logger=logging.getLogger(CORE_LOGGER), prepend_target_on_message=False, append_log_fields_to_message=False
    )
    prometheus = None
    if metrics_address:
        prometheus = PrometheusConfig(bind_address=metrics_address, histogram_bucket_overrides=dict(metrics.BUCKETS))
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding
            ),
            metrics=prometheus,
        )
    )


def serve_metrics(address: str | None) -> None:
    """Serve Prometheus metrics on `address` (host:port; None or "off": none): the default runtime gains them, which
    works until the first client connects, so call this before connecting."""
    if address and address.strip().lower() != "off":
        try:
            runtime = temporal_runtime(address)
        except ValueError as err:  # taken, or not host:port
            raise ValueError(f"metrics_address (ESCALATIONS_METRICS_ADDRESS): {err} (got {address!r})") from None
        Runtime.set_default(runtime, error_if_already_set=False)


def _forward_core_logs() -> None:
    # A client that exists already keeps its runtime (a test process); core writes to stderr there.
    with contextlib.suppress(RuntimeError):
        Runtime.set_default(temporal_runtime())


def leave(code: int) -> NoReturn:
    """End the process with `code` once output is flushed. A process that used the Temporal client can
    abort in interpreter teardown (the SDK's native threads, sdk-python #300), turning a clean exit code
    into a crash (134); os._exit skips that teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
