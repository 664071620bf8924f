"""A witness: another participant's node cosigns each log's checkpoints once it has checked
that the log only grew.

A log's operator holds its key and its topic: alone, it could sign a new
history (a fork) or start again shorter (a truncation), and anyone who only
ever sees the latest checkpoint could not tell. A witness remembers, outside
Kafka (`<home>/witness/state.json`, 0600), the largest checkpoint of every
origin it has cosigned. It cosigns a new checkpoint only if the log signed it
with a key valid at the time and its consistency proof (carried with it on
`jcu.audit.checkpoints`) shows it extends that one; a smaller or different tree
is refused and kept as evidence (the conflicting signed note). It never reads a
leaf: it learns sizes and roots, nothing of what was decided.

The protocol, over Kafka: the log writes `eu.jcu.v1.Checkpoint` (note,
previous size, consistency proof); the witness reads them in topic order and,
after saving its state, writes `eu.jcu.v1.Cosignature` (the note with its
`cosignature/v1` line) to `jcu.audit.cosignatures`, keyed by the origin. A
participant never witnesses its own logs. The first checkpoint a witness sees
of an origin is taken on trust (it cannot know the past); every later one must
follow from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._codec import CheckpointRecord, decode_checkpoint, encode_cosignature
from broker.audit.checkpoint import SignedCheckpoint, cosign, ed25519_key_id, witness_name
from broker.audit.topic import end_offsets, iter_topic
from broker.audit.verify import KeyResolver, KeyValidity, Seen
from broker.clock import utc_now
from broker.errors import AuditError, JcuError, Rejected
from broker.files import write_private
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES
from broker.logs import get_logger
from broker.merkle import verify_consistency
from broker.schemas import SchemaStore

STATE_FILE = "state.json"
STATE_VERSION = 1
EXPORT_FORMAT = "jcu-witnessed/v1"
#: Refusals kept as evidence in the state (the oldest go first past this).
MAX_CONFLICTS = 1000
_log = get_logger(__name__)

Outcome = Literal["cosigned", "known", "refused", "ignored"]


@dataclass(frozen=True, slots=True)
class WitnessVerdict:
    """What the witness made of one checkpoint."""

    origin: str
    tree_size: int
    outcome: Outcome
    reason: str = ""


@dataclass
class _Held:
    tree_size: int
    root_hash: bytes
    note: str  # the checkpoint as the witness cosigned it
    time: datetime


@dataclass
class WitnessState:
    """What a witness remembers: per origin the largest checkpoint it cosigned, where it
    stopped reading, and the checkpoints it refused."""

    name: str
    held: dict[str, _Held] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path, name: str) -> WitnessState:
        path = directory / STATE_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(name)
        except (OSError, json.JSONDecodeError) as exc:
            raise AuditError(
                f"witness state {path} is unreadable ({exc}); restore it from backup: it is "
                "the evidence of what this witness saw"
            ) from None
        try:
            if raw["version"] != STATE_VERSION or raw["name"] != name:
                raise ValueError(f"version {raw['version']} of {raw['name']}")
            held = {
                origin: _Held(
                    int(h["tree_size"]),
                    bytes.fromhex(h["root_hash"]),
                    str(h["note"]),
                    datetime.fromisoformat(str(h["time"])),
                )
                for origin, h in raw["held"].items()
            }
            offsets = {int(p): int(o) for p, o in raw["offsets"].items()}
            conflicts = list(raw["conflicts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"witness state {path} is malformed ({exc}); restore it") from None
        return cls(name, held, offsets, conflicts)

    def save(self, directory: Path) -> None:
        body = {
            "version": STATE_VERSION,
            "name": self.name,
            "held": {
                origin: {
                    "tree_size": h.tree_size,
                    "root_hash": h.root_hash.hex(),
                    "note": h.note,
                    "time": h.time.isoformat(),
                }
                for origin, h in sorted(self.held.items())
            },
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "conflicts": self.conflicts[-MAX_CONFLICTS:],
        }
        write_private(directory / STATE_FILE, json.dumps(body, indent=1).encode())

    def seen(self) -> list[Seen]:
        """What this witness saw, as a verifier checks logs against it."""
        return [
            Seen(origin, h.tree_size, h.root_hash, f"this node's witness {self.name}")
            for origin, h in sorted(self.held.items())
        ]

    def export(self) -> str:
        """The cosigned checkpoints, for `jcu audit verify --seen FILE` elsewhere."""
        return json.dumps(
            {
                "format": EXPORT_FORMAT,
                "witness": self.name,
                "notes": [h.note for _, h in sorted(self.held.items())],
            },
            indent=1,
        )


def load_export(text: str) -> list[SignedCheckpoint]:
    """The cosigned notes of a `jcu audit witness --export` file."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuditError(f"not a witness export: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise AuditError(f"not a witness export of format {EXPORT_FORMAT}")
    notes = data.get("notes")
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise AuditError("witness export: notes must be a list of signed notes")
    return [SignedCheckpoint.parse(n) for n in notes]


class Witness:
    """One participant's witness: checks checkpoints, cosigns what extends what it saw.

    `keys(name)` gives the registered signing keys of a name's participant and
    `key_validity(name, key_id, time)` raises if that key could not sign then
    (from the node's registry snapshot, as for verification).
    """

    def __init__(
        self,
        participant: str,
        signer: ed25519.Ed25519PrivateKey,
        keys: KeyResolver,
        state_dir: Path,
        *,
        key_validity: KeyValidity | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.participant = participant
        self.name = witness_name(participant)
        self._signer = signer
        self._keys = keys
        self._validity = key_validity
        self._dir = state_dir
        self._clock = clock
        self.state = WitnessState.load(state_dir, self.name)
        self._to_cosign: dict[str, SignedCheckpoint] = {}

    def observe(self, record: CheckpointRecord) -> WitnessVerdict:
        """Judge one checkpoint (in topic order); a new largest one is cosigned at `flush`."""
        cp = record.signed
        origin = cp.origin
        if origin.partition("/")[0] == self.participant:
            return WitnessVerdict(origin, cp.tree_size, "ignored", "this participant's own log")
        public = cp.log_key(self._keys(origin))
        if public is None:
            return self._refuse(record, "not signed by a registered key of its origin")
        if self._validity is not None:
            try:
                self._validity(origin, ed25519_key_id(public), cp.time)
            except Rejected as exc:
                return self._refuse(record, f"its key could not sign then: {exc}")
        held = self.state.held.get(origin)
        if held is not None:
            if cp.tree_size < held.tree_size:
                return self._refuse(
                    record,
                    f"truncated: size {cp.tree_size} is smaller than size {held.tree_size}, "
                    "which this witness cosigned",
                )
            if cp.tree_size == held.tree_size:
                if cp.root_hash == held.root_hash:
                    return WitnessVerdict(origin, cp.tree_size, "known")
                return self._refuse(
                    record,
                    f"forked: another root at size {cp.tree_size} than the one this witness "
                    "cosigned",
                )
            if record.previous_size != held.tree_size:
                return self._refuse(
                    record,
                    f"its consistency proof starts at size {record.previous_size}, not at "
                    f"size {held.tree_size}, which this witness cosigned: it cannot be shown "
                    "to extend it",
                )
            if not verify_consistency(
                held.tree_size, cp.tree_size, held.root_hash, cp.root_hash, record.consistency
            ):
                return self._refuse(
                    record,
                    f"forked: it does not extend size {held.tree_size}, which this witness "
                    "cosigned (the consistency proof fails)",
                )
        self.state.held[origin] = _Held(cp.tree_size, cp.root_hash, cp.note(), self._clock())
        self._to_cosign[origin] = cp
        return WitnessVerdict(origin, cp.tree_size, "cosigned")

    def _refuse(self, record: CheckpointRecord, reason: str) -> WitnessVerdict:
        cp = record.signed
        _log.error(
            "witness refused a checkpoint",
            witness=self.name,
            origin=cp.origin,
            tree_size=cp.tree_size,
            reason=reason,
        )
        self.state.conflicts.append(
            {
                "origin": cp.origin,
                "tree_size": cp.tree_size,
                "reason": reason,
                "note": cp.note(),
                "previous_size": record.previous_size,
                "time": self._clock().isoformat(),
            }
        )
        return WitnessVerdict(cp.origin, cp.tree_size, "refused", reason)

    def topic_shrank(
        self, topic: str, partition: int, offset: int, ends: Mapping[int, int]
    ) -> WitnessVerdict:
        reason = (
            f"{topic} partition {partition} ends at offset {ends.get(partition, 0)}, before "
            f"offset {offset} this witness had read to: it was deleted or truncated"
        )
        _log.error("checkpoints topic shrank", witness=self.name, reason=reason)
        self.state.conflicts.append(
            {"origin": topic, "tree_size": -1, "reason": reason, "time": self._clock().isoformat()}
        )
        return WitnessVerdict(topic, -1, "refused", reason)

    def flush(self) -> list[SignedCheckpoint]:
        """Save what was accepted, then cosign each origin's newest: the state is on disk
        before any cosignature leaves, so no restart can cosign two histories."""
        self.state.save(self._dir)
        now = self._clock()
        out = []
        for origin, cp in sorted(self._to_cosign.items()):
            signed = cp.with_signatures([cosign(self._signer, self.name, cp.checkpoint, now)])
            self.state.held[origin].note = signed.note()
            out.append(signed)
        self._to_cosign.clear()
        if out:
            self.state.save(self._dir)
        return out


@dataclass(frozen=True, slots=True)
class WitnessRound:
    """One pass over the checkpoints topic."""

    verdicts: tuple[WitnessVerdict, ...]
    published: tuple[SignedCheckpoint, ...]

    @property
    def refused(self) -> tuple[WitnessVerdict, ...]:
        return tuple(v for v in self.verdicts if v.outcome == "refused")


async def witness_round(
    witness: Witness,
    store: SchemaStore,
    kafka: KafkaConnection,
    *,
    checkpoints_topic: str = AUDIT_CHECKPOINTS,
    cosignatures_topic: str = AUDIT_COSIGNATURES,
    producer: Any = None,
) -> WitnessRound:
    """Read the checkpoints written since the last round, judge them, publish cosignatures."""
    from broker.kafka.clients import reliable_producer, start_client

    verdicts: list[WitnessVerdict] = []
    ends = await end_offsets(kafka, checkpoints_topic)
    for partition, offset in list(witness.state.offsets.items()):
        if ends.get(partition, 0) < offset:
            # Fewer checkpoints than this witness already read: the topic was deleted and made
            # anew, or truncated. Say so, and read it again from its start.
            verdicts.append(witness.topic_shrank(checkpoints_topic, partition, offset, ends))
            witness.state.offsets[partition] = 0
    offsets: Mapping[int, int] = dict(witness.state.offsets)
    async for batch in iter_topic(kafka, checkpoints_topic, start=offsets):
        for raw in batch:
            witness.state.offsets[raw.partition] = raw.offset + 1
            try:
                record = decode_checkpoint(store, raw.value)
            except JcuError as exc:
                verdicts.append(WitnessVerdict(raw.key, -1, "ignored", f"malformed: {exc}"))
                continue
            if record.signed.origin != raw.key:
                verdicts.append(WitnessVerdict(raw.key, -1, "ignored", "keyed as another origin"))
                continue
            verdicts.append(witness.observe(record))
    cosigned = witness.flush()
    if cosigned:
        owned = producer is None
        if owned:
            producer = reliable_producer(kafka)
            await start_client(producer, kafka)
        try:
            futures = [
                await producer.send(
                    cosignatures_topic,
                    value=encode_cosignature(store, witness.name, cp),
                    key=cp.origin.encode(),
                )
                for cp in cosigned
            ]
            for f in futures:
                await f
        finally:
            if owned:
                await producer.stop()
    return WitnessRound(tuple(verdicts), tuple(cosigned))


def keys_and_validity(
    keyring: Any,
) -> tuple[Callable[[str], Sequence[ed25519.Ed25519PublicKey]], KeyValidity]:
    """Resolvers over a node's keyring (`broker.trust.keyring.Keyring`): a name
    `<participant>/<side>` resolves to that participant's registered signing keys."""
    from broker.trust.material import SIGNING_ALGORITHM, load_ed25519_public

    def resolve(name: str) -> list[ed25519.Ed25519PublicKey]:
        # Read each time: the keyring is replaced in place when a newer snapshot arrives.
        participant = name.partition("/")[0]
        if participant not in keyring:
            return []
        return [
            load_ed25519_public(k.public_key)
            for k in keyring.entry(participant).keys
            if k.purpose == "signing" and k.algorithm == SIGNING_ALGORITHM
        ]

    def valid(name: str, key_id: str, at: datetime) -> None:
        keyring.signing_key(name.partition("/")[0], key_id, at)

    return resolve, valid
