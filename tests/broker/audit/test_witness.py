"""The witness's judgement, checkpoint by checkpoint (no Kafka): what it cosigns, what it
refuses and why, what it keeps on disk, and that it never cosigns two histories."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import Witness, WitnessState, sign_checkpoint
from broker.audit._codec import CheckpointRecord
from broker.audit.witness import load_export
from broker.errors import AuditError, RevokedKey
from broker.merkle import ProofTree

EP = "cert-eu/publish"
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LOG = ed25519.Ed25519PrivateKey.generate()
ENISA = ed25519.Ed25519PrivateKey.generate()


def keys(name: str) -> list[ed25519.Ed25519PublicKey]:
    return {"cert-eu": [LOG.public_key()], "enisa": [ENISA.public_key()]}.get(
        name.partition("/")[0], []
    )


def leaves(n: int, seed: int = 0) -> ProofTree:
    return ProofTree(bytes([seed, i % 256, i // 256]) * 10 + bytes(2) for i in range(n))


def record(tree: ProofTree, size: int, previous: int, key=LOG, ep: str = EP) -> CheckpointRecord:
    cp = sign_checkpoint(key, ep, size, tree.root(size), T0 + timedelta(minutes=size))
    proof = tree.consistency_proof(previous, size) if 0 < previous <= size else []
    return CheckpointRecord(cp, previous, tuple(proof))


def witness(tmp_path: Path, validity=None) -> Witness:  # type: ignore[no-untyped-def]
    return Witness("enisa", ENISA, keys, tmp_path / "witness", key_validity=validity)


def test_it_cosigns_a_log_that_grows_and_only_the_newest_per_pass(tmp_path: Path) -> None:
    w = witness(tmp_path)
    tree = leaves(30)
    verdicts = [w.observe(record(tree, n, p)) for n, p in ((10, 0), (20, 10), (30, 20))]
    assert [v.outcome for v in verdicts] == ["cosigned"] * 3
    (cosigned,) = w.flush()
    assert cosigned.tree_size == 30 and cosigned.log_key([LOG.public_key()]) is not None
    assert cosigned.cosignature_by("enisa/witness", [ENISA.public_key()]) is not None
    assert w.observe(record(tree, 30, 20)).outcome == "known"
    state = tmp_path / "witness" / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    again = witness(tmp_path)  # what a restart remembers
    assert again.state.held[EP].tree_size == 30
    assert again.observe(record(leaves(35), 35, 30)).outcome == "cosigned"


@pytest.mark.parametrize(
    ("offer", "why"),
    [
        (lambda: record(leaves(12), 12, 0), "truncated: size 12 is smaller than size 20"),
        (lambda: record(leaves(20, seed=9), 20, 10), "forked: another root at size 20"),
        (lambda: record(leaves(25, seed=9), 25, 20), "forked: it does not extend size 20"),
        (lambda: record(leaves(25), 25, 10), "starts at size 10, not at size 20"),
        (
            lambda: record(leaves(25), 25, 20, key=ed25519.Ed25519PrivateKey.generate()),
            "not signed by a registered key",
        ),
    ],
    ids=[
        "shorter",
        "same-size-other-root",
        "longer-other-history",
        "proof-from-elsewhere",
        "unknown-key",
    ],
)
def test_it_refuses_what_does_not_extend_what_it_cosigned(
    tmp_path: Path,
    offer,
    why: str,  # type: ignore[no-untyped-def]
) -> None:
    w = witness(tmp_path)
    w.observe(record(leaves(20), 20, 0))
    w.flush()
    verdict = w.observe(offer())
    assert verdict.outcome == "refused" and why in verdict.reason
    assert w.flush() == []  # nothing cosigned
    assert w.state.held[EP].tree_size == 20  # what it holds did not move
    (evidence,) = w.state.conflicts
    assert evidence["reason"] == verdict.reason and evidence["note"].startswith(f"{EP}\n")
    saved = json.loads((tmp_path / "witness" / "state.json").read_text())
    assert saved["conflicts"][0]["reason"] == verdict.reason


def test_it_refuses_a_checkpoint_signed_by_a_key_no_longer_valid(tmp_path: Path) -> None:
    def revoked_after_15_minutes(name: str, key_id: str, at: datetime) -> None:
        if at >= T0 + timedelta(minutes=15):
            raise RevokedKey(f"key {key_id} of {name} was revoked")

    w = witness(tmp_path, revoked_after_15_minutes)
    assert w.observe(record(leaves(10), 10, 0)).outcome == "cosigned"
    late = w.observe(record(leaves(20), 20, 10))  # signed at T0 + 20 minutes
    assert late.outcome == "refused" and "could not sign then" in late.reason


def test_it_does_not_witness_its_own_participant(tmp_path: Path) -> None:
    own = sign_checkpoint(ENISA, "enisa/publish", 5, leaves(5).root())
    verdict = witness(tmp_path).observe(CheckpointRecord(own, 0, ()))
    assert verdict.outcome == "ignored"


def test_its_export_is_what_a_verifier_takes(tmp_path: Path) -> None:
    w = witness(tmp_path)
    w.observe(record(leaves(20), 20, 0))
    w.flush()
    (note,) = load_export(WitnessState.load(tmp_path / "witness", "enisa/witness").export())
    assert note.tree_size == 20 and note.cosignature_by("enisa/witness", keys("enisa"))
    with pytest.raises(AuditError):
        load_export('{"format": "something else"}')


def test_a_damaged_state_is_refused_not_started_afresh(tmp_path: Path) -> None:
    (tmp_path / "witness").mkdir()
    (tmp_path / "witness" / "state.json").write_text("{not json")
    with pytest.raises(AuditError, match="restore it from backup"):
        witness(tmp_path)
