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
from broker.pep import Publisher
from connectors.soc.result import Item, ParseResult

Status = Literal["published", "skipped"]


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
) -> PublishReport:
    """Publish every item of `result` as its own message; `on_item` ticks after each one.

    A broker-side refusal of one item (JcuError: invalid record, bad label) is
    recorded as skipped with the reason; the other items are still published.
    """
    named = tuple(recipients)
    outcomes: list[Outcome] = []
    for item in result.items:
        try:
            labels = labels_for(item)
            sent = await pub.publish(
                item.payload_type, item.record, labels=labels, recipients=named
            )
        except JcuError as exc:
            outcomes.append(
                Outcome(
                    item.source_id, item.payload_type, "skipped", reason=f"not published: {exc}"
                )
            )
        else:
            outcomes.append(
                Outcome(
                    item.source_id,
                    item.payload_type,
                    "published",
                    tlp=labels.tlp,
                    message_id=sent.message_id,
                    recipients=len(sent.recipients),
                )
            )
        if on_item is not None:
            on_item()
    outcomes += [
        Outcome(s.source_id, s.source_type, "skipped", reason=s.reason) for s in result.skipped
    ]
    return PublishReport(source, result.format, tuple(outcomes), result.notes)
