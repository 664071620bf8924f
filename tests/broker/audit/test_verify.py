"""The verifier detects each way of tampering with the log, and names what it found.

Logs are built here exactly as `AuditLog` writes them (same codec, same
chaining, same checkpoint records with consistency proofs), then tampered with
the way an attacker with write access to the topics could: by changing what a
reader is served. The real writer over real Kafka is tested in test_log_kafka.py.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import (
    AuditKeys,
    AuditRecord,
    Prover,
    Seen,
    SignedCheckpoint,
    VerificationPolicy,
    Verifier,
    cosign,
    explain,
    sign_checkpoint,
    verify,
)
from broker.audit._codec import (
    decode_checkpoint,
    decode_leaf,
    encode_checkpoint,
    encode_cosignature,
    encode_leaf,
)
from broker.audit.query import decode_records, query
from broker.audit.topic import TopicRecord
from broker.errors import AuditError, AuditVerificationError, RevokedKey
from broker.merkle import MerkleTree, ProofTree, leaf_hash, verify_inclusion
from broker.schemas import SchemaStore

EP = "cert-eu/publish"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FORGED = "0badf00d-0000-4000-8000-000000000000"
KEYS = AuditKeys(bytes(range(32)), owner="cert-eu")
POINT = KEYS.require(EP)


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.load(Path(__file__).resolve().parents[3] / "schemas")


@pytest.fixture(scope="module")
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def decision(i: int, *, org: str | None = None) -> AuditRecord:
    deny = i % 4 == 3
    return AuditRecord(
        action="publish",
        organisation=org or ("isac-energy" if i % 2 else "enisa"),
        message_id=f"msg-{i // 3}",
        decision="deny" if deny else "allow",
        decision_id=f"00000000-0000-4000-8000-{i:012d}",
        time=T0 + timedelta(seconds=i),
        content_hash=bytes([i % 256]) * 32,
        labels={"tlp": "AMBER", "categories": ["fraud"]},
        rule_ids=("tlp-amber-mandate",) if deny else ("tlp-amber-community",),
        legal_basis=("Regulation (EU) 2019/881 art. 7",),
        reasons=(  # the policy engine starts a reason with its rule id
            ("tlp-amber-mandate: mandate does not cover category 'fraud'",)
            if deny
            else ("member of the community",)
        ),
        policy_bundle_hash="ab" * 32,
    )


def leaf(store: SchemaStore, index: int, previous: bytes, rec: AuditRecord, ep: str = EP) -> bytes:
    return encode_leaf(store, ep, index, previous, rec, KEYS.require(ep))


def build_records(store: SchemaStore, records: list[AuditRecord], ep: str = EP) -> list[bytes]:
    out: list[bytes] = []
    previous = b""
    for index, rec in enumerate(records):
        data = leaf(store, index, previous, rec, ep)
        previous = leaf_hash(data)
        out.append(data)
    return out


def signed(
    key: ed25519.Ed25519PrivateKey, values: list[bytes], size: int, ep: str = EP
) -> SignedCheckpoint:
    tree = ProofTree(leaf_hash(v) for v in values)
    return sign_checkpoint(key, ep, size, tree.root(size), T0 + timedelta(hours=size))


def sign_checkpoints(
    store: SchemaStore,
    key: ed25519.Ed25519PrivateKey,
    values: list[bytes],
    sizes: list[int],
    previous: int = 0,
) -> list[bytes]:
    """Checkpoint records as the log writes them: each with its proof from the one before."""
    tree = ProofTree(leaf_hash(v) for v in values)
    out = []
    for n in sizes:
        proof = tree.consistency_proof(previous, n) if 0 < previous <= n else []
        out.append(encode_checkpoint(store, signed(key, values, n), previous, proof))
        previous = n
    return out


def as_topic(values: list[bytes], key: str = EP) -> list[TopicRecord]:
    return [TopicRecord(key, v, 0, offset) for offset, v in enumerate(values)]


@pytest.fixture
def log(store: SchemaStore, key: ed25519.Ed25519PrivateKey) -> tuple[list[bytes], list[bytes]]:
    values = build_records(store, [decision(i) for i in range(30)])
    return values, sign_checkpoints(store, key, values, [10, 20, 30])


def run(
    store: SchemaStore,
    key: ed25519.Ed25519PrivateKey,
    values: list[bytes],
    checkpoints: list[bytes],
    **options: object,
):
    return verify(
        store,
        as_topic(values),
        as_topic(checkpoints),
        lambda ep: [key.public_key()],
        audit_keys=KEYS,
        **options,  # type: ignore[arg-type]
    )


def test_untouched_log_verifies(store, key, log) -> None:
    values, cps = log
    report = run(store, key, values, cps)
    assert report.ok
    (ep,) = report.reports
    assert (ep.enforcement_point, ep.records, ep.checkpoints, ep.sealed, ep.unsealed) == (
        EP,
        30,
        3,
        30,
        0,
    )
    report.raise_for_failure()


def test_modified_record_is_named(store, key, log) -> None:
    values, cps = log
    original = decode_leaf(store, values[7], keys=KEYS)
    forged = dataclasses.replace(original.record, decision="allow", organisation="pesco")
    values[7] = leaf(store, 7, original.previous_leaf_hash, forged)
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index, failure.offset) == ("modified", 7, 7)
    assert failure.decision_id == original.record.decision_id


def test_modified_last_record_is_caught_by_the_checkpoint(store, key, log) -> None:
    values, cps = log
    last = decode_leaf(store, values[29], keys=KEYS)
    forged = dataclasses.replace(last.record, organisation="pesco")
    assert forged != last.record
    values[29] = leaf(store, 29, last.previous_leaf_hash, forged)
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("root-mismatch", 2)


def test_deleted_record_is_named(store, key, log) -> None:
    values, cps = log
    del values[12]
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index) == ("missing", 12)


def test_deleted_tail_is_named_by_the_checkpoint_that_covers_it(store, key, log) -> None:
    values, cps = log
    del values[25:]
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index, failure.checkpoint_index) == ("missing", 25, 2)


def test_swapped_records_are_named(store, key, log) -> None:
    values, cps = log
    values[4], values[5] = values[5], values[4]
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index, failure.offset) == ("reordered", 4, 4)


def test_inserted_record_is_named(store, key, log) -> None:
    values, cps = log
    # The attacker forges a record that claims slot 15 and links correctly to record 14.
    fake = dataclasses.replace(decision(15, org="pesco"), decision_id=FORGED)
    values.insert(15, leaf(store, 15, leaf_hash(values[14]), fake))
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index, failure.offset) == ("inserted", 15, 15)
    assert failure.decision_id == FORGED


def test_inserted_record_after_the_genuine_one_is_named(store, key, log) -> None:
    values, cps = log
    fake = dataclasses.replace(decision(15, org="pesco"), decision_id=FORGED)
    values.insert(16, leaf(store, 15, leaf_hash(values[14]), fake))
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.offset, failure.decision_id) == ("inserted", 16, FORGED)


def test_a_record_claiming_an_old_index_is_inserted(store, key, log) -> None:
    values, cps = log
    values.insert(20, leaf(store, 3, leaf_hash(values[2]), decision(3, org="pesco")))
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.offset) == ("inserted", 20)


def test_forged_checkpoint_signature_is_named(store, key, log) -> None:
    values, cps = log
    mallory = ed25519.Ed25519PrivateKey.generate()
    genuine = decode_checkpoint(store, cps[2])
    forged_note = signed(mallory, values, 30)
    # Mallory claims the enforcement point's key: its key id on her signature line.
    (line,) = genuine.signed.signatures
    (hers,) = forged_note.signatures
    claimed = dataclasses.replace(hers, key_id=line.key_id)
    cps[2] = encode_checkpoint(
        store,
        SignedCheckpoint(forged_note.checkpoint, (claimed,)),
        genuine.previous_size,
        genuine.consistency,
    )
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("bad-signature", 2)


def test_checkpoint_signed_by_an_unknown_key_is_refused(store, key, log) -> None:
    values, cps = log
    cps[1] = sign_checkpoints(store, ed25519.Ed25519PrivateKey.generate(), values, [20], 10)[0]
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("bad-signature", 1)


def test_checkpoint_signed_after_its_key_was_revoked_is_named(store, key, log) -> None:
    values, cps = log
    revoked_at = T0 + timedelta(hours=15)  # checkpoints are dated T0 + size hours

    def key_validity(ep: str, key_id: str, at: datetime) -> None:
        if at >= revoked_at:
            raise RevokedKey(f"key {key_id} of {ep} was revoked at {revoked_at.isoformat()}")

    failure = run(store, key, values, cps, key_validity=key_validity).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("key-not-valid", 1)
    assert "revoked" in failure.message


def test_checkpoint_that_rewrites_history_is_named(store, key, log) -> None:
    values, cps = log
    # Someone holding the enforcement point's key signs a tree in which record 3 says otherwise,
    # with the best proof it can make: from its own, rewritten, size 30.
    rewritten = [decision(i) for i in range(30)]
    rewritten[3] = dataclasses.replace(rewritten[3], decision="allow")
    other = build_records(store, rewritten)
    cps.append(sign_checkpoints(store, key, other + values[:1], [31], 30)[0])
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("inconsistent", 3)


def test_checkpoint_that_shrinks_the_tree_is_inconsistent(store, key, log) -> None:
    values, cps = log
    cps.append(sign_checkpoints(store, key, values, [25], 30)[0])
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("inconsistent", 3)


def test_a_checkpoint_proved_from_another_size_is_inconsistent(store, key, log) -> None:
    values, cps = log
    cps[2] = sign_checkpoints(store, key, values, [30], 10)[0]  # skips the checkpoint at 20
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.checkpoint_index) == ("inconsistent", 2)


def test_records_after_the_last_checkpoint_count_as_unsealed(store, key) -> None:
    values = build_records(store, [decision(i) for i in range(25)])
    report = run(store, key, values, sign_checkpoints(store, key, values, [10, 20]))
    (ep,) = report.reports
    assert ep.ok and (ep.sealed, ep.unsealed, ep.decisions) == (20, 5, 25)


def test_record_under_another_enforcement_points_key_is_malformed(store, key, log) -> None:
    values, cps = log
    topic = as_topic(values)
    topic[3] = dataclasses.replace(topic[3], key="enisa/publish")
    report = verify(store, topic, as_topic(cps), lambda ep: [key.public_key()])
    failures = {r.enforcement_point: r.failure for r in report.reports}
    assert failures["enisa/publish"] is not None
    assert failures["enisa/publish"].kind == "malformed"
    with pytest.raises(AuditVerificationError, match="cert-eu/publish"):
        report.raise_for_failure()


def test_garbage_on_the_topic_is_named_by_offset(store, key, log) -> None:
    values, cps = log
    values[9] = b"\xc3\x01not avro"
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.offset) == ("malformed", 9)


# -- what others saw: truncation and forks -----------------------------------------------


def test_an_emptied_log_fails_against_what_this_node_saw(store, key, log) -> None:
    """The audit topics deleted and recreated: Kafka says nothing, this node remembers."""
    values, _ = log
    seen = Seen(EP, 30, ProofTree(leaf_hash(v) for v in values).root(), "this node's state")
    report = run(store, key, [], [], seen=[seen])
    (ep,) = report.reports
    assert ep.failure is not None and ep.failure.kind == "truncated"
    assert "saw 30 records, but the log holds 0" in ep.failure.message
    assert run(store, key, [], []).reports == ()  # without the memory: nothing to say


def test_a_shorter_log_with_its_own_checkpoints_fails_against_what_was_seen(
    store, key, log
) -> None:
    """The operator starts the log again, 20 records long, and signs checkpoints for it."""
    values, _ = log
    seen = Seen(EP, 30, ProofTree(leaf_hash(v) for v in values).root(), "witness enisa/witness")
    again = build_records(store, [decision(i + 100) for i in range(20)])
    report = run(store, key, again, sign_checkpoints(store, key, again, [20]), seen=[seen])
    failure = report.reports[0].failure
    assert failure is not None and failure.kind == "truncated"


def test_a_forked_log_fails_against_what_was_seen(store, key, log) -> None:
    values, _ = log
    seen = Seen(EP, 20, ProofTree(leaf_hash(v) for v in values).root(20), "witness enisa/witness")
    rewritten = [decision(i) for i in range(30)]
    rewritten[3] = dataclasses.replace(rewritten[3], decision="allow")
    fork = build_records(store, rewritten)
    report = run(store, key, fork, sign_checkpoints(store, key, fork, [10, 20, 30]), seen=[seen])
    failure = report.reports[0].failure
    assert failure is not None and failure.kind == "forked"
    assert "witness enisa/witness" in failure.message


def _cosigned(store, key, witness, values, size, name="enisa/witness") -> TopicRecord:
    cp = signed(key, values, size)
    both = cp.with_signatures([cosign(witness, name, cp.checkpoint, T0)])
    return TopicRecord(EP, encode_cosignature(store, name, both), 0, 0)


def test_witness_cosignatures_are_counted_and_checked(store, key, log) -> None:
    values, cps = log
    enisa, europol = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    keys = {"cert-eu": key, "enisa": enisa, "europol-ec3": europol}

    def resolve(name: str) -> list[ed25519.Ed25519PublicKey]:
        k = keys.get(name.partition("/")[0])
        return [k.public_key()] if k else []

    cosigs = [
        _cosigned(store, key, enisa, values, 30),
        _cosigned(store, key, europol, values, 20, "europol-ec3/witness"),
        _cosigned(store, key, key, values, 30, "cert-eu/witness"),  # its own: not a witness
        _cosigned(store, key, europol, values, 30, "enisa/witness"),  # under another's name
    ]
    report = verify(store, as_topic(values), as_topic(cps), resolve, cosignatures=cosigs)
    (ep,) = report.reports
    assert ep.ok
    assert [(w.witness, w.tree_size) for w in ep.witnesses] == [
        ("enisa/witness", 30),
        ("europol-ec3/witness", 20),
    ]
    policy = VerificationPolicy().with_witnesses(2)
    strict = verify(
        store, as_topic(values), as_topic(cps), resolve, cosignatures=cosigs, policy=policy
    )
    assert strict.reports[0].failure is not None
    assert strict.reports[0].failure.kind == "unwitnessed"
    # A witness that saw another tree at 20 than the one on the topic: a fork.
    rewritten = build_records(
        store,
        [dataclasses.replace(decision(0), decision="deny")] + [decision(i) for i in range(1, 30)],
    )
    forked = verify(
        store,
        as_topic(values),
        as_topic(cps),
        resolve,
        cosignatures=[_cosigned(store, key, europol, rewritten, 20, "europol-ec3/witness")],
    )
    assert forked.reports[0].failure is not None
    assert forked.reports[0].failure.kind == "forked"


# -- resuming ------------------------------------------------------------------------------


def test_a_verification_resumes_where_the_last_one_stood(store, key) -> None:
    values = build_records(store, [decision(i) for i in range(40)])
    cps = sign_checkpoints(store, key, values, [10, 20])
    first = run(store, key, values[:25], cps)
    assert first.ok and first.state.points[EP].tree_size == 20
    more = cps + sign_checkpoints(store, key, values, [30, 40], 20)
    seen = []

    def records() -> Iterator[TopicRecord]:
        for r in as_topic(values):
            seen.append(r.offset)
            yield r

    v = Verifier(store, lambda ep: [key.public_key()], resume=first.state)
    for c in as_topic(more):
        v.checkpoint(c)
    start = v.record_start()
    assert start == {0: 19}  # from the last record it verified
    for r in records():
        if r.offset >= start[0]:
            v.record(r)
    second = v.finish()
    (ep,) = second.reports
    assert ep.ok and (ep.records, ep.checkpoints, ep.sealed, ep.resumed_from) == (40, 4, 40, 20)


def test_a_resumed_verification_notices_a_rewritten_topic(store, key) -> None:
    values = build_records(store, [decision(i) for i in range(20)])
    cps = sign_checkpoints(store, key, values, [10, 20])
    first = run(store, key, values, cps)
    other = build_records(store, [decision(i + 50) for i in range(20)])
    again = run(
        store, key, other, sign_checkpoints(store, key, other, [10, 20]), resume=first.state
    )
    failure = again.reports[0].failure
    assert failure is not None and failure.kind == "forked"
    gone = run(store, key, [], [], resume=first.state)
    assert gone.reports[0].failure is not None and gone.reports[0].failure.kind == "truncated"


# -- memory: streamed ------------------------------------------------------------------------


def test_memory_does_not_grow_with_the_log(store, key) -> None:
    """Verification holds a frontier per enforcement point, not the log: the peak over
    20,000 leaves is that over 2,000 (tracemalloc; the records come from a generator)."""

    def peak(n: int) -> int:
        def records() -> Iterator[TopicRecord]:
            previous = b""
            for i in range(n):
                data = leaf(store, i, previous, decision(i))
                previous = leaf_hash(data)
                yield TopicRecord(EP, data, 0, i)

        tracemalloc.start()
        try:
            report = verify(store, records(), [], lambda ep: [key.public_key()])
            assert report.reports[0].records == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2_000), peak(20_000)
    assert large < small * 1.5 + 64 * 1024, (small, large)


# -- proofs and answers ----------------------------------------------------------------------


def _prove(store, key, values, cps, decision_id: str):
    v = Verifier(store, lambda ep: [key.public_key()], audit_keys=KEYS)
    for c in as_topic(cps):
        v.checkpoint(c)
    prover = Prover(store, decision_id, KEYS, v.candidates)
    for r in as_topic(values):
        v.record(r)
        prover.record(r)
    report = v.finish()
    return prover.result(
        report.report(prover.enforcement_point or ""), lambda n: [key.public_key()]
    )


def test_every_sealed_record_is_provable_against_the_latest_checkpoint(store, key, log) -> None:
    values, cps = log
    for i in range(30):
        p = _prove(store, key, values, cps, decision(i).decision_id)
        assert p.verified and p.record.index == i and p.checkpoint.tree_size == 30
        assert p.record.leaf_hash == leaf_hash(values[i])
        bad = list(p.path)
        bad[0] = bytes(32)
        assert not verify_inclusion(p.record.leaf_hash, i, 30, bad, p.checkpoint.root_hash)


def test_prove_refuses_unsealed_records_and_failed_logs(store, key) -> None:
    values = build_records(store, [decision(i) for i in range(12)])
    cps = sign_checkpoints(store, key, values, [10])
    with pytest.raises(AuditError, match="not sealed"):
        _prove(store, key, values, cps, decision(11).decision_id)
    with pytest.raises(AuditError, match="no decision"):
        _prove(store, key, values, cps, "nope")
    values[2], values[3] = values[3], values[2]
    with pytest.raises(AuditVerificationError, match="out of order"):
        _prove(store, key, values, cps, decision(1).decision_id)


def test_frontier_of_a_writer_matches_the_verifiers_tree(store, log) -> None:
    values, _ = log
    tree = MerkleTree()
    for v in values:
        tree.append_data(v)
    assert tree.root() == ProofTree(leaf_hash(v) for v in values).root()


def test_query_and_explain_in_plain_words(store, log) -> None:
    values, _ = log
    records, bad = decode_records(store, as_topic(values), KEYS)
    assert bad == 0
    denied = query(records, decision="deny")
    assert [r.index for r in denied] == [i for i in range(30) if i % 4 == 3]
    later = query(
        records, organisation="enisa", rule="tlp-amber-community", since=T0 + timedelta(seconds=20)
    )
    assert later and all(r.index >= 20 and r.record.organisation == "enisa" for r in later)
    window = query(records, since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=9))
    assert [r.index for r in window] == [5, 6, 7, 8]
    words = explain(records, "msg-1")  # decisions 3, 4, 5
    assert set(words) == {"enisa", "isac-energy"}
    assert words["isac-energy"][0].startswith(
        "denied by tlp-amber-mandate: mandate does not cover category 'fraud' "
        "(legal basis Regulation (EU) 2019/881 art. 7)"
    )
    assert words["enisa"][0].startswith("allowed by tlp-amber-community")
    assert set(explain(records, "msg-1", "enisa")) == {"enisa"}
    with pytest.raises(AuditError, match="no records"):
        explain(records, "msg-unknown")


def test_a_reader_without_the_key_reads_nothing(store, log) -> None:
    values, _ = log
    records, _ = decode_records(store, as_topic(values), AuditKeys(bytes(32)))
    assert records == []


def test_a_run_of_records_re_sent_after_a_restart_is_a_copy_counted_once(store, key, log) -> None:
    """A restarted writer re-sends what its journal holds past its last checkpoint (20..27)
    without knowing how much of it Kafka kept (20..24): a copy, read once."""
    values, cps = log
    topic = values[:25] + values[20:]
    report = run(store, key, topic, cps)
    assert report.ok, report.reports[0].failure
    (ep,) = report.reports
    assert (ep.records, ep.sealed) == (30, 30)
    records, bad = decode_records(store, as_topic(topic), KEYS)
    assert bad == 0 and len(records) == len({r.record.decision_id for r in records}) == 30
    # One leaf re-sent (the tree's last), and a re-sent run at the very end of the topic.
    assert run(store, key, values[:30] + values[29:], cps).ok
    assert run(store, key, values[:30] + values[27:], cps).ok


def test_a_re_sent_run_that_is_not_a_copy_is_inserted(store, key, log) -> None:
    """Records claiming indices the log holds, chained among themselves, that do not end on
    the log's own leaf: inserted, whatever they link to on the way."""
    values, cps = log
    previous = leaf_hash(values[19])
    forged = []
    for i in range(20, 25):
        data = leaf(store, i, previous, decision(i, org="pesco"))
        previous = leaf_hash(data)
        forged.append(data)
    failure = run(store, key, values[:25] + forged + values[25:], cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.offset) == ("inserted", 25)
    # A run that breaks off before it reaches the log's last leaf is no copy either.
    failure = run(store, key, values[:25] + values[20:23] + values[25:], cps).reports[0].failure
    assert failure is not None and (failure.kind, failure.offset) == ("inserted", 25)
