"""Opening: verify, check, decrypt, decode, as one receiving participant.

Checks run in this order; the first that fails decides the error:

 1. the bytes decode as an Envelope ............ MalformedRecord / UnknownSchema
    (of format version 2, or 1 with its legacy schema; a version written with
    the other's schema is MalformedRecord)
 2. version and algorithm identifiers known .... UnsupportedVersion
 3. read from the topic it was sealed for ...... WrongTopic
 4. the sender's key, at the creation time ..... UnknownKey / WrongSender /
    (and at the broker's append time, if given)  RevokedKey / ExpiredKey
    created not long before it was appended ..... Backdated
 5. origin community is the sender's ........... WrongSender
 6. Ed25519 signature over header+ciphertext ... BadSignature
    (or over a batch root, with an inclusion proof)
 7. inside its validity window ................. Expired
 8. message id not seen before ................. Replay
 9. addressed to a key this participant holds .. NotARecipient
10. wrapped key and ciphertext open ............ TamperedCiphertext
11. the plaintext is a SealedContent (v2) ...... MalformedRecord / UnknownSchema
12. its TLP and exercise flag are the clear
    header's (v2) .............................. LabelMismatch
13. payload is the declared type ............... UnknownSchema / MalformedRecord

Steps 3, 5, 7 and 8 are check objects (`broker.envelope.checks`), run as the
policies `before_key`, `after_key` and `after_signature`.

The signature covers every header field, the recipients block, the nonce and
the ciphertext, so after step 6 any change made by someone other than the
sender is already refused; steps 10-13 catch a sender's own malformed or lying
output (a header that shows another TLP than the labels it encrypted).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.avro_binary import encode_bytes
from broker.clock import Clock, to_millis, utc_now
from broker.envelope import _batch_sig, _hpke, _wire, checks
from broker.envelope._content import ContentCodec
from broker.envelope.checks import Arrival
from broker.envelope.content_keys import NONCE_LEN
from broker.envelope.header import DecodedEnvelope, EnvelopeHeader, header_from_record
from broker.envelope.labels import Labels
from broker.envelope.replay import ReplayGuard
from broker.errors import (
    BadSignature,
    KeystoreError,
    LabelMismatch,
    MalformedRecord,
    NotARecipient,
    TamperedCiphertext,
    UnknownSchema,
    UnsupportedVersion,
)
from broker.schemas import SchemaStore
from broker.trust.keyring import Keyring
from broker.trust.keystore import Keystore

_SIGNATURE_ALGORITHMS = (_wire.SIGNATURE_ALGORITHM, _batch_sig.ALGORITHM)
_VERSIONS = (_wire.ENVELOPE_VERSION, _wire.LEGACY_VERSION)


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """A verified, decrypted record, its labels and the header it came with."""

    header: EnvelopeHeader
    record: dict[str, Any]
    #: All handling labels: decrypted (format 2; their TLP and exercise flag are the
    #: header's), or the clear header's (format 1), verified either way.
    labels: Labels
    #: SHA-256 of the decrypted payload (single-object encoding): the audit's content hash.
    content_hash: bytes = b""

    @property
    def sender(self) -> str:
        return self.header.sender

    @property
    def sender_key_id(self) -> str:
        return self.header.sender_key_id

    @property
    def message_id(self) -> str:
        return self.header.message_id

    @property
    def payload_type(self) -> str:
        return self.header.payload_type

    @property
    def created(self) -> datetime:
        return self.header.created

    @property
    def expires(self) -> datetime:
        return self.header.expires


class Opener:
    """Opens envelopes as one participant, with a replay guard."""

    def __init__(
        self,
        participant: str,
        *,
        keystore: Keystore,
        keyring: Keyring,
        store: SchemaStore,
        replay_guard: ReplayGuard,
        clock: Clock = utc_now,
        unwrapped_cache_size: int = 256,
    ) -> None:
        self.participant = participant
        self._keystore = keystore
        self._keyring = keyring
        self._store = store
        self._guard = replay_guard
        self._clock = clock
        # Identical wrapped-key bytes always open to the same content key; keep a few
        # so a reused content key costs one HPKE open, not one per message.
        self._unwrapped: OrderedDict[bytes, bytes] = OrderedDict()
        self._unwrapped_max = unwrapped_cache_size
        self._batches = _batch_sig.BatchVerifier()
        self._content = ContentCodec(store)
        # The header's checks, in the order of the module docstring (broker.envelope.checks).
        self._before_key = checks.before_key()
        self._after_key = checks.after_key(keyring.community_of)
        self._after_signature = checks.after_signature(replay_guard)

    def open(
        self,
        data: bytes,
        *,
        topic: str,
        decoded: DecodedEnvelope | None = None,
        appended: datetime | None = None,
    ) -> OpenedMessage:
        """Verify and decrypt envelope bytes read from `topic`; raises a `Rejected` subclass.

        `decoded`: what `decode_envelope` returned for these very bytes (the receiver
        routed on its header), so they are not decoded twice; ignored for other bytes.
        `appended`: when the broker appended the record (LogAppendTime), if known: a
        record created more than APPEND_SKEW before it is refused as backdated, and a
        key revoked as compromised refuses every record appended after its revocation.
        """
        given = decoded if decoded is not None and decoded.data is data else None
        if given is not None:
            rec = given.record
        else:
            _, rec = self._store.decode(data, expected="Envelope")
        if rec["version"] not in _VERSIONS:
            raise UnsupportedVersion(f"envelope version {rec['version']} is not supported")
        if rec["signature_algorithm"] not in _SIGNATURE_ALGORITHMS:
            raise UnsupportedVersion(f"signature algorithm {rec['signature_algorithm']!r}")
        if rec["content_algorithm"] != _wire.CONTENT_ALGORITHM:
            raise UnsupportedVersion(f"content algorithm {rec['content_algorithm']!r}")
        header = given.header if given is not None else header_from_record(rec)
        arrival = Arrival(header, topic, appended, to_millis(self._clock()))
        self._before_key.verify(arrival)

        sender_key = self._keyring.signing_key(
            header.sender, header.sender_key_id, header.created, appended
        )
        self._after_key.verify(arrival)
        ciphertext, signature = bytes(rec["ciphertext"]), bytes(rec["signature"])
        prefix = _wire.prefix_of(data, ciphertext, signature)
        if not self._signature_holds(sender_key, header, rec, prefix, ciphertext, signature):
            raise BadSignature(
                f"signature of message {header.message_id} does not verify "
                f"with {header.sender}'s key {header.sender_key_id}"
            )
        self._after_signature.verify(arrival)

        entry = next(
            (
                r
                for r in rec["recipients"]
                if r["participant"] == self.participant and self._holds_kem_key(r["key_id"])
            ),
            None,
        )
        if entry is None:
            raise NotARecipient(
                f"message {header.message_id} is not addressed to {self.participant} "
                "(or to a key it holds)"
            )
        content_key = self._unwrap(header, entry)
        nonce = bytes(rec["nonce"])
        if len(nonce) != NONCE_LEN:
            raise TamperedCiphertext(f"nonce of {len(nonce)} bytes, expected {NONCE_LEN}")
        try:
            plaintext = AESGCM(content_key).decrypt(nonce, ciphertext, _wire.aad(prefix))
        except InvalidTag:
            raise TamperedCiphertext(
                f"ciphertext of message {header.message_id} fails authentication"
            ) from None

        if header.labels is not None:  # format 1: the plaintext is the payload
            labels, payload = header.labels, plaintext
        else:
            labels, payload = self._content.unwrap(plaintext)
            if labels.tlp != header.tlp or (labels.exercise is not None) != header.exercise:
                raise LabelMismatch(
                    f"message {header.message_id} shows TLP:{header.tlp}"
                    f"{' exercise' if header.exercise else ''} in the clear but carries "
                    f"TLP:{labels.tlp}{' exercise' if labels.exercise is not None else ''}"
                )
        payload_type, record = self._store.decode(payload)
        if payload_type != header.payload_type:
            raise UnknownSchema(f"payload is {payload_type}, header says {header.payload_type}")
        if payload[2:10] != header.payload_fingerprint:
            raise MalformedRecord("payload fingerprint differs from the header's")
        self._guard.remember(header.message_id, header.expires)
        return OpenedMessage(
            header=header,
            record=record,
            labels=labels,
            content_hash=hashlib.sha256(payload).digest(),
        )

    def _signature_holds(
        self,
        key: ed25519.Ed25519PublicKey,
        header: EnvelopeHeader,
        rec: dict[str, Any],
        prefix: bytes,
        ciphertext: bytes,
        signature: bytes,
    ) -> bool:
        if rec["signature_algorithm"] == _batch_sig.ALGORITHM:
            leaf = _batch_sig.leaf(prefix, encode_bytes(ciphertext))
            tag = f"{header.sender}\x00{header.sender_key_id}".encode()
            return self._batches.verify(key, tag, leaf, signature)
        try:
            key.verify(signature, _wire.signed_message(prefix, ciphertext))
        except InvalidSignature:
            return False
        return True

    def _holds_kem_key(self, kid: str) -> bool:
        """`kid` is one of our registered KEM keys (never, say, our signing key) and we hold it."""
        info = self._keyring.entry(self.participant).key(kid)
        return (
            info is not None
            and info.purpose == "kem"
            and self._keystore.has_key(self.participant, kid)
        )

    def _unwrap(self, header: EnvelopeHeader, entry: dict[str, Any]) -> bytes:
        wrapped = bytes(entry["wrapped_key"])
        cache_key = b"\x00".join(
            (
                entry["kem"].encode(),
                entry["key_id"].encode(),
                header.sender.encode(),
                header.content_key_id,
                wrapped,
            )
        )
        cached = self._unwrapped.get(cache_key)
        if cached is not None:
            self._unwrapped.move_to_end(cache_key)
            return cached
        kem = entry["kem"]
        try:
            private = self._keystore.kem_key(self.participant, entry["key_id"])
        except KeystoreError as exc:
            raise NotARecipient(
                f"message {header.message_id}: no usable key {entry['key_id']} ({exc})"
            ) from None
        info = _hpke.wrap_info(
            kem, header.sender, self.participant, entry["key_id"], header.content_key_id
        )
        key = _hpke.unwrap(kem, private, wrapped, info)
        self._unwrapped[cache_key] = key
        if len(self._unwrapped) > self._unwrapped_max:
            self._unwrapped.popitem(last=False)
        return key
