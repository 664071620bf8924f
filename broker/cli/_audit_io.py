"""What the `jcu audit` verbs share: this node's keys and memories, and one streamed reading.

A verification on a node takes, besides the audit topics: the registry
snapshot the node accepted (whose keys signed what), the audit keys it holds
(its own enforcement points', and any an auditor was given with `--keys`),
and every checkpoint it saw outside Kafka: its own enforcement points' last
checkpoints, its witness's state, its last verification's state, and files
(`--seen`: a witness's export, a proof bundle's checkpoint, a cosigned note).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from broker.audit import (
    AuditKeys,
    KeyResolver,
    KeyValidity,
    Seen,
    SignedCheckpoint,
    VerificationPolicy,
    VerificationReport,
    Verifier,
    WitnessState,
)
from broker.audit.state import load_verify_state, own_checkpoints, save_verify_state
from broker.audit.topic import TopicRecord, iter_topic
from broker.audit.witness import keys_and_validity, load_export
from broker.config import Settings
from broker.errors import AuditError, ConfigError, JcuError
from broker.kafka.connection import KafkaConnection
from broker.schemas import SchemaStore
from broker.trust.keyring import Keyring
from broker.trust.node import NodeHome


@dataclass(frozen=True, slots=True)
class Topics:
    decisions: str
    checkpoints: str
    cosignatures: str


def node_participant(settings: Settings) -> str | None:
    """This home's organisation, or None if JCU_HOME is not a node (an auditor's machine)."""
    try:
        return NodeHome.open(settings.home).participant
    except JcuError:
        return None


def trusted_keyring(settings: Settings, store: SchemaStore) -> Keyring:
    """The keyring of the registry snapshot this node accepted ($JCU_HOME/registry)."""
    from broker.trust.state import TrustedRegistry, registry_dir

    trusted = TrustedRegistry.load(registry_dir(settings), store)
    trusted.registry  # noqa: B018  (raises, saying what to do, if no snapshot was accepted)
    return trusted.keyring


def keyring_resolvers(settings: Settings, store: SchemaStore) -> tuple[KeyResolver, KeyValidity]:
    """Checkpoint and cosignature keys from the registry snapshot this node accepted.

    A name `<participant>/<side>` (an enforcement point, or a witness) signs
    with a registered Ed25519 signing key of its participant, which must have
    been valid (not revoked, retired or expired) when it signed.
    """
    return keys_and_validity(trusted_keyring(settings, store))


def audit_keys(settings: Settings, extra: Sequence[Path]) -> AuditKeys:
    """The audit keys this node holds for its own enforcement points, and those in `extra`."""
    participant = node_participant(settings)
    keys = (
        AuditKeys.open(settings.home / "audit", owner=participant, create=False)
        if participant is not None
        else AuditKeys()
    )
    return keys.load(extra)


def witness_dir(settings: Settings, checkpoints_topic: str) -> Path:
    return settings.home / "witness" / quote(checkpoints_topic, safe="")


def verify_state_path(settings: Settings, decisions_topic: str) -> Path:
    return settings.home / "audit" / "verified" / f"{quote(decisions_topic, safe='')}.json"


def _read_seen_file(path: Path) -> list[SignedCheckpoint]:
    """A witness export, a proof bundle (its checkpoint), or one signed checkpoint note."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--seen {path}: cannot read it ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    try:
        if isinstance(data, dict) and "notes" in data:
            return load_export(text)
        if isinstance(data, dict) and isinstance(data.get("checkpoint"), str):
            return [SignedCheckpoint.parse(data["checkpoint"])]
        return [SignedCheckpoint.parse(text)]
    except JcuError as exc:
        raise ConfigError(
            f"--seen {path}: not a witness export, proof bundle or signed checkpoint ({exc})"
        ) from None


def seen_here(
    settings: Settings, topics: Topics, files: Sequence[Path]
) -> tuple[list[Seen], list[SignedCheckpoint]]:
    """What this node saw outside Kafka (trusted as its own memory), and the signed notes
    of `files` (checked like cosignatures: only what verifies counts)."""
    seen = [
        Seen(cp.origin, cp.tree_size, cp.root_hash, f"this node's state of {cp.origin}")
        for cp in own_checkpoints(settings.home / "audit", topics.decisions)
    ]
    participant = node_participant(settings)
    if participant is not None:
        directory = witness_dir(settings, topics.checkpoints)
        if (directory / "state.json").exists():
            seen += WitnessState.load(directory, f"{participant}/witness").seen()
    notes = [cp for f in files for cp in _read_seen_file(f)]
    return seen, notes


class Progress:
    """A line on stderr every few seconds while a long reading goes on (when wanted)."""

    def __init__(self, enabled: bool, every: float = 5.0) -> None:
        self._enabled = enabled
        self._every = every
        self._start = self._last = time.monotonic()
        self.count = 0

    def __call__(self, n: int) -> None:
        self.count += n
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            rate = self.count / max(now - self._start, 1e-9)
            print(f"jcu: read {self.count:,} audit leaves ({rate:,.0f}/s)", file=sys.stderr)


async def verification(
    store: SchemaStore,
    settings: Settings,
    kafka: KafkaConnection,
    topics: Topics,
    *,
    policy: VerificationPolicy,
    keys: AuditKeys,
    seen_files: Sequence[Path] = (),
    full: bool = False,
    save: bool = True,
    progress: Progress | None = None,
    also: Callable[[TopicRecord], None] | None = None,
    prepared: Callable[[Verifier], None] | None = None,
) -> tuple[VerificationReport, Verifier]:
    """One streamed verification of the audit topics as this node sees them.

    `also` sees every record too (a `Prover`), `prepared` the verifier once
    the checkpoints are in (before the records). Unless `full`, it resumes from
    this node's last verification of these topics, and (with `save`) leaves
    where it got to for the next.
    """
    resolve, valid = keyring_resolvers(settings, store)
    state_path = verify_state_path(settings, topics.decisions)
    resume = None if full else load_verify_state(state_path)
    verifier = Verifier(store, resolve, valid, policy=policy, audit_keys=keys, resume=resume)
    async for batch in iter_topic(kafka, topics.checkpoints, missing_ok=True):
        for raw in batch:
            verifier.checkpoint(raw)
    async for batch in iter_topic(kafka, topics.cosignatures, missing_ok=True):
        for raw in batch:
            verifier.cosignature(raw)
    seen, notes = seen_here(settings, topics, seen_files)
    for s in seen:
        verifier.seen(s)
    for note in notes:
        if verifier.cosigned(note) == 0 and note.log_key(resolve(note.origin)) is not None:
            verifier.seen(Seen(note.origin, note.tree_size, note.root_hash, "a --seen file"))
    if prepared is not None:
        prepared(verifier)
    start = verifier.record_start()
    async for batch in iter_topic(kafka, topics.decisions, start=start, store=store):
        for raw in batch:
            verifier.record(raw)
            if also is not None:
                also(raw)
        if progress is not None:
            progress(len(batch))
    report = verifier.finish()
    if save:
        try:
            save_verify_state(state_path, report.state)
        except OSError as exc:
            raise AuditError(f"cannot save the verification state {state_path}: {exc}") from None
    return report, verifier
