"""Envelope throughput: seal and open per second, 1 KiB records, 1/5/20 recipients, both KEMs.

Run: .venv/bin/python -m bench.envelope [--seconds 0.4]

Measured in this run, on a throw-away federation (an authority and a keystore per
participant; 20 X25519 and 20 ML-KEM-768+X25519 recipients): the baselines (one
Ed25519 verify, one AES-256-GCM encryption of 1 KiB), then for each KEM and recipient count
- seal/s with a reused content key (the steady state: HPKE wraps amortised),
- seal/s with a fresh content key per message (every recipient wrapped each time),
- open/s as one recipient, for reused-key and fresh-key messages,
- the envelope size in bytes,
and each cost as a multiple of the baselines (x verify, x AES-GCM).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker import config
from broker.clock import utc_now
from broker.envelope import ContentKeyCache, Labels, MemoryReplayGuard, Opener, Sealer
from broker.schemas import SchemaStore
from broker.trust.authority import Authority
from broker.trust.keyring import Keyring
from broker.trust.keystore import Keystore
from broker.trust.node import NodeHome, register
from broker.trust.registry import parse_registry

TOPIC = "jcu.civilian.indicators"
COUNTS = (1, 5, 20)
KEMS = {"x25519": "civilian", "mlkem768x25519": "defence"}


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn`, over at least `seconds` (after one warm-up call)."""
    fn()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        n += 20
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def _registry() -> Any:
    parts: list[dict[str, Any]] = [
        {
            "id": "bench-sender",
            "community": "civilian",
            "role": "operational",
            "mandates": [{"legal_basis": "bench", "categories": ["other"]}],
        }
    ]
    for kem, community in KEMS.items():
        for i in range(max(COUNTS)):
            parts.append(
                {
                    "id": f"r-{kem}-{i:02d}",
                    "community": community,
                    "role": "member",
                    "mandates": [{"legal_basis": "bench", "categories": ["other"]}],
                }
            )
    return parse_registry(
        {
            "version": 1,
            "communities": {"civilian": {"kem": "x25519"}, "defence": {"kem": "mlkem768x25519"}},
            "participants": parts,
        }
    )


def _record() -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "observable_type": "domain-name",
        "value": "bad.example",
        "valid_from": utc_now(),
        "description": "",
    }
    return rec


def _federation(root: Path, store: SchemaStore) -> tuple[dict[str, Keystore], Keyring]:
    """A keystore per participant of `_registry()`, every key approved by one authority.
    scrypt is cheap here (2**10): these keys protect nothing and the bench measures sealing."""

    def keystore(path: Path) -> Keystore:
        return Keystore(path, b"bench only", scrypt_n=2**10, min_scrypt_n=2**10)

    registry = _registry()
    authority = Authority.create(root / "authority", keystore(root / "authority" / "keys"), store)
    keystores: dict[str, Keystore] = {}
    for p in registry:
        node = NodeHome.create(root / p.id, p.id)
        keystores[p.id] = keystore(node.keystore_dir)
        req = register(node, keystores[p.id], store, p, registry.kem_of(p.id))
        authority.approve(req.path.read_bytes(), registry, fingerprints=[req.fingerprint])
    return keystores, Keyring(authority.records().values())


def _measure(
    keystores: dict[str, Keystore],
    keyring: Keyring,
    store: SchemaStore,
    record: dict[str, Any],
    labels: Labels,
    to: list[str],
    secs: float,
) -> dict[str, float]:
    """Seal and open rates and the envelope size for one recipient list."""
    keystore = keystores["bench-sender"]
    reuse = Sealer("bench-sender", keystore=keystore, keyring=keyring, store=store)
    fresh = Sealer(
        "bench-sender",
        keystore=keystore,
        keyring=keyring,
        store=store,
        content_keys=ContentKeyCache(max_messages=1),
    )

    def seal(s: Sealer) -> bytes:
        return s.seal("Indicator", record, recipients=to, topic=TOPIC, labels=labels).data

    seal_rate = _rate(lambda: seal(reuse), secs)
    fresh_rate = _rate(lambda: seal(fresh), secs)

    def open_rate(sealer: Sealer) -> float:
        batch = [seal(sealer) for _ in range(max(50, int(seal_rate * secs / 4)))]
        opener = Opener(
            to[-1],
            keystore=keystores[to[-1]],
            keyring=keyring,
            store=store,
            replay_guard=MemoryReplayGuard(),
        )
        start = time.perf_counter()
        for data in batch:
            opener.open(data, topic=TOPIC)
        return len(batch) / (time.perf_counter() - start)

    return {
        "seal": seal_rate,
        "seal_fresh": fresh_rate,
        "open": open_rate(reuse),
        "open_fresh": open_rate(fresh),
        "size": len(seal(reuse)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="time per measurement")
    args = parser.parse_args()
    secs: float = args.seconds

    store = SchemaStore.load(config.load().schemas)
    record = _record()
    body = len(store.encode("Indicator", record))
    record["description"] = "x" * (1024 - body - 1)  # payload of 1 KiB
    payload_len = len(store.encode("Indicator", record))
    labels = Labels.of("AMBER", categories=["other"])

    with tempfile.TemporaryDirectory() as tmp:
        keystores, keyring = _federation(Path(tmp), store)

        # baselines
        sk = ed25519.Ed25519PrivateKey.generate()
        pk, msg = sk.public_key(), os.urandom(1024)
        sig = sk.sign(msg)
        verify_rate = _rate(lambda: pk.verify(sig, msg), secs)
        aes, nonce, plain = AESGCM(os.urandom(32)), os.urandom(12), os.urandom(1024)
        aes_rate = _rate(lambda: aes.encrypt(nonce, plain, b"header"), secs)
        print(f"payload {payload_len} B (Avro single-object Indicator)")
        print(
            f"baseline: Ed25519 verify {verify_rate:,.0f}/s   AES-256-GCM 1 KiB {aes_rate:,.0f}/s"
        )
        print()
        head = (
            f"{'kem':<15}{'rcpt':>5}{'size B':>8}{'seal/s':>9}{'(x vfy)':>9}"
            f"{'seal-fresh/s':>13}{'(x vfy)':>9}{'open/s':>9}{'(x vfy)':>9}"
            f"{'open-fresh/s':>13}{'(x vfy)':>9}{'(x AES)':>9}"
        )
        print(head)
        print("-" * len(head))

        def ratio(rate: float, base: float) -> str:
            return f"{base / rate:>8.1f}x"

        for kem in KEMS:
            for n in COUNTS:
                to = [f"r-{kem}-{i:02d}" for i in range(n)]
                r = _measure(keystores, keyring, store, record, labels, to, secs)
                print(
                    f"{kem:<15}{n:>5}{r['size']:>8}"
                    f"{r['seal']:>9,.0f}{ratio(r['seal'], verify_rate)}"
                    f"{r['seal_fresh']:>13,.0f}{ratio(r['seal_fresh'], verify_rate)}"
                    f"{r['open']:>9,.0f}{ratio(r['open'], verify_rate)}"
                    f"{r['open_fresh']:>13,.0f}{ratio(r['open_fresh'], verify_rate)}"
                    f"{ratio(r['open_fresh'], aes_rate)}"
                )
    print()
    print("(x vfy) = time of one operation / time of one Ed25519 verify; (x AES) = open-fresh")
    print("time / one AES-256-GCM 1 KiB encryption. seal: reused content key (<= 1000 messages,")
    print("10 min); seal-fresh: new content key and HPKE wrap for every recipient per message.")


if __name__ == "__main__":
    main()
