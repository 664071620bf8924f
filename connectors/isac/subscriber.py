"""The ISAC file formats behind the subscriber: `broker.pep` Sinks over StixFileSink & co.

The subscriber hands over a `broker.pep.sink.Delivery`; the format writers take
a `Delivered`. `FormatSink` converts one into the other and writes what a format
cannot express (a SituationReport in MISP, an indicator STIX cannot carry) as
JSON lines next to it, so nothing received is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from broker.errors import ConfigError
from broker.logs import get_logger
from broker.pep.sink import Delivery, Retracted, Sink
from connectors.isac._misp import MISP_PAYLOADS
from connectors.isac._stix import STIX_PAYLOADS, to_stix_bundle
from connectors.isac.delivered import Delivered
from connectors.isac.sinks import JsonlFileSink, MispFileSink, StixFileSink

FileFormat = Literal["stix", "misp", "misp-feed", "jsonl"]
FILE_FORMATS: tuple[FileFormat, ...] = ("stix", "misp", "misp-feed", "jsonl")
_log = get_logger(__name__)


def delivered_of(delivery: Delivery) -> Delivered:
    """The writers' view of a delivery (the record as fastavro decoded it)."""
    return Delivered(
        payload_type=delivery.payload_type,
        record=delivery.record,
        tlp=delivery.labels.tlp,
        message_id=delivery.message_id,
        sender=delivery.sender,
        received=delivery.received,
        redacted=delivery.redacted,
        categories=frozenset(delivery.labels.categories),
        redacted_fields=delivery.redacted_fields,
    )


def stix_objects_of(delivery: Delivery) -> list[dict[str, Any]]:
    """STIX 2.1 objects for one delivery (its TLP marking definition included).

    Raises ConfigError for payload types or records STIX cannot express.
    """
    objects: list[dict[str, Any]] = to_stix_bundle([delivered_of(delivery)])["objects"]
    return objects


class FormatSink:
    """Deliveries as STIX bundle, MISP event or JSON lines files in one directory.

    STIX and MISP: one file per message id; other payload types, and records the
    format refuses, are appended to `<received date>.jsonl` in the same
    directory (logged with the reason). `deliver` converts and writes (files
    renamed into place, lines kept); `flush` makes the batch durable at once.
    """

    def __init__(self, fmt: FileFormat, directory: Path) -> None:
        if fmt not in FILE_FORMATS:
            raise ConfigError(f"unknown file format {fmt!r}; one of {', '.join(FILE_FORMATS)}")
        self.format = fmt
        self.directory = Path(directory)
        self._jsonl = JsonlFileSink(self.directory)
        self._primary: StixFileSink | MispFileSink | None = None
        self._accepts: tuple[str, ...] = ()
        if fmt == "stix":
            self._primary, self._accepts = StixFileSink(self.directory), STIX_PAYLOADS
        elif fmt in ("misp", "misp-feed"):
            sink = MispFileSink(self.directory, "feed" if fmt == "misp-feed" else "files")
            self._primary, self._accepts = sink, MISP_PAYLOADS
        self.written: dict[str, Path] = {}  # message id -> file, for reporting

    async def deliver(self, delivery: Delivery) -> None:
        item = delivered_of(delivery)
        if self._primary is not None and item.payload_type in self._accepts:
            try:
                self.written[item.message_id] = await self._primary.deliver(item)
                return
            except ConfigError as exc:
                _log.warning(
                    "written as JSON lines instead",
                    format=self.format,
                    message_id=item.message_id,
                    reason=str(exc),
                )
        self.written[item.message_id] = await self._jsonl.deliver(item)

    def holds(self, message_id: str) -> bool:
        """Whether this directory already holds a delivery of `message_id`."""
        if self._primary is not None and self._primary.holds(message_id):
            return True
        return self._jsonl.holds(message_id)

    async def retract(self, retraction: Retracted) -> None:
        if self._primary is not None:
            path = await self._primary.retract(retraction.message_id, retraction.retracted)
            if path is not None:
                return
        await self._jsonl.retract(
            retraction.message_id,
            retraction.retracted,
            sender=retraction.sender,
            reason=retraction.reason,
        )

    async def flush(self) -> None:
        """The batch durable: files synced, versions recorded (the index committed), MISP
        events of STIX objects rewritten, JSON lines appended."""
        if self._primary is not None:
            await self._primary.flush()
        await self._jsonl.flush()

    async def close(self) -> None:
        try:
            if self._primary is not None:
                await self._primary.close()
        finally:
            await self._jsonl.close()


class RoutedSink:
    """`primary` for the payload types it can carry, `fallback` for the rest (and refusals)."""

    def __init__(self, primary: Sink, fallback: FormatSink, accepts: tuple[str, ...]) -> None:
        self._primary = primary
        self._fallback = fallback
        self._accepts = accepts

    async def deliver(self, delivery: Delivery) -> None:
        if delivery.payload_type in self._accepts:
            try:
                await self._primary.deliver(delivery)
                return
            except ConfigError as exc:
                _log.warning(
                    "written as JSON lines instead",
                    message_id=delivery.message_id,
                    reason=str(exc),
                )
        await self._fallback.deliver(delivery)

    async def retract(self, retraction: Retracted) -> None:
        await self._primary.retract(retraction)
        if self._fallback.holds(retraction.message_id):
            await self._fallback.retract(retraction)

    async def flush(self) -> None:
        await self._primary.flush()
        await self._fallback.flush()

    async def close(self) -> None:
        await self._primary.close()
        await self._fallback.close()


class FanOutSink:
    """Every delivery to each of several sinks (MISP files and a webhook, say): a record
    is delivered, and its batch settled, only when every sink has it. Each sink is
    idempotent per message id, so when one fails and the batch is retried, the others
    taking the same delivery again keep one copy."""

    def __init__(self, sinks: list[Sink]) -> None:
        if not sinks:
            raise ConfigError("a fan-out needs at least one sink")
        self.sinks = sinks
        self.shown = " + ".join(_shown(s) for s in sinks)

    async def deliver(self, delivery: Delivery) -> None:
        for sink in self.sinks:
            await sink.deliver(delivery)

    async def retract(self, retraction: Retracted) -> None:
        for sink in self.sinks:
            await sink.retract(retraction)

    async def flush(self) -> None:
        for sink in self.sinks:
            await sink.flush()

    async def close(self) -> None:
        errors: list[BaseException] = []
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:  # close them all; the first failure is raised after
                errors.append(exc)
        if errors:
            raise errors[0]


def _shown(sink: Sink) -> str:
    for attribute in ("shown", "directory", "path"):
        value = getattr(sink, attribute, None)
        if value is not None:
            return str(value)
    return type(sink).__name__
