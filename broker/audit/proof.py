"""Proving one decision: its inclusion proof, and a bundle anyone can check offline.

`Prover` follows the records as a verification streams them and builds the
inclusion proof of one decision against a checkpoint the verification checked,
preferring the one the most witnesses cosigned, in memory that does not grow
with the log. `ProofBundle` is what `jcu audit prove --out FILE` writes: the
leaf as it sits on the topic, the key of that one leaf (so its content can be
read, and no other leaf's), the inclusion proof, the cosigned checkpoint note,
and the registry snapshot that says whose keys signed it. `check_bundle`
verifies such a file with no Kafka and no node state: only the bundle and the
registry authority's public key (given, or taken from the bundle and shown).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._codec import open_leaf, parse_leaf
from broker.audit.checkpoint import WITNESS_SIDE, SignedCheckpoint, ed25519_key_id
from broker.audit.keys import AuditKeys
from broker.audit.record import AuditRecord, LoggedRecord
from broker.audit.topic import TopicRecord
from broker.audit.verify import EnforcementPointReport
from broker.audit.witness import keys_and_validity
from broker.errors import AuditError, AuditVerificationError, JcuError, MalformedRecord, Rejected
from broker.merkle import (
    MerkleTree,
    PathBuilder,
    ProofTree,
    leaf_hash,
    root_from_inclusion_proof,
    verify_inclusion,
)
from broker.schemas import SchemaStore

BUNDLE_FORMAT = "jcu-audit-proof/v1"


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """One record, the checkpoint it is proved against, the audit path, and the outcome."""

    record: LoggedRecord
    checkpoint: SignedCheckpoint
    path: tuple[bytes, ...]
    verified: bool
    #: The key of this one leaf: discloses its content, nothing else of the log.
    leaf_key: bytes = field(repr=False, default=b"")
    #: Witnesses whose cosignature of `checkpoint` verified.
    witnesses: tuple[str, ...] = ()


@dataclass
class _Found:
    leaf: LoggedRecord
    leaf_key: bytes
    builders: list[tuple[SignedCheckpoint, PathBuilder]]


class Prover:
    """Finds `decision_id` among the leaves it can open and builds its proof as they stream.

    `candidates(ep)` gives the checkpoints a proof may be made against (the
    verifier's: `Verifier.candidates`), asked when the decision is found.
    """

    def __init__(
        self,
        store: SchemaStore,
        decision_id: str,
        keys: AuditKeys,
        candidates: Callable[[str], Sequence[SignedCheckpoint]],
    ) -> None:
        self._store = store
        self._id = decision_id
        self._keys = keys
        self._candidates = candidates
        self._trees: dict[str, MerkleTree] = {}
        self._found: _Found | None = None
        self._ep: str | None = None
        self.opened = 0

    @property
    def enforcement_point(self) -> str | None:
        """Where the decision was found (None: not yet)."""
        return self._ep

    def record(self, raw: TopicRecord) -> None:
        if self._found is not None:
            if raw.key == self._ep:
                self._follow(raw)
            return
        key = self._keys.point(raw.key)
        if key is None:
            return
        tree = self._trees.setdefault(raw.key, MerkleTree())
        try:
            clear = parse_leaf(self._store, raw.value)
        except JcuError:
            return  # the verifier names it
        if clear.enforcement_point != raw.key or clear.index != tree.size:
            return  # out of place: the verifier fails this log, and no proof comes of it
        leaf = leaf_hash(raw.value)
        try:
            records = open_leaf(self._store, clear, key.leaf_key(clear.salt))
        except JcuError:
            records = ()
        self.opened += 1
        hit = next((r for r in records if r.decision_id == self._id), None)
        if hit is not None:
            logged = LoggedRecord(
                raw.key,
                clear.index,
                clear.previous_leaf_hash,
                hit,
                raw.value,
                leaf,
                raw.partition,
                raw.offset,
            )
            builders = [
                (cp, PathBuilder(clear.index, cp.tree_size, tree.frontier))
                for cp in self._candidates(raw.key)
                if cp.tree_size > clear.index
            ]
            self._found = _Found(logged, key.leaf_key(clear.salt), builders)
            self._ep = raw.key
            self._trees.clear()
            return
        tree.append(leaf)

    def _follow(self, raw: TopicRecord) -> None:
        assert self._found is not None  # noqa: S101 - narrows for mypy: set before following
        try:
            clear = parse_leaf(self._store, raw.value)
        except JcuError:
            return
        index = clear.index
        leaf = leaf_hash(raw.value)
        for _, builder in self._found.builders:
            if not builder.done and index == builder.expects:
                builder.add(leaf)

    def result(
        self,
        report: EnforcementPointReport | None,
        witness_keys: Callable[[str], Sequence[ed25519.Ed25519PublicKey]],
    ) -> InclusionProof:
        """The proof against the best checkpoint: cosigned by the most witnesses, then the
        largest. Refused unless the log it is in verified."""
        found = self._found
        if found is None:
            raise AuditError(
                f"no decision {self._id} in the audit log (among the "
                f"{self.opened} leaves this node holds the keys to read)"
            )
        ep = found.leaf.enforcement_point
        if report is None or report.failure is not None:
            why = report.failure.message if report and report.failure else "not verified"
            raise AuditVerificationError(f"{ep}: {why}; no proof from a log that does not verify")
        complete = [(cp, b) for cp, b in found.builders if b.done]
        if not complete:
            raise AuditError(
                f"decision {self._id} (record {found.leaf.index} of {ep}) is not sealed by a "
                f"checkpoint yet; {ep} seals it at its next checkpoint"
            )
        cp, names = best_checkpoint([cp for cp, _ in complete], witness_keys)
        builder = next(b for c, b in complete if c is cp)
        path = tuple(builder.proof())
        try:
            root = root_from_inclusion_proof(
                found.leaf.leaf_hash, found.leaf.index, cp.tree_size, path
            )
        except ValueError:
            root = b""
        return InclusionProof(
            found.leaf, cp, path, root == cp.root_hash, found.leaf_key, tuple(names)
        )


def best_checkpoint(
    candidates: Sequence[SignedCheckpoint],
    witness_keys: Callable[[str], Sequence[ed25519.Ed25519PublicKey]],
) -> tuple[SignedCheckpoint, tuple[str, ...]]:
    """Of checkpoints that cover a leaf, the one to prove it against: cosigned by the most
    witnesses (other participants), then the largest; and those witnesses."""
    scored = [(tuple(_witnesses(cp, witness_keys)), cp) for cp in candidates]
    names, cp = max(scored, key=lambda t: (len(t[0]), t[1].tree_size))
    return cp, names


def proof_against(
    record: LoggedRecord,
    tree: ProofTree,
    candidates: Sequence[SignedCheckpoint],
    witness_keys: Callable[[str], Sequence[ed25519.Ed25519PublicKey]],
) -> InclusionProof:
    """The inclusion proof of `record` from a tree its reader holds whole (a console), against
    the best of `candidates` (a verified log's: `Verifier.candidates`)."""
    covering = [cp for cp in candidates if cp.tree_size > record.index]
    if not covering or tree.size < max(cp.tree_size for cp in covering):
        raise AuditError(
            f"decision {record.record.decision_id} (record {record.index} of "
            f"{record.enforcement_point}) is not sealed by a checkpoint yet"
        )
    cp, names = best_checkpoint(covering, witness_keys)
    path = tuple(tree.inclusion_proof(record.index, cp.tree_size))
    ok = verify_inclusion(record.leaf_hash, record.index, cp.tree_size, path, cp.root_hash)
    return InclusionProof(record, cp, path, ok, b"", names)


def _witnesses(
    cp: SignedCheckpoint, keys: Callable[[str], Sequence[ed25519.Ed25519PublicKey]]
) -> list[str]:
    own = cp.origin.partition("/")[0]
    return [
        name
        for name in cp.witness_names()
        if name.endswith(f"/{WITNESS_SIDE}")
        and name.partition("/")[0] != own
        and cp.cosignature_by(name, keys(name)) is not None
    ]


# -- the offline bundle ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_bundle(proof: InclusionProof, snapshot: bytes, authority_key: bytes) -> str:
    """The proof bundle as JSON text: everything `check_bundle` needs, and no secret but
    the key of this one leaf."""
    r = proof.record
    return json.dumps(
        {
            "format": BUNDLE_FORMAT,
            "decision_id": r.record.decision_id,
            "enforcement_point": r.enforcement_point,
            "leaf_index": r.index,
            "leaf": _b64(r.data),
            "leaf_key": _b64(proof.leaf_key),
            "inclusion_proof": [_b64(h) for h in proof.path],
            "checkpoint": proof.checkpoint.note(),
            "registry_snapshot": _b64(snapshot),
            "authority_key": _b64(authority_key),
        },
        indent=1,
    )


@dataclass(frozen=True, slots=True)
class BundleCheck:
    """What an offline check of a proof bundle established."""

    record: AuditRecord
    enforcement_point: str
    leaf_index: int
    checkpoint: SignedCheckpoint
    signer_key_id: str
    witnesses: tuple[tuple[str, datetime], ...]
    registry_epoch: int
    authority_key_id: str
    #: True if the authority key came from the bundle itself (no --authority-key given).
    authority_from_bundle: bool


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise MalformedRecord(f"proof bundle: {name} is missing or not a {kind.__name__}")
    return value


def _unb64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRecord(f"proof bundle: {name} is not base64") from None


def check_bundle(
    store: SchemaStore,
    text: str,
    *,
    authority_key: ed25519.Ed25519PublicKey | None = None,
    min_witnesses: int = 1,
) -> BundleCheck:
    """Verify a proof bundle offline; AuditVerificationError (or MalformedRecord) naming the
    first thing that does not hold."""
    from broker.trust.keyring import Keyring
    from broker.trust.material import load_ed25519_public
    from broker.trust.snapshot import verify_snapshot

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedRecord(f"proof bundle is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise MalformedRecord(f"not a proof bundle of format {BUNDLE_FORMAT}")
    ep = _field(data, "enforcement_point", str)
    index = _field(data, "leaf_index", int)
    decision_id = _field(data, "decision_id", str)
    leaf = _unb64(_field(data, "leaf", str), "leaf")
    leaf_key = _unb64(_field(data, "leaf_key", str), "leaf_key")
    path = [_unb64(h, "inclusion_proof") for h in _field(data, "inclusion_proof", list)]
    cp = SignedCheckpoint.parse(_field(data, "checkpoint", str))
    snapshot_bytes = _unb64(_field(data, "registry_snapshot", str), "registry_snapshot")
    from_bundle = authority_key is None
    if authority_key is None:
        authority_key = load_ed25519_public(_unb64(_field(data, "authority_key", str), "key"))

    def fail(message: str) -> AuditVerificationError:
        return AuditVerificationError(f"proof bundle of decision {decision_id}: {message}")

    try:
        snapshot = verify_snapshot(store, snapshot_bytes, authority_key)
    except Rejected as exc:
        raise fail(f"its registry snapshot does not verify: {exc}") from None
    keyring = Keyring(snapshot.entries.values())

    keys_of, key_valid = keys_and_validity(keyring)

    clear = parse_leaf(store, leaf)
    if (clear.enforcement_point, clear.index) != (ep, index):
        raise fail(
            f"the leaf is leaf {clear.index} of {clear.enforcement_point}, not {index} of {ep}"
        )
    if cp.origin != ep:
        raise fail(f"the checkpoint is of {cp.origin}, not of {ep}")
    try:
        root = root_from_inclusion_proof(leaf_hash(leaf), index, cp.tree_size, path)
    except ValueError as exc:
        raise fail(f"the inclusion proof does not fit a tree of {cp.tree_size}: {exc}") from None
    if root != cp.root_hash:
        raise fail(
            f"the inclusion proof does not lead to the checkpoint's root (size {cp.tree_size})"
        )
    signer = cp.log_key(keys_of(ep))
    if signer is None:
        raise fail(f"the checkpoint is not signed by a registered key of {ep}")
    signer_id = ed25519_key_id(signer)
    participant = ep.partition("/")[0]
    try:
        key_valid(ep, signer_id, cp.time)
    except Rejected as exc:
        raise fail(f"the checkpoint's signing key was not valid when it signed: {exc}") from None
    witnesses = []
    for name in cp.witness_names():
        if not name.endswith(f"/{WITNESS_SIDE}") or name.partition("/")[0] == participant:
            continue
        found = cp.cosignature_by(name, keys_of(name))
        if found is None:
            continue
        cosig, public = found
        try:
            key_valid(name, ed25519_key_id(public), cosig.time)
        except Rejected:
            continue
        witnesses.append((name, cosig.time))
    if len(witnesses) < min_witnesses:
        raise fail(
            f"the checkpoint is cosigned by {len(witnesses)} witness(es) of another "
            f"participant; {min_witnesses} required (--min-witnesses)"
        )
    try:
        records = open_leaf(store, clear, leaf_key)
    except (AuditError, MalformedRecord) as exc:
        raise fail(f"the leaf does not open with the key in the bundle: {exc}") from None
    record = next((r for r in records if r.decision_id == decision_id), None)
    if record is None:
        raise fail("the leaf does not hold that decision")
    return BundleCheck(
        record,
        ep,
        index,
        cp,
        signer_id,
        tuple(witnesses),
        snapshot.epoch,
        snapshot.authority_key_id,
        from_bundle,
    )
