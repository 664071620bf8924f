"""The webhook sink against a real HTTP server on 127.0.0.1 that fails the first N requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from broker.errors import ConfigError, WebhookFailed
from broker.schemas import SchemaStore
from connectors.isac.webhook import Backoff, WebhookSink
from tests.broker.pep.records import indicator
from tests.connectors.isac.test_subscriber import delivery, retraction

FAST = Backoff(attempts=4, base=0.01, cap=0.05)


class Receiver:
    """Answers `fail_status` to the first `fail_first` requests, then 204; records them all."""

    def __init__(self, fail_first: int, fail_status: int = 503) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), json.loads(body)))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(receiver.fail_status if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    with Receiver(fail_first=2) as r:
        yield r


async def test_retries_until_the_receiver_accepts(
    flaky: Receiver, store: SchemaStore, tmp_path: Path
) -> None:
    d = delivery(store, "Indicator", indicator())
    sink = WebhookSink(flaky.url, backoff=FAST)
    await sink.deliver(d)
    await sink.retract(retraction(d.message_id))
    await sink.close()
    assert len(flaky.requests) == 4  # two failures, the delivery, the retraction
    headers, body = flaky.requests[2]
    assert headers["Idempotency-Key"] == d.message_id
    assert body["event"] == "delivery" and body["message_id"] == d.message_id
    assert body["record"]["pattern"] == d.record["pattern"]
    assert flaky.requests[0][1] == body  # each retry sends the same delivery
    headers, body = flaky.requests[3]
    assert body["event"] == "retraction" and body["message_id"] == d.message_id
    assert headers["Idempotency-Key"] == f"{d.message_id}:retracted"
    assert sink.posted == 2


async def test_gives_up_after_the_bound(store: SchemaStore) -> None:
    with Receiver(fail_first=100) as down:
        sink = WebhookSink(down.url, backoff=FAST)
        with pytest.raises(WebhookFailed, match="after 4 attempts"):
            await sink.deliver(delivery(store, "Indicator", indicator()))
        await sink.close()
    assert len(down.requests) == FAST.attempts


async def test_a_client_error_is_not_retried(store: SchemaStore) -> None:
    with Receiver(fail_first=100, fail_status=400) as strict:
        sink = WebhookSink(strict.url, backoff=FAST)
        with pytest.raises(WebhookFailed, match="HTTP 400"):
            await sink.deliver(delivery(store, "Indicator", indicator()))
        await sink.close()
    assert len(strict.requests) == 1


def test_backoff_doubles_up_to_the_cap() -> None:
    b = Backoff(attempts=6, base=0.5, cap=3.0)
    assert [b.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ConfigError, match="http"):
        WebhookSink("file:///etc/passwd")
