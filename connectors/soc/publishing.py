"""Publishing a parsed SOC file through the broker: every input object accounted for.

`publish_parsed` publishes every `Item` of a `ParseResult` (one message each)
and returns a `PublishReport` with one `Outcome` per input object: published
(message id, number of recipients) or skipped with the reason, whether the
parser skipped it or the broker refused it (an invalid record, a label the
registry does not know). Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from broker.envelope import Labels
from broker.errors import JcuError
from broker.pep import Publication, Publisher, PublishResult
from connectors.soc.result import Item, ParseResult

Status = Literal["published", "skipped"]
#: Items per `publish_many` call: one audit write and one batch signature each.
CHUNK = 100


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input object."""

    source_id: str
    type: str  # payload type when published, else the input object's type
    status: Status
    tlp: str | None = None
    message_id: str | None = None
    recipients: int = 0
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source_id": self.source_id,
            "type": self.type,
            "status": self.status,
        }
        if self.status == "published":
            out.update(tlp=self.tlp, message_id=self.message_id, recipients=self.recipients)
        else:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class PublishReport:
    """One input file's publication: an outcome per input object, in input order."""

    source: str
    format: str
    outcomes: tuple[Outcome, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def published(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "published")

    @property
    def skipped(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "skipped")

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "notes": list(self.notes),
            "published": len(self.published),
            "skipped": len(self.skipped),
            "objects": [o.to_json() for o in self.outcomes],
        }


async def publish_parsed(
    pub: Publisher,
    result: ParseResult,
    *,
    source: str,
    labels_for: Callable[[Item], Labels],
    recipients: Iterable[str] = (),
    on_item: Callable[[], None] | None = None,
    chunk: int = CHUNK,
) -> PublishReport:
    """Publish every item of `result` as its own message; `on_item` ticks after each one.

    Items go in chunks through `Publisher.publish_many` (one audit write and one
    signature per chunk). A broker-side refusal of one item (JcuError: invalid
    record, bad label) is recorded as skipped with the reason; the other items
    are still published: a chunk that is refused is retried item by item.
    """
    named = tuple(recipients)
    outcomes: list[Outcome] = []
    ready: list[tuple[Item, Labels]] = []

    async def flush() -> None:
        batch = ready[:]
        ready.clear()
        if not batch:
            return
        try:
            sent = await pub.publish_many(
                [Publication(i.payload_type, i.record, lab, named) for i, lab in batch]
            )
        except JcuError:
            for item, labels in batch:  # nothing of a refused chunk was sent or recorded
                await one(item, labels)
        else:
            for (item, labels), res in zip(batch, sent, strict=True):
                outcomes.append(_published(item, labels, res))
                if on_item is not None:
                    on_item()

    async def one(item: Item, labels: Labels) -> None:
        try:
            res = await pub.publish(item.payload_type, item.record, labels=labels, recipients=named)
        except JcuError as exc:
            outcomes.append(_skipped(item, exc))
        else:
            outcomes.append(_published(item, labels, res))
        if on_item is not None:
            on_item()

    for item in result.items:
        try:
            labels = labels_for(item)
        except JcuError as exc:
            await flush()  # keep the outcomes in input order
            outcomes.append(_skipped(item, exc))
            if on_item is not None:
                on_item()
            continue
        ready.append((item, labels))
        if len(ready) >= chunk:
            await flush()
    await flush()
    outcomes += [
        Outcome(s.source_id, s.source_type, "skipped", reason=s.reason) for s in result.skipped
    ]
    return PublishReport(source, result.format, tuple(outcomes), result.notes)


def _published(item: Item, labels: Labels, sent: PublishResult) -> Outcome:
    return Outcome(
        item.source_id,
        item.payload_type,
        "published",
        tlp=labels.tlp,
        message_id=sent.message_id,
        recipients=len(sent.recipients),
    )


def _skipped(item: Item, exc: JcuError) -> Outcome:
    return Outcome(item.source_id, item.payload_type, "skipped", reason=f"not published: {exc}")
