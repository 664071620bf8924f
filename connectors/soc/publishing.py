"""Publishing a parsed SOC file through the broker: every input object accounted for.

`publish_parsed` publishes every `Item` of a `ParseResult` (one message each)
and returns a `PublishReport` with one `Outcome` per input object:

- `published`: sent to at least one organisation (message id, who, and what
  was removed from whose copy);
- `withheld`: the policy (or the graph) let nobody have it; the deciding rules
  per organisation say why;
- `skipped`: the parser skipped it, or the broker refused the record;
- `already sent`: this sender sent this very object version before (the same
  message id, derived from the object's identity and version: a re-run after a
  crash, a file dropped twice); not sent again;
- `not sent`: the run stopped before it (interrupted, or Kafka unreachable for
  longer than the caller waits); a re-run sends it.

First every item is decided (`Publisher.reach`), then the graph check
withholds or trims what would dangle for a recipient (connectors/soc/_graph.py),
then the items are published in chunks, in the source's order, with the crisis
state the decisions saw. With `dry_run` nothing is sent: the outcomes say who
would get what.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any, Literal, TypeVar

from broker import faults
from broker.envelope import Labels
from broker.errors import Interrupted, JcuError, KafkaUnavailable
from broker.heap import with_frozen_heap
from broker.pep import Publication, Publisher, PublishResult, Reach, Restriction, SourceRef
from broker.policy import Decision
from connectors.soc._graph import resolve
from connectors.soc.result import Item, ParseResult

Status = Literal["published", "withheld", "skipped", "would publish", "already sent", "not sent"]
T = TypeVar("T")
#: Runs one call to Kafka on the caller's terms (says when Kafka does not answer, gives up,
#: stops when asked: broker.cli._outage); raises Interrupted or KafkaUnavailable to stop.
Guard = Callable[[Awaitable[T]], Awaitable[T]]
#: Items per `publish_many` call: one audit write and one batch signature each, and three
#: waits for Kafka (decisions, copies, outcomes): 500 published a 10,000-object file 1.3-1.8x
#: faster than 100 (`python -m bench.stix`); progress is saved after each.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Denied:
    """An organisation that does not get an object, and the rules that decided it."""

    org: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"org": self.org, "rules": list(self.rules), "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input object."""

    source_id: str
    type: str  # the input object's type (STIX type, misp-event, Indicator for CSV rows)
    status: Status
    tlp: str | None = None
    message_id: str | None = None
    received_by: tuple[str, ...] = ()
    #: organisation -> what its copy went without (personal data, stricter parts, trimmed refs)
    redacted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    denied: tuple[Denied, ...] = ()
    reason: str = ""

    @property
    def recipients(self) -> int:
        return len(self.received_by)

    def rules(self) -> tuple[str, ...]:
        """The distinct rules that kept this object from organisations, most frequent first."""
        counts: dict[str, int] = {}
        for d in self.denied:
            for rule in d.rules[:1]:
                counts[rule] = counts.get(rule, 0) + 1
        return tuple(sorted(counts, key=lambda r: (-counts[r], r)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source_id": self.source_id,
            "type": self.type,
            "status": self.status,
        }
        if self.status == "skipped":
            out["reason"] = self.reason
            return out
        out.update(
            tlp=self.tlp,
            message_id=self.message_id,
            recipients=self.recipients,
            received_by=list(self.received_by),
            redacted={org: list(parts) for org, parts in sorted(self.redacted.items())},
            withheld_from=[d.to_json() for d in self.denied],
        )
        if self.reason:
            out["reason"] = self.reason
        return out


#: Each status under the name a report's counts give it (JSON output, progress files).
COUNT_NAMES: dict[Status, str] = {
    "published": "published",
    "would publish": "published",
    "withheld": "withheld",
    "skipped": "skipped",
    "already sent": "already_sent",
    "not sent": "not_sent",
}


@dataclass(slots=True)
class Tally:
    """A run's outcomes counted by status as they come: what its progress file says after
    every chunk, without going over all the outcomes so far each time (at a million
    objects, chunk by chunk, that was minutes)."""

    format: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES.values(), 0))
    stopped: str | None = None

    def add(self, outcomes: Iterable[Outcome]) -> None:
        counts = self.counts
        for o in outcomes:
            counts[COUNT_NAMES[o.status]] += 1

    @property
    def handled(self) -> int:
        """The objects the run is done with (all but those not sent)."""
        return sum(self.counts.values()) - self.counts["not_sent"]


@dataclass(frozen=True, slots=True)
class PublishReport:
    """One input file's publication: an outcome per input object."""

    source: str
    format: str
    outcomes: tuple[Outcome, ...]
    notes: tuple[str, ...] = field(default=())
    dry_run: bool = False
    #: What the publisher returned for each item it published, in order (decisions included).
    results: tuple[PublishResult, ...] = field(default=(), repr=False)
    #: Why the run stopped before the end (interrupted, Kafka unreachable), if it did.
    stopped: str | None = None

    def _with(self, *status: Status) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status in status)

    @property
    def published(self) -> tuple[Outcome, ...]:
        return self._with("published", "would publish")

    @property
    def withheld(self) -> tuple[Outcome, ...]:
        return self._with("withheld")

    @property
    def skipped(self) -> tuple[Outcome, ...]:
        return self._with("skipped")

    @property
    def already_sent(self) -> tuple[Outcome, ...]:
        return self._with("already sent")

    @property
    def not_sent(self) -> tuple[Outcome, ...]:
        return self._with("not sent")

    def tally(self) -> Tally:
        """The outcomes counted by status (one pass)."""
        tally = Tally(self.format, stopped=self.stopped)
        tally.add(self.outcomes)
        return tally

    @property
    def sent_nothing(self) -> bool:
        """True when no object reached (or would reach) any organisation, now or before."""
        return not self.published and not self.already_sent

    def to_json(self) -> dict[str, Any]:
        return {**self.json_head(), "objects": [o.to_json() for o in self.outcomes]}

    def json_head(self) -> dict[str, Any]:
        """`to_json` but its objects (for a caller writing them one by one)."""
        return {
            "source": self.source,
            "format": self.format,
            "dry_run": self.dry_run,
            "notes": list(self.notes),
            **self.tally().counts,
            **({"stopped": self.stopped} if self.stopped else {}),
        }


def source_ref(item: Item, pub: Publisher, scope: str) -> SourceRef | None:
    """The sent index's key of an item: its source id, version and container; a CSV row's
    id is a keyed name of its normalised fields in the file `scope` declares. The message
    id is derived from it (broker.pep.message_ids)."""
    if item.payload_type in ("StixObject", "MispEvent"):
        return SourceRef(item.source_id, item.version, item.container)
    if item.identity is not None:
        return SourceRef(f"row:{pub.message_ids.row_key(scope, item.identity)}", None, scope)
    return None


def declared_source(source: str) -> str:
    """The source id a file declares unless its publisher names one: its file name."""
    return PurePath(source).name


@with_frozen_heap
async def publish_parsed(
    pub: Publisher,
    result: ParseResult,
    *,
    source: str,
    labels_for: Callable[[Item], Labels],
    recipients: Iterable[str] = (),
    on_item: Callable[[], None] | None = None,
    chunk: int = CHUNK,
    dry_run: bool = False,
    source_id: str | None = None,
    guard: Guard[Any] | None = None,
    on_chunk: Callable[[Tally], object] | None = None,
) -> PublishReport:
    """Publish every item of `result` as its own message; `on_item` ticks after each one.

    A broker-side refusal of one item (JcuError: invalid record, bad label) is
    recorded as skipped with the reason; the other items still go. An item this
    sender already sent (same object, same version: the same message id) is
    `already sent`. `source_id` is the file's declared source id (what a CSV
    row's identity is scoped to; default: the file name). Each chunk's call to
    Kafka runs under `guard`; when it raises Interrupted or KafkaUnavailable, the
    run stops and the items left are `not sent` (the report says why).
    `on_chunk` gets the outcomes counted so far after each chunk (a progress file).

    The objects alive when it starts (the parsed file among them) are kept out of
    the garbage collector's scans until it returns (`broker.heap.with_frozen_heap`).
    """
    named = tuple(recipients)
    scope = source_id or declared_source(source)
    rows: list[Outcome | None] = []
    results: list[PublishResult] = []
    ready: list[tuple[int, Item, Publication]] = []
    first: dict[str, str] = {}
    for item in result.items:
        try:
            labels = labels_for(item)
            publication = Publication(
                item.payload_type,
                item.record,
                labels,
                named,
                parts=item.parts,
                redactor=item.redactor,
                source=source_ref(item, pub, scope),
            )
        except JcuError as exc:
            rows.append(_skipped(item, exc))
            continue
        mid = None if dry_run else pub.message_id_of(publication)
        if mid is not None:
            if mid in first:  # the same row (or object version) twice in one file
                rows.append(
                    Outcome(
                        item.source_id,
                        item.kind,
                        "skipped",
                        reason=f"a second copy of {first[mid]} (same content)",
                    )
                )
                continue
            first[mid] = item.source_id
        rows.append(None)
        ready.append((len(rows) - 1, item, publication))

    crisis = pub.crisis.active_incidents()
    denials = _Denials()
    reaches = _reach_each(pub, ready, rows, crisis)
    ready = [entry for entry in ready if rows[entry[0]] is None]
    restrictions = resolve([i for _, i, _ in ready], reaches, pub.sent.reached)
    own = pub.community_of(pub.participant)
    for (_, item, _), reach, restrict in zip(ready, reaches, restrictions, strict=True):
        if item.community_parts:
            for org in reach.recipients:
                if pub.community_of(org) != own:
                    restrict[org] = (*restrict.get(org, ()), _community_only(item, org, own))
    final = [
        (index, item, replace(p, restrict=r) if r else p)
        for (index, item, p), r in zip(ready, restrictions, strict=True)
    ]

    if dry_run:
        for (index, item, _), reach in zip(
            final, pub.reach([p for _, _, p in final], crisis_incidents=crisis), strict=True
        ):
            rows[index] = _planned(item, reach, denials)
            if on_item is not None:
                on_item()
    else:
        skipped = tuple(
            Outcome(s.source_id, s.source_type, "skipped", reason=s.reason) for s in result.skipped
        )

        def so_far(stopped: str | None = None) -> PublishReport:
            outcomes = [o for o in rows if o is not None] + list(skipped)
            return PublishReport(
                source,
                result.format,
                tuple(outcomes),
                result.notes,
                dry_run,
                tuple(results),
                stopped,
            )

        tally = Tally(result.format)
        tally.add(o for o in rows if o is not None)  # decided before any chunk
        tally.add(skipped)
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1
            if on_item is not None:
                on_item()
            faults.point("publish.after-item", ticks)

        for start in range(0, len(final), chunk):
            batch = final[start : start + chunk]
            try:
                tally.add(await _publish_chunk(pub, batch, rows, crisis, results, guard, denials))
            except (Interrupted, KafkaUnavailable) as exc:
                for index, item, publication in final[start:]:
                    if rows[index] is None:
                        rows[index] = _not_sent(pub, item, publication, str(exc))
                return so_far(str(exc))
            if on_chunk is not None:
                on_chunk(tally)
            for _ in batch:
                tick()
        return so_far()
    outcomes = [o for o in rows if o is not None]
    outcomes += [
        Outcome(s.source_id, s.source_type, "skipped", reason=s.reason) for s in result.skipped
    ]
    return PublishReport(
        source, result.format, tuple(outcomes), result.notes, dry_run, tuple(results)
    )


#: Rule id of parts that MISP shares with "this community only".
COMMUNITY_ONLY = "misp-distribution-this-community"


def _community_only(item: Item, org: str, community: str) -> Restriction:
    return Restriction(
        COMMUNITY_ONLY,
        f"MISP distribution 'this community only': {org} is not in the {community} community",
        item.community_parts,
    )


def _reach_each(
    pub: Publisher,
    ready: list[tuple[int, Item, Publication]],
    rows: list[Outcome | None],
    crisis: frozenset[str],
) -> list[Reach]:
    """Decisions for every item; an item the broker refuses is skipped (rows filled in)."""
    try:
        return pub.reach([p for _, _, p in ready], crisis_incidents=crisis)
    except JcuError:
        pass
    reaches = []
    for index, item, publication in ready:
        try:
            (found,) = pub.reach([publication], crisis_incidents=crisis)
        except JcuError as exc:
            rows[index] = _skipped(item, exc)
            continue
        reaches.append(found)
    return reaches


async def _unguarded(call: Awaitable[T]) -> T:
    return await call


async def _publish_chunk(
    pub: Publisher,
    batch: Sequence[tuple[int, Item, Publication]],
    rows: list[Outcome | None],
    crisis: frozenset[str],
    results: list[PublishResult],
    guard: Guard[Any] | None,
    denials: _Denials,
) -> list[Outcome]:
    """Publish a chunk and return its outcomes (also set in `rows`); Interrupted or
    KafkaUnavailable (Kafka did not take it) propagate, the other items of the chunk left
    as they were."""
    run: Guard[Any] = guard or _unguarded
    settled: list[Outcome] = []

    def settle(index: int, outcome: Outcome) -> None:
        rows[index] = outcome
        settled.append(outcome)

    try:
        sent = await run(pub.publish_many([p for _, _, p in batch], crisis_incidents=crisis))
    except (Interrupted, KafkaUnavailable):
        raise
    except JcuError:
        # nothing of a refused chunk was sent or recorded: item by item, so one bad
        # object skips only itself
        for index, item, publication in batch:
            try:
                (res,) = await run(pub.publish_many([publication], crisis_incidents=crisis))
            except (Interrupted, KafkaUnavailable):
                raise
            except JcuError as exc:
                settle(index, _skipped(item, exc))
            else:
                settle(index, _published(item, res, denials))
                results.append(res)
        return settled
    results.extend(sent)
    for (index, item, _), res in zip(batch, sent, strict=True):
        settle(index, _published(item, res, denials))
    return settled


def _denied(decisions: Iterable[Decision]) -> tuple[Denied, ...]:
    return tuple(Denied(d.org, d.rules, d.reasons) for d in decisions if not d.allowed)


class _Denials:
    """The `Denied` entries of a tuple of decisions, made once per tuple within a run.

    The publisher hands every item with the same labels the same tuple (its policy
    cache's), and a feed's report holds an outcome per item, each naming every
    organisation denied: about a kilobyte an item when made anew each time. Kept by
    identity, with the tuple held, so an id is never reused while it is a key."""

    __slots__ = ("_limit", "_made")

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit  # tuples kept: those of items with parts are each their own
        self._made: dict[int, tuple[tuple[Decision, ...], tuple[Denied, ...]]] = {}

    def __call__(self, decisions: tuple[Decision, ...]) -> tuple[Denied, ...]:
        found = self._made.get(id(decisions))  # a key's tuple is held: its id is its own
        if found is not None:
            return found[1]
        denied = _denied(decisions)
        if len(self._made) < self._limit:
            self._made[id(decisions)] = (decisions, denied)
        return denied


def _redacted(decisions: Iterable[Decision]) -> dict[str, tuple[str, ...]]:
    return {d.org: d.redact_fields for d in decisions if d.decision == "redact"}


def _not_sent(pub: Publisher, item: Item, publication: Publication, why: str) -> Outcome:
    """An item the run stopped before (or while) sending; one Kafka took for some of its
    recipients before it failed says so (a re-run sends it to the others)."""
    mid = pub.message_id_of(publication)
    prior = pub.already_sent(mid) if mid is not None else None
    if prior is not None:
        why = f"sent to {', '.join(sorted(prior.recipients))} only; a re-run sends the rest: {why}"
    return Outcome(
        item.source_id,
        item.kind,
        "not sent",
        tlp=item.tlp,
        message_id=mid if prior else None,
        reason=why,
    )


def _already(item: Item, mid: str, recipients: Iterable[str], tlp: str) -> Outcome:
    return Outcome(
        item.source_id,
        item.kind,
        "already sent",
        tlp=tlp,
        message_id=mid,
        received_by=tuple(sorted(recipients)),
        reason="sent before as this message (same object and version); not sent again",
    )


def _published(item: Item, sent: PublishResult, denials: _Denials) -> Outcome:
    if sent.already_sent:
        return _already(item, sent.message_id, sent.already_sent_to, sent.labels.tlp)
    received = sent.recipients
    return Outcome(
        item.source_id,
        item.kind,
        "published" if received else "withheld",
        tlp=sent.labels.tlp,
        message_id=sent.message_id if received else None,
        received_by=received,
        redacted=_redacted(sent.decisions),
        denied=denials(sent.decisions),
        reason="" if received else "no organisation may receive it",
    )


def _planned(item: Item, reach: Reach, denials: _Denials) -> Outcome:
    received = reach.recipients
    return Outcome(
        item.source_id,
        item.kind,
        "would publish" if received else "withheld",
        tlp=item.tlp,
        received_by=received,
        redacted=_redacted(reach.decisions),
        denied=denials(reach.decisions),
        reason="" if received else "no organisation may receive it",
    )


def _skipped(item: Item, exc: JcuError) -> Outcome:
    return Outcome(item.source_id, item.kind, "skipped", reason=f"not published: {exc}")
