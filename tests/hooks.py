"""A webhook receiver a test controls: up, down (503), or holding every request on a
barrier until the test releases it. No timing: the test waits for what the server saw."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["up", "down", "hold"]


class HookServer:
    """`with HookServer() as hook:` serves on 127.0.0.1:<free port>; `hook.url` to POST to.

    `accepted` counts the 2xx answers per Idempotency-Key; `refused` the 503s; `held` the
    requests waiting on the barrier now."""

    def __init__(self, mode: Mode = "up") -> None:
        self._mode: Mode = mode
        self._lock = threading.Condition()
        self._barrier = threading.Event()
        self.accepted: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.refused = 0
        self.held = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def __enter__(self) -> HookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._barrier.set()
        self._server.shutdown()
        self._server.server_close()

    def set(self, mode: Mode) -> None:
        """Switch mode; requests held on the barrier are released into the new mode."""
        with self._lock:
            self._mode = mode
            if mode != "hold":
                self._barrier.set()
            else:
                self._barrier.clear()
            self._lock.notify_all()

    def wait_for(self, *, refused: int = 0, held: int = 0, timeout: float = 120.0) -> None:
        """Block until at least `refused` requests were refused and `held` are held now."""
        with self._lock:
            ok = self._lock.wait_for(
                lambda: self.refused >= refused and self.held >= held, timeout=timeout
            )
        assert ok, f"the webhook saw refused={self.refused} held={self.held}"

    def _answer(self, key: str, body: dict[str, Any]) -> int:
        with self._lock:
            mode = self._mode
            if mode == "hold":
                self.held += 1
                self._lock.notify_all()
        if mode == "hold":
            self._barrier.wait()
            with self._lock:
                self.held -= 1
                mode = self._mode
        with self._lock:
            if mode == "up":
                self.accepted[key] += 1
                self.bodies[key] = body
                status = 200
            else:
                self.refused += 1
                status = 503
            self._lock.notify_all()
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status = server._answer(self.headers.get("Idempotency-Key", ""), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on the counts."""

        return Handler
