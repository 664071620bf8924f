"""The Kafka clients every jcu component uses, all built from one `KafkaConnection`.

The producer loses nothing, doubles nothing and keeps order: idempotent with
acks=all (a retried batch is written once, per-partition order kept), zstd
compression, and batches large enough that one partition (the audit topic
has one) is not throttled by round trips. Consumers and admin clients get the
same address, TLS and principal; `start_client` turns the ways a start can
fail (nobody answers, the credentials are refused) into one clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from broker.errors import KafkaUnavailable
from broker.kafka.connection import KafkaConnection
from broker.kafka.decompression import limit_decompression
from broker.kafka.scram import remember_salted_passwords
from broker.lifecycle import to_the_end

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

#: zstd, not lz4: aiokafka always compresses lz4 at level 9 (LZ4 HC), which costs
#: ~16 µs per 2 KB envelope here; zstd's default level is ~5x faster on our
#: batches and compresses the audit leaves twice as well (bench/README.md).
COMPRESSION = "zstd"
#: Milliseconds Kafka holds a fetch that finds nothing new (aiokafka's default: 500).
#: A consumer's stop waits that long: Kafka answers a connection's requests in turn,
#: so the TLS close queues behind the fetch in flight, and every one-shot verb (its
#: state feeds, `jcu subscribe --once`) paid it at exit. Records are returned as soon
#: as they come whatever this is; an idle consumer asks five times as often (about ten
#: small requests a second).
FETCH_WAIT_MS = 100
#: Seconds a client's start may go on once its caller is cancelled (`start_client`).
START_GRACE = 3.0


def reliable_producer(kafka: KafkaConnection, **overrides: Any) -> AIOKafkaProducer:
    """An unstarted AIOKafkaProducer with the house settings; `overrides` win."""
    from aiokafka import AIOKafkaProducer

    settings: dict[str, Any] = {
        **_client_options(kafka),
        "enable_idempotence": True,
        "acks": "all",
        "compression_type": COMPRESSION,
        "linger_ms": 5,
        "max_batch_size": 512 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "request_timeout_ms": 30000,
    }
    settings.update(overrides)
    return AIOKafkaProducer(**settings)


def consumer(kafka: KafkaConnection, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An unstarted AIOKafkaConsumer on `kafka` (no group unless `group_id` is given). What it
    fetches decompresses within a bound (a bomb raises CompressionBomb, not the memory)."""
    from aiokafka import AIOKafkaConsumer

    limit_decompression()

    settings: dict[str, Any] = {
        **_client_options(kafka),
        "enable_auto_commit": False,
        "fetch_max_wait_ms": FETCH_WAIT_MS,
    }
    settings.update(options)
    return AIOKafkaConsumer(*topics, **settings)


def _client_options(kafka: KafkaConnection) -> dict[str, Any]:
    """`kafka`'s client options; with SCRAM, the salted password derived once a process
    (broker.kafka.scram), not on each of a client's connections."""
    options = kafka.client_options()
    if str(options.get("sasl_mechanism", "")).startswith("SCRAM-"):
        remember_salted_passwords()
    return options


class KafkaClients(Protocol):
    """Where an enforcement point gets its Kafka clients: unstarted, the options it needs
    given (idempotence, isolation level, its consumer group...); it starts and stops them.
    An embedding program passes its own to add options of its own (client ids, metrics
    reporters) or to count what is made; `HouseClients` is the default."""

    def producer(self, **options: Any) -> AIOKafkaProducer:
        """An unstarted producer; `options` win over any of the factory's."""
        ...

    def consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        """An unstarted consumer; `options` win over any of the factory's."""
        ...


@dataclass(frozen=True, slots=True)
class HouseClients:
    """The clients of one `KafkaConnection` with the house settings (`reliable_producer`,
    `consumer`)."""

    kafka: KafkaConnection

    def producer(self, **options: Any) -> AIOKafkaProducer:
        return reliable_producer(self.kafka, **options)

    def consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        return consumer(self.kafka, *topics, **options)


def admin_client(kafka: KafkaConnection, **options: Any) -> Any:
    """An unstarted AIOKafkaAdminClient on `kafka`."""
    from aiokafka.admin import AIOKafkaAdminClient

    settings: dict[str, Any] = {**_client_options(kafka), "request_timeout_ms": 30000}
    settings.update(options)
    return AIOKafkaAdminClient(**settings)


async def start_client(client: Any, kafka: KafkaConnection) -> None:
    """Start an aiokafka producer, consumer or admin client; if Kafka does not answer or
    refuses the credentials, close it again and raise one clear `KafkaUnavailable` (and
    close it when the start is cancelled)."""
    from aiokafka.errors import (
        AuthenticationFailedError,
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    try:
        await start_whole(client)
    except (AuthenticationFailedError, SaslAuthenticationFailed, UnsupportedSaslMechanismError):
        await _close(client)
        raise KafkaUnavailable(
            f"Kafka at {kafka.describe()} refused this principal's credentials; check the "
            f"username and password in {kafka.source}"
        ) from None
    except (KafkaError, OSError) as exc:
        await _close(client)
        hint = (
            "start one with `jcu kafka up` or set KAFKA_BOOTSTRAP"
            if not kafka.sasl and not kafka.tls
            else f"check the address and TLS settings in {kafka.source}"
        )
        raise KafkaUnavailable(
            f"cannot reach Kafka at {kafka.describe()} ({exc}); {hint}"
        ) from None
    except BaseException:  # cancelled half-way (the run ended first): nothing left open
        await _close(client)
        raise


async def start_whole(client: Any) -> None:
    """`client.start()`, not cancelled half-way if it can finish within `START_GRACE`.
    aiokafka loses track of a start cancelled in its bootstrap: the connection that asks
    for the cluster's metadata is never closed ("Unclosed AIOKafkaConnection" at exit),
    and `stop()` cannot reach it; once started, the caller stops the client whole."""
    await to_the_end(client.start(), START_GRACE)


async def stop_client(client: Any) -> None:
    """Stop an aiokafka client, also one whose start has only just returned.

    A consumer's start makes its offsets task last; stopped before that task first
    ran, aiokafka's stop cancels it unstarted, awaits it, and raises CancelledError
    out of `stop()` with the client's connections still open (an "Unclosed
    AIOKafkaConsumer" at exit). One turn of the loop first lets the task start, and the
    stop runs to its end even if the caller is cancelled meanwhile (`to_the_end`)."""

    async def stop() -> None:
        await asyncio.sleep(0)
        close = getattr(client, "stop", None) or client.close
        await close()

    await to_the_end(stop())


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await stop_client(client)
