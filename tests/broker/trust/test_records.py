"""A key's period of use (`KeyInfo`): every bound refuses on its own, at its edge.

The keyring tests reach these through rotations and revocations, where one bound
often hides another (the newest key is chosen before a retired one is looked
at); here each bound is met alone, one millisecond either side of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.errors import ExpiredKey, RegistryError, RevokedKey
from broker.trust.keystore import AUTHORITY_OWNER
from broker.trust.records import (
    COMPROMISED,
    RECORD_SIGNATURE_DOMAIN,
    RECORD_VERSION,
    KeyInfo,
    ParticipantKeys,
    verify_record,
)
from tests.broker._pki import T0, Pki, make_pki

MS = timedelta(milliseconds=1)
END = T0 + timedelta(days=365)
CUT = T0 + timedelta(days=10)
KEY = KeyInfo(
    key_id="00" * 8,
    purpose="signing",
    algorithm="ed25519",
    public_key=b"\x00" * 32,
    not_before=T0,
    not_after=END,
)


def test_a_key_is_usable_inside_its_period_only() -> None:
    assert KEY.usable_at(T0) and KEY.usable_at(END - MS)
    assert not KEY.usable_at(T0 - MS) and not KEY.usable_at(END)
    KEY.check_at("cert-eu", T0)
    with pytest.raises(ExpiredKey, match="not valid before"):
        KEY.check_at("cert-eu", T0 - MS)
    with pytest.raises(ExpiredKey, match="expired at"):
        KEY.check_at("cert-eu", END)


def test_a_retired_key_is_not_usable_from_its_retirement() -> None:
    retired = replace(KEY, retired=CUT)
    assert retired.usable_at(CUT - MS) and not retired.usable_at(CUT)
    retired.check_at("cert-eu", CUT - MS)
    with pytest.raises(ExpiredKey, match="retired by rotation"):
        retired.check_at("cert-eu", CUT)
    assert retired.status == "retired"


@pytest.mark.parametrize("reason", ["superseded", COMPROMISED])
def test_a_revoked_key_is_refused_for_what_was_made_from_its_revocation(reason: str) -> None:
    revoked = replace(KEY, revoked=CUT, revocation_reason=reason)
    assert revoked.usable_at(CUT - MS) and not revoked.usable_at(CUT)
    revoked.check_at("cert-eu", CUT - MS)
    with pytest.raises(RevokedKey, match=reason):
        revoked.check_at("cert-eu", CUT)
    assert revoked.status == "revoked"


def test_only_a_compromise_refuses_what_was_appended_after_it() -> None:
    made = CUT - timedelta(hours=1)
    compromised = replace(KEY, revoked=CUT, revocation_reason=COMPROMISED)
    assert compromised.compromised
    compromised.check_at("cert-eu", made, CUT - MS)
    with pytest.raises(RevokedKey, match="appended"):
        compromised.check_at("cert-eu", made, CUT)
    superseded = replace(KEY, revoked=CUT, revocation_reason="superseded")
    assert not superseded.compromised
    superseded.check_at("cert-eu", made, CUT + timedelta(days=1))


def test_a_reason_without_a_revocation_is_not_a_compromise() -> None:
    """Only the revocation time makes a key revoked; a stray reason changes nothing."""
    stray = replace(KEY, revocation_reason=COMPROMISED)
    assert not stray.compromised
    stray.check_at("cert-eu", CUT, CUT + timedelta(days=1))
    assert stray.status == "active"


# -- signed records: what the authority's signature does not excuse ----------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), participants=("cert-eu",))


def _authority(pki: Pki) -> ed25519.Ed25519PrivateKey:
    return pki.authority._keystore.signing_key(AUTHORITY_OWNER, pki.authority.key_id)


def _signed_as_changed(pki: Pki, change: Callable[[dict[str, Any]], None]) -> bytes:
    """cert-eu's record with `change` applied, signed by the real registry authority."""
    data = (pki.authority.home / "records" / "cert-eu.avro").read_bytes()
    _, rec = pki.store.decode(data, expected="ParticipantRecord")
    change(rec)
    rec["signature"] = b""
    unsigned = pki.store.encode("ParticipantRecord", rec)
    rec["signature"] = _authority(pki).sign(RECORD_SIGNATURE_DOMAIN + unsigned)
    return pki.store.encode("ParticipantRecord", rec)


def _verify(pki: Pki, data: bytes) -> ParticipantKeys:
    return verify_record(pki.store, data, _authority(pki).public_key())


def test_a_record_re_signed_unchanged_verifies(pki: Pki) -> None:
    assert _verify(pki, _signed_as_changed(pki, lambda rec: None)).participant == "cert-eu"


def _set(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda rec: rec.__setitem__(field, value)


def _first_key_id(rec: dict[str, Any]) -> None:
    rec["keys"][0]["key_id"] = "ff" * 8


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (_set("version", RECORD_VERSION + 1), RegistryError, "version"),
        (_set("kem", "kyber512"), RegistryError, "unknown KEM"),
        (_first_key_id, RegistryError, "does not match its key"),
    ],
    ids=["version", "kem", "key-id"],
)
def test_a_signed_record_that_breaks_a_rule_is_refused(
    pki: Pki, change: Callable[[dict[str, Any]], None], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _verify(pki, _signed_as_changed(pki, change))
