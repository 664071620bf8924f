"""Sealing: one payload, encrypted for a set of recipients, signed by the sender.

Recipe (docs/envelope.md has the full construction):
1. encode the payload with Avro single-object encoding;
2. take a content key for this exact recipient-key set (fresh, or reused within
   the bounds of `ContentKeyCache`), wrapped once per recipient with HPKE;
3. encode the header (everything but ciphertext and signature);
4. AES-256-GCM encrypt the payload under the content key with a never-repeating
   nonce and the encoded header as AAD;
5. Ed25519-sign the header and the ciphertext (domain-separated).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.clock import Clock, to_millis, utc_now
from broker.envelope import _hpke, _wire
from broker.envelope.content_keys import ContentKeyCache
from broker.envelope.header import EnvelopeHeader, header_from_record
from broker.envelope.labels import Labels
from broker.errors import ConfigError, RegistryError
from broker.keyring import Keyring
from broker.keystore import Keystore
from broker.registry import COMMUNITIES
from broker.schemas import SchemaStore

#: Default lifetime of a sealed record.
DEFAULT_VALIDITY = timedelta(days=7)
#: The longest validity a receiver accepts (it also bounds how long replay
#: guards must remember ids, and how far a stolen key can backdate).
MAX_VALIDITY = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SealedMessage:
    data: bytes
    header: EnvelopeHeader

    @property
    def message_id(self) -> str:
        return self.header.message_id

    def __len__(self) -> int:
        return len(self.data)


class Sealer:
    """Seals payloads as one sender. Keeps content keys for reuse (see content_keys)."""

    def __init__(
        self,
        sender: str,
        *,
        keystore: Keystore,
        keyring: Keyring,
        store: SchemaStore,
        clock: Clock = utc_now,
        content_keys: ContentKeyCache | None = None,
    ) -> None:
        self.sender = sender
        self._keystore = keystore
        self._keyring = keyring
        self._store = store
        self._clock = clock
        self._content_keys = content_keys if content_keys is not None else ContentKeyCache()
        self._community = keyring.community_of(sender)

    def seal(
        self,
        payload_type: str,
        record: Mapping[str, Any],
        *,
        recipients: Iterable[str],
        topic: str,
        labels: Labels,
        target_community: str | None = None,
        validity: timedelta = DEFAULT_VALIDITY,
        message_id: str | None = None,
    ) -> SealedMessage:
        """Encrypt `record` (of `payload_type`) for `recipients` and sign it for `topic`."""
        now = to_millis(self._clock())
        target = target_community or self._community
        if target not in COMMUNITIES:
            raise ConfigError(f"unknown target community {target!r}")
        if not timedelta(0) < validity <= MAX_VALIDITY:
            raise ConfigError(f"validity must be positive and at most {MAX_VALIDITY}")
        names = list(dict.fromkeys(recipients))
        if not names:
            raise ConfigError("a sealed record needs at least one recipient")
        full_type = self._store.full_name(payload_type)
        payload = self._store.encode(full_type, record)

        unknown = [r for r in names if r not in self._keyring]
        if unknown:
            raise RegistryError(
                f"no registered keys for recipients {', '.join(unknown)}; check the ids "
                "(`jcu keys list`)"
            )
        rkeys = [self._keyring.recipient_key(r, now) for r in names]
        ck, _ = self._content_keys.key_for(((k.participant, k.key_id) for k in rkeys), now)
        blocks = []
        for k in rkeys:
            wrapped = ck.wrapped.get(k.participant)
            if wrapped is None:
                info = _hpke.wrap_info(k.kem, self.sender, k.participant, k.key_id, ck.key_id)
                wrapped = _hpke.wrap(k.kem, k.public_key, ck.key, info)
                ck.wrapped[k.participant] = wrapped
            blocks.append(
                {"participant": k.participant, "key_id": k.key_id, "kem": k.kem,
                 "wrapped_key": wrapped}
            )

        sign_kid = self._keyring.current_signing_key_id(self.sender, now)
        signing_key = self._keystore.signing_key(self.sender, sign_kid)
        nonce = ck.next_nonce()
        rec: dict[str, Any] = {
            "version": _wire.ENVELOPE_VERSION,
            "message_id": message_id or str(uuid.uuid4()),
            "sender": self.sender,
            "sender_key_id": sign_kid,
            "signature_algorithm": _wire.SIGNATURE_ALGORITHM,
            "created": now,
            "expires": now + validity,
            "origin_community": self._community,
            "target_community": target,
            "topic": topic,
            "payload_type": full_type,
            "payload_fingerprint": self._store.fingerprint(full_type),
            "labels": labels.to_avro(),
            "content_algorithm": _wire.CONTENT_ALGORITHM,
            "content_key_id": ck.key_id,
            "recipients": blocks,
            "nonce": nonce,
            "ciphertext": b"",
            "signature": b"",
        }
        prefix = _wire.prefix_of_unsealed(self._store.encode("Envelope", rec))
        ciphertext = AESGCM(ck.key).encrypt(nonce, payload, _wire.aad(prefix))
        signature = signing_key.sign(_wire.signed_message(prefix, ciphertext))
        data = _wire.assemble(prefix, ciphertext, signature)
        return SealedMessage(data=data, header=header_from_record(rec))

