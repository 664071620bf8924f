"""The capability inventory on `jcu.capabilities`: what each participant could deploy.

Each entry is an envelope like any shared record (`broker.envelope`): signed
by its owner, encrypted for exactly the organisations the policy lets see it
(rule 13: every operational participant; members only entries the owner marks
shareable, TLP:GREEN or CLEAR; supporting participants none), and every
decision is audited on `<owner>/inventory`. The topic is compacted and keyed
`<owner>/<entry id>`, so it keeps the newest version of each entry; a
withdrawal is the entry again, marked withdrawn.

Only JCU participants (operational or supporting) keep entries, and an
entry's legal basis must be one of its owner's registered mandates: a reader
checks both against its accepted registry snapshot, with the signature, the
key (`<owner>/<id>` must name the signer and the entry), the policy for
receipt and the expiry. An entry stands for `ENTRY_VALIDITY` (the envelope's
longest validity, 30 days) and is published again to stay listed: that bounds
how long an old entry replayed after compaction could come back (the Kafka
ACLs that let each owner write only its own keys are the outer wall).

Readers read the whole topic each time (it holds one record per entry);
refused records are dead-lettered and audited once per node.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from broker.assist.steps import DEPLOYMENTS, KINDS
from broker.audit import AuditLog, AuditRecord, DecisionSet
from broker.clock import Clock, utc_now
from broker.envelope import EnvelopeReader, Labels
from broker.envelope.labels import AvroLabelsCache
from broker.envelope.replay import MemoryReplayGuard
from broker.envelope.sealer import MAX_VALIDITY
from broker.errors import (
    ConfigError,
    Expired,
    JcuError,
    MalformedRecord,
    NotARecipient,
    NotEntitled,
    Rejected,
    Unauthorised,
)
from broker.files import write_private
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.scan import scan
from broker.kafka.stamps import appended_at
from broker.kafka.topics import CAPABILITIES, DLQ
from broker.lifecycle import Service, to_the_end
from broker.logs import get_logger
from broker.pep.context import PepContext
from broker.pep.publisher import NO_USABLE_KEY, policy_message
from broker.pep.registry_audit import log_registry
from broker.policy import Decision
from broker.trust.registry import Registry
from broker.vocabulary import CAPABILITY_ENTRY, CATEGORIES

ENTRY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: How long a published entry stands before its owner must publish it again.
ENTRY_VALIDITY = MAX_VALIDITY
#: The TLPs that mark an entry shareable with members (rule 13).
SHAREABLE = ("CLEAR", "GREEN")
_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CapabilityEntry:
    """One capability (eu.jcu.v1.CapabilityEntry)."""

    id: str
    owner: str
    kind: str
    title: str
    notice_hours: int
    legal_basis: str
    updated: datetime
    description: str = ""
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    capacity: int = 1
    deployment: str = "EITHER"
    available_from: datetime | None = None
    available_until: datetime | None = None
    categories: tuple[str, ...] = ()
    withdrawn: bool = False

    @property
    def key(self) -> str:
        """The record key on jcu.capabilities: `<owner>/<id>`."""
        return f"{self.owner}/{self.id}"

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "skills": list(self.skills),
            "languages": list(self.languages),
            "capacity": self.capacity,
            "deployment": self.deployment,
            "notice_hours": self.notice_hours,
            "available_from": self.available_from,
            "available_until": self.available_until,
            "categories": list(self.categories),
            "legal_basis": self.legal_basis,
            "updated": self.updated,
            "withdrawn": self.withdrawn,
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> CapabilityEntry:
        return cls(
            id=str(rec["id"]),
            owner=str(rec["owner"]),
            kind=str(rec["kind"]),
            title=str(rec["title"]),
            notice_hours=int(rec["notice_hours"]),
            legal_basis=str(rec["legal_basis"]),
            updated=rec["updated"],
            description=str(rec.get("description") or ""),
            skills=tuple(str(s) for s in rec.get("skills") or ()),
            languages=tuple(str(s) for s in rec.get("languages") or ()),
            capacity=int(rec.get("capacity", 1)),
            deployment=str(rec.get("deployment", "EITHER")),
            available_from=rec.get("available_from"),
            available_until=rec.get("available_until"),
            categories=tuple(str(s) for s in rec.get("categories") or ()),
            withdrawn=bool(rec.get("withdrawn", False)),
        )

    def to_json(self) -> dict[str, Any]:
        out = self.to_avro()
        for k in ("available_from", "available_until", "updated"):
            out[k] = out[k].isoformat() if out[k] is not None else None
        return out


def check_entry(registry: Registry, entry: CapabilityEntry) -> None:
    """Raise unless `entry` is well formed and its owner may keep it (registry facts):
    a JCU participant (operational or supporting), deploying under one of its mandates."""
    if not ENTRY_ID.fullmatch(entry.id):
        raise MalformedRecord(
            f"capability id {entry.id!r}: lower-case letters, digits and dashes, 1-63 characters"
        )
    if entry.kind not in KINDS:
        raise MalformedRecord(f"capability {entry.id}: kind {entry.kind!r} is not one of {KINDS}")
    if entry.deployment not in DEPLOYMENTS:
        raise MalformedRecord(f"capability {entry.id}: deployment must be one of {DEPLOYMENTS}")
    if entry.capacity < 1 or entry.notice_hours < 0:
        raise MalformedRecord(
            f"capability {entry.id}: capacity {entry.capacity}, notice {entry.notice_hours} h"
        )
    unknown = sorted(set(entry.categories) - set(CATEGORIES))
    if unknown:
        raise MalformedRecord(f"capability {entry.id}: unknown categories {unknown}")
    if (
        entry.available_from is not None
        and entry.available_until is not None
        and entry.available_until <= entry.available_from
    ):
        raise MalformedRecord(f"capability {entry.id}: available until before from")
    if entry.owner not in registry:
        raise NotEntitled(f"{entry.owner} is not in the registry snapshot this node accepted")
    owner = registry.get(entry.owner)
    if owner.role == "member":
        raise NotEntitled(
            f"{entry.owner} is a community member, not a JCU participant: the inventory lists "
            "the participants' capabilities"
        )
    bases = [m.legal_basis for m in owner.mandates]
    if entry.legal_basis not in bases:
        raise NotEntitled(
            f"capability {entry.id}: {entry.legal_basis!r} is not a legal basis of "
            f"{entry.owner}'s mandates ({'; '.join(bases)})"
        )


def entry_labels(entry: CapabilityEntry, tlp: str) -> Labels:
    return Labels.of(tlp, categories=entry.categories)


@dataclass(frozen=True, slots=True)
class Published:
    """What publishing one entry did: who may see it, who may not and why."""

    entry: CapabilityEntry
    tlp: str
    message_id: str
    recipients: tuple[str, ...]
    decisions: tuple[Decision, ...] = field(repr=False)
    partition: int = 0
    offset: int = 0

    @property
    def denied(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.allowed)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.entry.key,
            "tlp": self.tlp,
            "message_id": self.message_id,
            "withdrawn": self.entry.withdrawn,
            "visible_to": list(self.recipients),
            "hidden_from": [{"org": d.org, "rules": list(d.rules)} for d in self.denied],
        }


class CapabilityPublisher(Service):
    """Publishes the inventory entries of this node's participant; `async with` it.

    Its own entries are kept in `$JCU_HOME/capabilities/own.json` (an owner is not
    a recipient of its own entries: rule 6), so it can list and withdraw them.
    """

    def __init__(
        self, owner: str, ctx: PepContext, *, audit: AuditLog | None = None, clock: Clock = utc_now
    ) -> None:
        ctx.registry.get(owner)
        self.owner = owner
        self._ctx = ctx
        self._clock = clock
        self._sealer = ctx.envelope.sealer(owner, clock=clock)
        self._owns_audit = audit is None
        self._audit = audit if audit is not None else ctx.audit_log(owner, "inventory")
        self._producer: Any = None
        self._labels = AvroLabelsCache()

    async def start(self) -> None:
        try:
            await self._audit.start()
            if self._owns_audit:  # the snapshot this point acts on, if not logged yet
                await log_registry(self._ctx.envelope.trusted, self._audit)
            producer = reliable_producer(self._ctx.settings.kafka)
            await start_client(producer, self._ctx.settings.kafka)
            self._producer = producer
        except BaseException:
            await to_the_end(self.stop())
            raise

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._audit.stop()

    def own(self) -> dict[str, tuple[CapabilityEntry, str]]:
        """This participant's entries as last published: id -> (entry, TLP)."""
        return load_own(self._ctx, self.owner)

    async def publish(self, entries: Sequence[tuple[CapabilityEntry, str]]) -> list[Published]:
        """Publish (or publish again) each (entry, TLP); all are checked before any is sent."""
        if self._producer is None:
            raise ConfigError("capability publisher is not started")
        self._ctx.check_trusted()
        now = self._clock()
        registry = self._ctx.registry
        for entry, tlp in entries:
            if entry.owner != self.owner:
                raise NotEntitled(f"{self.owner} may not publish {entry.owner}'s capability")
            check_entry(registry, entry)
            entry_labels(entry, tlp)  # a bad TLP fails here, before anything is sent
        results = []
        for entry, tlp in entries:
            results.append(await self._publish_one(entry, tlp, now))
        own = load_own(self._ctx, self.owner)
        for r in results:
            if r.entry.withdrawn:
                own.pop(r.entry.id, None)
            else:
                own[r.entry.id] = (r.entry, r.tlp)
        _save_own(self._ctx, self.owner, own)
        return results

    async def withdraw(self, entry_id: str) -> Published:
        """Publish entry `entry_id` again, withdrawn, to everyone the policy lets see it."""
        own = load_own(self._ctx, self.owner)
        if entry_id not in own:
            known = ", ".join(sorted(own)) or "none"
            raise ConfigError(
                f"{self.owner} has published no capability {entry_id!r} from this node "
                f"(its entries: {known})"
            )
        entry, tlp = own[entry_id]
        withdrawn = CapabilityEntry(**{**_fields(entry), "withdrawn": True, "updated": utc_now()})
        return (await self.publish([(withdrawn, tlp)]))[0]

    async def _publish_one(self, entry: CapabilityEntry, tlp: str, now: datetime) -> Published:
        labels = entry_labels(entry, tlp)
        store = self._ctx.envelope.store
        payload = store.encode(CAPABILITY_ENTRY, entry.to_avro())
        msg = policy_message(self.owner, CAPABILITY_ENTRY, labels, ())
        keyring = self._ctx.envelope.keyring
        decisions = tuple(
            d
            if not d.allowed or keyring.can_receive(d.org, now)
            else Decision(d.org, "deny", (NO_USABLE_KEY,), (), reasons=("no usable key",))
            for d in self._ctx.policy.decide_all(msg)
        )
        allowed = tuple(sorted(d.org for d in decisions if d.allowed))
        mid = str(uuid.uuid4())
        await self._audit.append_sets(
            [
                DecisionSet(
                    "publish",
                    mid,
                    decisions,
                    content_hash=self._audit.content_hash(payload),  # keyed: no guessing
                    labels=self._labels(labels),
                    policy_bundle_hash=self._ctx.policy.bundle_hash,
                )
            ]
        )
        if not allowed:
            return Published(entry, tlp, mid, (), decisions)
        sealed = self._sealer.seal(
            CAPABILITY_ENTRY,
            entry.to_avro(),
            recipients=allowed,
            topic=CAPABILITIES,
            labels=labels,
            validity=ENTRY_VALIDITY,
            message_id=mid,
        )
        meta = await (
            await self._producer.send(CAPABILITIES, value=sealed.data, key=entry.key.encode())
        )
        return Published(entry, tlp, mid, allowed, decisions, meta.partition, meta.offset)


def _fields(entry: CapabilityEntry) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in CapabilityEntry.__slots__}


def _own_path(ctx: PepContext, owner: str) -> Path:
    return ctx.settings.home / "capabilities" / f"{owner}.own.json"


def load_own(ctx: PepContext, owner: str) -> dict[str, tuple[CapabilityEntry, str]]:
    """The entries `owner` published from this node, as last published: id -> (entry, TLP)."""
    path = _own_path(ctx, owner)
    if not path.exists():
        return {}
    store = ctx.envelope.store
    out = {}
    for item in json.loads(path.read_text(encoding="utf-8")):
        _, rec = store.decode(bytes.fromhex(item["entry"]), expected=CAPABILITY_ENTRY)
        entry = CapabilityEntry.from_avro(rec)
        out[entry.id] = (entry, str(item["tlp"]))
    return out


def _save_own(ctx: PepContext, owner: str, own: Mapping[str, tuple[CapabilityEntry, str]]) -> None:
    store = ctx.envelope.store
    items = [
        {"entry": store.encode(CAPABILITY_ENTRY, e.to_avro()).hex(), "tlp": tlp}
        for e, tlp in own.values()
    ]
    write_private(_own_path(ctx, owner), json.dumps(items, indent=1).encode())


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    """An entry this node may see."""

    entry: CapabilityEntry
    tlp: str
    message_id: str
    expires: datetime

    @property
    def shareable(self) -> bool:
        return self.tlp in SHAREABLE

    def to_json(self) -> dict[str, Any]:
        return {
            **self.entry.to_json(),
            "key": self.entry.key,
            "tlp": self.tlp,
            "shareable": self.shareable,
            "expires": self.expires.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    key: str
    reason: str
    error: str
    partition: int
    offset: int


@dataclass
class InventoryView:
    """What `read_inventory` found: the entries this node may see, newest version each."""

    entries: dict[str, Listed] = field(default_factory=dict)
    refused: list[Refusal] = field(default_factory=list)
    #: Records sealed for others (not visible to this node), expired and withdrawn ones.
    hidden: int = 0
    expired: int = 0
    withdrawn: int = 0

    def listed(self) -> list[Listed]:
        return sorted(self.entries.values(), key=lambda x: x.entry.key)


async def read_inventory(
    ctx: PepContext,
    participant: str,
    *,
    audit: AuditLog | None = None,
    clock: Clock = utc_now,
    topic: str = CAPABILITIES,
) -> InventoryView:
    """Read jcu.capabilities as `participant`: open what is sealed for it, check it, keep the
    newest version of each entry. Refused records are dead-lettered and audited (on
    `audit`, default `<participant>/inventory`) the first time this node meets them."""
    registry = ctx.registry
    opener = ctx.envelope.opener(participant, replay_guard=MemoryReplayGuard(), clock=clock)
    reader = EnvelopeReader(ctx.envelope.store)
    view = InventoryView()
    seen: dict[str, datetime] = {}
    new_refusals: list[tuple[Refusal, Any, Labels | None]] = []
    memo = _refused_memo(ctx, participant, topic)
    async for r in scan(ctx.settings.kafka, [topic]):
        key = (r.key or b"").decode(errors="replace")
        labels: Labels | None = None
        try:
            value: bytes = r.value or b""
            decoded = reader.decode(value)
            if participant not in decoded.header.recipient_ids:
                view.hidden += 1
                continue
            opened = opener.open(value, topic=topic, decoded=decoded, appended=appended_at(r))
            labels = opened.labels
            if opened.payload_type.rpartition(".")[2] != CAPABILITY_ENTRY:
                raise MalformedRecord(f"a {opened.payload_type} on {topic}")
            entry = CapabilityEntry.from_avro(opened.record)
            if entry.owner != opened.sender or key != entry.key:
                raise MalformedRecord(
                    f"record keyed {key!r} holds {entry.key}, signed by {opened.sender}"
                )
            check_entry(registry, entry)
            decision = ctx.policy.decide(
                policy_message(opened.sender, CAPABILITY_ENTRY, labels, ()),
                participant,
                action="receive",
            )
            if not decision.allowed:
                why = "; ".join(decision.reasons) or "denied by policy"
                raise Unauthorised(f"policy refuses {participant} this capability entry: {why}")
        except Expired:
            view.expired += 1
            continue
        except NotARecipient:
            view.hidden += 1
            continue
        except (Rejected, JcuError) as exc:
            reason = exc.reason if isinstance(exc, Rejected) else "malformed"
            refusal = Refusal(key, reason, str(exc), r.partition, r.offset)
            view.refused.append(refusal)
            if f"{r.partition}:{r.offset}" not in memo:
                new_refusals.append((refusal, r, labels))
            continue
        if seen.get(entry.key) is not None and seen[entry.key] > entry.updated:
            continue  # an older version written after a newer one: a replay, passed over
        seen[entry.key] = entry.updated
        if entry.withdrawn:
            view.entries.pop(entry.key, None)
            view.withdrawn += 1
            continue
        view.entries[entry.key] = Listed(entry, labels.tlp, opened.message_id, opened.expires)
    if new_refusals:
        await _report(ctx, participant, new_refusals, audit, topic)
        memo |= {f"{x.partition}:{x.offset}" for x, _, _ in new_refusals}
        write_private(_memo_path(ctx, participant, topic), json.dumps(sorted(memo)).encode())
    return view


def _memo_path(ctx: PepContext, participant: str, topic: str) -> Path:
    return ctx.settings.home / "capabilities" / f"{participant}.{topic}.refused.json"


def _refused_memo(ctx: PepContext, participant: str, topic: str) -> set[str]:
    path = _memo_path(ctx, participant, topic)
    return set(json.loads(path.read_text())) if path.exists() else set()


async def _report(
    ctx: PepContext,
    participant: str,
    refusals: Iterable[tuple[Refusal, Any, Labels | None]],
    audit: AuditLog | None,
    topic: str,
) -> None:
    """Dead-letter and audit refused inventory records (once per node)."""
    log = audit if audit is not None else ctx.audit_log(participant, "inventory")
    producer = reliable_producer(ctx.settings.kafka)
    await start_client(producer, ctx.settings.kafka)
    cache = AvroLabelsCache()
    try:
        async with log:
            if audit is None:  # the snapshot this point acts on, if not logged yet
                await log_registry(ctx.envelope.trusted, log)
            for refusal, r, labels in refusals:
                _log.warning(
                    "capability entry refused",
                    participant=participant,
                    key=refusal.key,
                    reason=refusal.reason,
                )
                await producer.send_and_wait(
                    DLQ,
                    value=r.value,
                    key=(refusal.key or f"{topic}:{r.partition}:{r.offset}").encode()[:256],
                    headers=[
                        ("jcu.reason", refusal.reason.encode()),
                        ("jcu.error", refusal.error[:500].encode()),
                        ("jcu.participant", participant.encode()),
                        ("jcu.source", f"{topic}:{r.partition}:{r.offset}".encode()),
                    ],
                )
                await log.append(
                    AuditRecord.from_rejection(
                        _as_rejected(refusal),
                        organisation=participant,
                        message_id=f"capability:{refusal.key}",
                        labels=cache(labels) if labels is not None else None,
                        bundle_hash=ctx.policy.bundle_hash,
                    )
                )
    finally:
        await producer.stop()


def _as_rejected(refusal: Refusal) -> Rejected:
    error = Rejected(refusal.error)
    error.reason = refusal.reason
    return error
