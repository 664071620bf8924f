"""Deliveries POSTed as JSON to a webhook, with bounded exponential-backoff retries.

One POST per delivery or retraction, body `{"event": "delivery" | "retraction",
...}` (the subscriber's JSON view), header `Idempotency-Key: <message id>` (or
`<message id>:retracted`) so the receiver can drop the repeats that
at-least-once delivery brings. Connection errors, timeouts, 408, 425, 429 and
5xx are retried after base * 2^(attempt-1) seconds (capped); any other status
fails at once. When the attempts are spent the sink raises `WebhookFailed`, a
`SinkUnavailable`: the subscriber holds the batch and retries with its own
bounded backoff, and past its give-up time stops without committing (the
record comes again on its next run). Never a dead letter.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from broker.errors import ConfigError, WebhookFailed
from broker.logs import get_logger
from broker.pep.sink import Delivery, Retracted

_RETRYABLE = frozenset({408, 425, 429})
_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how patiently to retry: delays base, 2*base, 4*base... capped at `cap`."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.cap, self.base * 2 ** (attempt - 1)))


class WebhookSink:
    """A `broker.pep` Sink that POSTs every delivery and retraction to `url`."""

    def __init__(
        self,
        url: str,
        *,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhook URL must be http:// or https:// with a host; got {url!r}")
        self.url = url
        # What logs and errors show: never the user info or the query, which carry secrets.
        self.shown = (
            f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        )
        self.backoff = backoff or Backoff()
        self._client = httpx.AsyncClient(timeout=timeout)
        self.posted = 0

    async def deliver(self, delivery: Delivery) -> None:
        await self._post(delivery.message_id, {"event": "delivery", **delivery.to_json()})

    async def retract(self, retraction: Retracted) -> None:
        body = {"event": "retraction", **retraction.to_json()}
        await self._post(f"{retraction.message_id}:retracted", body)

    async def flush(self) -> None:
        return None  # every POST was acknowledged before deliver returned

    async def close(self) -> None:
        await self._client.aclose()

    async def _post(self, key: str, body: dict[str, Any]) -> None:
        why = ""
        for attempt in range(1, self.backoff.attempts + 1):
            try:
                response = await self._client.post(
                    self.url, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.is_success:
                    self.posted += 1
                    return
                why = f"HTTP {response.status_code}"
                if response.status_code not in _RETRYABLE and response.status_code < 500:
                    raise WebhookFailed(
                        f"webhook {self.shown} refused message {key} ({why}); "
                        "fix the receiving end, then run the subscriber again"
                    )
            if attempt < self.backoff.attempts:
                delay = self.backoff.delay(attempt)
                _log.warning(
                    "webhook retry",
                    url=self.shown,
                    message_id=key,
                    attempt=attempt,
                    reason=why,
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
        raise WebhookFailed(
            f"webhook {self.shown}: {why} after {self.backoff.attempts} attempts at message {key}"
        )
