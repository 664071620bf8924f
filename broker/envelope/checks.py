"""Checks as named, composable objects, and the opener's checks of an envelope's header.

A check is a small object with the stable `reason` of the `Rejected` error it
raises (what the audit log and the dead letters record) and a `verify` that
returns or raises; `AllOf` runs several in order, the first refusal deciding
(sigstore-python's verification policies are the model). The subscriber's
checks of an opened message (`broker.pep.checks`) are built the same way.

The opener (`broker.envelope.opener`) runs the checks below in its documented
order, around the steps that produce what later steps need (the signer's key,
the recipient entry, the plaintext): `before_key` on the header as read,
`after_key` once the sender's key is found for it, `after_signature` once the
signature holds (a time or replay refusal of a forged record would tell a
forger nothing the signature check does not, but would cost a replay-guard
look-up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from broker.clock import to_millis
from broker.envelope.header import EnvelopeHeader
from broker.envelope.replay import ReplayGuard
from broker.envelope.sealer import MAX_VALIDITY
from broker.errors import Backdated, Expired, Replay, WrongSender, WrongTopic

__all__ = [
    "APPEND_SKEW",
    "CLOCK_SKEW",
    "AllOf",
    "Arrival",
    "Check",
    "NotBackdated",
    "NotReplayed",
    "OriginCommunity",
    "TopicBinding",
    "ValidityWindow",
    "after_key",
    "after_signature",
    "before_key",
]

#: How far a sender's clock may run ahead of ours.
CLOCK_SKEW = timedelta(minutes=2)
#: How long before the broker appended it a record may say it was created: sealing,
#: batching, producer retries and clock skew fit in it; a backdated signature does not.
APPEND_SKEW = timedelta(minutes=10)

S_contra = TypeVar("S_contra", contravariant=True)


class Check(Protocol[S_contra]):
    """One check of a subject: returns, or raises a `Rejected` error with `reason`."""

    #: the `Rejected.reason` it refuses with
    reason: ClassVar[str]

    def verify(self, subject: S_contra) -> None: ...


class AllOf(Generic[S_contra]):
    """Every check, in order; the first refusal decides."""

    __slots__ = ("checks",)

    def __init__(self, checks: Iterable[Check[S_contra]]) -> None:
        self.checks: tuple[Check[S_contra], ...] = tuple(checks)

    def verify(self, subject: S_contra) -> None:
        for check in self.checks:
            check.verify(subject)

    def without(self, kind: type[Any]) -> AllOf[S_contra]:
        """These checks but those of class `kind` (for tests and deliberate relaxations)."""
        return AllOf(c for c in self.checks if not isinstance(c, kind))

    def __repr__(self) -> str:
        return f"AllOf({', '.join(type(c).__name__ for c in self.checks)})"


@dataclass(frozen=True, slots=True)
class Arrival:
    """An envelope's header as the checks before its decryption see it."""

    header: EnvelopeHeader
    #: the topic it was read from
    topic: str
    #: when the broker appended it (LogAppendTime), if known
    appended: datetime | None
    #: the opener's clock, at millisecond precision (as the header's times)
    now: datetime


@dataclass(frozen=True, slots=True)
class TopicBinding:
    """Read from the topic it was sealed for (the signature covers the topic)."""

    reason: ClassVar[str] = WrongTopic.reason

    def verify(self, arrival: Arrival) -> None:
        if arrival.header.topic != arrival.topic:
            raise WrongTopic(
                f"sealed for topic {arrival.header.topic!r}, read from {arrival.topic!r}"
            )


@dataclass(frozen=True, slots=True)
class OriginCommunity:
    """The origin community the header claims is the sender's, as the registry says."""

    community_of: Callable[[str], str]
    reason: ClassVar[str] = WrongSender.reason

    def verify(self, arrival: Arrival) -> None:
        header = arrival.header
        if self.community_of(header.sender) != header.origin_community:
            raise WrongSender(
                f"{header.sender} is not in the claimed origin community {header.origin_community}"
            )


@dataclass(frozen=True, slots=True)
class NotBackdated:
    """Created not more than APPEND_SKEW before the broker appended it: a key revoked as
    compromised cannot sign records dated from before its revocation."""

    reason: ClassVar[str] = Backdated.reason

    def verify(self, arrival: Arrival) -> None:
        header, appended = arrival.header, arrival.appended
        if appended is not None and header.created < to_millis(appended) - APPEND_SKEW:
            raise Backdated(
                f"message {header.message_id} says it was created {header.created.isoformat()}, "
                f"more than {APPEND_SKEW} before the broker appended it "
                f"({to_millis(appended).isoformat()})"
            )


@dataclass(frozen=True, slots=True)
class ValidityWindow:
    """Created (within CLOCK_SKEW) before now, not expired, and valid for no longer than
    MAX_VALIDITY: an expired message is never delivered, however it is replayed."""

    reason: ClassVar[str] = Expired.reason

    def verify(self, arrival: Arrival) -> None:
        header, now = arrival.header, arrival.now
        if header.created > now + CLOCK_SKEW:
            raise Expired(f"message {header.message_id} is not valid yet (created in the future)")
        if now >= header.expires:
            raise Expired(f"message {header.message_id} expired at {header.expires.isoformat()}")
        if header.expires - header.created > MAX_VALIDITY:
            raise Expired(f"message {header.message_id} claims a validity over {MAX_VALIDITY}")


@dataclass(frozen=True, slots=True)
class NotReplayed:
    """A message id this participant has not received before (the guard remembers each
    until it expires: after that, `ValidityWindow` refuses it)."""

    guard: ReplayGuard
    reason: ClassVar[str] = Replay.reason

    def verify(self, arrival: Arrival) -> None:
        if self.guard.seen(arrival.header.message_id):
            raise Replay(f"message {arrival.header.message_id} was already received")


def before_key() -> AllOf[Arrival]:
    return AllOf((TopicBinding(),))


def after_key(community_of: Callable[[str], str]) -> AllOf[Arrival]:
    return AllOf((OriginCommunity(community_of),))


def after_signature(guard: ReplayGuard) -> AllOf[Arrival]:
    return AllOf((NotBackdated(), ValidityWindow(), NotReplayed(guard)))
