"""A synthetic audit log of N decisions, written fast, exactly as enforcement points write one.

Per message, as the pipeline logs it: the publisher's leaf of 14 decisions, its
send-outcome leaf (5 recipients), and one receiving leaf at each of the 5
recipients: 24 records in 7 leaves. Leaves are sealed and chained as `AuditLog`
seals and chains them, and written as it writes them: the leaves of one batch
of messages (a publish chunk, a consumer batch) of one enforcement point in one
leaf pack, one Kafka record (the content of each kind encoded once and sealed anew
per leaf: verification never opens a leaf), and every enforcement point signs a
checkpoint every `checkpoint_every` leaves, with its consistency proof, as the
log does. What `jcu audit verify` reads is therefore what it reads in
production; only the writing is cut short.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import AuditKeys, AuditRecord, DecisionSet, sign_checkpoint
from broker.audit._codec import LeafSealer, encode_checkpoint, leaf_encoder
from broker.audit.acts import CopyOutcome, send_outcome
from broker.audit.pack import PackCodec, pack_bounds
from broker.audit.record import new_decision_ids
from broker.kafka.connection import KafkaConnection
from broker.merkle import MerkleTree, consistency_proof_from, leaf_hash
from broker.policy import Decision
from broker.schemas import SchemaStore

PUBLISHER = "cert-eu"
RECEIVERS = ("enisa", "europol-ec3", "eeas-intcen", "soc-fr", "isac-energy")
ORGS = (*RECEIVERS, "commission", "csirts-network", "eu-cyclone", "nis-cg", "hwp", "eda",
        "pesco", "isac-finance", "csirt-de")  # fmt: skip
PER_MESSAGE = 14 + len(RECEIVERS) + len(RECEIVERS)  # decisions and outcomes
LEAVES_PER_MESSAGE = 2 + len(RECEIVERS)
#: Messages per publish chunk and per consumer batch: their leaves share a leaf pack.
BATCH = 500


@dataclass
class _Point:
    sealer: LeafSealer
    signer: ed25519.Ed25519PrivateKey
    tree: MerkleTree = field(default_factory=MerkleTree)
    last: bytes = b""
    checkpoint: int = 0
    frontier: tuple[bytes, ...] = ()
    since: list[bytes] = field(default_factory=list)


class SyntheticLog:
    """Yields ("d" | "c", enforcement point, value): leaves and checkpoints, in write order."""

    def __init__(
        self,
        store: SchemaStore,
        signers: Mapping[str, ed25519.Ed25519PrivateKey],
        *,
        checkpoint_every: int = 1000,
        keys: AuditKeys | None = None,
    ) -> None:
        self._keys = keys or AuditKeys(bytes(32))
        self._every = checkpoint_every
        self._points: dict[str, _Point] = {}
        for participant, side in [(PUBLISHER, "publish"), *((r, "receive") for r in RECEIVERS)]:
            ep = f"{participant}/{side}"
            key = self._keys.require(ep)
            self._points[ep] = _Point(LeafSealer(store, ep, key), signers[participant])
        self._store = store
        self._packs = PackCodec(store)
        encoder = leaf_encoder(store)
        decisions = tuple(
            Decision(org, "allow" if org in RECEIVERS else "deny",
                     ("tlp-amber-community",) if org in RECEIVERS else ("tlp-amber-mandate",),
                     ("Regulation (EU) 2019/881, art. 7",),
                     reasons=("member of the community",))
            for org in ORGS
        )  # fmt: skip
        labels = {"tlp": "AMBER", "categories": ["malicious-code"], "member_states": ["BE"]}
        self._publish = encoder.encode_set(
            DecisionSet("publish", "m", decisions, content_hash=bytes(32), labels=labels,
                        policy_bundle_hash="ab" * 32),
            new_decision_ids(len(decisions)),
        )  # fmt: skip
        self._send = encoder.encode(
            send_outcome(
                "m",
                [CopyOutcome("civilian", "jcu.civilian.indicators", RECEIVERS, 1, 123456)],
            )
        )
        self._receive = encoder.encode(
            AuditRecord(action="receive", organisation="enisa", message_id="m",
                        decision="allow", content_hash=bytes(32), labels=labels,
                        rule_ids=("tlp-amber-community",),
                        details={"topic": "jcu.civilian.indicators", "partition": "1",
                                 "offset": "123456", "group": "jcu.subscriber.enisa",
                                 "sender": PUBLISHER})
        )  # fmt: skip

    @property
    def points(self) -> tuple[str, ...]:
        return tuple(self._points)

    def _leaves(
        self, ep: str, count: int, content: bytes, n: int
    ) -> Iterator[tuple[str, str, bytes]]:
        """`n` leaves of one kind, as one append writes them: a leaf pack (more past its
        size bound), then a checkpoint if one is due."""
        p = self._points[ep]
        first = p.tree.size
        leaves = []
        for _ in range(n):
            data = p.sealer.seal(p.tree.size, p.last, count, content)
            p.last = leaf_hash(data)
            p.tree.append(p.last)
            p.since.append(p.last)
            leaves.append(data)
        for start, end in pack_bounds([len(leaf) for leaf in leaves]):
            yield "d", ep, self._packs.encode(ep, first + start, leaves[start:end])
        if p.tree.size - p.checkpoint >= self._every:
            yield from self._checkpoint(ep)

    def _checkpoint(self, ep: str) -> Iterator[tuple[str, str, bytes]]:
        p = self._points[ep]
        if p.tree.size == p.checkpoint:
            return
        proof = consistency_proof_from(p.checkpoint, p.frontier, p.since)
        cp = sign_checkpoint(p.signer, ep, p.tree.size, p.tree.root())
        yield "c", ep, encode_checkpoint(self._store, cp, p.checkpoint, proof)
        p.checkpoint, p.frontier, p.since = p.tree.size, p.tree.frontier, []

    def messages(self, n: int, batch: int = BATCH) -> Iterator[tuple[str, str, bytes]]:
        """The leaf packs of `n` messages in batches of `batch`, then a final checkpoint of
        every enforcement point."""
        publisher = f"{PUBLISHER}/publish"
        for done in range(0, n, batch):
            k = min(batch, n - done)
            yield from self._leaves(publisher, 14, self._publish, k)
            yield from self._leaves(publisher, len(RECEIVERS), self._send, k)
            for r in RECEIVERS:
                yield from self._leaves(f"{r}/receive", 1, self._receive, k)
        for ep in self._points:
            yield from self._checkpoint(ep)


async def to_kafka(
    kafka: KafkaConnection, log: SyntheticLog, messages: int, topics: tuple[str, str] | None = None
) -> tuple[str, str]:
    """The log produced to fresh one-partition topics (decisions, checkpoints), as the
    enforcement points' producers write it; returns the topic names."""
    import asyncio
    import uuid

    from broker.kafka.clients import reliable_producer
    from broker.kafka.topics import TopicSpec, ensure_topics

    if topics is None:
        suffix = uuid.uuid4().hex[:8]
        topics = (f"bench.verify.decisions.{suffix}", f"bench.verify.checkpoints.{suffix}")
    await ensure_topics(kafka, [TopicSpec(t, partitions=1) for t in topics])
    producer = reliable_producer(kafka, linger_ms=20)
    await producer.start()
    try:
        pending = []
        for kind, ep, value in log.messages(messages):
            topic = topics[0] if kind == "d" else topics[1]
            pending.append(await producer.send(topic, value=value, key=ep.encode(), partition=0))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return topics


def write_files(log: SyntheticLog, messages: int, directory: Path) -> tuple[Path, Path]:
    """The log as two files of (enforcement point, value) records: what a file-backed reader
    hands the verifier in place of the two topics."""
    directory.mkdir(parents=True, exist_ok=True)
    decisions, checkpoints = directory / "decisions.bin", directory / "checkpoints.bin"
    with decisions.open("wb") as d, checkpoints.open("wb") as c:
        for kind, ep, value in log.messages(messages):
            name = ep.encode()
            (d if kind == "d" else c).write(
                struct.pack(">HI", len(name), len(value)) + name + value
            )
    return decisions, checkpoints


def read_file(path: Path) -> Iterator[tuple[str, bytes, int]]:
    """(enforcement point, value, offset) of each record of a file `write_files` wrote,
    read in small pieces: nothing of it is held but the record in hand."""
    with path.open("rb", buffering=1 << 20) as f:
        offset = 0
        while header := f.read(6):
            name_len, value_len = struct.unpack(">HI", header)
            name = f.read(name_len).decode()
            yield name, f.read(value_len), offset
            offset += 1


#: Runs argv[2:], writes its exit code and peak RSS (KiB) to argv[1]. Started fresh, so its
#: own memory is small: Linux carries a process's peak RSS over fork and exec (ru_maxrss
#: starts at what the forking process held), and a large parent would be measured too.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n"
)


def peak_rss(argv: list[str], report: Path, **popen: object) -> tuple[int, float]:
    """Run `argv`; its exit code and peak resident memory in MiB, measured by a small launcher
    process (so the caller's own memory is not counted)."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(report), *argv],
        check=True,
        **popen,  # type: ignore[arg-type]
    )
    code, kib = report.read_text().split()
    return int(code), int(kib) / 1024
