"""A publishing run's calls to Kafka on the operator's terms: said, bounded, stoppable.

While Kafka does not answer, a run says so on stderr (one line once a call has
waited `NOTICE_AFTER` seconds or a connection failed, then every
`REPEAT_EVERY`), gives up after `give_up_after` seconds of one outage
(`--give-up-after`, `JCU_GIVE_UP_AFTER`, default `DEFAULT_GIVE_UP`) with
`GaveUp`, and stops at once when asked (SIGINT, SIGTERM) with `Interrupted`.
The call in flight is cancelled; what it had begun is settled by the next
publisher start (broker.pep.recovery), so nothing is lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import click

from broker.errors import ConfigError, Interrupted, KafkaUnavailable

T = TypeVar("T")

GIVE_UP_ENV = "JCU_GIVE_UP_AFTER"
#: Seconds of one outage after which a publishing run gives up.
DEFAULT_GIVE_UP = 300.0
#: Seconds a call to Kafka may take before the run says Kafka is not answering.
NOTICE_AFTER = 5.0
#: Seconds between two "still not answering" lines.
REPEAT_EVERY = 30.0
#: Seconds between two connection attempts.
RETRY_EVERY = 5.0
#: Seconds a publisher may take to stop (flush, final checkpoint) once the run is over.
STOP_GRACE = 10.0


class GaveUp(KafkaUnavailable):
    """Kafka did not answer for longer than the run waits."""


def give_up_after(value: float | None, env: Mapping[str, str] | None = None) -> float:
    """`--give-up-after` if given, else `JCU_GIVE_UP_AFTER`, else the default (seconds)."""
    if value is not None:
        return value
    raw = (os.environ if env is None else env).get(GIVE_UP_ENV, "").strip()
    if not raw:
        return DEFAULT_GIVE_UP
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ConfigError(f"{GIVE_UP_ENV}={raw!r} is not a positive number of seconds")
    return seconds


def _say(line: str) -> None:
    click.echo(f"jcu: {line}", err=True)


class Outage:
    """Runs a publishing run's calls to Kafka at `bootstrap`; `stop` set means stop now."""

    def __init__(
        self,
        bootstrap: str,
        give_up: float,
        stop: asyncio.Event,
        *,
        say: Callable[[str], None] = _say,
        notice_after: float = NOTICE_AFTER,
        repeat_every: float = REPEAT_EVERY,
        retry_every: float = RETRY_EVERY,
    ) -> None:
        self._bootstrap = bootstrap
        self._give_up = give_up
        self._stop = stop
        self._say = say
        self._notice_after = notice_after
        self._repeat_every = repeat_every
        self._retry_every = retry_every
        self._held: list[str] | None = None

    def _tell(self, line: str) -> None:
        if self._held is not None:
            self._held.append(line)
        else:
            self._say(line)

    async def stopped(self) -> None:
        """Returns once the run is asked to stop."""
        await self._stop.wait()

    def hold(self) -> None:
        """Keep what the run would say until `release`: while the input is still being read,
        a failure to connect is not yet worth a line (a bad file may end the run first)."""
        if self._held is None:
            self._held = []

    def release(self, *, tell: bool) -> None:
        """Say what was held (`tell`), or drop it (the run ends for another reason)."""
        held, self._held = self._held or [], None
        if tell:
            for line in held:
                self._say(line)

    def _gave_up(self, waited: float) -> GaveUp:
        return GaveUp(
            f"Kafka at {self._bootstrap} did not answer for {waited:.0f} s; gave up "
            f"(--give-up-after {self._give_up:g}); re-run to send what was not sent"
        )

    @staticmethod
    def _interrupted() -> Interrupted:
        return Interrupted("interrupted; re-run (or --resume) to send what was not sent")

    async def guard(
        self, call: Awaitable[T], *, undo: Callable[[T], Awaitable[None]] | None = None
    ) -> T:
        """Await `call`; say so while Kafka does not answer; give up or stop as configured.
        `undo`: what releases the call's result (a started publisher's `stop`) if the run
        ends as the call completes, so nothing it opened is left open."""
        if self._stop.is_set():  # asked to stop already: do not begin what would be abandoned
            if asyncio.iscoroutine(call):
                call.close()
            raise self._interrupted()
        task = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(self._stop.wait())
        started = time.monotonic()
        notice = self._notice_after
        told = False
        try:
            while True:
                waited = time.monotonic() - started
                timeout = max(min(notice, self._give_up) - waited, 0.0)
                done, _ = await asyncio.wait(
                    {task, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if task in done:
                    if told:
                        self._tell(f"Kafka at {self._bootstrap} answers again")
                    return task.result()
                waited = time.monotonic() - started
                if stopper in done:
                    await _cancel(task, undo)
                    raise self._interrupted()
                if waited >= self._give_up:
                    await _cancel(task, undo)
                    raise self._gave_up(waited)
                self._tell(
                    f"Kafka at {self._bootstrap} has not answered for {waited:.0f} s; still "
                    f"trying, giving up after {self._give_up:g} s (--give-up-after)"
                )
                told = True
                notice = waited + self._repeat_every
        except asyncio.CancelledError:
            # The call in flight goes with the run that is cancelled; if it had just
            # completed, what it returned is released.
            await _cancel(task, undo)
            raise
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper

    async def connect(
        self,
        start: Callable[[], Awaitable[T]],
        *,
        undo: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """`start()` until Kafka answers (KafkaUnavailable: tried again every few seconds,
        said once and then periodically), within the give-up time; `undo` as for `guard`."""
        started = time.monotonic()
        last_told: float | None = None
        while True:
            try:
                return await self.guard(start(), undo=undo)
            except GaveUp:
                raise
            except KafkaUnavailable as exc:
                waited = time.monotonic() - started
                if waited + self._retry_every > self._give_up:
                    raise self._gave_up(waited) from None
                if last_told is None:
                    self._tell(
                        f"{exc}; trying again every {self._retry_every:g} s, giving up after "
                        f"{self._give_up:g} s (--give-up-after)"
                    )
                    last_told = waited
                elif waited - last_told >= self._repeat_every:
                    self._tell(f"Kafka at {self._bootstrap} still unreachable after {waited:.0f} s")
                    last_told = waited
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self._retry_every)
            if self._stop.is_set():
                raise self._interrupted()

    async def finish(self, stop: Callable[[], Awaitable[None]]) -> bool:
        """Run a publisher's `stop` (flush, final checkpoint) for at most `STOP_GRACE`
        seconds; False if Kafka kept it from finishing (the caller then exits without
        waiting: what was begun is settled by the next start)."""
        task = asyncio.ensure_future(stop())
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE)
        if task in done:
            task.result()
            return True
        self._say(
            f"Kafka at {self._bootstrap} did not take the final audit checkpoint; "
            "the next start settles what this run began"
        )
        return False


async def _cancel(
    task: asyncio.Future[T], undo: Callable[[T], Awaitable[None]] | None = None
) -> None:
    """Cancel `task` and wait a moment for it to unwind (it may be stuck on Kafka). A task
    that completed before the cancel could land (the run was cancelled in the same turn)
    returned something the run no longer takes: `undo` releases it, within `STOP_GRACE`."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait({task}, timeout=STOP_GRACE)
    if not task.done() or task.cancelled():
        return
    if task.exception() is None and undo is not None:  # retrieved: no "never retrieved"
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(undo(task.result()), timeout=STOP_GRACE)
