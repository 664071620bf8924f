"""Sealing: one payload, encrypted for a set of recipients, signed by the sender.

Recipe (docs/envelope.md has the full construction), format version 2:
1. encode the payload with Avro single-object encoding, and wrap it with its
   labels in a SealedContent (`_content`);
2. take a content key for this exact recipient-key set (fresh, or reused within
   the bounds of `ContentKeyCache`), wrapped once per recipient with HPKE;
3. encode the header (everything but ciphertext and signature; of the labels
   only the TLP and whether it is exercise traffic);
4. AES-256-GCM encrypt the SealedContent under the content key with a
   never-repeating nonce and the encoded header as AAD;
5. Ed25519-sign the header and the ciphertext (domain-separated); a batch
   (`seal_many`) signs the Merkle root of its envelopes once (`_batch_sig`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from broker.avro_binary import encode_bytes
from broker.clock import Clock, to_millis, utc_now
from broker.envelope import _batch_sig, _hpke, _wire
from broker.envelope._content import ContentCodec
from broker.envelope.content_keys import ContentKey, ContentKeyCache
from broker.envelope.header import EnvelopeHeader, header_from_record
from broker.envelope.labels import Labels, tlp_to_avro
from broker.errors import ConfigError, RegistryError
from broker.schemas import SchemaStore
from broker.trust.keyring import Keyring, RecipientKey
from broker.trust.keystore import Keystore
from broker.vocabulary import COMMUNITIES

#: Default lifetime of a sealed record.
DEFAULT_VALIDITY = timedelta(days=7)
#: The longest validity a receiver accepts (it also bounds how long replay
#: guards must remember ids, and how far a stolen key can backdate).
MAX_VALIDITY = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SealRequest:
    """One payload to seal: what `Sealer.seal` takes, for `Sealer.seal_many`."""

    payload_type: str
    record: Mapping[str, Any]
    recipients: tuple[str, ...]
    topic: str
    labels: Labels
    target_community: str | None = None
    validity: timedelta = DEFAULT_VALIDITY
    message_id: str | None = None
    #: The record's single-object encoding, when the caller already has it (not re-encoded).
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class SealedMessage:
    data: bytes
    #: The clear header (of the labels, only TLP and the exercise flag are in it).
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
        self._content = ContentCodec(store)

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
        request = SealRequest(
            payload_type,
            record,
            recipients=tuple(recipients),
            topic=topic,
            labels=labels,
            target_community=target_community,
            validity=validity,
            message_id=message_id,
        )
        return self.seal_many([request])[0]

    def seal_many(self, requests: Sequence[SealRequest]) -> list[SealedMessage]:
        """Seal several payloads under one signature (see `_batch_sig`): each envelope
        still verifies alone. One request is signed on its own ("ed25519"). All are
        checked before any is sealed; the first bad one raises."""
        if not requests:
            return []
        now = to_millis(self._clock())
        sign_kid = self._keyring.current_signing_key_id(self.sender, now)
        signing_key = self._keystore.signing_key(self.sender, sign_kid)
        algorithm = _wire.SIGNATURE_ALGORITHM if len(requests) == 1 else _batch_sig.ALGORITHM
        out: list[SealedMessage] = []
        for start in range(0, len(requests), _batch_sig.MAX_BATCH):
            chunk = requests[start : start + _batch_sig.MAX_BATCH]
            templates: dict[tuple[Any, ...], _Template] = {}
            keys: dict[tuple[str, ...], list[RecipientKey]] = {}
            built = [self._build(r, now, sign_kid, algorithm, templates, keys) for r in chunk]
            if algorithm == _wire.SIGNATURE_ALGORITHM:
                prefix, ciphertext, _ = built[0]
                signatures = [signing_key.sign(_wire.signed_message(prefix, ciphertext))]
            else:
                signatures = _batch_sig.sign_batch(
                    signing_key,
                    [_batch_sig.leaf(p, encode_bytes(c)) for p, c, _ in built],
                )
            out.extend(
                SealedMessage(data=_wire.assemble(p, c, sig), header=header)
                for (p, c, header), sig in zip(built, signatures, strict=True)
            )
        return out

    def _build(
        self,
        request: SealRequest,
        now: datetime,
        sign_kid: str,
        algorithm: str,
        templates: dict[tuple[Any, ...], _Template],
        keys: dict[tuple[str, ...], list[RecipientKey]],
    ) -> tuple[bytes, bytes, EnvelopeHeader]:
        """Encrypt one payload: its prefix, ciphertext and header (unsigned).

        `templates` holds the encoded header parts envelopes of one batch share
        (all but message id and nonce), so a batch encodes each variant once;
        labels that differ but in what the header shows (TLP, exercise or not)
        share one. `keys` the recipients' keys, looked up once per batch (all at `now`).
        """
        target = request.target_community or self._community
        if target not in COMMUNITIES:
            raise ConfigError(f"unknown target community {target!r}")
        if not timedelta(0) < request.validity <= MAX_VALIDITY:
            raise ConfigError(f"validity must be positive and at most {MAX_VALIDITY}")
        names = tuple(dict.fromkeys(request.recipients))
        if not names:
            raise ConfigError("a sealed record needs at least one recipient")
        full_type = self._store.full_name(request.payload_type)
        payload = request.payload
        if payload is None or payload[2:10] != self._store.fingerprint(full_type):
            payload = self._store.encode(full_type, request.record)

        rkeys = keys.get(names)
        if rkeys is None:
            rkeys = keys[names] = self._recipient_keys(names, now)
        ck, _ = self._content_keys.key_for(((k.participant, k.key_id) for k in rkeys), now)
        key = (
            target,
            request.validity,
            request.topic,
            full_type,
            request.labels.tlp,
            request.labels.exercise is not None,
            ck.key_id,
            tuple((k.participant, k.key_id) for k in rkeys),
        )
        template = templates.get(key)
        if template is None:
            template = self._template(
                full_type, request, now, sign_kid, algorithm, target, rkeys, ck
            )
            templates[key] = template
        message_id = request.message_id or str(uuid.uuid4())
        nonce = ck.next_nonce()
        prefix = (
            template.head
            + encode_bytes(message_id.encode())
            + template.middle
            + encode_bytes(nonce)
        )
        content = self._content.wrap(request.labels, payload)
        ciphertext = ck.aead.encrypt(nonce, content, _wire.aad(prefix))
        return prefix, ciphertext, replace(template.header, message_id=message_id)

    def _recipient_keys(self, names: tuple[str, ...], now: datetime) -> list[RecipientKey]:
        unknown = [r for r in names if r not in self._keyring]
        if unknown:
            raise RegistryError(
                f"no registered keys for recipients {', '.join(unknown)}; check the ids "
                "(`jcu keys list`)"
            )
        return [self._keyring.recipient_key(r, now) for r in names]

    def _template(
        self,
        full_type: str,
        request: SealRequest,
        now: datetime,
        sign_kid: str,
        algorithm: str,
        target: str,
        rkeys: list[RecipientKey],
        ck: ContentKey,
    ) -> _Template:
        blocks = []
        for k in rkeys:
            wrapped = ck.wrapped.get(k.participant)
            if wrapped is None:
                info = _hpke.wrap_info(k.kem, self.sender, k.participant, k.key_id, ck.key_id)
                wrapped = _hpke.wrap(k.kem, k.public_key, ck.key, info)
                ck.wrapped[k.participant] = wrapped
            blocks.append(
                {
                    "participant": k.participant,
                    "key_id": k.key_id,
                    "kem": k.kem,
                    "wrapped_key": wrapped,
                }
            )
        rec: dict[str, Any] = {
            "version": _wire.ENVELOPE_VERSION,
            "message_id": "",
            "sender": self.sender,
            "sender_key_id": sign_kid,
            "signature_algorithm": algorithm,
            "created": now,
            "expires": now + request.validity,
            "origin_community": self._community,
            "target_community": target,
            "topic": request.topic,
            "payload_type": full_type,
            "payload_fingerprint": self._store.fingerprint(full_type),
            "tlp": tlp_to_avro(request.labels.tlp),
            "exercise": request.labels.exercise is not None,
            "content_algorithm": _wire.CONTENT_ALGORITHM,
            "content_key_id": ck.key_id,
            "recipients": blocks,
            "nonce": b"",
            "ciphertext": b"",
            "signature": b"",
        }
        head, middle = _wire.split_template(self._store.encode("Envelope", rec))
        return _Template(head, middle, header_from_record(rec))


@dataclass(frozen=True, slots=True)
class _Template:
    head: bytes
    middle: bytes
    header: EnvelopeHeader
