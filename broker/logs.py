"""structlog set-up, done once per process by its entry point.

Services log JSON lines (one event per line, machine-readable); the CLI logs
readable console lines to stderr. A redaction processor drops values of keys
that look like secrets, so a careless `log.info(..., passphrase=p)` cannot leak.

structlog (with rich's traceback renderer, which it loads) is imported at the
first event that is logged, not before: a verb that logs nothing at its level
does not pay for it at start-up (tests/broker/cli/test_startup.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

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


class _TlsCloseAfterCloseNotify(logging.Filter):
    """Drop asyncio's "Future exception was never retrieved" for an SSL shutdown that met
    application data after close_notify, below DEBUG: a broker connection closed while a
    verb exits; nothing is lost, and the verb's own one-line error is the news."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return (
            self._level <= logging.DEBUG
            or "APPLICATION_DATA_AFTER_CLOSE_NOTIFY" not in record.getMessage()
        )


class _CurrentStderr:
    """Whatever `sys.stderr` is at write time (it is swapped by test runners and daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@dataclass
class _Configured:
    """What `configure` was asked for; applied to structlog when it is first imported."""

    mode: Literal["console", "json"] = "console"
    level: int | None = None  # None: never configured (structlog's defaults, no filter)
    applied: bool = True
    #: What events logged with `once=True` said since `configure` (see `say_once`).
    said: set[tuple[tuple[str, str], ...]] = field(default_factory=set)


_CONFIGURED = _Configured()
#: Each logging method's level, to drop an event below the configured one before any import.
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def configure(mode: Literal["console", "json"] = "console", level: str = "INFO") -> None:
    """Configure structlog and stdlib logging; safe to call more than once."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    _CONFIGURED.mode, _CONFIGURED.level, _CONFIGURED.applied = mode, numeric, False
    _CONFIGURED.said = set()
    if "structlog" in sys.modules:
        _apply_structlog()
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
    loop_logger = logging.getLogger("asyncio")
    for old in [f for f in loop_logger.filters if isinstance(f, _TlsCloseAfterCloseNotify)]:
        loop_logger.removeFilter(old)
    loop_logger.addFilter(_TlsCloseAfterCloseNotify(numeric))


def say_once(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """An event logged with `once=True` is rendered the first time this process (since
    `configure`: once per command) logs it with these very fields, then dropped: a state
    record every follower of its topic refuses is reported once, not once per follower."""
    if not event_dict.pop("once", False):
        return event_dict
    said = tuple(sorted((k, repr(v)) for k, v in event_dict.items() if k != "timestamp"))
    if said in _CONFIGURED.said:
        import structlog

        raise structlog.DropEvent
    _CONFIGURED.said.add(said)
    return event_dict


def _apply_structlog() -> None:
    import structlog

    _CONFIGURED.applied = True
    if _CONFIGURED.level is None:
        return
    renderer: Any
    if _CONFIGURED.mode == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            say_once,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_CONFIGURED.level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def _ignore(*_args: Any, **_kwargs: Any) -> None:
    return None


class _Logger:
    """A module's logger: structlog's, from the first event at or above the configured level
    (an event below it is dropped here, as structlog's filtering logger would)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        level = _LEVELS.get(method)
        if level is not None and _CONFIGURED.level is not None and level < _CONFIGURED.level:
            return _ignore
        import structlog

        if not _CONFIGURED.applied:
            _apply_structlog()
        return getattr(structlog.get_logger(self._name), method)


def get_logger(name: str) -> Any:
    return _Logger(name)
