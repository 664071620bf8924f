"""Crisis declarations on the compacted `jcu.control` topic (rule 10 of the rulebook).

Only the crisis authorities may declare or end a crisis, and a declaration
needs two or more Member States (a large-scale incident). A declaration is
signed by the declarer's Ed25519 key (not encrypted: every enforcement point
reads it) and keyed by incident, so compaction keeps the latest state of each.
Enforcement points follow the topic with a `CrisisBoard` and hand the set of
incidents under crisis to the policy engine.

Every declaration carries a signed expiry (at most `MAX_CRISIS_VALIDITY` after
it was made). Compaction keeps only the latest record per incident, so someone
who may write to the topic could replay an old signed declaration once its end
has been compacted away; the expiry bounds how long such a replay can re-open
a crisis. A crisis that lasts longer is declared again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidSignature

from broker.audit.acts import crisis_act
from broker.clock import Clock, to_millis, utc_now
from broker.envelope.context import EnvelopeContext
from broker.errors import (
    BadSignature,
    ConfigError,
    CrisisNotInForce,
    MalformedRecord,
    NoSuchCrisis,
    NotACrisisAuthority,
    NotAMemberState,
    Rejected,
    TooFewMemberStates,
)
from broker.kafka.clients import reliable_producer, start_client
from broker.kafka.connection import KafkaConnection
from broker.kafka.follower import TopicFollower
from broker.kafka.topics import CONTROL
from broker.lifecycle import Service
from broker.pep.registry_audit import log_registry
from broker.schemas import SchemaStore
from broker.trust.keyring import Keyring
from broker.vocabulary import CRISIS_AUTHORITIES, EU_MEMBER_STATES

if TYPE_CHECKING:
    from broker.pep.context import PepContext

MIN_MEMBER_STATES = 2
#: How long a declaration stands unless declared again (`jcu crisis declare --days`).
DEFAULT_CRISIS_VALIDITY = timedelta(days=7)
#: The longest a declaration may stand: the bound on a replayed old declaration.
MAX_CRISIS_VALIDITY = timedelta(days=30)
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
    expires: datetime
    signature: bytes = b""

    def in_force(self, now: datetime) -> bool:
        """Declared (not ended) and not yet expired at `now`."""
        return self.active and now < self.expires

    def to_avro(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "incident": self.incident,
            "member_states": list(self.member_states),
            "active": self.active,
            "declared_by": self.declared_by,
            "signer_key_id": self.signer_key_id,
            "created": self.created,
            "expires": self.expires,
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
            expires=rec["expires"],
            signature=bytes(rec["signature"]),
        )


def check_member_states(member_states: tuple[str, ...]) -> None:
    """Raise `NotAMemberState` unless every code names one of the 27 EU Member States."""
    bad = sorted({m for m in member_states if m not in EU_MEMBER_STATES})
    if bad:
        hint = " (Greece is GR in ISO 3166-1)" if "EL" in bad else ""
        verb = "is not an EU Member State" if len(bad) == 1 else "are not EU Member States"
        raise NotAMemberState(
            f"{', '.join(bad)} {verb}: a crisis names the Member States affected by their "
            f"ISO 3166-1 codes (FR, DE, ...){hint}"
        )


def check_authority(declarer: str, member_states: tuple[str, ...], active: bool) -> None:
    """Raise (with the real reason) unless `declarer` may make this declaration:
    `NotACrisisAuthority`, `NotAMemberState` or `TooFewMemberStates`."""
    if declarer not in CRISIS_AUTHORITIES:
        allowed = ", ".join(sorted(CRISIS_AUTHORITIES))
        raise NotACrisisAuthority(f"{declarer} may not declare or end a crisis; only {allowed} may")
    check_member_states(member_states)
    affected = sorted(set(member_states))
    if active and len(affected) < MIN_MEMBER_STATES:
        raise TooFewMemberStates(
            "a crisis needs two or more Member States affected (a large-scale incident); "
            f"got {len(affected)}{' (' + ', '.join(affected) + ')' if affected else ''}"
        )


def _span(t: timedelta) -> str:
    """`t` as an operator reads it: "7 days" for whole days, else H:MM:SS."""
    return f"{t.days} days" if t % timedelta(days=1) == timedelta(0) else str(t)


def check_validity(valid_for: timedelta) -> None:
    """Raise `ConfigError` unless a declaration may stand for `valid_for`."""
    if valid_for <= timedelta(0):
        raise ConfigError(
            f"a crisis declaration must be valid for some time; got {_span(valid_for)}"
        )
    if valid_for > MAX_CRISIS_VALIDITY:
        raise ConfigError(
            f"a crisis declaration may be valid for at most {_span(MAX_CRISIS_VALIDITY)} "
            f"(got {_span(valid_for)}); declare it again to extend it"
        )


def sign_declaration(
    ctx: EnvelopeContext,
    declarer: str,
    incident: str,
    member_states: tuple[str, ...],
    active: bool,
    valid_for: timedelta = DEFAULT_CRISIS_VALIDITY,
    *,
    clock: Clock = utc_now,
) -> bytes:
    """The signed record bytes to produce on `jcu.control` (key: the incident).

    The declaration stands from now until now + `valid_for` (an end record gets
    the same bound, though an ended crisis never widens sharing).
    """
    check_validity(valid_for)
    if not incident:
        raise ConfigError("a crisis declaration needs --incident")
    check_authority(declarer, member_states, active)
    now = to_millis(clock())
    kid = ctx.keyring.current_signing_key_id(declarer, now)
    unsigned = CrisisDeclaration(
        str(uuid.uuid4()),
        incident,
        tuple(sorted(set(member_states))),
        active,
        declarer,
        kid,
        now,
        to_millis(now + valid_for),
    )
    body = ctx.store.encode("CrisisDeclaration", unsigned.to_avro())
    signature = ctx.keystore.signing_key(declarer, kid).sign(_DOMAIN + body)
    signed = CrisisDeclaration(**{**_fields(unsigned), "signature": signature})
    return ctx.store.encode("CrisisDeclaration", signed.to_avro())


def _fields(d: CrisisDeclaration) -> dict[str, Any]:
    return {f: getattr(d, f) for f in CrisisDeclaration.__slots__}


class Verifying(Protocol):
    """What checking a declaration needs: the schemas and whose key is whose (no keystore:
    a reader of the board opens nothing)."""

    @property
    def store(self) -> SchemaStore: ...
    @property
    def keyring(self) -> Keyring: ...


def verify_declaration(ctx: Verifying, data: bytes) -> CrisisDeclaration:
    """Decode and verify one control record; raises a `Rejected` subclass.

    Whether it has expired is the reader's question (`in_force`), asked at
    the time of use; a validity longer than the maximum is refused here, even
    if signed, as it would defeat the bound on replays.
    """
    _, rec = ctx.store.decode(data, expected="CrisisDeclaration")
    decl = CrisisDeclaration.from_avro(rec)
    valid_for = decl.expires - decl.created
    if not timedelta(0) < valid_for <= MAX_CRISIS_VALIDITY:
        raise MalformedRecord(
            f"crisis declaration {decl.id} is valid for {_span(valid_for)}; "
            f"it must be more than 0 and at most {_span(MAX_CRISIS_VALIDITY)}"
        )
    key = ctx.keyring.signing_key(decl.declared_by, decl.signer_key_id, decl.created)
    unsigned = ctx.store.encode("CrisisDeclaration", {**decl.to_avro(), "signature": b""})
    try:
        key.verify(decl.signature, _DOMAIN + unsigned)
    except InvalidSignature:
        raise BadSignature(f"crisis declaration {decl.id} does not verify") from None
    check_authority(decl.declared_by, decl.member_states, decl.active)
    return decl


async def publish_declaration(kafka: KafkaConnection, incident: str, data: bytes) -> None:
    """Produce signed declaration bytes to `jcu.control`, keyed by incident (compaction).
    The Kafka ACLs let only the crisis authorities' principals write the topic."""
    producer = reliable_producer(kafka)
    await start_client(producer, kafka)
    try:
        await producer.send_and_wait(CONTROL, value=data, key=incident.encode())
    finally:
        await producer.stop()


class CrisisBoard(Service):
    """Follows `jcu.control`; knows which incidents are under a declared crisis.

    `start()` returns once the topic has been read to its end, so a publisher
    started after a declaration already applies it. Invalid records are logged
    and ignored, never applied. A declaration counts only until it expires,
    by `clock`.
    """

    def __init__(
        self,
        ctx: Verifying,
        kafka: KafkaConnection,
        *,
        topic: str = CONTROL,
        clock: Clock = utc_now,
    ) -> None:
        self._ctx = ctx
        self._clock = clock
        self._state: dict[str, CrisisDeclaration] = {}
        self._feed = TopicFollower(kafka, topic, self._read, self._apply)

    @property
    def rejected(self) -> list[tuple[bytes | None, str]]:
        """(key, reason) of the control records refused: tombstones, bad or mis-keyed ones."""
        return self._feed.rejected

    def active_incidents(self) -> frozenset[str]:
        """Incidents under a declared, unexpired crisis; none while the control feed is failing.

        Fail closed: an end of crisis that cannot be read must not keep the
        wider crisis sharing (rule 10) open. Normal sharing is unaffected.
        """
        if not self._feed.healthy:
            return frozenset()
        now = self._clock()
        return frozenset(i for i, d in self._state.items() if d.in_force(now))

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

    async def connect(self) -> None:
        """`start`'s first half (`TopicFollower.connect`): nothing verified or applied yet."""
        await self._feed.connect()

    async def catch_up(self) -> None:
        """`start`'s second half: the declarations verified and applied to the end `connect`
        found (against the registry as it is now: catch the registry up first)."""
        await self._feed.catch_up()

    async def stop(self) -> None:
        await self._feed.stop()


# -- declaring and ending, as an enforcement point ---------------------------------------


async def _current(ctx: PepContext, incident: str) -> CrisisDeclaration | None:
    async with CrisisBoard(ctx.envelope, ctx.settings.kafka) as board:
        return next((d for d in board.declarations() if d.incident == incident), None)


def _end_target(current: CrisisDeclaration | None, incident: str) -> CrisisDeclaration:
    """The declaration an end ends; refused, saying why, if there is none in force."""
    if current is None:
        raise NoSuchCrisis(
            f"no crisis was ever declared for {incident} (see `jcu crisis list --all`)"
        )
    if not current.active:
        raise CrisisNotInForce(
            f"the crisis for {incident} was already ended by {current.declared_by} at "
            f"{current.created.isoformat()}"
        )
    if not current.in_force(utc_now()):
        raise CrisisNotInForce(
            f"the crisis for {incident} is not in force: its declaration expired at "
            f"{current.expires.isoformat()}"
        )
    return current


async def enact(
    ctx: PepContext,
    declarer: str,
    incident: str,
    states: list[str],
    active: bool,
    valid_for: timedelta = DEFAULT_CRISIS_VALIDITY,
) -> CrisisDeclaration:
    """Declare or end a crisis as `declarer`'s control enforcement point
    (`<declarer>/control`): decided, recorded in its audit log (allowed, or refused with
    the real reason), then published on jcu.control. An end is refused unless a
    declaration of the incident is in force."""
    audit = ctx.audit_log(declarer, "control")
    bundle = ctx.policy.bundle_hash
    async with audit:
        await log_registry(ctx.envelope.trusted, audit)
        try:
            if not active:
                check_authority(declarer, (), active=False)  # who asks, before what is asked
                states = list(_end_target(await _current(ctx, incident), incident).member_states)
            data = sign_declaration(
                ctx.envelope, declarer, incident, tuple(states), active, valid_for
            )
        except Rejected as exc:
            await audit.append(
                crisis_act(
                    declarer,
                    incident,
                    states,
                    active=active,
                    decision="reject",
                    reasons=(str(exc),),
                    rejection_reason=exc.reason,
                    bundle_hash=bundle,
                )
            )
            raise
        decl = verify_declaration(ctx.envelope, data)
        what = "declared" if active else "ended"
        record = crisis_act(
            declarer,
            incident,
            decl.member_states,
            active=active,
            reasons=(
                f"crisis {what} by a crisis authority for {', '.join(decl.member_states)}"
                + (f", until {decl.expires.isoformat()}" if active else ""),
            ),
            expires=decl.expires if active else None,
            declaration_id=decl.id,
            bundle_hash=bundle,
        )
        await audit.append(record)  # decided and recorded before it takes effect anywhere
        try:
            await publish_declaration(ctx.settings.kafka, incident, data)
        except Exception as exc:
            await audit.append(
                crisis_act(
                    declarer,
                    incident,
                    decl.member_states,
                    active=active,
                    decision="unsent",
                    reasons=(f"not published on jcu.control: {exc}",),
                    rejection_reason="kafka-error",
                    declaration_id=decl.id,
                    bundle_hash=bundle,
                )
            )
            raise
        return decl
