"""structlog set-up, done once per process by its entry point.

Services log JSON lines (one event per line, machine-readable); the CLI logs
readable console lines to stderr. A redaction processor drops values of keys
that look like secrets, so a careless `log.info(..., passphrase=p)` cannot leak.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

_SECRET_MARKERS = ("passphrase", "password", "secret", "private", "token", "content_key")
REDACTED = "[redacted]"


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            event_dict[key] = REDACTED
    return event_dict


class _TransientCoordinatorErrors(logging.Filter):
    """Drop aiokafka's "coordinator not available" lines below DEBUG: on a fresh
    cluster the offsets topic is created on first use and aiokafka retries."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return self._level <= logging.DEBUG or "CoordinatorNotAvailable" not in record.getMessage()


class _CurrentStderr:
    """Whatever `sys.stderr` is at write time (it is swapped by test runners and daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(mode: Literal["console", "json"] = "console", level: str = "INFO") -> None:
    """Configure structlog and stdlib logging; safe to call more than once."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any
    if mode == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Third-party libraries (aiokafka) log through stdlib. Their retried, transient
    # warnings (a leader moving right after topic creation) and connection errors
    # (which jcu reports itself, in one line) are noise at the default level; ask
    # for INFO or DEBUG to see them.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(
        logging.CRITICAL if numeric >= logging.WARNING else numeric
    )
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, _TransientCoordinatorErrors) for f in coordinator.filters):
        coordinator.addFilter(_TransientCoordinatorErrors(numeric))


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
