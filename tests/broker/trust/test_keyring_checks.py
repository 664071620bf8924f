"""Each check of `Keyring.signing_key` holds on its own (found by `make mutation`).

The registry's keys are consistent (a signing key is Ed25519, a KEM key is
not), so one check can hide another's removal; these records break one rule
each, with the other facts of the key left right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from broker.errors import KeystoreError, UnknownKey
from broker.trust.keyring import KeyInfo, Keyring
from broker.trust.material import SIGNING_ALGORITHM
from tests.broker._pki import T0, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), participants=("cert-eu", "enisa"))


def _with_signing_key(pki: Pki, change: Callable[[KeyInfo], KeyInfo]) -> tuple[Keyring, str]:
    """cert-eu's records with its signing key changed by `change`; and that key's id."""
    keyring = pki.keyring()
    kid = keyring.current_signing_key_id("cert-eu", T0)
    entry = keyring.entry("cert-eu")
    keys = tuple(change(k) if k.key_id == kid else k for k in entry.keys)
    return Keyring([dataclasses.replace(entry, keys=keys), keyring.entry("enisa")]), kid


def test_the_unchanged_record_gives_the_signing_key(pki: Pki) -> None:
    keyring, kid = _with_signing_key(pki, lambda k: k)
    assert keyring.signing_key("cert-eu", kid, T0)


def test_an_ed25519_key_registered_for_another_purpose_is_no_signing_key(pki: Pki) -> None:
    keyring, kid = _with_signing_key(pki, lambda k: dataclasses.replace(k, purpose="kem"))
    assert keyring.entry("cert-eu").key(kid).algorithm == SIGNING_ALGORITHM  # type: ignore[union-attr]
    with pytest.raises(UnknownKey, match="not an Ed25519 signing key"):
        keyring.signing_key("cert-eu", kid, T0)


def test_a_signing_key_of_another_algorithm_is_refused(pki: Pki) -> None:
    keyring, kid = _with_signing_key(pki, lambda k: dataclasses.replace(k, algorithm="x25519"))
    with pytest.raises(UnknownKey, match="not an Ed25519 signing key"):
        keyring.signing_key("cert-eu", kid, T0)


def test_no_usable_signing_key_says_what_to_do(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, participants=("cert-eu", "enisa"))
    now = pki.clock.advance(timedelta(hours=1))
    assert pki.keyring().current_signing_key_id("cert-eu", now)
    pki.revoke("cert-eu", "compromised")
    with pytest.raises(KeystoreError, match="jcu keys rotate"):
        pki.keyring().current_signing_key_id("cert-eu", now)
