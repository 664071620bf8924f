"""Verifying the audit log as it streams by: memory bounded, time linear, resumable.

Per enforcement point, in two passes over what Kafka holds (and what this node
and the witnesses remember outside Kafka):

1. The checkpoints, in topic order. Each must name this enforcement point as
   its origin, carry a signature by one of its accepted keys that was valid at
   the checkpoint's time, and extend the one before it: its record names the
   previous checkpoint's size and carries an RFC 6962 consistency proof from
   it. Then the cosignatures: a witness's (`<participant>/witness`, another
   participant) over a checkpoint the enforcement point signed.
2. The records, in topic order. Each claims its leaf index and the leaf hash
   of its predecessor, so a verifier can say *which* record is wrong: a gap in
   the indices is a deleted record, an index met too early a reordering, an
   index claimed twice an insertion (the copy the next record does not link
   to), a link that does not match the previous record's hash a modification
   of that record. The tree is recomputed on the way (a compact frontier), and
   its root compared at a few sizes only: the latest checkpoint's (the chain
   of consistency proofs ties every earlier checkpoint to it), each witness's
   latest cosigned checkpoint, and every checkpoint this node has seen outside
   Kafka (its own enforcement points' state, its witness's state, its last
   verification, files an inquiry was given). A log shorter than one of those
   is `truncated`, one whose root differs `forked`.

Leaf packs (many leaves in one Kafka record, `_pack`) come as their leaves
(`_topic`), so the checks above are per leaf, as they were when each leaf was
a record. A pack adds its own: it must decode whole and be keyed to its own
enforcement point (else `malformed`), and each leaf must hold the index the
pack gives it (first index + position), else the pack is `malformed`. A pack
re-sent after a crash, grouped otherwise than the one Kafka kept, is a re-sent
run like any other.

Memory per enforcement point is a few hashes (the frontier: one per set bit of
the size) plus the sizes to check, whatever the log's length; time is one
pass over each topic. A verification that succeeds leaves where it stood per
enforcement point (`VerifyState`), so the next one reads only what is new.
Records after the last checkpoint are counted as unsealed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._codec import decode_checkpoint, decode_cosignature, decode_leaf, parse_leaf
from broker.audit.checkpoint import WITNESS_SIDE, SignedCheckpoint, ed25519_key_id
from broker.audit.keys import AuditKeys
from broker.audit.topic import TopicRecord
from broker.errors import AuditVerificationError, JcuError, Rejected
from broker.merkle import MerkleTree, leaf_hash, verify_consistency
from broker.schemas import SchemaStore

FailureKind = Literal[
    "malformed",  # a record or checkpoint that does not decode, or sits under the wrong key
    "modified",  # a record's hash is not what its successor links to
    "missing",  # a record index never appears (deleted), or a checkpoint covers absent records
    "reordered",  # a record appears before one with a smaller index
    "inserted",  # an extra record claims an index another record holds
    "bad-signature",  # a checkpoint not signed by an accepted key of its enforcement point
    "key-not-valid",  # its key was revoked, retired or expired at the checkpoint's time
    "root-mismatch",  # the latest checkpoint's root is not the records' root at its size
    "inconsistent",  # a checkpoint that does not extend the previous one (rewrites history)
    "truncated",  # the log is shorter than a checkpoint this node or a witness has seen
    "forked",  # the log differs from a checkpoint this node or a witness has seen
    "unwitnessed",  # the policy asks for witnesses the latest checkpoint does not have
]

#: ep id (or witness name) -> the Ed25519 public keys registered for its participant.
KeyResolver = Callable[[str], Sequence[ed25519.Ed25519PublicKey]]
#: (ep id, broker key id, time) -> None, or raise a Rejected (RevokedKey, ExpiredKey, ...) if
#: that key of the participant may not sign at that time (`Keyring.signing_key` does this).
KeyValidity = Callable[[str, str, datetime], None]


@dataclass(frozen=True, slots=True)
class Failure:
    """The first thing wrong in one enforcement point's log."""

    kind: FailureKind
    message: str
    #: the record's leaf index, when a record is named
    record_index: int | None = None
    #: the checkpoint's position among this enforcement point's checkpoints (0-based)
    checkpoint_index: int | None = None
    #: Kafka offset of the record or checkpoint named
    offset: int | None = None
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class Seen:
    """A checkpoint someone saw outside the topic: the log must hold it, root and all."""

    origin: str
    tree_size: int
    root_hash: bytes
    #: who saw it, in words: "this node's state of cert-eu/publish", "witness enisa/witness"
    source: str


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """The largest checkpoint of one enforcement point one witness cosigned."""

    witness: str
    tree_size: int
    time: datetime


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """What a verification asks beyond integrity (composable: `with_witnesses`)."""

    #: Distinct witnesses (other participants) the latest checkpoint must be cosigned by.
    min_witnesses: int = 0

    def with_witnesses(self, n: int) -> VerificationPolicy:
        return VerificationPolicy(min_witnesses=n)


@dataclass(frozen=True, slots=True)
class EnforcementPointReport:
    enforcement_point: str
    #: leaves of the tree (a leaf holds one message's records)
    records: int
    checkpoints: int
    #: tree size of the last checkpoint that verified
    sealed: int
    failure: Failure | None = None
    #: records (decisions and outcomes) in those leaves, as the leaves say
    decisions: int = 0
    witnesses: tuple[WitnessStatus, ...] = ()
    #: sizes of checkpoints seen outside the topic that the log was checked against
    seen: tuple[Seen, ...] = ()
    #: the tree size verification resumed from (0: from the start)
    resumed_from: int = 0
    latest: SignedCheckpoint | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def unsealed(self) -> int:
        return max(self.records - self.sealed, 0)

    @property
    def witnessed(self) -> int:
        """The largest size a witness cosigned (0: none)."""
        return max((w.tree_size for w in self.witnesses), default=0)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where one enforcement point's log verified, at its latest checkpoint: enough to go on."""

    tree_size: int
    frontier: tuple[bytes, ...]
    last_leaf_hash: bytes
    partition: int
    #: the offset after the record with index tree_size - 1
    next_offset: int
    checkpoint_note: str
    checkpoint_partition: int
    checkpoint_offset: int
    checkpoints: int
    decisions: int


@dataclass(frozen=True, slots=True)
class VerifyState:
    """What a verification leaves for the next one of the same topics."""

    points: Mapping[str, ResumePoint] = field(default_factory=dict)
    #: per partition of the decisions topic: where the last verification stopped
    ends: Mapping[int, int] = field(default_factory=dict)
    #: enforcement points seen without a resume point: where their records start
    starts: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerificationReport:
    reports: tuple[EnforcementPointReport, ...] = ()
    #: what the next verification can resume from
    state: VerifyState = field(default_factory=VerifyState, repr=False)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def raise_for_failure(self) -> None:
        """Raise AuditVerificationError naming the first failure (first failing EP)."""
        for r in self.reports:
            if r.failure is not None:
                raise AuditVerificationError(f"{r.enforcement_point}: {r.failure.message}")

    def report(self, enforcement_point: str) -> EnforcementPointReport | None:
        return next((r for r in self.reports if r.enforcement_point == enforcement_point), None)


def _participant(name: str) -> str:
    return name.partition("/")[0]


@dataclass
class _Target:
    size: int
    root: bytes
    #: "checkpoint" (the log's latest), or a Seen's source
    what: str
    checkpoint_index: int | None = None
    offset: int | None = None


@dataclass
class _Claim:
    """A leaf held back to tell a genuine record from an inserted one."""

    leaf: bytes
    offset: int
    data: bytes


@dataclass
class _Point:
    """One enforcement point's verification in progress."""

    ep: str
    keys: Sequence[ed25519.Ed25519PublicKey]
    tree: MerkleTree = field(default_factory=MerkleTree)
    last_leaf: bytes = b""
    last: _Claim | None = None
    failure: Failure | None = None
    records: int = 0
    decisions: int = 0
    checkpoints: int = 0
    partition: int | None = None
    first_offset: int | None = None
    # the checkpoint chain (pass 1)
    latest: SignedCheckpoint | None = None
    latest_index: int = -1
    latest_position: tuple[int, int] = (0, -1)
    witnesses: dict[str, tuple[int, bytes, datetime]] = field(default_factory=dict)
    #: the cosigned notes of the witnesses' latest sizes (what a proof bundle carries)
    notes: dict[int, SignedCheckpoint] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    # the records (pass 2)
    targets: list[_Target] = field(default_factory=list)
    sealed: int = 0
    resume: ResumePoint | None = None
    resumed_from: int = 0
    anchor: tuple[int, bytes] | None = None  # (offset, leaf hash) a resumed log must still hold
    captured: ResumePoint | None = None
    # lookahead after a suspicious index
    missing: int | None = None
    displaced: tuple[int, int] | None = None  # (index, offset) of the record in its place
    rival: _Claim | None = None
    rival_index: int = -1
    #: a run of re-sent records in progress: (next index, last leaf hash, first offset)
    replay: tuple[int, bytes, int] | None = None


class Verifier:
    """Feed it checkpoints, cosignatures, seen checkpoints, then records; `finish()`.

    `keys(ep)` gives the accepted public keys of an enforcement point's (or a
    witness's) participant; `key_validity(ep, key_id, time)` raises if that key
    could not sign at that time. `audit_keys`, if given, opens the leaves it can
    to name the decision of a record at fault. `resume` continues a verification
    that succeeded before (see `VerifyState`).
    """

    def __init__(
        self,
        store: SchemaStore,
        keys: KeyResolver,
        key_validity: KeyValidity | None = None,
        *,
        policy: VerificationPolicy | None = None,
        audit_keys: AuditKeys | None = None,
        resume: VerifyState | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._validity = key_validity
        self._policy = policy or VerificationPolicy()
        self._audit_keys = audit_keys
        self._resume = resume or VerifyState()
        self._points: dict[str, _Point] = {}
        self._records_started = False
        self._ends: dict[int, int] = dict(self._resume.ends)
        for ep, point in self._resume.points.items():
            self._restore(ep, point)

    # -- set-up ---------------------------------------------------------------------

    def _point(self, ep: str) -> _Point:
        p = self._points.get(ep)
        if p is None:
            p = self._points[ep] = _Point(ep, tuple(self._keys(ep)))
        return p

    def _restore(self, ep: str, r: ResumePoint) -> None:
        p = self._point(ep)
        try:
            p.latest = SignedCheckpoint.parse(r.checkpoint_note)
        except JcuError:
            return  # a damaged state: verify this one from the start
        p.tree = MerkleTree.restore(r.tree_size, r.frontier)
        p.last_leaf = r.last_leaf_hash
        p.partition = r.partition
        p.records = p.sealed = p.resumed_from = r.tree_size
        p.decisions = r.decisions
        p.checkpoints = r.checkpoints
        p.latest_index = r.checkpoints - 1
        p.latest_position = (r.checkpoint_partition, r.checkpoint_offset)
        p.resume = r
        p.captured = r
        if r.tree_size:
            p.anchor = (r.next_offset - 1, r.last_leaf_hash)

    def record_start(self) -> dict[int, int] | None:
        """Per partition of the decisions topic, where pass 2 can start (None: everywhere
        from the beginning)."""
        if not self._resume.ends:
            return None
        out = dict(self._resume.ends)
        for part, offset in self._resume.starts.values():
            out[part] = min(out.get(part, offset), offset)
        for p in self._points.values():
            if p.resume is not None:
                first = p.resume.next_offset - (1 if p.resume.tree_size else 0)
                out[p.resume.partition] = min(out.get(p.resume.partition, first), first)
        return out

    # -- pass 1: checkpoints, cosignatures, what others saw ---------------------------

    def checkpoint(self, raw: TopicRecord) -> None:
        p = self._point(raw.key)
        if p.resume is not None and (raw.partition, raw.offset) <= p.latest_position:
            return  # verified last time
        k = p.checkpoints
        p.checkpoints += 1
        if p.failure is not None:
            return
        try:
            record = decode_checkpoint(self._store, raw.value)
        except JcuError as exc:
            self._fail(
                p,
                "malformed",
                f"checkpoint {k} (offset {raw.offset}): {exc}",
                checkpoint_index=k,
                offset=raw.offset,
            )
            return
        cp = record.signed
        where = f"checkpoint {k} (size {cp.tree_size}, offset {raw.offset})"
        if cp.origin != p.ep:
            self._fail(
                p,
                "malformed",
                f"{where} names origin {cp.origin!r} but is keyed {p.ep!r}",
                checkpoint_index=k,
                offset=raw.offset,
            )
            return
        public = cp.log_key(p.keys)
        if public is None:
            self._fail(
                p,
                "bad-signature",
                f"{where}: the signature does not verify under any accepted key of {p.ep}",
                checkpoint_index=k,
                offset=raw.offset,
            )
            return
        if self._validity is not None:
            try:
                self._validity(p.ep, ed25519_key_id(public), cp.time)
            except Rejected as exc:
                self._fail(
                    p, "key-not-valid", f"{where}: {exc}", checkpoint_index=k, offset=raw.offset
                )
                return
        previous = p.latest
        previous_size = previous.tree_size if previous is not None else 0
        consistent = record.previous_size == previous_size and (
            verify_consistency(
                previous.tree_size,
                cp.tree_size,
                previous.root_hash,
                cp.root_hash,
                record.consistency,
            )
            if previous is not None
            else not record.consistency
        )
        if not consistent:
            before = (
                f"checkpoint {p.latest_index} (size {previous_size})"
                if previous is not None
                else "the start of the log"
            )
            self._fail(
                p,
                "inconsistent",
                f"{where} is not consistent with {before}: it rewrites history or shrinks the tree",
                checkpoint_index=k,
                offset=raw.offset,
            )
            return
        p.latest, p.latest_index = cp, k
        p.latest_position = (raw.partition, raw.offset)

    def cosignature(self, raw: TopicRecord) -> None:
        """A witness's cosignature; one that does not verify is no evidence and is skipped."""
        try:
            name, cp = decode_cosignature(self._store, raw.value)
        except JcuError:
            return
        self.cosigned(cp, names=(name,))

    def cosigned(self, cp: SignedCheckpoint, names: Iterable[str] | None = None) -> int:
        """Take the verified cosignatures of `cp` (a signed note with witness lines, from the
        cosignatures topic or a file an inquiry was given); returns how many verified."""
        p = self._point(cp.origin)
        log_key = cp.log_key(p.keys)
        if log_key is None:
            return 0
        taken = 0
        for name in names if names is not None else cp.witness_names():
            if not name.endswith(f"/{WITNESS_SIDE}") or _participant(name) == _participant(
                cp.origin
            ):
                continue  # a participant does not witness its own logs
            found = cp.cosignature_by(name, self._keys(name))
            if found is None:
                continue
            cosig, public = found
            if self._validity is not None:
                try:
                    self._validity(name, ed25519_key_id(public), cosig.time)
                except Rejected:
                    continue
            held = p.witnesses.get(name)
            if held is None or cp.tree_size > held[0]:
                p.witnesses[name] = (cp.tree_size, cp.root_hash, cosig.time)
            if p.witnesses[name][:2] == (cp.tree_size, cp.root_hash):
                note = p.notes.get(cp.tree_size)
                if note is None or note.root_hash != cp.root_hash:
                    note = SignedCheckpoint(cp.checkpoint, ())
                p.notes[cp.tree_size] = note.with_signatures(cp.signatures)
            taken += 1
        wanted = {size for size, _, _ in p.witnesses.values()}
        for size in [s for s in p.notes if s not in wanted]:
            del p.notes[size]
        return taken

    def candidates(self, ep: str) -> list[SignedCheckpoint]:
        """The checkpoints of `ep` a proof can be made against once the records verified:
        its latest, and each witness's latest cosigned one (with every cosignature)."""
        p = self._points.get(ep)
        if p is None:
            return []
        out = dict(p.notes)
        if p.latest is not None:
            held = out.get(p.latest.tree_size)
            if held is None or held.root_hash != p.latest.root_hash:
                out[p.latest.tree_size] = p.latest
            else:
                out[p.latest.tree_size] = held.with_signatures(p.latest.signatures)
        return [out[size] for size in sorted(out)]

    def seen(self, seen: Seen) -> None:
        """A checkpoint seen outside the topic (this node's own, its witness's, a file's)."""
        self._point(seen.origin).seen.append(seen)

    # -- pass 2: records --------------------------------------------------------------

    def _start_records(self) -> None:
        self._records_started = True
        for p in self._points.values():
            targets: dict[int, _Target] = {}
            if p.latest is not None and p.failure is None and p.latest.tree_size > p.resumed_from:
                targets[p.latest.tree_size] = _Target(
                    p.latest.tree_size,
                    p.latest.root_hash,
                    "checkpoint",
                    p.latest_index,
                    p.latest_position[1],
                )
            others = [
                Seen(p.ep, size, root, f"witness {name}")
                for name, (size, root, _) in sorted(p.witnesses.items())
            ] + p.seen
            for s in others:
                if s.tree_size < p.resumed_from:
                    continue  # below what was verified last time: a full verification checks it
                if s.tree_size == p.resumed_from:
                    if p.latest is not None and s.root_hash != p.latest.root_hash:
                        self._fail(
                            p,
                            "forked",
                            f"{s.source} saw its tree at size {s.tree_size} with another root "
                            "than the one verified: the log forked",
                        )
                    continue
                held = targets.get(s.tree_size)
                if held is None or (held.what == "checkpoint" and held.root == s.root_hash):
                    if held is None:
                        targets[s.tree_size] = _Target(s.tree_size, s.root_hash, s.source)
                    continue
                if held.root != s.root_hash:
                    self._fail(
                        p,
                        "forked",
                        f"{s.source} saw its tree at size {s.tree_size} with another root "
                        f"than {held.what} did: two histories",
                    )
            p.targets = sorted(targets.values(), key=lambda t: t.size, reverse=True)

    def record(self, raw: TopicRecord) -> None:
        if not self._records_started:
            self._start_records()
        end = self._ends.get(raw.partition, 0)
        if raw.offset + 1 > end:
            self._ends[raw.partition] = raw.offset + 1
        p = self._point(raw.key)
        if p.partition is None:
            p.partition = raw.partition
        if p.first_offset is None:
            p.first_offset = raw.offset
        if p.anchor is not None:
            offset, anchor_leaf = p.anchor
            if raw.offset < offset:
                return
            if raw.offset == offset:
                if raw.claimed_index is not None and raw.claimed_index < p.resumed_from - 1:
                    return  # a leaf of the anchor's pack before it
                p.anchor = None
                if leaf_hash(raw.value) != anchor_leaf:  # (a damaged pack's bytes never match)
                    self._fail(
                        p,
                        "forked",
                        f"the record at offset {raw.offset} is not record {p.resumed_from - 1} "
                        "this node verified there: the topic was rewritten",
                        record_index=p.resumed_from - 1,
                        offset=raw.offset,
                    )
                return
            self._anchor_lost(p)
        if p.failure is not None and p.missing is None and p.rival is None:
            return
        if raw.problem is not None:
            if p.failure is None:
                self._fail(
                    p,
                    "malformed",
                    f"record at offset {raw.offset}: {raw.problem}",
                    offset=raw.offset,
                )
            return
        try:
            clear = parse_leaf(self._store, raw.value)
        except JcuError as exc:
            if p.failure is None:
                self._fail(
                    p, "malformed", f"record at offset {raw.offset}: {exc}", offset=raw.offset
                )
            return
        if clear.enforcement_point != p.ep:
            if p.failure is None:
                self._fail(
                    p,
                    "malformed",
                    f"record at offset {raw.offset} names enforcement point "
                    f"{clear.enforcement_point!r} but is keyed {p.ep!r}",
                    record_index=clear.index,
                    offset=raw.offset,
                    decision_id=self._decision_id(raw.value),
                )
            return
        if (
            p.failure is None
            and p.missing is None
            and p.rival is None
            and self._resent(p, clear.index, clear.previous_leaf_hash, raw)
        ):
            return
        p.records += 1
        p.decisions += clear.count
        if p.missing is not None:
            if clear.index == p.missing and p.displaced is not None:
                index, offset = p.displaced
                p.failure = Failure(
                    "reordered",
                    f"record {p.missing} is out of order: record {index} (offset {offset}) "
                    "comes before it",
                    record_index=p.missing,
                    offset=offset,
                    decision_id=p.failure.decision_id if p.failure else None,
                )
                p.missing = None
            return
        if p.rival is not None:
            self._settle_rival(p, clear.index, clear.previous_leaf_hash)
            return
        if p.failure is not None:
            return
        expected = p.tree.size
        leaf = leaf_hash(raw.value)
        if clear.index == expected:
            if clear.previous_leaf_hash != p.last_leaf:
                self._modified(p, expected, raw.offset)
                return
            if raw.claimed_index is not None and raw.claimed_index != clear.index:
                self._fail(
                    p,
                    "malformed",
                    f"the leaf pack at offset {raw.offset} gives record {clear.index} the index "
                    f"{raw.claimed_index}: its first index or its order of leaves was altered",
                    record_index=clear.index,
                    offset=raw.offset,
                    decision_id=self._decision_id(raw.value),
                )
                return
            p.tree.append(leaf)
            p.last_leaf = leaf
            p.last = _Claim(leaf, raw.offset, raw.value)
            self._reached(p, raw)
            return
        if clear.index > expected:
            p.missing = expected
            p.displaced = (clear.index, raw.offset)
            self._fail(
                p,
                "missing",
                f"record {expected} is missing: the record after {expected - 1} "
                f"(offset {raw.offset}) has index {clear.index}",
                record_index=expected,
                offset=raw.offset,
                decision_id=self._decision_id(raw.value),
            )
            return
        if clear.index == expected - 1 and p.last is not None:
            p.rival = _Claim(leaf, raw.offset, raw.value)
            p.rival_index = clear.index
            p.failure = Failure("inserted", "pending", record_index=clear.index)
            return
        self._fail(
            p,
            "inserted",
            f"record at offset {raw.offset} claims index {clear.index}, which an earlier "
            "record holds",
            record_index=clear.index,
            offset=raw.offset,
            decision_id=self._decision_id(raw.value),
        )

    def _resent(self, p: _Point, index: int, link: bytes, raw: TopicRecord) -> bool:
        """Whether this record is part of a re-sent copy (and so not counted).

        A restarted enforcement point re-sends, byte for byte, the leaves after
        its last checkpoint (it may not read the topic to learn which Kafka kept):
        a run of records claiming indices the tree already has, each linking to
        the one before. Once the run reaches the tree's last leaf, that leaf must
        be the very leaf the tree holds: its hash commits to its link, and so to
        every leaf of the run before it. Anything else claiming a held index (a
        run that breaks off, or ends on another leaf) was inserted.
        """
        expected = p.tree.size
        leaf = leaf_hash(raw.value)
        if p.replay is not None:
            next_index, last, offset = p.replay
            if index != next_index or link != last:
                self._replay_broken(p)
                return False
            p.replay = (next_index + 1, leaf, offset)
        elif index < expected - 1:
            p.replay = (index + 1, leaf, raw.offset)
        else:
            # one leaf re-sent: the very leaf the tree ends on (else, not a copy)
            return index == expected - 1 and leaf == p.last_leaf
        if p.replay[0] == expected:
            if leaf != p.last_leaf:
                self._replay_broken(p)
            p.replay = None
        return True

    def _replay_broken(self, p: _Point) -> None:
        assert p.replay is not None  # noqa: S101 - narrows for mypy: called on a replay
        offset = p.replay[2]
        p.replay = None
        self._fail(
            p,
            "inserted",
            f"records from offset {offset} claim indices the log already holds, but are not "
            "a copy of its records: they were inserted",
            offset=offset,
        )

    def _reached(self, p: _Point, raw: TopicRecord) -> None:
        """The tree grew by one: check the roots due at this size."""
        size = p.tree.size
        while p.targets and p.targets[-1].size == size:
            target = p.targets.pop()
            if p.tree.root() != target.root:
                if target.what == "checkpoint":
                    self._fail(
                        p,
                        "root-mismatch",
                        f"checkpoint {target.checkpoint_index} (size {size}, offset "
                        f"{target.offset}): its root is not the root of records 0..{size - 1}: "
                        "a record was changed after it was signed",
                        checkpoint_index=target.checkpoint_index,
                        offset=target.offset,
                    )
                else:
                    self._fail(
                        p,
                        "forked",
                        f"{target.what} saw its tree at size {size} with another root than "
                        f"the records on the topic have: the log forked or was rewritten",
                        record_index=size - 1,
                    )
                return
            if target.what == "checkpoint":
                assert p.latest is not None and raw.partition is not None  # noqa: S101 - narrows for mypy: set for a checkpoint
                p.sealed = size
                p.captured = ResumePoint(
                    tree_size=size,
                    frontier=p.tree.frontier,
                    last_leaf_hash=p.last_leaf,
                    partition=raw.partition,
                    next_offset=raw.offset + 1,
                    checkpoint_note=p.latest.note(),
                    checkpoint_partition=p.latest_position[0],
                    checkpoint_offset=p.latest_position[1],
                    checkpoints=p.latest_index + 1,
                    decisions=p.decisions,
                )

    def _modified(self, p: _Point, expected: int, offset: int) -> None:
        if expected == 0 or p.last is None:
            self._fail(
                p,
                "modified",
                f"record {expected} (offset {offset}) links to a predecessor it cannot have",
                record_index=expected,
                offset=offset,
            )
            return
        before = p.last
        self._fail(
            p,
            "modified",
            f"record {expected - 1} (offset {before.offset}) was modified: its hash is not "
            f"the one record {expected} links to",
            record_index=expected - 1,
            offset=before.offset,
            decision_id=self._decision_id(before.data),
        )

    def _settle_rival(self, p: _Point, index: int, link: bytes | None) -> None:
        """Two records claim one index: the one the next record does not link to was
        inserted (the later one, if the next record links to neither)."""
        rival, held = p.rival, p.last
        assert rival is not None and held is not None  # noqa: S101 - narrows for mypy: called on a rival
        p.rival = None
        inserted = held if link == rival.leaf and index == p.rival_index + 1 else rival
        offsets = ", ".join(str(c.offset) for c in sorted((held, rival), key=lambda c: c.offset))
        p.failure = Failure(
            "inserted",
            f"record at offset {inserted.offset} was inserted: it claims index "
            f"{p.rival_index}, as do the records at offsets {offsets}, and record "
            f"{p.rival_index + 1} does not link to it",
            record_index=p.rival_index,
            offset=inserted.offset,
            decision_id=self._decision_id(inserted.data),
        )

    def _anchor_lost(self, p: _Point) -> None:
        offset, _ = p.anchor or (None, b"")
        p.anchor = None
        self._fail(
            p,
            "truncated",
            f"the topic no longer holds record {p.resumed_from - 1} at offset {offset}, which "
            "this node verified there: the topic was deleted, truncated or rewritten",
            record_index=p.resumed_from - 1,
            offset=offset,
        )

    def _decision_id(self, data: bytes) -> str | None:
        if self._audit_keys is None:
            return None
        try:
            return decode_leaf(self._store, data, keys=self._audit_keys).first_decision_id
        except JcuError:
            return None

    def _fail(self, p: _Point, kind: FailureKind, message: str, **named: object) -> None:
        if p.failure is None or p.failure.message == "pending":
            p.failure = Failure(kind, message, **named)  # type: ignore[arg-type]

    # -- the end --------------------------------------------------------------------

    def finish(self) -> VerificationReport:
        if not self._records_started:
            self._start_records()
        reports = []
        points: dict[str, ResumePoint] = {}
        starts: dict[str, tuple[int, int]] = {}
        for ep in sorted(self._points):
            p = self._points[ep]
            if p.anchor is not None:
                self._anchor_lost(p)
            if p.rival is not None:
                self._settle_rival(p, -1, None)
            if p.replay is not None:
                self._replay_broken(p)
            if p.missing is not None:
                p.missing = None  # it never came: missing, as named
            for target in p.targets:  # sizes the records never reached
                if target.what == "checkpoint":
                    self._fail(
                        p,
                        "missing",
                        f"checkpoint {target.checkpoint_index} (size {target.size}, offset "
                        f"{target.offset}) covers {target.size} records but the topic holds "
                        f"{p.tree.size}: records {p.tree.size}..{target.size - 1} are missing",
                        record_index=p.tree.size,
                        checkpoint_index=target.checkpoint_index,
                        offset=target.offset,
                    )
                else:
                    self._fail(
                        p,
                        "truncated",
                        f"{target.what} saw {target.size} records, but the log holds "
                        f"{p.tree.size}: it was truncated or deleted",
                        record_index=p.tree.size,
                    )
                break
            witnesses = tuple(
                WitnessStatus(name, size, time)
                for name, (size, _, time) in sorted(p.witnesses.items())
            )
            self._apply_policy(p, witnesses)
            reports.append(
                EnforcementPointReport(
                    ep,
                    p.records,
                    p.checkpoints,
                    p.sealed,
                    p.failure,
                    decisions=p.decisions,
                    witnesses=witnesses,
                    seen=tuple(p.seen),
                    resumed_from=p.resumed_from,
                    latest=p.latest,
                )
            )
            if p.failure is None and p.captured is not None:
                points[ep] = p.captured
            elif p.resume is not None:
                points[ep] = p.resume
            elif p.first_offset is not None and p.partition is not None:
                starts[ep] = (p.partition, p.first_offset)
        state = VerifyState(points, dict(self._ends), starts)
        return VerificationReport(tuple(reports), state)

    def _apply_policy(self, p: _Point, witnesses: tuple[WitnessStatus, ...]) -> None:
        need = self._policy.min_witnesses
        if need <= 0 or p.failure is not None or p.latest is None:
            return
        have = sum(1 for w in witnesses if w.tree_size >= p.latest.tree_size)
        if have < need:
            self._fail(
                p,
                "unwitnessed",
                f"its latest checkpoint (size {p.latest.tree_size}) is cosigned by {have} "
                f"witness(es), the policy asks for {need}: run `jcu audit witness` on other "
                "participants' nodes",
                checkpoint_index=p.latest_index,
            )


def verify(
    store: SchemaStore,
    decisions: Iterable[TopicRecord],
    checkpoints: Iterable[TopicRecord],
    keys: KeyResolver,
    key_validity: KeyValidity | None = None,
    *,
    cosignatures: Iterable[TopicRecord] = (),
    seen: Iterable[Seen] = (),
    policy: VerificationPolicy | None = None,
    audit_keys: AuditKeys | None = None,
    resume: VerifyState | None = None,
) -> VerificationReport:
    """Verify what was read from the audit topics (any iterables: they are read once, in
    order, and nothing is kept per record)."""
    v = Verifier(store, keys, key_validity, policy=policy, audit_keys=audit_keys, resume=resume)
    for c in checkpoints:
        v.checkpoint(c)
    for c in cosignatures:
        v.cosignature(c)
    for s in seen:
        v.seen(s)
    for r in decisions:
        v.record(r)
    return v.finish()
