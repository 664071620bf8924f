"""Envelopes built by hand and signed with the sender's real key, for tests only.

- Format version 1, the legacy construction no production code writes any more:
  labels in the clear header, plaintext = the payload's single-object encoding,
  encoded with `schemas/legacy/Envelope.v1.avsc`.
- Format version 2 bent in ways `Sealer` never bends it: a clear TLP or exercise
  flag unlike the labels inside, another payload than the header declares, a
  plaintext that is no SealedContent, a recipients block changed before signing.

Built independently of the sealer (fastavro through the schema store, no
`_content` fast path), so the tests cross-check the production construction.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import fastavro
import fastavro.schema
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.envelope import Labels, _hpke, _wire
from broker.envelope.content_keys import ContentKeyCache
from broker.envelope.labels import tlp_to_avro
from broker.schemas import SINGLE_OBJECT_MAGIC, SchemaStore
from broker.trust.keyring import Keyring
from broker.trust.keystore import Keystore
from tests.broker._pki import REPO

LEGACY_V1 = REPO / "schemas" / "legacy" / "Envelope.v1.avsc"
#: Fingerprint of envelope format version 1 (in every version 1 envelope ever written).
V1_FINGERPRINT = bytes.fromhex("52a5b7eba163aefb")
Blocks = list[dict[str, Any]]


@functools.cache
def _v1_schema() -> tuple[Any, bytes]:
    raw = json.loads(LEGACY_V1.read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    return fastavro.parse_schema(copy.deepcopy(raw)), fingerprint


def encode_v1(rec: dict[str, Any]) -> bytes:
    """Single-object encoding of an Envelope record of format version 1."""
    parsed, fingerprint = _v1_schema()
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + fingerprint)
    fastavro.schemaless_writer(buf, parsed, rec)
    return buf.getvalue()


def forge(
    store: SchemaStore,
    keyring: Keyring,
    keystore: Keystore,
    sender: str,
    payload_type: str,
    record: dict[str, Any],
    *,
    recipients: list[str],
    topic: str,
    labels: Labels,
    now: datetime,
    version: int = 2,
    v1_layout: bool | None = None,
    clear_tlp: str | None = None,
    clear_exercise: bool | None = None,
    declared_fingerprint: bytes | None = None,
    payload: bytes | None = None,
    plaintext: bytes | None = None,
    bend_blocks: Callable[[Blocks], Blocks] | None = None,
    validity: timedelta = timedelta(days=1),
) -> tuple[bytes, str]:
    """Envelope bytes and their message id, signed ("ed25519") by `sender`.

    `version` goes in the version field; the layout is version 1's if `v1_layout`
    (default: version == 1). Version 2's clear `tlp`/`exercise` follow `labels`
    unless `clear_tlp`/`clear_exercise` say otherwise. `payload` replaces the
    encoding of `record` inside; `plaintext` replaces everything encrypted.
    """
    v1 = version == _wire.LEGACY_VERSION if v1_layout is None else v1_layout
    full = store.full_name(payload_type)
    if payload is None:
        payload = store.encode(full, record)
    rkeys = [keyring.recipient_key(r, now) for r in recipients]
    ck, _ = ContentKeyCache().key_for(((k.participant, k.key_id) for k in rkeys), now)
    blocks: Blocks = [
        {
            "participant": k.participant,
            "key_id": k.key_id,
            "kem": k.kem,
            "wrapped_key": _hpke.wrap(
                k.kem,
                k.public_key,
                ck.key,
                _hpke.wrap_info(k.kem, sender, k.participant, k.key_id, ck.key_id),
            ),
        }
        for k in rkeys
    ]
    if bend_blocks is not None:
        blocks = bend_blocks(blocks)
    kid = keyring.current_signing_key_id(sender, now)
    mid = str(uuid.uuid4())
    rec: dict[str, Any] = {
        "version": version,
        "message_id": mid,
        "sender": sender,
        "sender_key_id": kid,
        "signature_algorithm": _wire.SIGNATURE_ALGORITHM,
        "created": now,
        "expires": now + validity,
        "origin_community": keyring.community_of(sender),
        "target_community": keyring.community_of(sender),
        "topic": topic,
        "payload_type": full,
        "payload_fingerprint": declared_fingerprint or store.fingerprint(full),
        "content_algorithm": _wire.CONTENT_ALGORITHM,
        "content_key_id": ck.key_id,
        "recipients": blocks,
        "nonce": ck.next_nonce(),
        "ciphertext": b"",
        "signature": b"",
    }
    if v1:
        rec["labels"] = labels.to_avro()
        unsealed = encode_v1(rec)
        inside = payload
    else:
        rec["tlp"] = tlp_to_avro(clear_tlp or labels.tlp)
        rec["exercise"] = labels.exercise is not None if clear_exercise is None else clear_exercise
        unsealed = store.encode("Envelope", rec)
        inside = store.encode("SealedContent", {"payload": payload, "labels": labels.to_avro()})
    if plaintext is not None:
        inside = plaintext
    prefix = _wire.prefix_of_unsealed(unsealed)
    ct = AESGCM(ck.key).encrypt(rec["nonce"], inside, _wire.aad(prefix))
    signature = keystore.signing_key(sender, kid).sign(_wire.signed_message(prefix, ct))
    return _wire.assemble(prefix, ct, signature), mid
