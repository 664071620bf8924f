"""The outage guard of a publishing run: it says when Kafka does not answer, gives up after
the configured time, stops when asked, and retries a connection Kafka refuses."""

from __future__ import annotations

import asyncio

import pytest

from broker.cli._outage import GaveUp, Outage, give_up_after
from broker.errors import ConfigError, Interrupted, KafkaUnavailable


def _outage(stop: asyncio.Event, said: list[str], give_up: float = 0.3) -> Outage:
    return Outage(
        "127.0.0.1:1", give_up, stop, say=said.append,
        notice_after=0.05, repeat_every=0.1, retry_every=0.02,
    )  # fmt: skip


async def test_a_call_kafka_never_answers_is_said_and_given_up() -> None:
    said: list[str] = []
    hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(GaveUp, match=r"did not answer .*gave up"):
        await _outage(asyncio.Event(), said).guard(hang)
    assert said and "has not answered" in said[0] and "giving up after 0.3 s" in said[0]
    assert hang.cancelled()  # the call in flight is abandoned, not left running


async def test_a_stop_request_ends_the_call_at_once() -> None:
    stop = asyncio.Event()
    hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(stop.set)
    with pytest.raises(Interrupted, match="interrupted"):
        await _outage(stop, [], give_up=60).guard(hang)
    assert hang.cancelled()


async def test_nothing_is_begun_once_a_stop_was_asked() -> None:
    stop = asyncio.Event()
    stop.set()
    began = []

    async def call() -> None:
        began.append(True)

    with pytest.raises(Interrupted):
        await _outage(stop, []).guard(call())
    assert began == []


async def test_an_answer_in_time_is_returned_and_a_late_one_said_again() -> None:
    said: list[str] = []

    async def slow() -> str:
        await asyncio.sleep(0.12)
        return "ok"

    assert await _outage(asyncio.Event(), said, give_up=5).guard(slow()) == "ok"
    assert said[-1].endswith("answers again")


async def test_a_refused_connection_is_tried_again_then_given_up() -> None:
    said: list[str] = []
    tries = []

    async def start() -> None:
        tries.append(1)
        raise KafkaUnavailable("cannot reach Kafka at 127.0.0.1:1 (refused)")

    with pytest.raises(GaveUp):
        await _outage(asyncio.Event(), said, give_up=0.2).connect(start)
    assert len(tries) > 1
    assert said[0].startswith("cannot reach Kafka") and "giving up after 0.2 s" in said[0]


async def test_a_connection_that_comes_back_is_used() -> None:
    tries = []

    async def start() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise KafkaUnavailable("refused")
        return "publisher"

    assert await _outage(asyncio.Event(), [], give_up=5).connect(start) == "publisher"


@pytest.mark.parametrize("tell", [True, False])
async def test_what_is_held_while_the_file_is_read_is_said_or_dropped_on_release(
    tell: bool,
) -> None:
    said: list[str] = []
    tries: list[int] = []

    async def start() -> str:
        tries.append(1)
        if len(tries) < 2:
            raise KafkaUnavailable("cannot reach Kafka at 127.0.0.1:1 (refused)")
        return "publisher"

    outage = _outage(asyncio.Event(), said, give_up=5)
    outage.hold()
    assert await outage.connect(start) == "publisher"
    assert said == []  # the refusal was not said while held
    outage.release(tell=tell)
    assert said[0].startswith("cannot reach Kafka") if tell else said == []


async def test_a_cancelled_guard_cancels_the_call_in_flight() -> None:
    hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    guarded = asyncio.ensure_future(_outage(asyncio.Event(), [], give_up=60).guard(hang))
    await asyncio.sleep(0)
    guarded.cancel()
    with pytest.raises(asyncio.CancelledError):
        await guarded
    assert hang.cancelled()  # not left running behind a run that ended


async def test_what_a_call_returned_as_its_run_was_cancelled_is_undone() -> None:
    # The publisher's start completes in the very turn the run is cancelled (a file that
    # failed to parse): the guard hears the cancel, so the started publisher is stopped.
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    undone: list[str] = []

    async def undo(publisher: str) -> None:
        undone.append(publisher)

    guarded = asyncio.ensure_future(
        _outage(asyncio.Event(), [], give_up=60).guard(started, undo=undo)
    )
    await asyncio.sleep(0)
    started.set_result("publisher")
    guarded.cancel()
    with pytest.raises(asyncio.CancelledError):
        await guarded
    assert undone == ["publisher"]


async def test_a_call_cancelled_before_it_returned_has_nothing_undone() -> None:
    hang: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    undone: list[str] = []

    async def undo(publisher: str) -> None:
        undone.append(publisher)

    guarded = asyncio.ensure_future(_outage(asyncio.Event(), [], give_up=60).guard(hang, undo=undo))
    await asyncio.sleep(0)
    guarded.cancel()
    with pytest.raises(asyncio.CancelledError):
        await guarded
    assert hang.cancelled() and undone == []


def test_the_give_up_time_comes_from_the_option_the_environment_or_the_default() -> None:
    assert give_up_after(7, {"JCU_GIVE_UP_AFTER": "9"}) == 7
    assert give_up_after(None, {"JCU_GIVE_UP_AFTER": "9"}) == 9
    assert give_up_after(None, {}) == 300
    with pytest.raises(ConfigError, match="JCU_GIVE_UP_AFTER"):
        give_up_after(None, {"JCU_GIVE_UP_AFTER": "soon"})
