"""Crisis declarations on the compacted `jcu.control` topic (rule 10 of the rulebook).

Only the crisis authorities may declare or end a crisis, and a declaration
needs two or more Member States (a large-scale incident). A declaration is
signed by the declarer's Ed25519 key (not encrypted: every enforcement point
reads it) and keyed by incident, so compaction keeps the latest state of each.
Enforcement points follow the topic with a `CrisisBoard` and hand the set of
incidents under crisis to the policy engine.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

from broker.clock import to_millis, utc_now
from broker.envelope.context import EnvelopeContext
from broker.errors import BadSignature, ConfigError, MalformedRecord, Unauthorised
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.follower import TopicFollower
from broker.kafka.topics import CONTROL
from broker.lifecycle import Service

#: Who may declare a crisis (rule 10): the EU-CyCLONe network and the CSIRTs network.
CRISIS_AUTHORITIES: frozenset[str] = frozenset({"eu-cyclone", "csirts-network"})
MIN_MEMBER_STATES = 2
_DOMAIN = b"jcu-control-v1\x00"


@dataclass(frozen=True, slots=True)
class CrisisDeclaration:
    id: str
    incident: str
    member_states: tuple[str, ...]
    active: bool
    declared_by: str
    signer_key_id: str
    created: datetime
    signature: bytes = b""

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "incident": self.incident,
            "member_states": list(self.member_states),
            "active": self.active,
            "declared_by": self.declared_by,
            "signer_key_id": self.signer_key_id,
            "created": self.created,
            "signature": self.signature,
        }

    @classmethod
    def from_avro(cls, rec: dict[str, Any]) -> CrisisDeclaration:
        return cls(
            id=str(rec["id"]),
            incident=rec["incident"],
            member_states=tuple(rec["member_states"]),
            active=bool(rec["active"]),
            declared_by=rec["declared_by"],
            signer_key_id=rec["signer_key_id"],
            created=rec["created"],
            signature=bytes(rec["signature"]),
        )


def check_authority(declarer: str, member_states: tuple[str, ...], active: bool) -> None:
    """Raise `Unauthorised` unless `declarer` may make this declaration."""
    if declarer not in CRISIS_AUTHORITIES:
        allowed = ", ".join(sorted(CRISIS_AUTHORITIES))
        raise Unauthorised(f"{declarer} may not declare or end a crisis; only {allowed} may")
    affected = len(set(member_states))
    if active and affected < MIN_MEMBER_STATES:
        raise Unauthorised(
            f"a crisis needs two or more Member States affected (large-scale); got {affected}"
        )


def sign_declaration(
    ctx: EnvelopeContext, declarer: str, incident: str, member_states: tuple[str, ...], active: bool
) -> bytes:
    """The signed record bytes to produce on `jcu.control` (key: the incident)."""
    if not incident:
        raise ConfigError("a crisis declaration needs --incident")
    bad = [m for m in member_states if len(m) != 2 or not m.isalpha() or not m.isupper()]
    if bad:
        raise ConfigError(f"Member States are ISO 3166-1 alpha-2 codes (FR, DE...); got {bad}")
    check_authority(declarer, member_states, active)
    now = to_millis(utc_now())
    kid = ctx.keyring.current_signing_key_id(declarer, now)
    unsigned = CrisisDeclaration(
        str(uuid.uuid4()), incident, tuple(sorted(set(member_states))), active, declarer, kid, now
    )
    body = ctx.store.encode("CrisisDeclaration", unsigned.to_avro())
    signature = ctx.keystore.signing_key(declarer, kid).sign(_DOMAIN + body)
    signed = CrisisDeclaration(**{**_fields(unsigned), "signature": signature})
    return ctx.store.encode("CrisisDeclaration", signed.to_avro())


def _fields(d: CrisisDeclaration) -> dict[str, Any]:
    return {f: getattr(d, f) for f in CrisisDeclaration.__slots__}


def verify_declaration(ctx: EnvelopeContext, data: bytes) -> CrisisDeclaration:
    """Decode and verify one control record; raises a `Rejected` subclass."""
    _, rec = ctx.store.decode(data, expected="CrisisDeclaration")
    decl = CrisisDeclaration.from_avro(rec)
    key = ctx.keyring.signing_key(decl.declared_by, decl.signer_key_id, decl.created)
    unsigned = ctx.store.encode("CrisisDeclaration", {**decl.to_avro(), "signature": b""})
    try:
        key.verify(decl.signature, _DOMAIN + unsigned)
    except InvalidSignature:
        raise BadSignature(f"crisis declaration {decl.id} does not verify") from None
    check_authority(decl.declared_by, decl.member_states, decl.active)
    return decl


async def publish_declaration(bootstrap: str, incident: str, data: bytes) -> None:
    """Produce signed declaration bytes to `jcu.control`, keyed by incident (compaction)."""
    producer = reliable_producer(bootstrap)
    await start_client(producer, bootstrap)
    try:
        await producer.send_and_wait(CONTROL, value=data, key=incident.encode())
    finally:
        await producer.stop()


class CrisisBoard(Service):
    """Follows `jcu.control`; knows which incidents are under a declared crisis.

    `start()` returns once the topic has been read to its end, so a publisher
    started after a declaration already applies it. Invalid records are logged
    and ignored, never applied.
    """

    def __init__(self, ctx: EnvelopeContext, bootstrap: str, *, topic: str = CONTROL) -> None:
        self._ctx = ctx
        self._state: dict[str, CrisisDeclaration] = {}
        self._feed = TopicFollower(bootstrap, topic, self._read, self._apply)

    @property
    def rejected(self) -> list[tuple[bytes | None, str]]:
        """(key, reason) of the control records refused: tombstones, bad or mis-keyed ones."""
        return self._feed.rejected

    def active_incidents(self) -> frozenset[str]:
        """Incidents under a declared crisis; none while the control feed is failing.

        Fail closed: an end of crisis that cannot be read must not keep the
        wider crisis sharing (rule 10) open. Normal sharing is unaffected.
        """
        if not self._feed.healthy:
            return frozenset()
        return frozenset(i for i, d in self._state.items() if d.active)

    @property
    def healthy(self) -> bool:
        """False while following `jcu.control` fails (crisis sharing is then suspended)."""
        return self._feed.healthy

    def declarations(self) -> tuple[CrisisDeclaration, ...]:
        return tuple(sorted(self._state.values(), key=lambda d: d.incident))

    def _read(self, key: bytes | None, value: bytes) -> CrisisDeclaration:
        decl = verify_declaration(self._ctx, value)
        if key is None or key.decode(errors="replace") != decl.incident:
            raise MalformedRecord(f"control record keyed {key!r} declares {decl.incident!r}")
        return decl

    def _apply(self, decl: CrisisDeclaration) -> None:
        previous = self._state.get(decl.incident)
        if previous is None or previous.created <= decl.created:
            self._state[decl.incident] = decl

    async def start(self) -> None:
        await self._feed.start()

    async def stop(self) -> None:
        await self._feed.stop()
