"""JSON logs with structlog for everything outside workflow code (workflows use workflow.logger)."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import structlog

_SECRET_KEYS = ("password", "secret", "token", "api_key", "authorization")


def _redact(_logger, _name, event: dict) -> dict:
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "***"
    return event


def configure(level: str = "INFO") -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level)
    # httpx logs every request URL at INFO; a gateway URL may carry a token in its query string.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def leave(code: int) -> NoReturn:
    """End the process with `code` once output is flushed. A process that used the Temporal client can
    abort in interpreter teardown (the SDK's native threads, sdk-python #300), turning a clean exit code
    into a crash (134); os._exit skips that teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
