"""Verifying the audit log: recompute every tree, check every checkpoint, name the first bad item.

Per enforcement point, in two passes:

1. The records, in topic order. Each claims its leaf index and the leaf hash
   of its predecessor, so a verifier can say *which* record is wrong, not
   only that a checkpoint no longer matches: a gap in the indices is a
   deleted record, an index met too early is a reordering, an index claimed
   twice is an insertion (the copy the next record does not link to), and a
   link that does not match the previous record's hash is a modification of
   that previous record.
2. The checkpoints, in topic order. Each must name this enforcement point as
   its origin, carry a signature by one of its accepted keys, cover no more
   records than exist, and be consistent with the one before it (an RFC 6962
   consistency proof computed from the records); the first must match the
   records' root. Together these tie every checkpoint's root to the records.

Records after the last checkpoint are counted as unsealed: they chain to
sealed records but no signature covers them yet (the enforcement point seals
them at its next checkpoint, also after a restart).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._codec import decode_checkpoint, decode_leaf
from broker.audit._topic import TopicRecord
from broker.audit.checkpoint import Checkpoint
from broker.audit.record import LoggedLeaf, LoggedRecord
from broker.errors import AuditVerificationError, JcuError, Rejected
from broker.merkle import ProofTree, verify_consistency
from broker.schemas import SchemaStore

FailureKind = Literal[
    "malformed",  # a record or checkpoint that does not decode, or sits under the wrong key
    "modified",  # a record's hash is not what its successor links to
    "missing",  # a record index never appears (deleted), or a checkpoint covers absent records
    "reordered",  # a record appears before one with a smaller index
    "inserted",  # an extra record claims an index another record holds
    "bad-signature",  # a checkpoint not signed by an accepted key of its enforcement point
    "key-not-valid",  # its key was revoked, retired or expired at the checkpoint's time
    "root-mismatch",  # the first checkpoint's root is not the records' root
    "inconsistent",  # a checkpoint that does not extend the previous one (rewrites history)
]

#: ep id -> the Ed25519 public keys accepted for its checkpoints.
KeyResolver = Callable[[str], Sequence[ed25519.Ed25519PublicKey]]
#: (ep id, checkpoint) -> None, or raise a Rejected (RevokedKey, ExpiredKey, ...) if the
#: checkpoint's key may not sign at the checkpoint's time (`Keyring.signing_key` does this).
KeyValidity = Callable[[str, Checkpoint], None]


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
class EnforcementPointReport:
    enforcement_point: str
    #: leaves of the tree (a leaf holds one message's decisions, or one decision)
    records: int
    checkpoints: int
    #: tree size of the last checkpoint that verified
    sealed: int
    failure: Failure | None = None
    #: decisions in those leaves
    decisions: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def unsealed(self) -> int:
        return max(self.records - self.sealed, 0)


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """One enforcement point's decisions and checkpoints after verification (for proofs)."""

    enforcement_point: str
    #: every decision, in tree order (those of one leaf share its index)
    records: tuple[LoggedRecord, ...]
    checkpoints: tuple[Checkpoint, ...]
    tree: ProofTree
    report: EnforcementPointReport


@dataclass(frozen=True, slots=True)
class VerificationReport:
    logs: tuple[VerifiedLog, ...] = field(default=())

    @property
    def reports(self) -> tuple[EnforcementPointReport, ...]:
        return tuple(log.report for log in self.logs)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def raise_for_failure(self) -> None:
        """Raise AuditVerificationError naming the first failure (first failing EP)."""
        for r in self.reports:
            if r.failure is not None:
                raise AuditVerificationError(f"{r.enforcement_point}: {r.failure.message}")

    def log(self, enforcement_point: str) -> VerifiedLog | None:
        return next((g for g in self.logs if g.enforcement_point == enforcement_point), None)


def verify(
    store: SchemaStore,
    decisions: Iterable[TopicRecord],
    checkpoints: Iterable[TopicRecord],
    keys: KeyResolver,
    key_validity: KeyValidity | None = None,
) -> VerificationReport:
    """Verify everything read from `jcu.audit.decisions` and `jcu.audit.checkpoints`."""
    records_by_ep: dict[str, list[TopicRecord]] = defaultdict(list)
    checkpoints_by_ep: dict[str, list[TopicRecord]] = defaultdict(list)
    for r in decisions:
        records_by_ep[r.key].append(r)
    for c in checkpoints:
        checkpoints_by_ep[c.key].append(c)
    eps = sorted(set(records_by_ep) | set(checkpoints_by_ep))
    return VerificationReport(
        tuple(
            verify_enforcement_point(
                store,
                ep,
                records_by_ep.get(ep, []),
                checkpoints_by_ep.get(ep, []),
                keys(ep),
                key_validity,
            )
            for ep in eps
        )
    )


def verify_enforcement_point(
    store: SchemaStore,
    enforcement_point: str,
    decisions: Sequence[TopicRecord],
    checkpoints: Sequence[TopicRecord],
    accepted_keys: Sequence[ed25519.Ed25519PublicKey],
    key_validity: KeyValidity | None = None,
) -> VerifiedLog:
    ep = enforcement_point
    records: list[LoggedLeaf] = []
    failure: Failure | None = None
    for raw in decisions:
        try:
            rec = decode_leaf(store, raw.value, partition=raw.partition, offset=raw.offset)
        except JcuError as exc:
            failure = Failure(
                "malformed", f"record at offset {raw.offset}: {exc}", offset=raw.offset
            )
            break
        if rec.enforcement_point != ep:
            failure = Failure(
                "malformed",
                f"record at offset {raw.offset} names enforcement point "
                f"{rec.enforcement_point!r} but is keyed {ep!r}",
                record_index=rec.index,
                offset=raw.offset,
                decision_id=rec.record.decision_id,
            )
            break
        records.append(rec)
    if failure is None:
        failure = _check_chain(records)
    tree = ProofTree(r.leaf_hash for r in records)

    cps: list[Checkpoint] = []
    sealed = 0
    if failure is None:
        previous: Checkpoint | None = None
        for k, raw in enumerate(checkpoints):
            try:
                cp = decode_checkpoint(store, raw.value)
            except JcuError as exc:
                failure = Failure(
                    "malformed",
                    f"checkpoint {k} (offset {raw.offset}): {exc}",
                    checkpoint_index=k,
                    offset=raw.offset,
                )
                break
            failure = _check_checkpoint(
                ep, k, raw.offset, cp, previous, tree, accepted_keys, key_validity
            )
            if failure is not None:
                break
            cps.append(cp)
            previous = cp
            sealed = cp.tree_size
    flat = tuple(d for leaf in records for d in leaf.decisions())
    report = EnforcementPointReport(
        ep, len(records), len(checkpoints), sealed, failure, decisions=len(flat)
    )
    return VerifiedLog(ep, flat, tuple(cps), tree, report)


def _check_chain(records: Sequence[LoggedLeaf]) -> Failure | None:
    """Indices 0, 1, 2, ... each linked to the previous leaf hash; else name the first bad one."""
    positions: dict[int, list[int]] = defaultdict(list)
    for pos, r in enumerate(records):
        positions[r.index].append(pos)
    previous_hash = b""
    for expected, r in enumerate(records):
        pos = expected  # every earlier record sat at its own index, else we returned
        if r.index != expected:
            if r.index > expected and any(p > pos for p in positions.get(expected, ())):
                return Failure(
                    "reordered",
                    f"record {expected} is out of order: record {r.index} (offset {r.offset}) "
                    f"comes before it",
                    record_index=expected,
                    offset=r.offset,
                    decision_id=r.record.decision_id,
                )
            if r.index > expected:
                return Failure(
                    "missing",
                    f"record {expected} is missing: the record after {expected - 1} "
                    f"(offset {r.offset}) has index {r.index}",
                    record_index=expected,
                    offset=r.offset,
                )
            return Failure(
                "inserted",
                f"record at offset {r.offset} claims index {r.index}, which an earlier "
                f"record holds",
                record_index=r.index,
                offset=r.offset,
                decision_id=r.record.decision_id,
            )
        claims = positions[expected]
        if len(claims) > 1:
            return _inserted(records, expected, claims, positions)
        if r.previous_leaf_hash != previous_hash:
            if expected == 0:
                return Failure(
                    "modified",
                    f"record 0 (offset {r.offset}) links to a predecessor it cannot have",
                    record_index=0,
                    offset=r.offset,
                    decision_id=r.record.decision_id,
                )
            before = records[pos - 1]
            return Failure(
                "modified",
                f"record {expected - 1} (offset {before.offset}) was modified: its hash is not "
                f"the one record {expected} links to",
                record_index=expected - 1,
                offset=before.offset,
                decision_id=before.record.decision_id,
            )
        previous_hash = r.leaf_hash
    return None


def _inserted(
    records: Sequence[LoggedLeaf],
    index: int,
    claims: Sequence[int],
    positions: dict[int, list[int]],
) -> Failure:
    """Two records claim `index`: the one the next record does not link to was inserted."""
    successors = positions.get(index + 1, [])
    link = records[successors[0]].previous_leaf_hash if successors else None
    genuine = [p for p in claims if records[p].leaf_hash == link]
    extra = [p for p in claims if p not in genuine[:1]] if genuine else list(claims[1:])
    r = records[extra[0]]
    offsets = ", ".join(str(records[p].offset) for p in claims)
    return Failure(
        "inserted",
        f"record at offset {r.offset} was inserted: it claims index {index}, as do the "
        f"records at offsets {offsets}, and record {index + 1} does not link to it",
        record_index=index,
        offset=r.offset,
        decision_id=r.record.decision_id,
    )


def _check_checkpoint(
    ep: str,
    k: int,
    offset: int,
    cp: Checkpoint,
    previous: Checkpoint | None,
    tree: ProofTree,
    accepted_keys: Sequence[ed25519.Ed25519PublicKey],
    key_validity: KeyValidity | None,
) -> Failure | None:
    where = f"checkpoint {k} (size {cp.tree_size}, offset {offset})"
    if cp.origin != ep:
        return Failure(
            "malformed",
            f"{where} names origin {cp.origin!r} but is keyed {ep!r}",
            checkpoint_index=k,
            offset=offset,
        )
    if not cp.verify(accepted_keys):
        return Failure(
            "bad-signature",
            f"{where}: the signature does not verify under any accepted key of {ep} "
            f"(key id {cp.key_id})",
            checkpoint_index=k,
            offset=offset,
        )
    if key_validity is not None:
        try:
            key_validity(ep, cp)
        except Rejected as exc:
            return Failure("key-not-valid", f"{where}: {exc}", checkpoint_index=k, offset=offset)
    if cp.tree_size > tree.size:
        return Failure(
            "missing",
            f"{where} covers {cp.tree_size} records but the topic holds {tree.size}: "
            f"records {tree.size}..{cp.tree_size - 1} are missing",
            record_index=tree.size,
            checkpoint_index=k,
            offset=offset,
        )
    if previous is None:
        if tree.root(cp.tree_size) != cp.root_hash:
            return Failure(
                "root-mismatch",
                f"{where}: its root is not the root of records 0..{cp.tree_size - 1}",
                checkpoint_index=k,
                offset=offset,
            )
        return None
    if cp.tree_size < previous.tree_size or not verify_consistency(
        previous.tree_size,
        cp.tree_size,
        previous.root_hash,
        cp.root_hash,
        tree.consistency_proof(previous.tree_size, cp.tree_size),
    ):
        return Failure(
            "inconsistent",
            f"{where} is not consistent with checkpoint {k - 1} (size {previous.tree_size}): "
            f"it rewrites history",
            checkpoint_index=k,
            offset=offset,
        )
    return None
