"""`jcu audit verify / prove / verify-proof / query / explain / witness / keys`: check the audit
log, prove what is in it, and answer from it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from broker.audit import (
    POINT_SIDES,
    AuditKeys,
    EnforcementPointReport,
    InclusionProof,
    LoggedRecord,
    Prover,
    VerificationPolicy,
    VerificationReport,
    Witness,
    WitnessState,
    check_bundle,
    explain,
    iter_records,
    story,
    witness_round,
    write_bundle,
)
from broker.audit.query import ReadCount, matches
from broker.audit.record import ACTIONS, VERDICTS
from broker.audit.topic import iter_topic
from broker.cli._audit_io import (
    Progress,
    Topics,
    audit_keys,
    keyring_resolvers,
    node_participant,
    verification,
    witness_dir,
)
from broker.cli._node import acting_as, as_option
from broker.cli._options import connection_options, json_option, payload_type_option
from broker.cli._output import console, emit_json, table
from broker.config import Settings, load
from broker.errors import AuditVerificationError, ConfigError
from broker.files import write_private
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES, AUDIT_DECISIONS
from broker.schemas import SchemaStore, default_store


def _topic_options(f: Any) -> Any:
    f = click.option(
        "--cosignatures-topic",
        default=AUDIT_COSIGNATURES,
        show_default=True,
        help="Topic holding the witnesses' cosignatures.",
    )(f)
    f = click.option(
        "--checkpoints-topic",
        default=AUDIT_CHECKPOINTS,
        show_default=True,
        help="Topic holding the signed checkpoints.",
    )(f)
    return click.option(
        "--decisions-topic",
        default=AUDIT_DECISIONS,
        show_default=True,
        help="Topic holding the audit leaves.",
    )(f)


_keys_option = click.option(
    "--keys",
    "key_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Audit keys an enforcement point's owner gave you (`jcu audit keys export`): a file "
    "or a directory of *.key files (repeatable). This node's own are always used.",
)
_json_option = json_option()


def _log_options(f: Any) -> Any:
    """Where the audit log is (connection and topics) and `--json`: every verb that reads it."""
    return connection_options(_topic_options(_json_option(f)))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _check_as(requested: str | None, settings: Settings) -> str:
    """This node's organisation; `--as` may name it, never another."""
    return acting_as(requested, settings)


def _reader_as(requested: str | None, settings: Settings) -> str | None:
    """Like `_check_as`, but a reader need not be a node (an auditor with --keys)."""
    return node_participant(settings) if requested is None else acting_as(requested, settings)


def _prepare() -> tuple[Settings, SchemaStore, KafkaConnection]:
    from broker.cli._node import catch_up_if_empty

    settings = load()
    store = default_store()
    _run(catch_up_if_empty(settings))
    return settings, store, settings.kafka


@click.group()
def audit() -> None:
    """Verify the audit log, prove a decision is in it, witness other logs, and ask it what was
    decided and why."""


# -- verify -----------------------------------------------------------------------------


def _point_row(r: EnforcementPointReport) -> dict[str, Any]:
    return {
        "enforcement_point": r.enforcement_point,
        "records": r.records,
        "decisions": r.decisions,
        "checkpoints": r.checkpoints,
        "sealed": r.sealed,
        "unsealed": r.unsealed if r.failure is None else None,
        "witnessed": r.witnessed,
        "witnesses": [
            {"witness": w.witness, "tree_size": w.tree_size, "time": w.time.isoformat()}
            for w in r.witnesses
        ],
        "seen": [{"tree_size": s.tree_size, "by": s.source} for s in r.seen],
        "resumed_from": r.resumed_from,
        "result": "ok" if r.failure is None else f"FAIL ({r.failure.kind})",
        "failure": None if r.failure is None else r.failure.message,
        "failure_kind": None if r.failure is None else r.failure.kind,
    }


def _witness_cell(r: EnforcementPointReport) -> str:
    if not r.witnesses:
        return "-"
    names = ", ".join(w.witness.partition("/")[0] for w in r.witnesses)
    return f"{r.witnessed} ({names})"


@audit.command("verify")
@click.option(
    "--witnesses",
    "min_witnesses",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Fail unless each log's latest checkpoint is cosigned by this many witnesses "
    "(other participants running `jcu audit witness`).",
)
@click.option(
    "--seen",
    "seen_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint someone saw, to hold the log to: a `jcu audit witness --export` file, a "
    "proof bundle or a signed checkpoint note (repeatable).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Verify from the start instead of resuming from this node's last verification.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="A line on stderr every 5 s (default: when stderr is a terminal).",
)
@_keys_option
@_log_options
def verify_command(
    min_witnesses: int,
    seen_files: tuple[Path, ...],
    full: bool,
    progress: bool | None,
    key_files: tuple[Path, ...],
    decisions_topic: str,
    checkpoints_topic: str,
    cosignatures_topic: str,
    as_json: bool,
) -> None:
    """Recompute every enforcement point's Merkle tree and check every checkpoint.

    Streams the log (memory does not grow with it) and resumes from this node's
    last verification unless --full. Checks each checkpoint's signature and
    that it extends the one before; the witnesses' cosignatures; and that the
    log holds, root and all, every checkpoint this node (its own logs, its
    witness) or a --seen file saw. Exits 1 on any failure, naming the first bad
    record or checkpoint.
    """
    settings, store, server = _prepare()
    topics = Topics(decisions_topic, checkpoints_topic, cosignatures_topic)
    report, _ = _run(
        verification(
            store,
            settings,
            server,
            topics,
            policy=VerificationPolicy().with_witnesses(min_witnesses),
            keys=audit_keys(settings, key_files),
            seen_files=seen_files,
            full=full,
            progress=Progress(sys.stderr.isatty() if progress is None else progress),
        )
    )
    _print_report(report, as_json)
    report.raise_for_failure()


def _print_report(report: VerificationReport, as_json: bool) -> None:
    rows = [_point_row(r) for r in report.reports]
    if as_json:
        emit_json({"ok": report.ok, "enforcement_points": rows})
        return
    console().print(
        table(
            "audit log",
            [
                "enforcement point",
                "records",
                "decisions",
                "checkpoints",
                "unsealed",
                "witnessed",
                "result",
            ],
            [
                [
                    r.enforcement_point,
                    r.records,
                    r.decisions,
                    r.checkpoints,
                    r.unsealed if r.failure is None else "",
                    _witness_cell(r),
                    "ok" if r.failure is None else f"FAIL ({r.failure.kind})",
                ]
                for r in report.reports
            ],
        )
    )
    if not rows:
        click.echo(
            "the audit log is empty, and this node saw no checkpoint of it elsewhere "
            "(its own logs, its witness, --seen)"
        )


# -- prove and verify-proof --------------------------------------------------------------


def _record_json(rec: LoggedRecord) -> dict[str, Any]:
    r = rec.record
    return {
        "decision_id": r.decision_id,
        "time": r.time.isoformat(),
        "enforcement_point": rec.enforcement_point,
        "index": rec.index,
        "action": r.action,
        "organisation": r.organisation,
        "message_id": r.message_id,
        "content_hash": r.content_hash.hex() if r.content_hash is not None else None,
        "labels": dict(r.labels) if r.labels is not None else None,
        "decision": r.decision,
        "rule_ids": list(r.rule_ids),
        "legal_basis": list(r.legal_basis),
        "obligations": list(r.obligations),
        "redacted_fields": list(r.redacted_fields),
        "reasons": list(r.reasons),
        "rejection_reason": r.rejection_reason,
        "policy_bundle_hash": r.policy_bundle_hash,
        "thread": r.thread,
        "details": dict(r.details),
        "leaf_hash": rec.leaf_hash.hex(),
    }


def _bundle_material(settings: Settings, store: SchemaStore) -> tuple[bytes, bytes]:
    """The registry snapshot this node accepted and the authority key it trusts."""
    from broker.trust.state import TrustedRegistry, registry_dir

    trusted = TrustedRegistry.load(registry_dir(settings), store)
    if trusted.current is None:
        raise ConfigError("this node holds no registry snapshot; run `jcu registry sync`")
    return trusted.current.data, trusted.anchor.public_bytes_raw()


@audit.command("prove")
@click.argument("decision_id")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a proof bundle here, for `jcu audit verify-proof` on any machine.",
)
@as_option("Proving as this node's organisation")
@_keys_option
@_log_options
def prove_command(
    decision_id: str,
    out_path: Path | None,
    participant: str | None,
    key_files: tuple[Path, ...],
    decisions_topic: str,
    checkpoints_topic: str,
    cosignatures_topic: str,
    as_json: bool,
) -> None:
    """Prove that DECISION_ID is in the log: its record and its inclusion proof against the
    checkpoint the most witnesses cosigned, after verifying the whole log."""
    settings, store, server = _prepare()
    _check_as(participant, settings)
    keys = audit_keys(settings, key_files)
    resolve, _ = keyring_resolvers(settings, store)
    topics = Topics(decisions_topic, checkpoints_topic, cosignatures_topic)
    holder: list[Prover] = []

    def prepared(verifier: Any) -> None:
        holder.append(Prover(store, decision_id, keys, verifier.candidates))

    report, _ = _run(
        verification(
            store,
            settings,
            server,
            topics,
            policy=VerificationPolicy(),
            keys=keys,
            full=True,
            save=False,
            also=lambda raw: holder[0].record(raw),
            prepared=prepared,
            progress=Progress(sys.stderr.isatty()),
        )
    )
    prover = holder[0]
    result = prover.result(report.report(prover.enforcement_point or ""), resolve)
    if out_path is not None:
        snapshot, authority = _bundle_material(settings, store)
        write_private(out_path, write_bundle(result, snapshot, authority).encode())
    _print_proof(result, as_json, out_path)
    if not result.verified:
        raise AuditVerificationError(f"the inclusion proof of {decision_id} does not verify")


def _print_proof(result: InclusionProof, as_json: bool, out_path: Path | None) -> None:
    cp = result.checkpoint
    record = _record_json(result.record)
    data = {
        "record": record,
        "checkpoint": {
            "origin": cp.origin,
            "tree_size": cp.tree_size,
            "root_hash": cp.root_hash.hex(),
            "time": cp.time.isoformat(),
            "note": cp.note(),
        },
        "witnesses": list(result.witnesses),
        "leaf_index": result.record.index,
        "inclusion_proof": [h.hex() for h in result.path],
        "verified": result.verified,
        "bundle": str(out_path) if out_path else None,
    }
    if as_json:
        emit_json(data)
        return
    for name, value in record.items():
        click.echo(f"{name:>20}: {value}")
    witnessed = ", ".join(result.witnesses) or "no witness yet"
    click.echo(
        f"\ncheckpoint {cp.origin} size {cp.tree_size} root {cp.root_hash.hex()} "
        f"(signed {cp.time.isoformat()}; cosigned by {witnessed})"
    )
    click.echo(f"inclusion proof of leaf {result.record.index} ({len(result.path)} hashes):")
    for h in result.path:
        click.echo(f"  {h.hex()}")
    click.echo("verified: yes" if result.verified else "verified: NO")
    if out_path is not None:
        click.echo(f"proof bundle written to {out_path}: check it with `jcu audit verify-proof`")


@audit.command("verify-proof")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--authority-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The registry authority's public key (PEM) you trust. Without it, the key in the "
    "bundle is used and its id printed for you to compare.",
)
@click.option(
    "--min-witnesses",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Cosignatures by other participants the checkpoint must carry.",
)
@_json_option
def verify_proof_command(
    bundle: Path, authority_key: Path | None, min_witnesses: int, as_json: bool
) -> None:
    """Check a proof bundle (`jcu audit prove --out`) with no Kafka and no node state.

    Checks the registry snapshot against the authority key, the checkpoint's
    signature and witnesses against the keys that snapshot registers (valid at
    signing time), the inclusion proof against the checkpoint's root, and that
    the leaf opens with the bundle's key and holds the decision. Exits 1 naming
    the first thing that does not hold.
    """
    from broker.trust.state import load_anchor

    anchor = load_anchor(authority_key) if authority_key is not None else None
    try:
        text = bundle.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {bundle}: {exc}") from None
    checked = check_bundle(default_store(), text, authority_key=anchor, min_witnesses=min_witnesses)
    r = checked.record
    data = {
        "verified": True,
        "decision_id": r.decision_id,
        "enforcement_point": checked.enforcement_point,
        "leaf_index": checked.leaf_index,
        "organisation": r.organisation,
        "action": r.action,
        "decision": r.decision,
        "message_id": r.message_id,
        "time": r.time.isoformat(),
        "rule_ids": list(r.rule_ids),
        "legal_basis": list(r.legal_basis),
        "reasons": list(r.reasons),
        "details": dict(r.details),
        "checkpoint": {
            "tree_size": checked.checkpoint.tree_size,
            "time": checked.checkpoint.time.isoformat(),
            "signer_key_id": checked.signer_key_id,
        },
        "witnesses": [{"witness": w, "time": t.isoformat()} for w, t in checked.witnesses],
        "registry_epoch": checked.registry_epoch,
        "authority_key_id": checked.authority_key_id,
        "authority_key_from_bundle": checked.authority_from_bundle,
    }
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"verified: decision {r.decision_id} of {checked.enforcement_point} (leaf "
        f"{checked.leaf_index} of a tree of {checked.checkpoint.tree_size})"
    )
    click.echo(
        f"  {r.organisation}: {r.decision} ({r.action}) of message {r.message_id} "
        f"at {r.time.isoformat()}"
    )
    if r.rule_ids or r.legal_basis:
        click.echo(f"  rules {', '.join(r.rule_ids)}; legal basis {'; '.join(r.legal_basis)}")
    for w, t in checked.witnesses:
        click.echo(f"  cosigned by {w} at {t.isoformat()}")
    source = (
        "taken from the bundle: compare it with the one you trust"
        if checked.authority_from_bundle
        else "as given"
    )
    click.echo(
        f"  keys from registry epoch {checked.registry_epoch}, authority key "
        f"{checked.authority_key_id} ({source})"
    )


# -- query and explain -------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime | None = None, option: str = "--since") -> datetime:
    """An ISO 8601 time (UTC if no zone) or a duration back from now: 30m, 12h, 7d."""
    m = _RELATIVE.match(value.strip())
    if m:
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: give an ISO 8601 time (2026-11-27T12:00) "
            f"or a duration (30m, 12h, 7d)"
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _outcome(rec: LoggedRecord) -> str:
    reason = rec.record.rejection_reason
    return rec.record.decision + (f" ({reason})" if reason else "")


def _rows(records: Sequence[LoggedRecord]) -> list[list[Any]]:
    return [
        [
            r.record.time.strftime("%Y-%m-%d %H:%M:%S"),
            r.enforcement_point,
            r.index,
            r.record.decision_id,
            r.record.organisation,
            r.record.message_id,
            r.record.action,
            _outcome(r),
            ", ".join(r.record.rule_ids),
        ]
        for r in records
    ]


async def _read_records(
    store: SchemaStore,
    kafka: KafkaConnection,
    topic: str,
    keys: AuditKeys,
    wanted: Callable[[LoggedRecord], bool],
    count: ReadCount | None = None,
) -> list[LoggedRecord]:
    """The records `keys` open that are `wanted`, oldest first: streamed, only hits kept."""
    hits: list[LoggedRecord] = []
    count = count if count is not None else ReadCount()
    reached: dict[str, int] = {}  # across batches: a re-sent copy comes after its original
    async for batch in iter_topic(kafka, topic, store=store):
        hits += [r for r in iter_records(store, batch, keys, count, reached) if wanted(r)]
    return sorted(hits, key=lambda r: (r.record.time, r.enforcement_point, r.index))


def _content_filter(
    store: SchemaStore, content: Path | None, payload_type: str | None, keys: AuditKeys
) -> Any:
    """A test of a record's content hash against a payload given as JSON (keyed per point)."""
    if content is None:
        return None
    if payload_type is None:
        raise ConfigError("--content needs --type (the payload type of the record it holds)")
    from broker.record_json import from_json

    try:
        obj = json.loads(content.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--content {content}: not a JSON record ({exc})") from None
    record = from_json(store, payload_type, obj)
    digest = hashlib.sha256(store.encode(payload_type, record)).digest()

    def holds(r: LoggedRecord) -> bool:
        key = keys.point(r.enforcement_point)
        return key is not None and r.record.content_hash == key.content_hash_of_digest(digest)

    return holds


@audit.command("query")
@click.option("--message", "message_id", help="Only records about this message id.")
@click.option("--org", "organisation", help="Only records about this participant.")
@click.option("--decision", type=click.Choice(VERDICTS), help="Only this outcome.")
@click.option("--action", type=click.Choice(ACTIONS), help="Only this kind of act.")
@click.option("--rule", help="Only decisions this rule id took part in.")
@click.option("--since", help="Only records at or after this time (ISO 8601, or 30m, 12h, 7d).")
@click.option("--until", help="Only records before this time (ISO 8601, or 30m, 12h, 7d ago).")
@click.option("--ep", "enforcement_point", help="Only this enforcement point (cert-eu/publish).")
@click.option("--thread", help="Only records of this workflow thread (an assistance request id).")
@click.option(
    "--content",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Only records about this content (a JSON record; with --type): compared by the "
    "keyed content hash, so only with the enforcement point's audit key.",
)
@payload_type_option(help="The payload type of --content (Indicator, ...).")
@as_option("Reading as this node's organisation")
@_keys_option
@_log_options
def query_command(
    message_id: str | None,
    organisation: str | None,
    decision: str | None,
    action: str | None,
    rule: str | None,
    since: str | None,
    until: str | None,
    enforcement_point: str | None,
    thread: str | None,
    content: Path | None,
    payload_type: str | None,
    participant: str | None,
    key_files: tuple[Path, ...],
    decisions_topic: str,
    checkpoints_topic: str,
    cosignatures_topic: str,
    as_json: bool,
) -> None:
    """A table of the audit records that match every given filter, oldest first.

    Only the leaves of enforcement points whose audit key this node holds can
    be read: its own, and those given with --keys."""
    settings = load()
    _reader_as(participant, settings)
    store = default_store()
    keys = audit_keys(settings, key_files)
    now = datetime.now(UTC)
    start = parse_since(since, now) if since else None
    end = parse_since(until, now, "--until") if until else None
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--until {until} is not after --since {since}")
    holds = _content_filter(store, content, payload_type, keys)
    count = ReadCount()
    filters: dict[str, Any] = {
        "message_id": message_id,
        "organisation": organisation,
        "decision": decision,
        "rule": rule,
        "since": start,
        "until": end,
        "enforcement_point": enforcement_point,
        "action": action,
        "thread": thread,
    }

    def wanted(r: LoggedRecord) -> bool:
        return matches(r, **filters) and (holds is None or holds(r))

    hits = _run(_read_records(store, settings.kafka, decisions_topic, keys, wanted, count))
    if as_json:
        emit_json([_record_json(r) for r in hits])
        return
    console().print(
        table(
            f"{len(hits)} audit records",
            [
                "time (UTC)",
                "enforcement point",
                "#",
                "decision id",
                "organisation",
                "message",
                "act",
                "outcome",
                "rules",
            ],
            _rows(hits),
        )
    )
    if count.sealed:
        click.echo(
            f"{count.sealed} leaves of other enforcement points are sealed to this node "
            "(their owners can give you keys: `jcu audit keys export`)"
        )


@audit.command("explain")
@click.argument("message_id")
@click.option("--org", "organisation", help="Only what was recorded about this participant.")
@as_option("Reading as this node's organisation")
@_keys_option
@click.option("--full", is_flag=True, help="For a thread: every decision in words, not a summary.")
@_log_options
def explain_command(
    message_id: str,
    organisation: str | None,
    participant: str | None,
    key_files: tuple[Path, ...],
    decisions_topic: str,
    checkpoints_topic: str,
    cosignatures_topic: str,
    full: bool,
    as_json: bool,
) -> None:
    """Everything recorded about one message, per organisation, in plain words; for an
    assistance request (its id, or the first characters of it), the whole story of its case:
    every step, every node's decisions and outcomes, refusals included."""
    settings = load()
    _reader_as(participant, settings)
    store = default_store()
    keys = audit_keys(settings, key_files)

    in_thread: set[str] = set()  # ids of the messages of a matching thread, as found

    def wanted(r: LoggedRecord) -> bool:
        # A message's send outcome follows its decisions in the same log: its id is known
        # by then (send outcomes name the message, not its thread).
        thread = r.record.thread
        if thread is not None and (
            thread == message_id or (len(message_id) >= 4 and thread.startswith(message_id))
        ):
            in_thread.add(r.record.message_id)
            return True
        return r.record.message_id == message_id or r.record.message_id in in_thread

    records = _run(_read_records(store, settings.kafka, decisions_topic, keys, wanted))
    threads = {r.record.thread for r in records if r.record.thread}
    found = [t for t in threads if t == message_id] or [
        t for t in threads if len(message_id) >= 4 and t.startswith(message_id)
    ]
    if len(found) == 1 and organisation is None:
        _tell_story(settings, records, found[0], full, as_json)
        return
    words = explain(records, message_id, organisation)
    if as_json:
        emit_json(words)
        return
    click.echo(f"message {message_id}:")
    for org, sentences in words.items():
        for s in sentences:
            click.echo(f"  {org}: {s}")


def _tell_story(
    settings: Settings, records: Sequence[LoggedRecord], thread: str, full: bool, as_json: bool
) -> None:
    """A workflow thread (an assistance case) in time order, each message with its decisions;
    what each message was, where this node's case book knows it (the log holds no content)."""
    from broker.assist.book import step_names

    names = step_names(settings.home)
    messages = story(records, thread)
    if as_json:
        emit_json(
            {
                "thread": thread,
                "messages": [
                    {
                        "message_id": m.message_id,
                        "what": names.get(m.message_id),
                        "sender": m.sender,
                        "first": m.first.isoformat(),
                        "decisions": m.decisions,
                    }
                    for m in messages
                ],
            }
        )
        return
    click.echo(f"thread {thread}: {len(messages)} messages (linked in the log by their thread)")
    for m in messages:
        what = names.get(m.message_id) or (f"message from {m.sender}" if m.sender else "message")
        click.echo(f"{m.first:%Y-%m-%d %H:%M:%S} {what} [{m.message_id}]")
        if full:
            for org, sentences in m.decisions.items():
                for s in sentences:
                    click.echo(f"  {org}: {s}")
        else:
            for line in _summary(m.records):
                click.echo(f"  {line}")


def _summary(records: Sequence[LoggedRecord]) -> list[str]:
    """A message's decisions in a few lines: whom it was sealed for (and redacted for),
    whom the policy kept it from (and by which rules), who received it, who refused it."""
    lines = []
    sealed = [r for r in records if r.record.action == "publish" and r.record.decision != "deny"]
    kept = [r for r in records if r.record.action == "publish" and r.record.decision == "deny"]
    if sealed:
        names = [
            r.record.organisation
            + (
                f" (redacted: {', '.join(r.record.redacted_fields)})"
                if r.record.redacted_fields
                else ""
            )
            for r in sealed
        ]
        lines.append(f"sealed for {len(names)}: {', '.join(names)} [{sealed[0].enforcement_point}]")
    if kept:
        rules = sorted({rule for r in kept for rule in r.record.rule_ids})
        orgs = ", ".join(r.record.organisation for r in kept)
        lines.append(f"kept from {len(kept)}: {orgs} (by {', '.join(rules)})")
    for r in records:
        if r.record.action == "receive" and r.record.decision in ("allow", "redact"):
            lines.append(
                f"received by {r.record.organisation} [{r.enforcement_point}, "
                f"{r.record.time:%H:%M:%S}]"
            )
        elif r.record.decision == "reject":
            why = "; ".join(r.record.reasons)
            lines.append(f"REFUSED ({r.record.rejection_reason}) at {r.enforcement_point}: {why}")
    return lines


# -- witness -----------------------------------------------------------------------------


@audit.command("witness")
@click.option("--once", is_flag=True, help="One pass over the new checkpoints, then exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between passes when running on.",
)
@click.option("--show", is_flag=True, help="Print what this witness has cosigned; no Kafka.")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write what this witness has cosigned, for `jcu audit verify --seen` elsewhere.",
)
@as_option("Witnessing as this node's organisation")
@_log_options
def witness_command(
    once: bool,
    interval: float,
    show: bool,
    export_path: Path | None,
    participant: str | None,
    decisions_topic: str,
    checkpoints_topic: str,
    cosignatures_topic: str,
    as_json: bool,
) -> None:
    """Witness other participants' audit logs: cosign each new checkpoint that extends the
    last one this node cosigned, refuse (and keep as evidence) any that does not.

    Runs until SIGTERM/SIGINT unless --once. This node never reads a leaf: it
    checks sizes, roots, signatures and consistency proofs. Exits 1 after a
    --once pass that refused a checkpoint.
    """
    settings = load()
    me = _check_as(participant, settings)
    directory = witness_dir(settings, checkpoints_topic)
    if show or export_path is not None:
        state = WitnessState.load(directory, f"{me}/witness")
        if export_path is not None:
            write_private(export_path, state.export().encode())
        _print_witness_state(state, as_json)
        return
    from broker.cli._node import node_context
    from broker.cli._runtime import run_until_signalled
    from broker.clock import utc_now

    ctx, _ = node_context(me)
    store = ctx.envelope.store
    kid = ctx.envelope.keyring.current_signing_key_id(me, utc_now())
    signer = ctx.envelope.keystore.signing_key(me, kid)
    from broker.audit.witness import keys_and_validity

    resolve, valid = keys_and_validity(ctx.envelope.keyring)
    witness = Witness(me, signer, resolve, directory, key_validity=valid)
    server = settings.kafka

    async def main(on_stop: Any) -> list[Any]:
        stop = asyncio.Event()
        on_stop(stop.set)
        refused: list[Any] = []
        while True:
            done = await witness_round(
                witness,
                store,
                server,
                checkpoints_topic=checkpoints_topic,
                cosignatures_topic=cosignatures_topic,
            )
            refused += done.refused
            _print_round(done, as_json)
            if once or stop.is_set():
                return refused
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return refused
            except TimeoutError:
                continue

    refused = run_until_signalled(main)
    if once and refused:
        raise AuditVerificationError(
            f"witness {me}/witness refused {len(refused)} checkpoint(s): "
            + "; ".join(f"{v.origin} size {v.tree_size}: {v.reason}" for v in refused[:3])
        )


def _print_round(done: Any, as_json: bool) -> None:
    cosigned = [cp for cp in done.published]
    if as_json:
        emit_json(
            {
                "cosigned": [{"origin": cp.origin, "tree_size": cp.tree_size} for cp in cosigned],
                "refused": [
                    {"origin": v.origin, "tree_size": v.tree_size, "reason": v.reason}
                    for v in done.refused
                ],
                "checkpoints": len(done.verdicts),
            }
        )
        return
    for cp in cosigned:
        click.echo(f"cosigned {cp.origin} at size {cp.tree_size}")
    for v in done.refused:
        click.echo(f"REFUSED {v.origin} size {v.tree_size}: {v.reason}", err=True)


def _print_witness_state(state: WitnessState, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "witness": state.name,
                "cosigned": [
                    {"origin": o, "tree_size": h.tree_size, "root_hash": h.root_hash.hex()}
                    for o, h in sorted(state.held.items())
                ],
                "refused": state.conflicts,
            }
        )
        return
    console().print(
        table(
            f"witness {state.name}",
            ["origin", "largest tree cosigned", "root"],
            [[o, h.tree_size, h.root_hash.hex()[:16]] for o, h in sorted(state.held.items())],
        )
    )
    for c in state.conflicts:
        click.echo(f"refused {c['origin']} size {c['tree_size']}: {c['reason']}")


# -- keys --------------------------------------------------------------------------------


@audit.group("keys")
def keys_group() -> None:
    """This node's audit keys: what an auditor needs to read its enforcement points' leaves."""


def _channel_points(audit_dir: Path, participant: str) -> list[str]:
    """The node's receiving channels' own enforcement points (`<participant>/receive/<channel>`,
    `jcu subscribe --group`), from the audit states it keeps."""
    from urllib.parse import unquote

    prefix = f"{participant}/receive/"
    names = (unquote(p.name.removesuffix(".audit.json")) for p in audit_dir.glob("*.audit.json"))
    return sorted(n for n in names if n.startswith(prefix))


@keys_group.command("export")
@click.option(
    "--ep",
    "points",
    multiple=True,
    help="Enforcement point to export (repeatable; default: every enforcement point of this "
    "node, its receiving channels' own included).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (0600). It holds secrets: hand it over as one.",
)
@as_option("Exporting this node's organisation's keys")
@_json_option
def keys_export(
    points: tuple[str, ...], out_path: Path, participant: str | None, as_json: bool
) -> None:
    """Write the audit keys of this node's enforcement points for an auditor (`--keys`).

    With them the auditor reads those enforcement points' leaves and checks
    content hashes (`jcu audit query --content`); nothing else of this node.
    """
    settings = load()
    participant = _check_as(participant, settings)
    wanted = points or (
        *(f"{participant}/{side}" for side in POINT_SIDES),
        *_channel_points(settings.home / "audit", participant),
    )
    keys = AuditKeys.open(settings.home / "audit", owner=participant)
    lines = []
    for ep in wanted:
        key = keys.point(ep)
        if key is None:
            raise ConfigError(f"{ep} is not an enforcement point of this node ({participant})")
        lines.append(key.export())
    write_private(out_path, "".join(lines).encode())
    if as_json:
        emit_json({"enforcement_points": list(wanted), "out": str(out_path)})
        return
    click.echo(f"wrote the audit keys of {', '.join(wanted)} to {out_path}")
