"""A node accepts only newer snapshots its authority signed, and never goes back, across
restarts: forgeries, participant-signed copies, older epochs, forks and record rollbacks are
each refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import BadSignature, RegistryFork, StaleRegistry, UnknownKey
from broker.trust.authority.signing import sign_snapshot
from broker.trust.state import TrustedRegistry
from tests.broker._pki import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path, participants=["cert-eu", "enisa", "eda", "isac-energy"])


def _node_state(pki: Pki, org: str = "isac-energy") -> TrustedRegistry:
    return TrustedRegistry.load(pki.nodes[org].registry_dir, pki.store)


def _resign(pki: Pki, data: bytes, key: ed25519.Ed25519PrivateKey, **changes: object) -> bytes:
    _, rec = pki.store.decode(data, expected="RegistrySnapshot")
    return sign_snapshot(pki.store, {**rec, **changes}, key)


def test_a_newer_snapshot_is_accepted_persisted_and_applied(pki: Pki) -> None:
    state = _node_state(pki)
    assert state.current is None and state.epoch == 0
    first = state.offer(pki.export())
    assert first is not None and first.epoch == 1
    assert "cert-eu" in state.keyring and state.registry.get("cert-eu").role == "operational"
    assert state.offer(first.data) is None  # the one held: nothing to do
    again = _node_state(pki)  # a restart
    assert again.epoch == 1 and again.current is not None
    assert again.current.digest == first.digest


def test_an_older_epoch_replayed_after_compaction_is_refused_after_a_restart(pki: Pki) -> None:
    state = _node_state(pki)
    old = pki.export()
    state.offer(old)
    pki.clock.advance(timedelta(hours=1))
    pki.revoke("cert-eu", "compromised")
    state.offer(pki.export())
    kid = next(k.key_id for k in state.keyring.entry("cert-eu").keys if k.purpose == "signing")
    restarted = _node_state(pki)
    with pytest.raises(StaleRegistry, match="older than epoch 2"):
        restarted.offer(old)
    assert restarted.keyring.entry("cert-eu").key(kid).revoked is not None  # not undone


def test_a_fork_of_an_epoch_is_refused(pki: Pki) -> None:
    state = _node_state(pki)
    state.offer(pki.export())
    authority_key = pki.authority._signing_key()
    assert state.current is not None
    forked = _resign(pki, state.current.data, authority_key, issued=pki.clock() + timedelta(1))
    with pytest.raises(RegistryFork, match="epoch 1"):
        state.offer(forked)


def test_a_lower_record_serial_in_a_newer_epoch_is_refused(pki: Pki) -> None:
    state = _node_state(pki)
    before = pki.export()  # epoch 1, cert-eu serial 1
    pki.clock.advance(timedelta(hours=1))
    pki.revoke("cert-eu", "compromised")
    state.offer(pki.export())  # epoch 2, cert-eu serial 2
    # a newer epoch number wrapped around the old records, signed by the authority itself
    rollback = _resign(pki, before, pki.authority._signing_key(), epoch=3)
    with pytest.raises(StaleRegistry, match="record 1 of cert-eu"):
        state.offer(rollback)


def test_a_forged_snapshot_is_refused(pki: Pki) -> None:
    state = _node_state(pki)
    data = bytearray(pki.export())
    _, rec = pki.store.decode(bytes(data), expected="RegistrySnapshot")
    rec["epoch"] = 99  # changed after signing
    with pytest.raises(BadSignature):
        state.offer(pki.store.encode("RegistrySnapshot", rec))
    assert state.epoch == 0


def test_a_snapshot_signed_by_a_participant_key_is_refused(pki: Pki) -> None:
    state = _node_state(pki)
    entry = pki.keyring().entry("cert-eu")
    kid = next(k.key_id for k in entry.keys if k.purpose == "signing")
    participant_key = pki.keystores["cert-eu"].signing_key("cert-eu", kid)
    forged = _resign(pki, pki.export(), participant_key, epoch=50)
    with pytest.raises(UnknownKey, match="not the registry authority"):
        state.offer(forged)
    assert state.epoch == 0


def test_check_changes_nothing(pki: Pki) -> None:
    state = _node_state(pki)
    assert state.check(pki.export()) is not None
    assert state.epoch == 0 and state.current is None
    assert not (pki.nodes["isac-energy"].registry_dir / "trusted.json").exists()


def test_listeners_hear_of_each_accepted_snapshot(pki: Pki) -> None:
    state = _node_state(pki)
    heard: list[int] = []
    state.on_change(lambda s: heard.append(s.epoch))
    state.offer(pki.export())
    state.offer(pki.export())
    assert heard == [1, 2]


def test_the_state_file_is_private(pki: Pki) -> None:
    state = _node_state(pki)
    state.offer(pki.export())
    path = pki.nodes["isac-energy"].registry_dir / "trusted.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
