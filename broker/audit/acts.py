"""The records of what an enforcement point does besides deciding: acts that change who can
read what.

- `send_outcome`: after the publish decisions, what became of each copy: sent
  (topic, partition, offset) or not sent and why, per recipient;
- `retraction_sent` / `retraction_applied`: a retraction leaving its sender, and
  taking effect at a receiver;
- `crisis_act`: a crisis declared or ended (or refused, with its real reason);
- `registry_change`: a registry snapshot taking effect at an enforcement point,
  with what changed (keys added, retired, revoked; participants' status);
- `replay`: a dead letter replayed (the receiving decision of the replay is
  audited as usual; this records who replayed what).

Each is a list of `AuditRecord`s about one message or act, so they share one
leaf, and `query` / `explain` read them like decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.audit.record import AuditRecord, _now

#: `rejection_reason` of a copy that was never sent: the publisher stopped between
#: recording its decisions and sending (found so on its next start).
PUBLISHER_STOPPED = "publisher-stopped"
#: ... or Kafka refused or failed the write.
KAFKA_ERROR = "kafka-error"
#: The publisher stopped while Kafka was taking a copy to a topic it may not read (another
#: community's): whether it arrived, its recipients' receiving logs say.
UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    """One envelope copy of a message, for its recipients: where it went, or why not."""

    community: str
    topic: str
    recipients: tuple[str, ...]
    partition: int | None = None
    offset: int | None = None
    #: None if sent; else a reason code (PUBLISHER_STOPPED, KAFKA_ERROR, ...)
    error: str | None = None
    reason: str = ""
    redacted_fields: tuple[str, ...] = ()

    @property
    def sent(self) -> bool:
        return self.error is None


def copy_details(copy: CopyOutcome) -> dict[str, str]:
    details = {"community": copy.community, "topic": copy.topic}
    if copy.partition is not None:
        details["partition"] = str(copy.partition)
    if copy.offset is not None:
        details["offset"] = str(copy.offset)
    if copy.redacted_fields:
        details["copy"] = "redacted"
    return details


def _copies(
    action: str,
    message_id: str,
    copies: Sequence[CopyOutcome],
    time: datetime | None,
    extra: Mapping[str, str],
) -> list[AuditRecord]:
    at = time or _now()
    return [
        AuditRecord(
            action=action,  # type: ignore[arg-type]  # "send" or "retract"
            organisation=org,
            message_id=message_id,
            decision="sent" if copy.sent else "unsent",
            time=at,
            redacted_fields=copy.redacted_fields,
            reasons=(copy.reason,) if copy.reason else (),
            rejection_reason=copy.error,
            details={**copy_details(copy), **extra},
        )
        for copy in copies
        for org in copy.recipients
    ]


def send_outcome(
    message_id: str, copies: Sequence[CopyOutcome], *, time: datetime | None = None
) -> list[AuditRecord]:
    """What became of a published message, per recipient: one leaf after its decisions."""
    return _copies("send", message_id, copies, time, {})


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one published message, as `AuditLog.append_sets` takes it: written
    straight into a leaf (`LeafEncoder.encode_outcome`), no AuditRecord per recipient; the
    same bytes as `send_outcome` gives."""

    message_id: str
    copies: tuple[CopyOutcome, ...]
    time: datetime = field(default_factory=_now)

    @property
    def count(self) -> int:
        return sum(len(c.recipients) for c in self.copies)

    def records(self, decision_ids: Sequence[str]) -> list[AuditRecord]:
        """The outcome as AuditRecords with the given ids (what its leaf decodes to)."""
        records = send_outcome(self.message_id, self.copies, time=self.time)
        if len(decision_ids) != len(records):
            raise ValueError("one decision id per recipient")
        return [
            AuditRecord(**{**_fields(r), "decision_id": i})
            for r, i in zip(records, decision_ids, strict=True)
        ]


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {f: getattr(record, f) for f in AuditRecord.__dataclass_fields__}


def retraction_sent(
    message_id: str,
    retraction_id: str,
    copies: Sequence[CopyOutcome],
    *,
    reason: str = "",
    time: datetime | None = None,
) -> list[AuditRecord]:
    """A retraction of `message_id` sent (or not) to each of its recipients."""
    extra = {"retraction": retraction_id}
    if reason:
        extra["why"] = reason
    return _copies("retract", message_id, copies, time, extra)


def retraction_applied(
    receiver: str,
    message_id: str,
    sender: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    time: datetime | None = None,
) -> AuditRecord:
    """A receiver withdrew `message_id` from its sink, as its sender asked."""
    return AuditRecord(
        action="retract",
        organisation=receiver,
        message_id=message_id,
        decision="applied",
        time=time or _now(),
        reasons=(f"retracted by its sender {sender}",),
        details={
            "sender": sender,
            "topic": topic,
            "partition": str(partition),
            "offset": str(offset),
        },
    )


def crisis_act(
    declarer: str,
    incident: str,
    member_states: Sequence[str],
    *,
    active: bool,
    decision: str = "allow",
    reasons: Sequence[str] = (),
    rejection_reason: str | None = None,
    expires: datetime | None = None,
    declaration_id: str | None = None,
    bundle_hash: str | None = None,
    time: datetime | None = None,
) -> AuditRecord:
    """A crisis declaration or end by `declarer`: allowed (and published), or refused."""
    details = {
        "incident": incident,
        "act": "declare" if active else "end",
        "member_states": ",".join(member_states),
    }
    if expires is not None:
        details["expires"] = expires.isoformat()
    if declaration_id is not None:
        details["declaration"] = declaration_id
    return AuditRecord(
        action="crisis",
        organisation=declarer,
        message_id=f"crisis:{incident}",
        decision=decision,  # type: ignore[arg-type]  # "allow" or "reject"
        time=time or _now(),
        rule_ids=("crisis-authority",) if decision == "allow" else (),
        reasons=tuple(reasons),
        rejection_reason=rejection_reason,
        policy_bundle_hash=bundle_hash,
        details=details,
    )


def replay(
    replayer: str,
    message_id: str,
    *,
    source: str,
    reason: str,
    time: datetime | None = None,
) -> AuditRecord:
    """`replayer` replayed the dead letter of `message_id` (from `source`, dead-lettered for
    `reason`); what the replay decided is audited as a receiving decision."""
    return AuditRecord(
        action="replay",
        organisation=replayer,
        message_id=message_id,
        decision="allow",
        time=time or _now(),
        reasons=(f"dead letter replayed (it was refused as {reason})",),
        details={"source": source, "dead_letter_reason": reason},
    )


# -- registry snapshots ------------------------------------------------------------------


def _key_state(key: Any) -> str:
    state = f"{key.purpose} {key.status}"
    if key.revoked is not None:
        state += f" {key.revocation_reason or ''} at {key.revoked.isoformat()}".replace("  ", " ")
    elif key.retired is not None:
        state += f" at {key.retired.isoformat()}"
    return state


@dataclass(frozen=True, slots=True)
class RegistryView:
    """What an enforcement point logged of the registry last: enough to say what changed."""

    epoch: int
    digest: str
    policy_bundle_hash: str
    authority_key_id: str = ""
    #: participant -> (status, {key id: "signing active" / "kem revoked compromised at ..."})
    participants: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: Any) -> RegistryView:
        """The view of a `broker.trust.snapshot.VerifiedSnapshot`."""
        participants = {
            pid: (entry.status, {k.key_id: _key_state(k) for k in entry.keys})
            for pid, entry in snapshot.entries.items()
        }
        return cls(
            snapshot.epoch,
            snapshot.digest,
            snapshot.policy_bundle_hash,
            snapshot.authority_key_id,
            participants,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "digest": self.digest,
            "policy_bundle_hash": self.policy_bundle_hash,
            "authority_key_id": self.authority_key_id,
            "participants": {
                pid: {"status": status, "keys": dict(keys)}
                for pid, (status, keys) in sorted(self.participants.items())
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegistryView:
        return cls(
            int(data["epoch"]),
            str(data["digest"]),
            str(data["policy_bundle_hash"]),
            str(data.get("authority_key_id", "")),
            {
                str(pid): (str(p["status"]), {str(k): str(v) for k, v in p["keys"].items()})
                for pid, p in data["participants"].items()
            },
        )


def _changes(
    before: tuple[str, Mapping[str, str]] | None, after: tuple[str, Mapping[str, str]] | None
) -> list[str]:
    if before is None and after is not None:
        status, keys = after
        return [f"registered ({status}), keys " + ", ".join(f"{k} {v}" for k, v in keys.items())]
    if after is None:
        return ["no longer in the registry"]
    assert before is not None  # noqa: S101 - narrows for mypy: set when `after` is
    out = []
    if before[0] != after[0]:
        out.append(f"status {before[0]} -> {after[0]}")
    for kid, state in after[1].items():
        old = before[1].get(kid)
        if old is None:
            out.append(f"key {kid} added ({state})")
        elif old != state:
            out.append(f"key {kid}: {old} -> {state}")
    out += [f"key {kid} removed" for kid in before[1] if kid not in after[1]]
    return out


def registry_change(
    observer: str,
    previous: RegistryView | None,
    current: RegistryView,
    *,
    time: datetime | None = None,
) -> list[AuditRecord]:
    """The records of `current` taking effect where `previous` was in force: one per
    participant whose status or keys changed, or one for `observer` if none did."""
    at = time or _now()
    details = {
        "epoch": str(current.epoch),
        "snapshot": current.digest,
        "authority_key": current.authority_key_id,
    }
    if previous is not None:
        details["previous_epoch"] = str(previous.epoch)
    records = []
    before = previous.participants if previous is not None else {}
    for pid in sorted(set(before) | set(current.participants)):
        if previous is None:
            continue
        changes = _changes(before.get(pid), current.participants.get(pid))
        if changes:
            records.append(
                AuditRecord(
                    action="registry",
                    organisation=pid,
                    message_id=f"registry:{current.epoch}",
                    decision="applied",
                    time=at,
                    reasons=tuple(changes),
                    policy_bundle_hash=current.policy_bundle_hash,
                    details=details,
                )
            )
    if not records:
        what = (
            f"registry snapshot epoch {current.epoch} in force"
            if previous is None
            else f"registry snapshot epoch {current.epoch} took effect: no key or status changed"
        )
        if previous is not None and previous.policy_bundle_hash != current.policy_bundle_hash:
            what += "; the approved policy bundle changed"
        records.append(
            AuditRecord(
                action="registry",
                organisation=observer,
                message_id=f"registry:{current.epoch}",
                decision="applied",
                time=at,
                reasons=(what,),
                policy_bundle_hash=current.policy_bundle_hash,
                details=details,
            )
        )
    return records
