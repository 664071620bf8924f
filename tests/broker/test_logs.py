"""What the CLI's logging leaves out: noise that would break its one-line errors."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from broker import logs


def _unretrieved(loop: asyncio.AbstractEventLoop, exc: BaseException) -> None:
    """What asyncio does with a future whose exception nobody read."""
    future = loop.create_future()
    future.set_exception(exc)
    future.exception()  # retrieved here, reported below as asyncio would
    loop.call_exception_handler(
        {"message": "Future exception was never retrieved", "exception": exc, "future": future}
    )


@pytest.mark.parametrize(("level", "shown"), [("WARNING", False), ("DEBUG", True)])
def test_a_tls_close_after_close_notify_is_not_reported_below_debug(
    caplog: pytest.LogCaptureFixture, level: str, shown: bool
) -> None:
    logs.configure("console", level)
    loop = asyncio.new_event_loop()
    try:
        closed = ssl.SSLError(
            1, "[SSL: APPLICATION_DATA_AFTER_CLOSE_NOTIFY] application data after close notify"
        )
        with caplog.at_level("DEBUG"):
            _unretrieved(loop, closed)
            _unretrieved(loop, RuntimeError("something else"))  # other errors still show
    finally:
        loop.close()
        logs.configure("console", "WARNING")
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("something else" in m for m in messages)
    assert any("APPLICATION_DATA_AFTER_CLOSE_NOTIFY" in m for m in messages) == shown
