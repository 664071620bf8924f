"""Witnessed logs on the real broker: a witness cosigns a log that grows and refuses one that
forks or shrinks; a wiped log fails verification against what was seen outside Kafka; a
proof bundle verifies on a machine with no Kafka and no state.

Each test has audit topics of its own, so the session's logs stay as they are.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.audit import AuditKeys, AuditLog, AuditRecord, Witness, witness_round
from broker.audit._codec import encode_checkpoint, encode_leaf
from broker.audit.checkpoint import sign_checkpoint
from broker.audit.witness import keys_and_validity
from broker.clock import utc_now
from broker.errors import AuditError
from broker.kafka.clients import admin_client, reliable_producer
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import (
    AUDIT_CHECKPOINTS,
    AUDIT_COSIGNATURES,
    AUDIT_DECISIONS,
    TopicSpec,
    ensure_topics,
)
from broker.merkle import ProofTree, leaf_hash
from broker.schemas import SchemaStore
from tests.broker._pki import make_pki
from tests.cli import run
from tests.world import World

pytestmark = pytest.mark.kafka
EP = "cert-eu/publish"


@dataclass
class Topics:
    decisions: str
    checkpoints: str
    cosignatures: str

    @classmethod
    async def make(cls, admin: KafkaConnection) -> Topics:
        """Fresh audit topics of this test's own."""
        prefix = f"test.witness.{uuid.uuid4().hex[:8]}."
        topics = cls(f"{prefix}decisions", f"{prefix}checkpoints", f"{prefix}cosignatures")
        await topics.create(admin)
        return topics

    @property
    def prefix(self) -> str:
        return self.decisions.removesuffix("decisions")

    def contract_names(self) -> dict[str, str]:
        return {
            AUDIT_DECISIONS: self.decisions,
            AUDIT_CHECKPOINTS: self.checkpoints,
            AUDIT_COSIGNATURES: self.cosignatures,
        }

    @property
    def names(self) -> list[str]:
        return [self.decisions, self.checkpoints, self.cosignatures]

    async def create(self, admin: KafkaConnection) -> None:
        await ensure_topics(admin, [TopicSpec(t, partitions=1) for t in self.names])

    async def wipe(self, admin: KafkaConnection) -> None:
        """What the platform admin (who alone can delete topics) can do: delete them and make
        them anew (the ACLs, bound to the names, stay)."""
        client = admin_client(admin)
        await client.start()
        try:
            await client.delete_topics(self.names)
        finally:
            await client.close()
        for _ in range(100):  # deletion is asynchronous in Kafka
            try:
                await self.create(admin)
                return
            except Exception:
                await asyncio.sleep(0.2)
        await self.create(admin)

    def args(self, bootstrap: str) -> list[str]:
        return [
            "--bootstrap",
            bootstrap,
            "--decisions-topic",
            self.decisions,
            "--checkpoints-topic",
            self.checkpoints,
            "--cosignatures-topic",
            self.cosignatures,
        ]


@pytest.fixture
async def walled(world: World) -> AsyncIterator[Topics]:
    """Fresh audit topics with the walls the contract's audit topics have, for the test's
    length: each principal does here what it may do there."""
    topics = await Topics.make(world.admin)
    async with world.audit_walls(topics.prefix, topics.contract_names()):
        yield topics


def record(i: int) -> AuditRecord:
    return AuditRecord(
        action="publish",
        organisation=("enisa", "europol-ec3", "isac-energy")[i % 3],
        message_id=f"m-{i}",
        decision="allow" if i % 4 else "deny",
        rule_ids=("tlp-amber-community",),
        reasons=("member of the community",),
    )


async def write_log(
    kafka: KafkaConnection, signer: ed25519.Ed25519PrivateKey, state: Path, topics: Topics, n: int
) -> AuditLog:
    log = AuditLog(
        EP,
        signer,
        kafka,
        state,
        checkpoint_every=10,
        checkpoint_interval=60,
        decisions_topic=topics.decisions,
        checkpoints_topic=topics.checkpoints,
    )
    async with log:
        await log.append_many([record(i) for i in range(n)])
    return log


def jcu(
    world: World, org: str, *args: str, auditor: bool = False
) -> subprocess.CompletedProcess[str]:
    """`jcu ARGS` on `org`'s node, as its own Kafka principal (a witness), or as an auditor's
    (`auditor`: the audit topics are read by auditors only)."""
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env=world.auditor_env(org) if auditor else world.env(org),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def signer_of(world: World, org: str) -> ed25519.Ed25519PrivateKey:
    ctx = world.ctx(org)
    kid = ctx.envelope.keyring.current_signing_key_id(org, utc_now())
    return ctx.envelope.keystore.signing_key(org, kid)


async def test_the_witness_cosigns_a_growing_log_and_refuses_a_fork(
    world: World, walled: Topics, tmp_path: Path
) -> None:
    topics = walled
    key = signer_of(world, "cert-eu")
    await write_log(world.kafka("cert-eu"), key, tmp_path / "state", topics, 20)
    witnessed = jcu(world, "enisa", "audit", "witness", "--once", *topics.args(world.bootstrap))
    assert witnessed.returncode == 0, witnessed.stderr
    assert f"cosigned {EP} at size 20" in witnessed.stdout

    # The log grows: the witness checks the consistency proof and cosigns again.
    await write_log(world.kafka("cert-eu"), key, tmp_path / "state", topics, 7)
    grown = jcu(world, "enisa", "audit", "witness", "--once", *topics.args(world.bootstrap))
    assert grown.returncode == 0 and f"cosigned {EP} at size 27" in grown.stdout

    # Whoever holds cert-eu's key signs another history: its 27 leaves differ from the first
    # on, and it proves its 30 extends its own 27, the best it can do.
    other = [
        encode_leaf(world.ctx("cert-eu").envelope.store, EP, i, b"", record(i + 1000),
                    AuditKeys(bytes(32)).require(EP))
        for i in range(30)
    ]  # fmt: skip
    tree = ProofTree(leaf_hash(v) for v in other)
    forged = sign_checkpoint(key, EP, 30, tree.root(30))
    await produce(
        world.kafka("cert-eu"),
        topics.checkpoints,
        encode_checkpoint(
            world.ctx("cert-eu").envelope.store, forged, 27, tree.consistency_proof(27, 30)
        ),
    )
    refused = jcu(world, "enisa", "audit", "witness", "--once", *topics.args(world.bootstrap))
    assert refused.returncode == 1
    assert f"REFUSED {EP} size 30: forked" in refused.stderr
    shown = jcu(world, "enisa", "audit", "witness", "--show", "--json",
                "--checkpoints-topic", topics.checkpoints)  # fmt: skip
    state = json.loads(shown.stdout)
    assert [(c["origin"], c["tree_size"]) for c in state["cosigned"]] == [(EP, 27)]
    (evidence,) = state["refused"]
    assert evidence["note"].startswith(f"{EP}\n30\n")  # the conflicting signed note, kept

    # Verification sees it too: that checkpoint does not extend the one before.
    verified = jcu(
        world, "enisa", "audit", "verify", "--full", *topics.args(world.bootstrap), auditor=True
    )
    assert verified.returncode == 1
    assert "checkpoint 3 (size 30, offset 3) is not consistent with checkpoint 2" in verified.stderr


async def produce(kafka: KafkaConnection, topic: str, value: bytes) -> None:
    producer = reliable_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=EP.encode())
    finally:
        await producer.stop()


async def test_the_witness_refuses_a_truncated_log(
    world: World, walled: Topics, tmp_path: Path
) -> None:
    topics = walled
    key = signer_of(world, "cert-eu")
    await write_log(world.kafka("cert-eu"), key, tmp_path / "state", topics, 30)
    first = jcu(world, "europol-ec3", "audit", "witness", "--once", *topics.args(world.bootstrap))
    assert first.returncode == 0 and f"cosigned {EP} at size 30" in first.stdout

    # The operator deletes the log and starts it again, its state moved away: 12 records.
    # (Started with credentials that may read the topic, the log itself refuses to go on;
    # behind the wall it cannot tell, and the witnesses and verification do.)
    await topics.wipe(world.admin)
    with pytest.raises(AuditError, match="no longer holds record 29"):
        await write_log(world.admin, key, tmp_path / "state", topics, 1)
    await write_log(world.kafka("cert-eu"), key, tmp_path / "again", topics, 12)
    refused = jcu(world, "europol-ec3", "audit", "witness", "--once", *topics.args(world.bootstrap))
    assert refused.returncode == 1
    assert "truncated: size 12 is smaller than size 30" in refused.stderr

    # Any node verifying with the witness's export in hand sees the truncation too.
    export = tmp_path / "witnessed.json"
    exported = jcu(world, "europol-ec3", "audit", "witness", "--export", str(export),
                   *topics.args(world.bootstrap))  # fmt: skip
    assert exported.returncode == 0 and export.stat().st_mode & 0o777 == 0o600
    verified = jcu(world, "enisa", "audit", "verify", "--seen", str(export), "--json",
                   *topics.args(world.bootstrap), auditor=True)  # fmt: skip
    assert verified.returncode == 1
    (point,) = json.loads(verified.stdout)["enforcement_points"]
    assert point["failure_kind"] == "truncated"
    assert "saw 30 records, but the log holds 12" in point["failure"]


async def test_an_audit_wipe_makes_verify_fail(
    as_kafka_admin: KafkaConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The audit topics deleted and recreated: the log's own node and a witness remember.
    (Nodes of a federation of this test's own: everything here runs with the platform
    admin's Kafka rights; the walls are tested with the session's world above.)"""
    admin = as_kafka_admin
    pki = make_pki(tmp_path / "pki", participants=["cert-eu", "enisa", "europol-ec3"])
    for org in pki.nodes:
        pki.trusted(org)
    topics = await Topics.make(admin)
    keyring = pki.keyring()
    kid = keyring.current_signing_key_id("cert-eu", utc_now())
    key = pki.keystores["cert-eu"].signing_key("cert-eu", kid)
    await write_log(admin, key, pki.nodes["cert-eu"].root / "audit", topics, 40)

    # enisa witnesses it (its state where `jcu audit witness` keeps it).
    kid = keyring.current_signing_key_id("enisa", utc_now())
    resolve, valid = keys_and_validity(keyring)
    witness = Witness(
        "enisa",
        pki.keystores["enisa"].signing_key("enisa", kid),
        resolve,
        pki.nodes["enisa"].root / "witness" / topics.checkpoints,
        key_validity=valid,
    )
    done = await witness_round(
        witness,
        SchemaStore.load(Path(__file__).resolve().parents[3] / "schemas"),
        admin,
        checkpoints_topic=topics.checkpoints,
        cosignatures_topic=topics.cosignatures,
    )
    assert [(cp.origin, cp.tree_size) for cp in done.published] == [(EP, 40)]

    async def verify(org: str, *extra: str) -> tuple[int, str, str]:
        monkeypatch.setenv("JCU_HOME", str(pki.nodes[org].root))
        capsys.readouterr()  # what the set-up logged
        argv = ["audit", "verify", "--json", *extra, *topics.args(admin.bootstrap)]
        return await asyncio.to_thread(run, argv, capsys)  # the CLI runs its own event loop

    code, out, _ = await verify("europol-ec3", "--witnesses", "1")
    assert code == 0, out
    (point,) = json.loads(out)["enforcement_points"]
    assert (point["records"], point["witnessed"]) == (40, 40)

    await topics.wipe(admin)
    for org, who in (("cert-eu", "this node's state of cert-eu/publish"),
                     ("enisa", "this node's witness enisa/witness"),
                     ("europol-ec3", "this node's last verification")):  # fmt: skip
        code, out, err = await verify(org)
        assert code == 1, (org, out)
        (point,) = json.loads(out)["enforcement_points"]
        assert point["result"] in ("FAIL (truncated)",), (org, point)
        if org != "europol-ec3":
            assert who in point["failure"]
        # One error line from the CLI, last; no traceback. (A component's log line may come
        # before it in this process's captured stderr: the logger's, not the CLI's.)
        assert "Traceback" not in err
        said = [line for line in err.splitlines() if line.startswith("jcu: error:")]
        assert len(said) == 1 and err.strip().splitlines()[-1] == said[0], err
    # A node that never saw the log has nothing to hold it to, and says so.
    fresh = make_pki(tmp_path / "fresh", participants=["cert-eu", "pesco"])
    fresh.trusted("pesco")
    monkeypatch.setenv("JCU_HOME", str(fresh.nodes["pesco"].root))
    argv = ["audit", "verify", *topics.args(admin.bootstrap)]
    capsys.readouterr()
    code, out, _ = await asyncio.to_thread(run, argv, capsys)
    assert code == 0 and "the audit log is empty, and this node saw no checkpoint" in out


async def test_an_offline_proof_verifies_with_no_kafka_and_no_state(
    world: World, walled: Topics, tmp_path: Path
) -> None:
    topics = walled
    key = signer_of(world, "cert-eu")
    log = await write_log(world.kafka("cert-eu"), key, tmp_path / "state", topics, 25)
    keyfile = tmp_path / "cert-eu-publish.key"
    keyfile.write_text(log.point_key.export())  # what cert-eu would hand an auditor
    for witness in ("enisa", "europol-ec3"):
        done = jcu(world, witness, "audit", "witness", "--once", *topics.args(world.bootstrap))
        assert done.returncode == 0, done.stderr
    records = jcu(world, "eeas-intcen", "audit", "query", "--keys", str(keyfile), "--org",
                  "isac-energy", "--json", *topics.args(world.bootstrap), auditor=True)  # fmt: skip
    assert records.returncode == 0, records.stderr
    target = json.loads(records.stdout)[3]

    bundle = tmp_path / "proof.json"
    proved = jcu(world, "eeas-intcen", "audit", "prove", target["decision_id"], "--keys",
                 str(keyfile), "--out", str(bundle), *topics.args(world.bootstrap),
                 auditor=True)  # fmt: skip
    assert proved.returncode == 0, proved.stderr
    assert "cosigned by enisa/witness, europol-ec3/witness" in proved.stdout

    # Another machine: no Kafka, an empty home, only the bundle and the authority's key.
    offline = {
        "PATH": "/usr/bin:/bin",
        "JCU_HOME": str(tmp_path / "empty-home"),
        "KAFKA_BOOTSTRAP": "127.0.0.1:9",
    }
    authority = world.federation.authority_home / "authority.pem"

    def check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "broker.cli", "audit", "verify-proof", str(path), *extra],
            env=offline,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parents[3],
        )

    ok = check(bundle, "--authority-key", str(authority), "--min-witnesses", "2", "--json")
    assert ok.returncode == 0, ok.stderr
    checked = json.loads(ok.stdout)
    assert (checked["decision_id"], checked["organisation"]) == (
        target["decision_id"],
        "isac-energy",
    )
    assert {w["witness"] for w in checked["witnesses"]} == {"enisa/witness", "europol-ec3/witness"}
    assert not (tmp_path / "empty-home").exists()  # it wrote no state either
    plain = check(bundle)
    assert plain.returncode == 0 and "taken from the bundle" in plain.stdout

    data = json.loads(bundle.read_text())
    for field, change in (
        ("inclusion_proof", lambda v: [v[1], v[0], *v[2:]]),
        ("leaf_index", lambda v: v + 1),
        ("checkpoint", lambda v: v.replace("\n25\n", "\n26\n", 1)),
        ("leaf_key", lambda v: "A" * 43 + "="),
    ):
        tampered = tmp_path / f"tampered-{field}.json"
        tampered.write_text(json.dumps({**data, field: change(data[field])}))
        bad = check(tampered, "--authority-key", str(authority))
        assert bad.returncode == 1, field
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    other_authority = tmp_path / "other.pem"
    other_authority.write_bytes(
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    wrong = check(bundle, "--authority-key", str(other_authority))
    assert wrong.returncode == 1 and "registry snapshot does not verify" in wrong.stderr
