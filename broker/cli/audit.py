"""`jcu audit verify / prove / query / explain`: check the audit log and answer from it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.audit._topic import TopicRecord, read_topic
from broker.audit.checkpoint import Checkpoint
from broker.audit.query import decode_records, explain, prove, query, story
from broker.audit.record import VERDICTS, LoggedRecord
from broker.audit.verify import KeyResolver, KeyValidity, VerificationReport, verify
from broker.cli._output import console, emit_json, table
from broker.config import Settings, load
from broker.errors import AuditVerificationError, ConfigError
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_DECISIONS
from broker.schemas import SchemaStore, default_store

_bootstrap_option = click.option(
    "--bootstrap",
    envvar="KAFKA_BOOTSTRAP",
    default=None,
    help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP, the Kafka client file, or the "
    "local broker). The audit topics are read by auditors: run with an auditor's Kafka "
    "credentials (JCU_KAFKA_CONFIG).",
)


def _topic_options(f: Any) -> Any:
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
        help="Topic holding the audit records.",
    )(f)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


def keyring_resolvers(settings: Settings, store: SchemaStore) -> tuple[KeyResolver, KeyValidity]:
    """Checkpoint keys from the registry snapshot this node accepted ($JCU_HOME/registry).

    An enforcement point `<participant>/<side>` signs checkpoints with its
    participant's signing key: any registered Ed25519 signing key of the
    participant is a candidate, and the one named must have been valid
    (not revoked, retired or expired) at the checkpoint's time.
    """
    from broker.trust.material import SIGNING_ALGORITHM, load_ed25519_public
    from broker.trust.state import TrustedRegistry, registry_dir

    trusted = TrustedRegistry.load(registry_dir(settings), store)
    trusted.registry  # noqa: B018  (raises, saying what to do, if no snapshot was accepted)
    keyring = trusted.keyring
    keys: dict[str, list[ed25519.Ed25519PublicKey]] = {}
    for participant in keyring.participants():
        keys[participant] = [
            load_ed25519_public(k.public_key)
            for k in keyring.entry(participant).keys
            if k.purpose == "signing" and k.algorithm == SIGNING_ALGORITHM
        ]

    def resolve(ep: str) -> list[ed25519.Ed25519PublicKey]:
        return keys.get(ep.partition("/")[0], [])

    def valid(ep: str, cp: Checkpoint) -> None:
        keyring.signing_key(ep.partition("/")[0], cp.key_id, cp.time)

    return resolve, valid


async def _read_both(
    kafka: KafkaConnection, decisions_topic: str, checkpoints_topic: str
) -> tuple[list[TopicRecord], list[TopicRecord]]:
    decisions = await read_topic(kafka, decisions_topic)
    checkpoints = await read_topic(kafka, checkpoints_topic)
    return decisions, checkpoints


def _connection(settings: Settings, bootstrap: str | None) -> KafkaConnection:
    return settings.kafka.with_bootstrap(bootstrap) if bootstrap else settings.kafka


def _verify_all(
    bootstrap: str | None, decisions_topic: str, checkpoints_topic: str
) -> VerificationReport:
    from broker.cli._node import catch_up_if_empty

    settings = load()
    store = default_store()
    asyncio.run(catch_up_if_empty(settings))
    keys, valid = keyring_resolvers(settings, store)
    decisions, checkpoints = asyncio.run(
        _read_both(_connection(settings, bootstrap), decisions_topic, checkpoints_topic)
    )
    return verify(store, decisions, checkpoints, keys, valid)


def _records(bootstrap: str | None, decisions_topic: str) -> list[LoggedRecord]:
    settings = load()
    raws = asyncio.run(read_topic(_connection(settings, bootstrap), decisions_topic))
    records, _ = decode_records(default_store(), raws)
    return records


@click.group()
def audit() -> None:
    """Verify the audit log, prove a decision is in it, and ask it what was decided and why."""


@audit.command("verify")
@_bootstrap_option
@_topic_options
@_json_option
def verify_command(
    bootstrap: str | None, decisions_topic: str, checkpoints_topic: str, as_json: bool
) -> None:
    """Recompute every enforcement point's Merkle tree and check every checkpoint.

    Checks each checkpoint's signature and its consistency with the one before,
    and reports per enforcement point: records, checkpoints, result. Exits 1 on
    any failure, naming the first bad record or checkpoint.
    """
    report = _verify_all(bootstrap, decisions_topic, checkpoints_topic)
    rows = [
        {
            "enforcement_point": r.enforcement_point,
            "records": r.records,
            "decisions": r.decisions,
            "checkpoints": r.checkpoints,
            "sealed": r.sealed,
            "unsealed": r.unsealed if r.failure is None else None,
            "result": "ok" if r.failure is None else f"FAIL ({r.failure.kind})",
            "failure": None if r.failure is None else r.failure.message,
        }
        for r in report.reports
    ]
    if as_json:
        emit_json({"ok": report.ok, "enforcement_points": rows})
    else:
        console().print(
            table(
                "audit log",
                ["enforcement point", "records", "decisions", "checkpoints", "unsealed", "result"],
                [
                    [
                        r["enforcement_point"],
                        r["records"],
                        r["decisions"],
                        r["checkpoints"],
                        r["unsealed"],
                        r["result"],
                    ]
                    for r in rows
                ],
            )
        )
        if not rows:
            click.echo("the audit log is empty")
    report.raise_for_failure()


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
        "leaf_hash": rec.leaf_hash.hex(),
    }


@audit.command("prove")
@click.argument("decision_id")
@_bootstrap_option
@_topic_options
@_json_option
def prove_command(
    decision_id: str,
    bootstrap: str | None,
    decisions_topic: str,
    checkpoints_topic: str,
    as_json: bool,
) -> None:
    """Print a decision's record and its inclusion proof, verified against the latest checkpoint."""
    result = prove(_verify_all(bootstrap, decisions_topic, checkpoints_topic), decision_id)
    cp = result.checkpoint
    record = _record_json(result.record)
    data = {
        "record": record,
        "checkpoint": {
            "origin": cp.origin,
            "tree_size": cp.tree_size,
            "root_hash": cp.root_hash.hex(),
            "time": cp.time.isoformat(),
            "key_id": cp.key_id,
        },
        "leaf_index": result.record.index,
        "inclusion_proof": [h.hex() for h in result.path],
        "verified": result.verified,
    }
    if as_json:
        emit_json(data)
    else:
        for name, value in record.items():
            click.echo(f"{name:>20}: {value}")
        click.echo(
            f"\ncheckpoint {cp.origin} size {cp.tree_size} root {cp.root_hash.hex()} "
            f"(signed {cp.time.isoformat()}, key {cp.key_id})"
        )
        click.echo(f"inclusion proof of leaf {result.record.index} ({len(result.path)} hashes):")
        for h in result.path:
            click.echo(f"  {h.hex()}")
        click.echo("verified: yes" if result.verified else "verified: NO")
    if not result.verified:
        raise AuditVerificationError(f"the inclusion proof of {decision_id} does not verify")


_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC if no zone) or a duration back from now: 30m, 12h, 7d."""
    m = _RELATIVE.match(value.strip())
    if m:
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: give an ISO 8601 time (2026-11-27T12:00) "
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
            r.record.organisation,
            r.record.message_id,
            _outcome(r),
            ", ".join(r.record.rule_ids),
        ]
        for r in records
    ]


@audit.command("query")
@click.option("--message", "message_id", help="Only decisions about this message id.")
@click.option("--org", "organisation", help="Only decisions about this participant.")
@click.option("--decision", type=click.Choice(VERDICTS), help="Only this outcome.")
@click.option("--rule", help="Only decisions this rule id took part in.")
@click.option("--since", help="Only decisions at or after this time (ISO 8601, or 30m, 12h, 7d).")
@click.option("--ep", "enforcement_point", help="Only this enforcement point (cert-eu/publish).")
@_bootstrap_option
@_topic_options
@_json_option
def query_command(
    message_id: str | None,
    organisation: str | None,
    decision: str | None,
    rule: str | None,
    since: str | None,
    enforcement_point: str | None,
    bootstrap: str | None,
    decisions_topic: str,
    checkpoints_topic: str,
    as_json: bool,
) -> None:
    """A table of the audit records that match every given filter, oldest first."""
    hits = query(
        _records(bootstrap, decisions_topic),
        message_id=message_id,
        organisation=organisation,
        decision=decision,
        rule=rule,
        since=parse_since(since) if since else None,
        enforcement_point=enforcement_point,
    )
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
                "organisation",
                "message",
                "decision",
                "rules",
            ],
            _rows(hits),
        )
    )


@audit.command("explain")
@click.argument("message_id")
@_bootstrap_option
@_topic_options
@click.option("--full", is_flag=True, help="For a thread: every decision in words, not a summary.")
@_json_option
def explain_command(
    message_id: str,
    bootstrap: str | None,
    decisions_topic: str,
    checkpoints_topic: str,
    full: bool,
    as_json: bool,
) -> None:
    """Everything decided about one message, per organisation, in plain words; for an
    assistance request (its id, or the first characters of it), the whole story of its case:
    every step, every node's decisions, refusals included."""
    records = _records(bootstrap, decisions_topic)
    threads = {r.record.thread for r in records if r.record.thread}
    found = [t for t in threads if t == message_id] or [
        t for t in threads if len(message_id) >= 4 and t.startswith(message_id)
    ]
    if len(found) == 1:
        _tell_story(records, found[0], full, as_json)
        return
    words = explain(records, message_id)
    if as_json:
        emit_json(words)
        return
    click.echo(f"message {message_id}:")
    for org, sentences in words.items():
        for s in sentences:
            click.echo(f"  {org}: {s}")


def _tell_story(records: Sequence[LoggedRecord], thread: str, full: bool, as_json: bool) -> None:
    """A workflow thread (an assistance case) in time order, each message with its decisions;
    what each message was, where this node's case book knows it (the log holds no content)."""
    from broker.assist.book import step_names

    names = step_names(load().home)
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
