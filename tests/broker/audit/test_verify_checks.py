"""The audit verifier's checks that the tampering tests (test_verify.py) left unneeded.

Found by `make mutation` (docs/mutation.md): each test breaks one rule the
verifier enforces, with everything else about the log right, and a control.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import Seen, cosign, verify
from broker.audit._codec import encode_checkpoint, encode_cosignature
from broker.audit.topic import TopicRecord
from broker.errors import RevokedKey
from broker.merkle import ProofTree, leaf_hash
from broker.schemas import SchemaStore
from tests.broker.audit.test_verify import (  # the log builders and their fixtures
    EP,
    T0,
    as_topic,
    build_records,
    decision,
    key,
    leaf,
    log,
    run,
    sign_checkpoints,
    signed,
    store,
)

__all__ = ["key", "log", "store"]  # fixtures, used by name

Log = tuple[list[bytes], list[bytes]]
WITNESS = "enisa/witness"


def _cosignature(
    store: SchemaStore,
    key: ed25519.Ed25519PrivateKey,
    witness: ed25519.Ed25519PrivateKey,
    values: list[bytes],
    size: int,
) -> TopicRecord:
    cp = signed(key, values, size)
    both = cp.with_signatures([cosign(witness, WITNESS, cp.checkpoint, T0)])
    return TopicRecord(EP, encode_cosignature(store, WITNESS, both), 0, 0)


def test_a_cosignature_by_a_witness_key_not_valid_then_is_not_counted(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    values, cps = log
    witness = ed25519.Ed25519PrivateKey.generate()

    def resolve(name: str) -> list[ed25519.Ed25519PublicKey]:
        return [witness.public_key()] if name.startswith("enisa") else [key.public_key()]

    def witness_revoked(name: str, key_id: str, at: datetime) -> None:
        if name == WITNESS:
            raise RevokedKey(f"{name}'s key {key_id} was revoked before {at}")

    cosigs = [_cosignature(store, key, witness, values, 30)]
    counted = verify(store, as_topic(values), as_topic(cps), resolve, cosignatures=cosigs)
    assert [w.witness for w in counted.reports[0].witnesses] == [WITNESS]
    refused = verify(
        store,
        as_topic(values),
        as_topic(cps),
        resolve,
        witness_revoked,
        cosignatures=cosigs,
    )
    assert refused.reports[0].ok and refused.reports[0].witnesses == ()


def test_a_checkpoint_naming_another_origin_than_its_key_is_malformed(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    """Signed by the same participant's key, but for its other enforcement point's log."""
    values, _ = log
    other = encode_checkpoint(store, signed(key, values, 10, ep="cert-eu/receive"), 0, [])
    report = verify(store, as_topic(values), as_topic([other]), lambda ep: [key.public_key()])
    failure = report.reports[0].failure
    assert failure is not None and failure.kind == "malformed"
    assert "names origin 'cert-eu/receive'" in failure.message
    assert failure.checkpoint_index == 0


def test_a_cosigned_checkpoint_the_origin_did_not_sign_is_no_evidence(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    """A witness cosigning a checkpoint forged under the origin's name counts for nothing."""
    values, cps = log
    witness, rogue = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()

    def resolve(name: str) -> list[ed25519.Ed25519PublicKey]:
        return [witness.public_key()] if name.startswith("enisa") else [key.public_key()]

    genuine = _cosignature(store, key, witness, values, 30)
    forged = _cosignature(store, rogue, witness, values, 30)
    for cosig, counted in ((genuine, [WITNESS]), (forged, [])):
        report = verify(store, as_topic(values), as_topic(cps), resolve, cosignatures=[cosig])
        assert [w.witness for w in report.reports[0].witnesses] == counted


def test_only_a_witness_side_of_another_participant_counts_as_a_witness(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    values, cps = log
    enisa = ed25519.Ed25519PrivateKey.generate()

    def resolve(name: str) -> list[ed25519.Ed25519PublicKey]:
        return [enisa.public_key()] if name.startswith("enisa") else [key.public_key()]

    def cosigned_as(name: str) -> TopicRecord:
        cp = signed(key, values, 30)
        both = cp.with_signatures([cosign(enisa, name, cp.checkpoint, T0)])
        return TopicRecord(EP, encode_cosignature(store, name, both), 0, 0)

    for name, counted in ((WITNESS, [WITNESS]), ("enisa/publish", [])):
        report = verify(
            store, as_topic(values), as_topic(cps), resolve, cosignatures=[cosigned_as(name)]
        )
        assert [w.witness for w in report.reports[0].witnesses] == counted, name


def test_a_resumed_verification_names_a_first_new_record_that_links_elsewhere(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey
) -> None:
    values = build_records(store, [decision(i) for i in range(30)])
    cps = sign_checkpoints(store, key, values, [10, 20])
    first = run(store, key, values[:25], cps)
    assert first.ok and first.state.points[EP].tree_size == 20
    tampered = [*values[:20], leaf(store, 20, b"\x00" * 32, decision(20)), *values[21:]]
    again = run(store, key, tampered, cps, resume=first.state)
    failure = again.reports[0].failure
    assert failure is not None and failure.kind == "modified"
    assert failure.record_index == 20
    assert "links to a predecessor it cannot have" in failure.message
    assert run(store, key, values, cps, resume=first.state).ok  # the control


def test_a_checkpoint_claiming_another_predecessor_size_is_inconsistent(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    """Its proof is from the real predecessor (size 10), but it names size 5 as that."""
    values, cps = log
    tree = ProofTree(leaf_hash(v) for v in values)
    lying = encode_checkpoint(store, signed(key, values, 20), 5, tree.consistency_proof(10, 20))
    honest = encode_checkpoint(store, signed(key, values, 20), 10, tree.consistency_proof(10, 20))
    assert run(store, key, values[:20], [cps[0], honest]).ok  # the control
    failure = run(store, key, values[:20], [cps[0], lying]).reports[0].failure
    assert failure is not None and failure.kind == "inconsistent"
    assert failure.checkpoint_index == 1


def test_a_resumed_verification_checks_what_was_seen_from_where_it_stood(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey
) -> None:
    """Seen checkpoints below the resumed size were checked last time; one at it must have
    the root verified then; one beyond it, the records' root."""
    values = build_records(store, [decision(i) for i in range(30)])
    cps = sign_checkpoints(store, key, values, [10, 20])
    first = run(store, key, values[:25], cps)
    tree = ProofTree(leaf_hash(v) for v in values)

    def seen(size: int, root: bytes | None = None) -> Seen:
        return Seen(EP, size, root or tree.root(size), "this node's state")

    agreed = run(store, key, values, cps, resume=first.state, seen=[seen(10), seen(20), seen(25)])
    assert agreed.ok, agreed.reports[0].failure
    for size in (20, 25):
        other = run(store, key, values, cps, resume=first.state, seen=[seen(size, b"\x07" * 32)])
        failure = other.reports[0].failure
        assert failure is not None and failure.kind == "forked", size


def test_two_sightings_of_one_size_with_different_roots_are_a_fork(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    """Whichever of the two the records agree with, the other saw another history."""
    values, cps = log
    tree = ProofTree(leaf_hash(v) for v in values)
    right = Seen(EP, 25, tree.root(25), "witness enisa/witness")
    wrong = Seen(EP, 25, b"\x07" * 32, "this node's state")
    assert run(store, key, values, cps, seen=[right]).ok  # the control
    for seen in ([right, wrong], [wrong, right]):
        failure = run(store, key, values, cps, seen=seen).reports[0].failure
        assert failure is not None and failure.kind == "forked"


def test_a_re_sent_run_with_a_record_its_successor_does_not_link_to_is_inserted(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    """Re-sent 27..29 with another record 27 (chained to 26 as the real one is): 28 links
    to the real 27, so the run is no copy, though it ends on the log's own last leaf."""
    values, cps = log
    forged = leaf(store, 27, leaf_hash(values[26]), decision(27, org="pesco"))
    assert run(store, key, [*values, *values[27:]], cps).ok  # the control: a true copy
    failure = run(store, key, [*values, forged, *values[28:]], cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.offset) == ("inserted", 30)


def test_a_re_sent_run_that_stops_short_of_the_logs_end_is_inserted(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    values, cps = log
    failure = run(store, key, [*values, *values[26:28]], cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.offset) == ("inserted", 30)


def test_a_cosignature_line_under_another_name_does_not_count_for_the_witness(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, log: Log
) -> None:
    """enisa's key cosigning as "enisa/elsewhere" is no cosignature by enisa/witness, though
    the record says it brings enisa/witness's."""
    values, cps = log
    enisa = ed25519.Ed25519PrivateKey.generate()

    def resolve(name: str) -> list[ed25519.Ed25519PublicKey]:
        return [enisa.public_key()] if name.startswith("enisa") else [key.public_key()]

    def brought_as_witness(line_name: str) -> TopicRecord:
        cp = signed(key, values, 30)
        both = cp.with_signatures([cosign(enisa, line_name, cp.checkpoint, T0)])
        return TopicRecord(EP, encode_cosignature(store, WITNESS, both), 0, 0)

    for line_name, counted in ((WITNESS, [WITNESS]), ("enisa/elsewhere", [])):
        cosigs = [brought_as_witness(line_name)]
        report = verify(store, as_topic(values), as_topic(cps), resolve, cosignatures=cosigs)
        assert [w.witness for w in report.reports[0].witnesses] == counted, line_name
