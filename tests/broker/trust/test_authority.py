"""The registry authority approves only what it should: fingerprints, facts, fresh keys, the
right signatures; each request once; and its own key moves only by a chain nodes can follow."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from broker.errors import ConfigError, MalformedRecord, RegistryError
from broker.trust.authority import Authority
from broker.trust.node import NodeHome, _new_keys, register, revocation
from broker.trust.registry import Registry
from broker.trust.request import build_request, fingerprint_of
from broker.trust.snapshot import canonical_facts
from broker.trust.state import TrustedRegistry
from tests.broker._pki import Pki, make_pki, weak_keystore


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path, participants=["cert-eu", "enisa", "eda"])


def _new_node(pki: Pki, org: str) -> tuple[NodeHome, bytes, str]:
    node = NodeHome.create(pki.root / "late" / org, org)
    ks = weak_keystore(node.keystore_dir)
    req = register(
        node, ks, pki.store, pki.registry.get(org), pki.registry.kem_of(org), clock=pki.clock
    )
    return node, req.path.read_bytes(), req.fingerprint


def test_a_first_registration_needs_the_fingerprint_confirmed_elsewhere(pki: Pki) -> None:
    _, data, fingerprint = _new_node(pki, "soc-fr")
    with pytest.raises(RegistryError, match="fingerprint"):
        pki.authority.approve(data, pki.registry)
    with pytest.raises(RegistryError, match="fingerprint"):
        pki.authority.approve(data, pki.registry, fingerprints=["0000 1111"])
    approval = pki.authority.approve(data, pki.registry, fingerprints=[fingerprint.upper()])
    assert approval.kind == "register" and len(approval.added) == 2
    assert pki.authority.record("soc-fr") is not None


def test_the_same_request_is_never_applied_twice(pki: Pki) -> None:
    _, data, fingerprint = _new_node(pki, "soc-fr")
    pki.authority.approve(data, pki.registry, fingerprints=[fingerprint])
    with pytest.raises(RegistryError, match="approved before"):
        pki.authority.approve(data, pki.registry, fingerprints=[fingerprint])


def test_facts_that_differ_from_the_source_are_refused(pki: Pki) -> None:
    node = NodeHome.create(pki.root / "late" / "soc-fr", "soc-fr")
    claim = replace(pki.registry.get("soc-fr"), role="operational")  # claims more than it is
    req = register(
        node,
        weak_keystore(node.keystore_dir),
        pki.store,
        claim,
        pki.registry.kem_of("soc-fr"),
        clock=pki.clock,
    )
    with pytest.raises(RegistryError, match="differ from the registry source"):
        pki.authority.approve(req.path.read_bytes(), pki.registry, fingerprints=[req.fingerprint])


def test_an_organisation_not_in_the_source_is_refused(pki: Pki) -> None:
    _, data, fingerprint = _new_node(pki, "soc-fr")
    without = Registry(
        communities=pki.registry.communities,
        participants={k: v for k, v in pki.registry.participants.items() if k != "soc-fr"},
    )
    with pytest.raises(RegistryError, match="not in the registry source"):
        pki.authority.approve(data, without, fingerprints=[fingerprint])


def test_a_stale_request_is_refused(pki: Pki) -> None:
    _, data, fingerprint = _new_node(pki, "soc-fr")
    pki.clock.advance(timedelta(days=31))
    with pytest.raises(RegistryError, match="30 days"):
        pki.authority.approve(data, pki.registry, fingerprints=[fingerprint])


def test_registering_again_while_keys_are_in_use_is_refused(pki: Pki) -> None:
    node = pki.nodes["enisa"]
    req = register(
        node,
        pki.keystores["enisa"],
        pki.store,
        pki.registry.get("enisa"),
        "x25519",
        clock=pki.clock,
    )
    with pytest.raises(RegistryError, match="rotation"):
        pki.authority.approve(req.path.read_bytes(), pki.registry, fingerprints=[req.fingerprint])


def test_a_rotation_must_be_signed_by_the_key_in_use(pki: Pki, tmp_path: Path) -> None:
    # a stranger with enisa's name but not its keys: new keys only, no current signature
    stranger = NodeHome.create(tmp_path / "stranger", "enisa")
    from broker.trust.request import build_request

    ks = weak_keystore(stranger.keystore_dir)
    keys = _new_keys(ks, "enisa", "x25519", pki.clock)
    data = build_request(
        pki.store,
        kind="rotate",
        participant="enisa",
        created=pki.clock(),
        facts=pki.registry.get("enisa").claim(),
        kem="x25519",
        keys=keys,
        signers=[(keys[0].key_id, ks.signing_key("enisa", keys[0].key_id))],
    )
    with pytest.raises(RegistryError, match="signed by a signing key it holds now"):
        pki.authority.approve(data, pki.registry)
    entry = pki.rotate("enisa")  # the real node can
    assert entry.serial == 2


def test_a_key_registered_once_is_never_registered_again(pki: Pki) -> None:
    pki.revoke("enisa", "compromised")
    # the old request file again: refused as a replay
    first = sorted((pki.nodes["enisa"].requests_dir).glob("*register*"))[0].read_bytes()
    with pytest.raises(RegistryError, match="approved before"):
        pki.authority.approve(first, pki.registry, fingerprints=["x"])
    # a new request carrying the revoked keys: refused for the keys
    old = pki.authority.record("enisa")
    assert old is not None
    signing = next(k for k in old.keys if k.purpose == "signing")
    pki.clock.advance(timedelta(seconds=1))
    data = build_request(
        pki.store,
        kind="register",
        participant="enisa",
        created=pki.clock(),
        facts=pki.registry.get("enisa").claim(),
        kem="x25519",
        keys=old.keys,
        signers=[(signing.key_id, pki.keystores["enisa"].signing_key("enisa", signing.key_id))],
    )
    with pytest.raises(RegistryError, match="registered before"):
        pki.authority.approve(data, pki.registry, fingerprints=[fingerprint_of(data)])


def test_a_revocation_request_from_the_node_revokes_from_when_it_asked(pki: Pki) -> None:
    asked = pki.clock.advance(timedelta(minutes=5))
    req = revocation(
        pki.nodes["cert-eu"],
        pki.keystores["cert-eu"],
        pki.store,
        pki.trusted("cert-eu"),
        "compromised",
        clock=pki.clock,
    )
    pki.clock.advance(timedelta(hours=3))  # the authority gets to it later
    approval = pki.authority.approve(req.path.read_bytes(), pki.registry)
    assert len(approval.revoked) == 2
    entry = pki.authority.record("cert-eu")
    assert entry is not None
    assert {k.revoked for k in entry.keys} == {asked}
    assert {k.revocation_reason for k in entry.keys} == {"compromised"}


def test_revoke_needs_a_known_reason(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="compromised, superseded"):
        pki.authority.revoke("cert-eu", "lost laptop")


def test_export_carries_the_facts_and_reissues_records_that_lag_them(pki: Pki) -> None:
    trusted = TrustedRegistry.load(pki.nodes["cert-eu"].registry_dir, pki.store)
    first = trusted.offer(pki.export())
    assert first is not None and first.epoch == 1
    suspended = Registry(
        communities=pki.registry.communities,
        participants={
            **pki.registry.participants,
            "eda": replace(pki.registry.get("eda"), status="suspended"),
        },
    )

    facts = json.dumps({"version": 1, "note": "facts as given"})
    with pytest.raises(MalformedRecord):  # facts that do not parse are refused
        trusted.offer(pki.authority.export(facts, suspended, "h").data)
    doc = {
        "version": 1,
        "communities": {c.name: {"kem": c.kem} for c in pki.registry.communities.values()},
        "participants": [
            {
                "id": p.id,
                "name": p.name,
                "community": p.community,
                "role": p.role,
                "status": p.status,
                "exercises": sorted(p.exercises),
                "mandates": [
                    {"categories": sorted(m.categories), "legal_basis": m.legal_basis}
                    for m in p.mandates
                ],
            }
            for p in suspended
        ],
    }
    third = trusted.offer(pki.authority.export(canonical_facts(doc), suspended, "h").data)
    assert third is not None and third.epoch == 3
    assert third.registry.get("eda").status == "suspended"
    assert third.entries["eda"].status == "suspended" and third.entries["eda"].serial == 2


def test_rotating_its_own_key_is_followed_by_nodes_and_pins_the_new_key(pki: Pki) -> None:
    trusted = TrustedRegistry.load(pki.nodes["eda"].registry_dir, pki.store)
    trusted.offer(pki.export())
    old = pki.authority.key_id
    transition = pki.authority.rotate_own_key()
    assert transition.from_key_id == old and transition.key_id == pki.authority.key_id
    accepted = trusted.offer(pki.export())
    assert accepted is not None and accepted.authority_key_id == transition.key_id
    assert trusted.anchor_key_id == transition.key_id
    # and after a restart it still trusts the new key only
    again = TrustedRegistry.load(pki.nodes["eda"].registry_dir, pki.store)
    assert again.anchor_key_id == transition.key_id and again.epoch == 2


def test_an_authority_home_is_not_a_node_and_vice_versa(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="node"):
        Authority.create(pki.nodes["eda"].root, weak_keystore(tmp_path / "k"), pki.store)
    with pytest.raises(ConfigError, match="authority"):
        NodeHome.create(pki.authority.home, "eda")
    with pytest.raises(ConfigError, match="not a registry authority"):
        Authority.open(pki.nodes["eda"].root, weak_keystore(tmp_path / "k"), pki.store)
