"""The verifier detects each way of tampering with the log, and names what it found.

Logs are built here exactly as `AuditLog` writes them (same codec, same
chaining, same checkpoint signing), then tampered with the way an attacker
with write access to the topics could: by changing what a reader is served.
The real writer over real Kafka is tested in test_log_kafka.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import AuditRecord, explain, prove, verify
from broker.audit._codec import decode_leaf, encode_checkpoint, encode_leaf
from broker.audit._topic import TopicRecord
from broker.audit.checkpoint import Checkpoint
from broker.audit.query import decode_records, query
from broker.errors import AuditError, AuditVerificationError, RevokedKey
from broker.merkle import MerkleTree, ProofTree, leaf_hash, verify_inclusion
from broker.schemas import SchemaStore

EP = "cert-eu/publish"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FORGED = "0badf00d-0000-4000-8000-000000000000"


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


def build_records(store: SchemaStore, records: list[AuditRecord], ep: str = EP) -> list[bytes]:
    out: list[bytes] = []
    previous = b""
    for index, rec in enumerate(records):
        data = encode_leaf(store, ep, index, previous, rec)
        previous = leaf_hash(data)
        out.append(data)
    return out


def sign_checkpoints(
    store: SchemaStore, key: ed25519.Ed25519PrivateKey, values: list[bytes], sizes: list[int]
) -> list[bytes]:
    tree = ProofTree(leaf_hash(v) for v in values)
    return [
        encode_checkpoint(store, Checkpoint.sign(key, EP, n, tree.root(n), T0 + timedelta(hours=n)))
        for n in sizes
    ]


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
):
    return verify(store, as_topic(values), as_topic(checkpoints), lambda ep: [key.public_key()])


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
    original = decode_leaf(store, values[7])
    forged = dataclasses.replace(original.record, decision="allow", organisation="pesco")
    values[7] = encode_leaf(store, EP, 7, original.previous_leaf_hash, forged)
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index, failure.offset) == ("modified", 7, 7)
    assert failure.decision_id == original.record.decision_id


def test_modified_last_record_is_caught_by_the_checkpoint(store, key, log) -> None:
    values, cps = log
    last = decode_leaf(store, values[29])
    forged = dataclasses.replace(last.record, organisation="pesco")
    assert forged != last.record
    values[29] = encode_leaf(store, EP, 29, last.previous_leaf_hash, forged)
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("inconsistent", 2)


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
    values.insert(15, encode_leaf(store, EP, 15, leaf_hash(values[14]), fake))
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.record_index, failure.offset) == ("inserted", 15, 15)
    assert failure.decision_id == FORGED


def test_inserted_record_after_the_genuine_one_is_named(store, key, log) -> None:
    values, cps = log
    fake = dataclasses.replace(decision(15, org="pesco"), decision_id=FORGED)
    values.insert(16, encode_leaf(store, EP, 15, leaf_hash(values[14]), fake))
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.offset, failure.decision_id) == ("inserted", 16, FORGED)


def test_forged_checkpoint_signature_is_named(store, key, log) -> None:
    values, cps = log
    mallory = ed25519.Ed25519PrivateKey.generate()
    forged = sign_checkpoints(store, mallory, values, [30])[0]
    # Mallory claims to be the enforcement point's key.
    from broker.audit._codec import decode_checkpoint

    cp = decode_checkpoint(store, forged)
    genuine_kid = decode_checkpoint(store, cps[2]).key_id
    cps[2] = encode_checkpoint(store, dataclasses.replace(cp, key_id=genuine_kid))
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("bad-signature", 2)


def test_checkpoint_signed_by_an_unknown_key_is_refused(store, key, log) -> None:
    values, cps = log
    cps[1] = sign_checkpoints(store, ed25519.Ed25519PrivateKey.generate(), values, [20])[0]
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("bad-signature", 1)


def test_checkpoint_signed_after_its_key_was_revoked_is_named(store, key, log) -> None:
    values, cps = log
    revoked_at = T0 + timedelta(hours=15)  # checkpoints are dated T0 + size hours

    def key_validity(ep: str, cp: Checkpoint) -> None:
        if cp.time >= revoked_at:
            raise RevokedKey(f"key {cp.key_id} of {ep} was revoked at {revoked_at.isoformat()}")

    report = verify(
        store, as_topic(values), as_topic(cps), lambda ep: [key.public_key()], key_validity
    )
    failure = report.reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("key-not-valid", 1)
    assert "revoked" in failure.message


def test_checkpoint_that_rewrites_history_is_named(store, key, log) -> None:
    values, cps = log
    # Someone holding the enforcement point's key signs a tree in which record 3 says otherwise.
    rewritten = [decision(i) for i in range(30)]
    rewritten[3] = dataclasses.replace(rewritten[3], decision="allow")
    other = build_records(store, rewritten)
    cps.append(sign_checkpoints(store, key, other, [30])[0])
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("inconsistent", 3)


def test_checkpoint_that_shrinks_the_tree_is_inconsistent(store, key, log) -> None:
    values, cps = log
    cps.append(sign_checkpoints(store, key, values, [25])[0])
    failure = run(store, key, values, cps).reports[0].failure
    assert failure is not None
    assert (failure.kind, failure.checkpoint_index) == ("inconsistent", 3)


def test_records_after_the_last_checkpoint_count_as_unsealed(store, key) -> None:
    values = build_records(store, [decision(i) for i in range(25)])
    report = run(store, key, values, sign_checkpoints(store, key, values, [10, 20]))
    (ep,) = report.reports
    assert ep.ok and (ep.sealed, ep.unsealed) == (20, 5)


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


def test_every_sealed_record_is_provable_against_the_latest_checkpoint(store, key, log) -> None:
    values, cps = log
    report = run(store, key, values, cps)
    for i in range(30):
        p = prove(report, decision(i).decision_id)
        assert p.verified and p.record.index == i and p.checkpoint.tree_size == 30
        assert p.record.leaf_hash == leaf_hash(values[i])
        bad = list(p.path)
        bad[0] = bytes(32)
        assert not verify_inclusion(p.record.leaf_hash, i, 30, bad, p.checkpoint.root_hash)


def test_prove_refuses_unsealed_records_and_failed_logs(store, key) -> None:
    values = build_records(store, [decision(i) for i in range(12)])
    cps = sign_checkpoints(store, key, values, [10])
    report = run(store, key, values, cps)
    with pytest.raises(AuditError, match="not sealed"):
        prove(report, decision(11).decision_id)
    with pytest.raises(AuditError, match="no decision"):
        prove(report, "nope")
    values[2], values[3] = values[3], values[2]
    with pytest.raises(AuditVerificationError, match="out of order"):
        prove(run(store, key, values, cps), decision(5).decision_id)


def test_frontier_of_a_writer_matches_the_verifiers_tree(store, log) -> None:
    values, _ = log
    tree = MerkleTree()
    for v in values:
        tree.append_data(v)
    assert tree.root() == ProofTree(leaf_hash(v) for v in values).root()


def test_query_and_explain_in_plain_words(store, log) -> None:
    values, _ = log
    records, bad = decode_records(store, as_topic(values))
    assert bad == 0
    denied = query(records, decision="deny")
    assert [r.index for r in denied] == [i for i in range(30) if i % 4 == 3]
    later = query(
        records, organisation="enisa", rule="tlp-amber-community", since=T0 + timedelta(seconds=20)
    )
    assert later and all(r.index >= 20 and r.record.organisation == "enisa" for r in later)
    words = explain(records, "msg-1")  # decisions 3, 4, 5
    assert set(words) == {"enisa", "isac-energy"}
    assert words["isac-energy"][0].startswith(
        "denied by tlp-amber-mandate: mandate does not cover category 'fraud' "
        "(legal basis Regulation (EU) 2019/881 art. 7)"
    )
    assert words["enisa"][0].startswith("allowed by tlp-amber-community")
    with pytest.raises(AuditError, match="no decisions"):
        explain(records, "msg-unknown")
