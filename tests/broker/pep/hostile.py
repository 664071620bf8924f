"""Envelopes a legitimate but hostile participant can make: signed with its real key,
built like `Sealer.seal` but with the recipients block or header bent before signing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.clock import to_millis, utc_now
from broker.envelope import Labels, _hpke, _wire
from broker.envelope.content_keys import ContentKeyCache
from broker.envelope.context import EnvelopeContext


def craft(
    env: EnvelopeContext,
    sender: str,
    payload_type: str,
    record: dict[str, Any],
    *,
    recipients: list[str],
    topic: str,
    labels: Labels,
    bend_blocks: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> tuple[bytes, str]:
    store, keyring = env.store, env.keyring
    now = to_millis(utc_now())
    full = store.full_name(payload_type)
    payload = store.encode(full, record)
    rkeys = [keyring.recipient_key(r, now) for r in recipients]
    ck, _ = ContentKeyCache().key_for(((k.participant, k.key_id) for k in rkeys), now)
    blocks = [
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
        "version": 1,
        "message_id": mid,
        "sender": sender,
        "sender_key_id": kid,
        "signature_algorithm": "ed25519",
        "created": now,
        "expires": now + timedelta(days=1),
        "origin_community": keyring.community_of(sender),
        "target_community": keyring.community_of(sender),
        "topic": topic,
        "payload_type": full,
        "payload_fingerprint": store.fingerprint(full),
        "labels": labels.to_avro(),
        "content_algorithm": "aes-256-gcm",
        "content_key_id": ck.key_id,
        "recipients": blocks,
        "nonce": ck.next_nonce(),
        "ciphertext": b"",
        "signature": b"",
    }
    prefix = _wire.prefix_of_unsealed(store.encode("Envelope", rec))
    ct = AESGCM(ck.key).encrypt(rec["nonce"], payload, _wire.aad(prefix))
    signature = env.keystore.signing_key(sender, kid).sign(_wire.signed_message(prefix, ct))
    return _wire.assemble(prefix, ct, signature), mid
