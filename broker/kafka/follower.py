"""Following a compacted state topic (`jcu.control`, `jcu.registry`): read it all, then keep up.

`start()` returns once every partition has been read to its end as of then, so
whoever starts after a change already applies it (`connect()` then `catch_up()`:
its two halves, for followers that connect at once and apply in turn). Then a task applies new
records as they come. Errors do not end the task: it logs once, marks itself
unhealthy (callers decide what that means: the crisis board stops crisis
sharing), retries with backoff and logs again when it is back.

The records are signed state, so the follower also owns the one rule both
topics share: a tombstone or a record that does not verify (`read` raises a
JcuError) is refused, logged and counted in `rejected`, never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from broker.errors import ConfigError, JcuError
from broker.kafka.clients import consumer, start_client, stop_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.scan import assign_all, read_to_end
from broker.lifecycle import Service
from broker.logs import get_logger

_log = get_logger(__name__)
#: Seconds between attempts while following fails (doubling up to the max).
RETRY_MIN, RETRY_MAX = 0.5, 30.0
#: What an operator does about a refused state record (it is ignored, never applied).
_REFUSED_HINT = (
    "ignored, nothing applied; if it should have applied, run `jcu registry sync` (this "
    "node may trust an older registry), otherwise ask the platform admin who wrote it to "
    "{topic}"
)

T = TypeVar("T")


class TopicFollower(Service, Generic[T]):
    """For every record of `topic`, in order from the beginning: `apply(read(key, value))`.

    `read` verifies a record and raises a JcuError (with a `reason` code, if it
    has one) for one to refuse; tombstones are refused before it is called.
    """

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        read: Callable[[bytes | None, bytes], T],
        apply: Callable[[T], None],
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._read = read
        self._apply = apply
        self._consumer: Any = None
        self._end: dict[Any, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        #: (key, reason) of every record refused, in order.
        self.rejected: list[tuple[bytes | None, str]] = []

    def receive(self, key: bytes | None, value: bytes | None) -> None:
        """Verify and apply one record, or refuse it."""
        if value is None:
            # An unsigned tombstone proves nothing: state changes only by a signed record.
            self.rejected.append((key, "tombstone"))
            return
        try:
            state = self._read(key, value)
        except JcuError as exc:
            reason = getattr(exc, "reason", "malformed")
            self.rejected.append((key, reason))
            _log.warning(
                "state record refused",
                topic=self._topic,
                key=None if key is None else key.decode(errors="replace"),
                reason=reason,
                error=str(exc),
                hint=_REFUSED_HINT.format(topic=self._topic),
                once=True,
            )
            return
        self._apply(state)

    @property
    def healthy(self) -> bool:
        """False while following fails (records may be missing until it recovers)."""
        return not self._failing

    async def start(self) -> None:
        await self.connect()
        await self.catch_up()

    async def connect(self) -> None:
        """The first half of `start`: connect, and find where the topic ends as of now.
        Nothing is applied yet, so followers that must apply in turn (crisis declarations
        are verified against the registry's keys) connect at once."""
        client = consumer(self._kafka, auto_offset_reset="earliest")
        await start_client(client, self._kafka)
        try:
            end = await assign_all(client, [self._topic])
            if not end:
                raise ConfigError(
                    f"topic {self._topic} does not exist, or {self._kafka.describe()} may not "
                    "read it; the platform admin runs `jcu kafka topics` and `jcu acl apply`"
                )
        except BaseException:
            await stop_client(client)
            raise
        self._consumer = client
        self._end = end

    async def catch_up(self) -> None:
        """The second half of `start`: apply every record up to the end `connect` found,
        then follow the topic."""
        try:
            async for r in read_to_end(self._consumer, self._end):
                self.receive(r.key, r.value)
        except BaseException:
            await stop_client(self._consumer)
            self._consumer = None
            raise
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await stop_client(self._consumer)
            self._consumer = None

    async def _follow(self) -> None:
        backoff = RETRY_MIN
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for r in records:
                        self.receive(r.key, r.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    _log.error(
                        "following a state topic failed; retrying",
                        topic=self._topic,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                self._failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)
                continue
            if self._failing:
                _log.info("following a state topic again", topic=self._topic)
                self._failing = False
            backoff = RETRY_MIN
