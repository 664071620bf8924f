"""AuditLog on a real Kafka broker: append, checkpoint, restart, crash with SIGKILL, verify."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit import (
    AuditKeys,
    AuditLog,
    AuditRecord,
    DecisionSet,
    InclusionProof,
    LoggedRecord,
    Prover,
    VerificationReport,
    Verifier,
    decode_records,
    verify,
)
from broker.audit._codec import decode_checkpoint
from broker.audit.state import load_state, state_path
from broker.audit.topic import read_topic
from broker.errors import AuditError, KafkaForbidden, MalformedRecord
from broker.kafka.clients import reliable_producer
from broker.kafka.connection import KafkaConnection, read_client_file
from broker.kafka.topics import TopicSpec, ensure_topics
from broker.policy import Decision
from broker.schemas import SchemaStore
from tests.waiting import until

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[3]
EP = "cert-eu/publish"


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    return SchemaStore.load(REPO / "schemas")


@pytest.fixture
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
async def topics(kafka_admin: KafkaConnection) -> tuple[str, str]:
    """Fresh one-partition audit topics for one test (the contract names are shared state)."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"test.audit.decisions.{suffix}", f"test.audit.checkpoints.{suffix}")
    await ensure_topics(kafka_admin, [TopicSpec(n, partitions=1) for n in names])
    return names


def record(i: int) -> AuditRecord:
    return AuditRecord(
        action="publish",
        organisation="isac-energy" if i % 2 else "enisa",
        message_id=f"msg-{i}",
        decision="deny" if i % 5 == 0 else "allow",
        content_hash=bytes(32),
        labels={"tlp": "GREEN"},
        rule_ids=("tlp-green-community",),
        reasons=("shared with the community",),
    )


def open_log(
    kafka: KafkaConnection,
    key: ed25519.Ed25519PrivateKey,
    state: Path,
    topics: tuple[str, str],
    store: SchemaStore,
    every: int = 10,
) -> AuditLog:
    return AuditLog(
        EP,
        key,
        kafka,
        state,
        checkpoint_every=every,
        checkpoint_interval=60,
        store=store,
        decisions_topic=topics[0],
        checkpoints_topic=topics[1],
    )


async def verify_topics(
    kafka: KafkaConnection,
    topics: tuple[str, str],
    store: SchemaStore,
    key: ed25519.Ed25519PrivateKey,
) -> VerificationReport:
    decisions = await read_topic(kafka, topics[0])
    checkpoints = await read_topic(kafka, topics[1])
    return verify(store, decisions, checkpoints, lambda ep: [key.public_key()])


async def logged(
    kafka: KafkaConnection, topics: tuple[str, str], store: SchemaStore, state: Path
) -> list[LoggedRecord]:
    """Every decision on the topic, read with the log's own audit key (in its state dir)."""
    records, bad = decode_records(store, await read_topic(kafka, topics[0]), AuditKeys.open(state))
    assert bad == 0
    return records


async def checkpoint_sizes(
    kafka: KafkaConnection, topics: tuple[str, str], store: SchemaStore
) -> list[int]:
    raws = await read_topic(kafka, topics[1])
    return [decode_checkpoint(store, r.value).signed.tree_size for r in raws]


async def prove_on(
    kafka: KafkaConnection,
    topics: tuple[str, str],
    store: SchemaStore,
    key: ed25519.Ed25519PrivateKey,
    state: Path,
    decision_id: str,
) -> InclusionProof:
    keys = AuditKeys.open(state)
    v = Verifier(store, lambda ep: [key.public_key()], audit_keys=keys)
    for c in await read_topic(kafka, topics[1]):
        v.checkpoint(c)
    prover = Prover(store, decision_id, keys, v.candidates)
    for r in await read_topic(kafka, topics[0]):
        v.record(r)
        prover.record(r)
    report = v.finish()
    ep = report.report(prover.enforcement_point or "")
    return prover.result(ep, lambda name: [key.public_key()])


async def test_appended_decisions_verify_and_prove(kafka_admin, topics, store, key, tmp_path):
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        entries = await asyncio.gather(*(log.append(record(i)) for i in range(35)))
    assert sorted(e.index for e in entries) == list(range(35))
    report = await verify_topics(kafka_admin, topics, store, key)
    (ep,) = report.reports
    assert ep.ok, ep.failure
    # every 10 records, plus the final one on stop
    assert await checkpoint_sizes(kafka_admin, topics, store) == [10, 20, 30, 35]
    assert (ep.records, ep.checkpoints, ep.sealed) == (35, 4, 35)
    p = await prove_on(kafka_admin, topics, store, key, tmp_path, entries[17].decision_id)
    assert p.verified and p.record.index == entries[17].index
    state = load_state(state_path(tmp_path, EP))
    assert state is not None and state.tree_size == 35 and state.checkpoint is not None


async def test_a_messages_decisions_share_one_leaf(kafka_admin, topics, store, key, tmp_path):
    """Decisions about one message go in one leaf, whether as records or as a DecisionSet;
    each stays provable and queryable on its own."""
    decisions = [
        Decision(
            f"org-{n}",
            "allow" if n < 5 else "deny",
            (f"rule-{n % 3}",),
            ("basis",),
            reasons=("why",),
        )
        for n in range(14)
    ]
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        as_records = await log.append_many(
            [
                dataclasses.replace(
                    record(0), organisation=f"org-{n}", decision_id=str(uuid.uuid4())
                )
                for n in range(14)
            ]
        )
        sets = await log.append_sets(
            [
                DecisionSet(
                    "publish",
                    f"msg-set-{m}",
                    tuple(decisions),
                    content_hash=bytes(32),
                    labels={"tlp": "AMBER"},
                    policy_bundle_hash="ab" * 32,
                )
                for m in range(3)
            ]
        )
    assert {e.index for e in as_records} == {0}
    assert [s.index for s in sets] == [1, 2, 3] and all(len(s.decision_ids) == 14 for s in sets)
    report = await verify_topics(kafka_admin, topics, store, key)
    (ep,) = report.reports
    assert ep.ok and (ep.records, ep.decisions) == (4, 56)
    middle = sets[1].decision_ids[7]
    proof = await prove_on(kafka_admin, topics, store, key, tmp_path, middle)
    assert proof.verified and proof.record.index == 2
    assert (proof.record.record.organisation, proof.record.record.decision) == ("org-7", "deny")
    assert proof.record.record.message_id == "msg-set-1"


async def test_append_many_gives_consecutive_indices(kafka_admin, topics, store, key, tmp_path):
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        first = await log.append(record(0))
        batch = await log.append_many([record(i) for i in range(1, 24)])
        assert [e.index for e in batch] == list(range(1, 24)) and first.index == 0
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok
    assert await checkpoint_sizes(kafka_admin, topics, store) == [10, 20, 24]
    records = await logged(kafka_admin, topics, store, tmp_path)
    assert [r.record.message_id for r in records] == [f"msg-{i}" for i in range(24)]


async def test_checkpoint_after_the_interval_seals_a_quiet_log(
    kafka_admin, topics, store, key, tmp_path
):
    log = AuditLog(
        EP,
        key,
        kafka_admin,
        tmp_path,
        checkpoint_every=1000,
        checkpoint_interval=0.2,
        store=store,
        decisions_topic=topics[0],
        checkpoints_topic=topics[1],
    )
    async with log:
        for i in range(3):
            await log.append(record(i))
        await until(lambda: log.last_checkpoint is not None, "the timed checkpoint")
        assert log.last_checkpoint is not None and log.last_checkpoint.tree_size == 3


async def test_a_record_that_does_not_encode_is_refused_alone(
    kafka_admin, topics, store, key, tmp_path
):
    bad = dataclasses.replace(record(1), labels={"tlp": "PURPLE"})
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        await log.append(record(0))
        results = await asyncio.gather(
            log.append(bad), log.append(record(2)), return_exceptions=True
        )
        assert isinstance(results[0], MalformedRecord)
        assert not isinstance(results[1], BaseException) and results[1].index == 1
        with pytest.raises(MalformedRecord):
            await log.append_many([record(3), bad])  # all or nothing
        assert (await log.append(record(4))).index == 2
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok
    records = await logged(kafka_admin, topics, store, tmp_path)
    assert [r.record.message_id for r in records] == ["msg-0", "msg-2", "msg-4"]


async def test_restart_continues_the_tree(kafka_admin, topics, store, key, tmp_path):
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        for i in range(15):
            await log.append(record(i))
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        assert log.size == 15
        entry = await log.append(record(15))
        assert entry.index == 15
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok and report.reports[0].records == 16


async def test_lost_state_is_rebuilt_from_the_topic(kafka_admin, topics, store, key, tmp_path):
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        for i in range(12):
            await log.append(record(i))
    state_path(tmp_path, EP).unlink()
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        assert log.size == 12
        await log.append(record(12))
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok and report.reports[0].records == 13


async def test_a_second_writer_for_the_same_enforcement_point_is_refused(
    kafka_admin, topics, store, key, tmp_path
):
    async with open_log(kafka_admin, key, tmp_path, topics, store):
        with pytest.raises(AuditError, match="another process"):
            await open_log(kafka_admin, key, tmp_path, topics, store).start()


async def test_append_before_start_is_an_error(kafka_admin, topics, store, key, tmp_path):
    with pytest.raises(AuditError, match="not started"):
        await open_log(kafka_admin, key, tmp_path, topics, store).append(record(0))


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from cryptography.hazmat.primitives import serialization
    from broker import logs
    from broker.audit import AuditLog, AuditRecord
    from broker.kafka.connection import read_client_file
    from broker.schemas import SchemaStore

    logs.configure("console", "WARNING")  # log lines to stderr; stdout carries the acks

    client_file, key_file, state, decisions, checkpoints, schemas = sys.argv[1:7]
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    kafka = read_client_file(Path(client_file))

    async def main():
        log = AuditLog("cert-eu/publish", key, kafka, Path(state), checkpoint_every=50,
                       checkpoint_interval=60, store=SchemaStore.load(Path(schemas)),
                       decisions_topic=decisions, checkpoints_topic=checkpoints)
        await log.start()
        i = 0
        async def one(n):
            rec = AuditRecord(action="receive", organisation="enisa", message_id=f"m{n}",
                              decision="allow")
            entry = await log.append(rec)
            print(entry.decision_id, flush=True)  # acknowledged: the PEP may act on it now
        while True:  # never stops cleanly: the test kills it
            await asyncio.gather(*(one(i + j) for j in range(7)))
            i += 7

    asyncio.run(main())
    """
)


async def writer_only(admin: KafkaConnection, topics: tuple[str, str], where: Path) -> Path:
    """A principal of this test's own that may write the audit topics and not read them, as an
    enforcement point's (docs/deployment.md); its client file."""
    from broker.kafka.acl import AclPlan, AclRule
    from broker.kafka.acl_admin import apply_plan

    name = f"audit-writer-{uuid.uuid4().hex[:8]}"
    rules = frozenset(AclRule(f"User:{name}", "topic", "literal", t, "WRITE") for t in topics)
    # A plan that speaks for this principal only: the session's walls are not its business.
    plan = AclPlan(
        rules,
        frozenset({name}),
        frozenset(),
        principals=frozenset({f"User:{name}"}),
        topic_prefix=None,
    )
    done = await apply_plan(admin, plan, credentials_dir=where)
    return done.credential_files[name]


async def test_enforcement_point_killed_mid_stream_loses_no_decision(
    kafka_admin, topics, store, key, tmp_path
):
    """SIGKILL twice mid-stream, as a principal that may not read the audit topics back: every
    acknowledged decision is in the log once, and the log verifies."""
    key_file = tmp_path / "test-signing-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    client_file = await writer_only(kafka_admin, topics, tmp_path / "credentials")
    writer = read_client_file(client_file)
    state = tmp_path / "state"
    acknowledged: list[str] = []
    for round_ in range(2):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                str(client_file),
                str(key_file),
                str(state),
                *topics,
                str(REPO / "schemas"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        target = 180 + 23 * round_  # not a multiple of the checkpoint interval
        seen = 0
        while seen < target:
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, proc.stderr.read().decode() if proc.stderr else "writer died"
            acknowledged.append(line.decode().strip())
            seen += 1
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        acknowledged += rest.decode().split()
        assert proc.returncode == -signal.SIGKILL

    with pytest.raises(KafkaForbidden):
        await read_topic(writer, topics[0])  # the wall the writer works behind
    # The killed writer left records after its last checkpoint; they are unsealed until restart.
    before = (await verify_topics(kafka_admin, topics, store, key)).reports[0]
    assert before.ok, before.failure
    assert before.unsealed > 0

    async with open_log(writer, key, state, topics, store, every=50) as log:
        # The tree: what the topic holds, and perhaps leaves sent that Kafka never took.
        assert log.size >= before.records
        await log.append(record(999))

    report = await verify_topics(kafka_admin, topics, store, key)
    (ep,) = report.reports
    assert ep.ok, ep.failure
    assert ep.unsealed == 0 and ep.records == log.size
    ids = [r.record.decision_id for r in await logged(kafka_admin, topics, store, state)]
    missing = set(acknowledged) - set(ids)
    assert not missing, f"{len(missing)} acknowledged decisions are not in the log"
    assert len(set(ids)) == len(ids) == ep.records  # no decision logged twice
    proof = await prove_on(kafka_admin, topics, store, key, state, acknowledged[-1])
    assert proof.verified


async def test_a_resent_leaf_is_read_once(kafka_admin, topics, store, key, tmp_path):
    """A restart re-sends the leaves after the last checkpoint byte for byte; a reader keeps
    one of each, and the log verifies."""
    log = open_log(kafka_admin, key, tmp_path, topics, store, every=1000)
    await log.start()
    for i in range(5):
        await log.append(record(i))
    # Crash: the process ends without a checkpoint (no stop()); the state stays at size 0.
    await log._stop_producer()
    log._lock_file.release()
    async with open_log(kafka_admin, key, tmp_path, topics, store, every=1000) as again:
        assert again.size == 5
    raw = await read_topic(kafka_admin, topics[0])
    assert len(raw) == 10  # each leaf on the topic twice, identical in every byte
    assert [(r.value, r.claimed_index) for r in raw[:5]] == [
        (r.value, r.claimed_index) for r in raw[5:]
    ]
    # five appends, five packs; the re-send is one pack of the five, grouped otherwise
    assert len({r.offset for r in raw[:5]}) == 5 and len({r.offset for r in raw[5:]}) == 1
    records = await logged(kafka_admin, topics, store, tmp_path)
    assert [r.record.message_id for r in records] == [f"msg-{i}" for i in range(5)]
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok and report.reports[0].records == 5 and report.reports[0].unsealed == 0


async def test_a_restart_signs_only_its_own_records_and_verify_names_a_forged_one(
    kafka_admin, topics, store, key, tmp_path
):
    """Anyone who may write the decisions topic can key a record with our enforcement point
    and continue our chain. A restart builds the tree from its own journal only, so its
    checkpoints never cover that record, and verification names it as inserted."""
    from broker.audit._codec import encode_leaf

    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        for i in range(3):
            await log.append(record(i))
        size, last = log.size, log._last_leaf
    # Even with the enforcement point's audit key (the worst case): never signed over.
    forged = encode_leaf(store, EP, size, last, record(99), AuditKeys.open(tmp_path).require(EP))
    producer = reliable_producer(kafka_admin)
    await producer.start()
    try:
        state = load_state(state_path(tmp_path, EP))
        assert state is not None
        sent = await producer.send_and_wait(
            topics[0], forged, key=EP.encode(), partition=state.partition
        )
    finally:
        await producer.stop()
    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        assert log.size == size
        for i in range(3, 5):
            await log.append(record(i))
    report = await verify_topics(kafka_admin, topics, store, key)
    (ep,) = report.reports
    assert ep.failure is not None and ep.failure.kind == "inserted"
    assert ep.failure.offset == sent.offset


@pytest.mark.parametrize("behind_the_wall", [False, True], ids=["reader", "writer-only"])
async def test_a_restart_extends_the_newest_checkpoint_it_signed_even_if_its_state_missed_it(
    kafka_admin, topics, store, key, tmp_path, behind_the_wall
):
    """A crash after a checkpoint reached Kafka but before the state saying so was saved: the
    restarted log must extend that checkpoint, not the older one its state names (else the
    next checkpoint's consistency proof starts from the wrong size: a witness refuses it).
    It kept the checkpoint before sending it: behind the wall it re-sends it, byte for byte,
    instead of reading the checkpoints topic."""
    import shutil

    kafka = kafka_admin
    if behind_the_wall:
        kafka = read_client_file(await writer_only(kafka_admin, topics, tmp_path / "credentials"))
    async with open_log(kafka, key, tmp_path, topics, store, every=1000) as log:
        await log.append_many([record(i) for i in range(10)])
    state = state_path(tmp_path, EP)
    journal = state.with_suffix(".journal")
    saved = state.read_bytes()
    log = open_log(kafka, key, tmp_path, topics, store, every=1000)
    await log.start()
    await log.append_many([record(i) for i in range(10, 15)])
    shutil.copy(journal, tmp_path / "journal.copy")  # what the crash leaves: records 10..14
    await log.stop()  # checkpoint 15 written, state saved ...
    state.write_bytes(saved)  # ... but as if it had not been
    shutil.copy(tmp_path / "journal.copy", journal)
    async with open_log(kafka, key, tmp_path, topics, store, every=1000) as log:
        assert log.size == 15 and log.last_checkpoint is not None
        assert log.last_checkpoint.tree_size == 15
        await log.append(record(15))
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok, report.reports[0].failure
    assert report.reports[0].records == 16
    # A re-sent checkpoint is the same record again, read once.
    assert await checkpoint_sizes(kafka_admin, topics, store) == [10, 15, 16]


async def test_a_restart_refuses_a_checkpoint_of_its_own_that_its_records_do_not_bear_out(
    kafka_admin, topics, store, key, tmp_path
):
    from broker.audit._codec import encode_checkpoint
    from broker.audit.checkpoint import sign_checkpoint

    async with open_log(kafka_admin, key, tmp_path, topics, store) as log:
        await log.append_many([record(i) for i in range(15)])
    producer = reliable_producer(kafka_admin)
    await producer.start()
    try:
        longer = sign_checkpoint(key, EP, 20, bytes(32))  # covers records that are not there
        await producer.send_and_wait(
            topics[1], encode_checkpoint(store, longer, 15, [bytes(32)]), key=EP.encode()
        )
    finally:
        await producer.stop()
    with pytest.raises(AuditError, match="checkpoint of 20 records but the topic holds 15"):
        await open_log(kafka_admin, key, tmp_path, topics, store).start()


async def test_leaves_since_a_held_mark_come_from_the_journal_behind_the_wall(
    kafka_admin, topics, store, key, tmp_path
):
    """What a crashed subscriber or publisher decided after its mark is read back from the
    log's journal (it may not read the audit topic), kept past checkpoints while held."""
    from broker.audit import AuditMark

    writer = read_client_file(await writer_only(kafka_admin, topics, tmp_path / "credentials"))
    log = open_log(writer, key, tmp_path, topics, store, every=1000)
    await log.start()
    await log.append_many([record(i) for i in range(3)])
    mark = log.mark()
    log.hold("ledger", mark)  # the caller's own store holds this mark now
    await log.append_many([record(i) for i in range(3, 8)])
    await log.checkpoint()  # covers all 8 leaves; the journal keeps 3.. for the holder
    await log._stop_producer()  # a crash: no stop()
    log._lock_file.release()
    async with open_log(writer, key, tmp_path, topics, store, every=1000) as again:
        leaves = await again.leaves_since(mark)
        assert [leaf.record.message_id for leaf in leaves] == [f"msg-{i}" for i in range(3, 8)]
        assert await again.leaves_since(again.mark()) == []
        # No one held 0: the journal let it go, and this principal may not read the topic.
        with pytest.raises(AuditError, match="may not read"):
            await again.leaves_since(AuditMark(0, 0))


async def test_the_leaves_of_one_append_are_one_record_split_only_past_the_bound(
    kafka_admin, topics, store, key, tmp_path
):
    """A leaf per message, a Kafka record per append (a leaf pack): one for a batch of 20
    messages, a few for 1,500 (each pack under MAX_PACK_BYTES), one for a single append."""
    async with open_log(kafka_admin, key, tmp_path, topics, store, every=5000) as log:
        await log.append_many([record(i) for i in range(20)])
        await log.append_many([record(i) for i in range(20, 1520)])
        await log.append(record(1520))
    raw = await read_topic(kafka_admin, topics[0])
    assert [r.claimed_index for r in raw] == list(range(1521))  # one leaf per message
    offsets = [r.offset for r in raw]
    assert len(set(offsets[:20])) == 1 and len(set(offsets[1520:])) == 1
    assert 1 < len(set(offsets[20:1520])) < 10
    assert len({r.offset for r in raw}) == len(set(offsets[20:1520])) + 2
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok and report.reports[0].records == 1521


async def test_a_restart_after_a_checkpoint_inside_a_pack(
    kafka_admin, topics, store, key, tmp_path
):
    """Checkpoints at 10 and 20 fall inside one pack of 25 leaves; killed there, the restart
    finds leaf 19 in that pack (its state names the pack's offset), re-sends 20..24 from the
    journal and seals them; the log verifies and reads each decision once."""
    log = open_log(kafka_admin, key, tmp_path, topics, store, every=10)
    await log.start()
    await log.append_many([record(i) for i in range(25)])
    await log._write_checkpoints()  # the two snapshots taken inside the pack
    state = load_state(state_path(tmp_path, EP))
    assert state is not None and state.tree_size == 20
    raw = await read_topic(kafka_admin, topics[0])
    assert {r.offset for r in raw} == {state.next_offset - 1}  # one pack holds all 25
    # Crash: no stop(), no checkpoint past 20.
    await log._stop_producer()
    log._lock_file.release()
    async with open_log(kafka_admin, key, tmp_path, topics, store, every=10) as again:
        assert again.size == 25
        mark = again.mark()
    assert mark.index == 25
    report = await verify_topics(kafka_admin, topics, store, key)
    assert report.ok, report.reports[0].failure
    assert (report.reports[0].records, report.reports[0].sealed) == (25, 25)
    assert [r.record.message_id for r in await logged(kafka_admin, topics, store, tmp_path)] == [
        f"msg-{i}" for i in range(25)
    ]
