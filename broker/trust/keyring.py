"""Which public key of whom may be used when: the verified records of one registry snapshot.

Built from records the registry authority signed (`broker.trust.records`) and
replaced in place when a newer snapshot is accepted (`broker.trust.state`), so
every sealer and opener holding it applies rotations and revocations at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import KeystoreError, UnknownKey, WrongSender
from broker.trust.material import SIGNING_ALGORITHM, load_ed25519_public, load_kem_public
from broker.trust.records import KeyInfo, ParticipantKeys, RecipientKey

__all__ = ["KeyInfo", "Keyring", "ParticipantKeys", "RecipientKey"]


class Keyring:
    """Answers which public key of whom may be used at a given time. Built from verified records."""

    def __init__(self, entries: Iterable[ParticipantKeys]) -> None:
        self._entries: dict[str, ParticipantKeys] = {e.participant: e for e in entries}
        self._owner_of: dict[str, tuple[str, KeyInfo]] = {}
        self._parsed: dict[str, Any] = {}  # key id -> public key object (parsing is not free)
        for e in self._entries.values():
            for k in e.keys:
                self._owner_of[k.key_id] = (e.participant, k)

    def replace(self, entries: Iterable[ParticipantKeys]) -> None:
        """Take every record of a newer registry snapshot, in place: the sealers and
        openers holding this keyring see rotations and revocations at once."""
        self._entries = {e.participant: e for e in entries}
        self._owner_of = {
            k.key_id: (e.participant, k) for e in self._entries.values() for k in e.keys
        }
        self._parsed.clear()

    def update(self, entry: ParticipantKeys) -> bool:
        """Take a newer verified record of a participant (a higher serial); True if taken.

        Older or equal serials are ignored, so a replayed old record cannot undo a
        revocation.
        """
        held = self._entries.get(entry.participant)
        if held is not None and entry.serial <= held.serial:
            return False
        if held is not None:
            for k in held.keys:
                self._owner_of.pop(k.key_id, None)
        self._entries[entry.participant] = entry
        for k in entry.keys:
            self._owner_of[k.key_id] = (entry.participant, k)
        return True

    def participants(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, participant: object) -> bool:
        return participant in self._entries

    def entry(self, participant: str) -> ParticipantKeys:
        try:
            return self._entries[participant]
        except KeyError:
            raise UnknownKey(f"no keys registered for participant {participant!r}") from None

    def community_of(self, participant: str) -> str:
        return self.entry(participant).community

    def signing_key(
        self, sender: str, kid: str, at: datetime, appended: datetime | None = None
    ) -> ed25519.Ed25519PublicKey:
        """The public key `kid` if it is `sender`'s signing key and valid at `at` (and, for a
        record the broker stamped, at its append time `appended`: see `KeyInfo.check_at`).

        Raises UnknownKey, WrongSender, RevokedKey or ExpiredKey.
        """
        found = self._owner_of.get(kid)
        if found is None:
            raise UnknownKey(f"unknown signing key {kid!r}")
        owner, info = found
        if owner != sender:
            raise WrongSender(f"key {kid} belongs to {owner}, not to the named sender {sender}")
        if info.purpose != "signing" or info.algorithm != SIGNING_ALGORITHM:
            raise UnknownKey(f"key {kid} of {owner} is not an Ed25519 signing key")
        info.check_at(owner, at, appended)
        key = self._parsed.get(kid)
        if key is None:
            key = self._parsed[kid] = load_ed25519_public(info.public_key)
        assert isinstance(key, ed25519.Ed25519PublicKey)  # noqa: S101 - narrows for mypy: load_ed25519_public's type
        return key

    def current_signing_key_id(self, participant: str, at: datetime) -> str:
        info = self.entry(participant).current("signing", at)
        if info is None:
            raise KeystoreError(
                f"{participant} has no usable signing key in the registry; its node runs "
                "`jcu keys rotate` and the registry authority approves the request"
            )
        return info.key_id

    def can_receive(self, participant: str, at: datetime) -> bool:
        """Whether `participant` has a KEM key to wrap for at `at` (`recipient_key` would
        give one): none when all are revoked or expired, or it has no keys at all."""
        entry = self._entries.get(participant)
        return entry is not None and entry.current("kem", at) is not None

    def recipient_key(self, participant: str, at: datetime) -> RecipientKey:
        """The KEM key to wrap content keys for `participant` at time `at`."""
        entry = self.entry(participant)
        info = entry.current("kem", at)
        if info is None:
            raise KeystoreError(
                f"{participant} has no usable {entry.kem} key in the registry; its node runs "
                "`jcu keys rotate` and the registry authority approves the request"
            )
        cached = self._parsed.get(info.key_id)
        if not isinstance(cached, RecipientKey):
            cached = RecipientKey(
                participant=participant,
                key_id=info.key_id,
                kem=entry.kem,
                public_key=load_kem_public(info.algorithm, info.public_key),
            )
            self._parsed[info.key_id] = cached
        return cached
