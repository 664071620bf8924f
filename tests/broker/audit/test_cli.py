"""`jcu audit verify / prove / query / explain` against a real log on the real broker.

Checkpoint keys come from the registry snapshot the auditing node (JCU_HOME)
accepted, as in production; the audit topics are per-test so other tests'
records stay apart.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import AuditLog, AuditRecord, SignedCheckpoint, sign_checkpoint
from broker.audit._codec import encode_checkpoint
from broker.cli.audit import parse_since
from broker.clock import utc_now
from broker.errors import ConfigError
from broker.kafka.clients import reliable_producer
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import TopicSpec, ensure_topics
from broker.schemas import SchemaStore
from tests.broker._pki import Pki, make_pki
from tests.cli import run

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Logged:
    kafka: KafkaConnection
    topics: tuple[str, str, str]
    denied_id: str
    store: SchemaStore
    signer: ed25519.Ed25519PrivateKey
    root: bytes
    pki: Pki
    monkeypatch: pytest.MonkeyPatch

    def args(self) -> list[str]:
        return [
            "--bootstrap",
            self.kafka.bootstrap,
            "--decisions-topic",
            self.topics[0],
            "--checkpoints-topic",
            self.topics[1],
            "--cosignatures-topic",
            self.topics[2],
        ]

    def as_node(self, org: str) -> None:
        """Run the next `jcu` verbs as `org`'s node."""
        self.monkeypatch.setenv("JCU_HOME", str(self.pki.nodes[org].root))


@pytest.fixture
def logged(
    as_kafka_admin: KafkaConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Logged:
    """A log on this test's own topics, which no organisation's ACLs name: written and read
    here with the platform admin's rights (`jcu audit` as an auditor: tests/broker/kafka)."""
    kafka = as_kafka_admin
    pki = make_pki(tmp_path / "pki", participants=["cert-eu", "enisa"])
    store = pki.store
    pki.trusted("enisa")  # the auditing node has the snapshot
    monkeypatch.setenv("JCU_HOME", str(pki.nodes["enisa"].root))
    jcu_home = pki.nodes["cert-eu"].root  # where cert-eu's log keeps its state
    kid = pki.keyring().current_signing_key_id("cert-eu", utc_now())
    signer = pki.keystores["cert-eu"].signing_key("cert-eu", kid)
    suffix = uuid.uuid4().hex[:8]
    topics = (
        f"test.cli.decisions.{suffix}",
        f"test.cli.checkpoints.{suffix}",
        f"test.cli.cosignatures.{suffix}",
    )

    async def write() -> tuple[str, bytes]:
        await ensure_topics(kafka, [TopicSpec(t, partitions=1) for t in topics])
        async with AuditLog(
            "cert-eu/publish",
            signer,
            kafka,
            jcu_home / "audit",
            checkpoint_every=4,
            store=store,
            decisions_topic=topics[0],
            checkpoints_topic=topics[1],
        ) as log:
            for org in ("enisa", "europol-ec3"):
                await log.append(
                    AuditRecord(
                        action="publish",
                        organisation=org,
                        message_id="m-1",
                        decision="allow",
                        rule_ids=("tlp-amber-community",),
                        reasons=("member of the community",),
                    )
                )
            denied = await log.append(
                AuditRecord(
                    action="publish",
                    organisation="isac-energy",
                    message_id="m-1",
                    decision="deny",
                    rule_ids=("tlp-amber-mandate",),
                    legal_basis=("Regulation (EU) 2019/881",),
                    reasons=("mandate does not cover category 'fraud'",),
                )
            )
            for i in range(6):
                await log.append(
                    AuditRecord(
                        action="receive",
                        organisation="enisa",
                        message_id=f"m-{i + 2}",
                        decision="reject",
                        rejection_reason="bad-signature",
                    )
                )
            return denied.decision_id, log.root()

    denied_id, root = asyncio.run(write())
    pki.trusted("cert-eu")
    return Logged(kafka, topics, denied_id, store, signer, root, pki, monkeypatch)


async def inject(logged: Logged, checkpoint: SignedCheckpoint) -> None:
    """Write a checkpoint to the test's checkpoints topic, as an attacker with write access:
    one of the size the log has (9), so its consistency proof from 9 is empty."""
    producer = reliable_producer(logged.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            logged.topics[1],
            encode_checkpoint(logged.store, checkpoint, 9, []),
            key=b"cert-eu/publish",
        )
    finally:
        await producer.stop()


@pytest.mark.kafka
def test_verify_reports_each_enforcement_point(logged: Logged, capsys) -> None:
    code, out, _ = run(["audit", "verify", "--json", *logged.args()], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    (ep,) = data["enforcement_points"]
    assert (ep["enforcement_point"], ep["records"], ep["checkpoints"], ep["result"]) == (
        "cert-eu/publish",
        9,
        3,
        "ok",
    )
    code, out, _ = run(["audit", "verify", *logged.args()], capsys)
    assert code == 0 and "cert-eu/publish" in out and "ok" in out


@pytest.mark.kafka
def test_verify_fails_naming_a_forged_checkpoint(logged: Logged, capsys) -> None:
    forged = sign_checkpoint(ed25519.Ed25519PrivateKey.generate(), "cert-eu/publish", 9, bytes(32))

    asyncio.run(inject(logged, forged))
    code, _, err = run(["audit", "verify", *logged.args()], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "jcu: error: cert-eu/publish: checkpoint 3 (size 9, offset 3): the signature does not "
        "verify under any accepted key of cert-eu/publish"
    ]


@pytest.mark.kafka
def test_checkpoint_by_a_revoked_key_fails_verification(logged: Logged, capsys) -> None:
    logged.pki.revoke("cert-eu", "compromised", at=utc_now())
    logged.pki.trusted("enisa")  # the auditing node learns of it
    code, _, _ = run(["audit", "verify", *logged.args()], capsys)
    assert code == 0  # checkpoints signed before the revocation still verify
    # The thief signs a checkpoint (consistent, even) after the revocation.
    stolen = sign_checkpoint(logged.signer, "cert-eu/publish", 9, logged.root)
    asyncio.run(inject(logged, stolen))
    code, _, err = run(["audit", "verify", "--json", *logged.args()], capsys)
    assert code == 1
    assert "checkpoint 3" in err and "revoked" in err and "compromised" in err


@pytest.mark.kafka
def test_prove_prints_a_verified_inclusion_proof(logged: Logged, capsys) -> None:
    logged.as_node("cert-eu")  # its own log: it holds the audit key
    code, out, err = run(["audit", "prove", logged.denied_id, "--json", *logged.args()], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["verified"] is True
    assert data["leaf_index"] == 2 and data["checkpoint"]["tree_size"] == 9
    assert data["record"]["organisation"] == "isac-energy"
    assert len(data["inclusion_proof"]) == 4  # ceil(log2(9))


@pytest.mark.kafka
def test_query_filters_and_explain_speaks_plainly(logged: Logged, capsys) -> None:
    logged.as_node("cert-eu")
    code, out, _ = run(["audit", "query", "--decision", "reject", "--json", *logged.args()], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 6 and {r["rejection_reason"] for r in rows} == {"bad-signature"}
    code, out, _ = run(
        ["audit", "query", "--org", "isac-energy", "--since", "1h", *logged.args()], capsys
    )
    assert code == 0 and "1 audit records" in out  # the table's title
    code, out, _ = run(
        ["audit", "query", "--rule", "tlp-amber-mandate", "--json", *logged.args()], capsys
    )
    assert [r["organisation"] for r in json.loads(out)] == ["isac-energy"]
    code, out, _ = run(["audit", "explain", "m-1", *logged.args()], capsys)
    assert code == 0
    assert (
        "isac-energy: denied by tlp-amber-mandate: mandate does not cover category 'fraud' "
        "(legal basis Regulation (EU) 2019/881)"
    ) in out
    assert "enisa: allowed by tlp-amber-community: member of the community" in out


@pytest.mark.kafka
def test_unknown_decision_and_bad_since_are_one_line_errors(logged: Logged, capsys) -> None:
    logged.as_node("cert-eu")
    code, _, err = run(["audit", "prove", "nope", *logged.args()], capsys)
    assert code == 1 and err.startswith("jcu: error: no decision nope in the audit log")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(["audit", "query", "--since", "yesterday", *logged.args()], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--since" in err


def test_parse_since_accepts_iso_times_and_durations() -> None:
    now = utc_now()
    assert (now - parse_since("90m", now)).total_seconds() == 5400
    assert parse_since("2026-11-27T12:00").tzinfo is not None
    with pytest.raises(ConfigError):
        parse_since("soon")
