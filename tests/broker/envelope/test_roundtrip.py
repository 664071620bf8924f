"""Seal then open: every payload type, both KEMs, content-key reuse and nonces."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.envelope import ContentKeyCache, EnvelopeHeader, Labels, Sealer, read_header
from broker.errors import ConfigError, NotARecipient, RegistryError
from broker.record_json import to_json
from tests.broker._pki import T0, Pki
from tests.broker.envelope._records import maximal, strategy

PAYLOADS = ("Indicator", "IncidentReport", "SituationReport", "AssistanceRequest", "Receipt")
# civilian (X25519), law enforcement (X25519), diplomatic and defence (hybrid ML-KEM)
RECIPIENTS = ("enisa", "europol-ec3", "eeas-intcen", "eda", "isac-energy")
TOPIC = "jcu.civilian.indicators"
AMBER = Labels.of("AMBER", categories=["malicious-code"])


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(to_json(a) == to_json(b))


@pytest.mark.parametrize("payload_type", PAYLOADS)
def test_every_payload_type_round_trips(pki: Pki, payload_type: str) -> None:
    schema = pki.store.schema(payload_type)
    sealer = pki.sealer("cert-eu")
    openers = {r: pki.opener(r) for r in RECIPIENTS}

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        record=strategy(schema),
        to=st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True),
        labels=st.builds(
            Labels.of,
            st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]),
            handling_codes=st.lists(st.sampled_from(["H0", "H1", "H2", "H3"])),
            categories=st.lists(st.sampled_from(["fraud", "intrusions", "test"])),
            personal_data=st.booleans(),
            exercise=st.none() | st.text(max_size=10),
            incident=st.none() | st.text(max_size=10),
            member_states=st.lists(st.sampled_from(["FR", "DE", "EE"])),
        ),
    )
    def check(record: dict[str, Any], to: list[str], labels: Labels) -> None:
        sealed = sealer.seal(payload_type, record, recipients=to, topic=TOPIC, labels=labels)
        for r in to:
            opened = openers[r].open(sealed.data, topic=TOPIC)
            assert _same(opened.record, record)
            assert opened.sender == "cert-eu"
            assert opened.payload_type == f"eu.jcu.v1.{payload_type}"
            assert opened.labels == labels
            assert opened.message_id == sealed.message_id

    check()


@pytest.mark.parametrize("payload_type", PAYLOADS)
@pytest.mark.parametrize("recipient", ["enisa", "eda"])  # X25519 and ML-KEM-768+X25519
def test_maximal_records_round_trip_for_both_kems(
    pki: Pki, payload_type: str, recipient: str
) -> None:
    record = maximal(pki.store.schema(payload_type))
    sealed = pki.sealer("cert-eu").seal(
        payload_type, record, recipients=[recipient], topic=TOPIC, labels=AMBER
    )
    opened = pki.opener(recipient).open(sealed.data, topic=TOPIC)
    assert _same(opened.record, record)
    assert sealed.header.recipients[0].kem == pki.registry.kem_of(recipient)


def _indicator(value: str = "203.0.113.9") -> dict[str, Any]:
    return {
        "id": "2f4c1e8a-52c5-4d4b-9b35-8d1f2f0f9a11",
        "observable_type": "ipv4-addr",
        "value": value,
        "valid_from": T0,
    }


def test_non_recipient_sees_the_header_only(pki: Pki) -> None:
    secret = "very-secret-indicator.example"
    sealed = pki.sealer("cert-eu").seal(
        "Indicator", _indicator(secret), recipients=["enisa"], topic=TOPIC, labels=AMBER
    )
    assert secret.encode() not in sealed.data
    header = read_header(pki.store, sealed.data)
    assert header.sender == "cert-eu" and header.recipient_ids == ("enisa",)
    assert (header.tlp, header.exercise, header.labels) == ("AMBER", False, None)
    with pytest.raises(NotARecipient):
        pki.opener("europol-ec3").open(sealed.data, topic=TOPIC)
    # the sender is not a recipient of its own message either, unless it lists itself
    with pytest.raises(NotARecipient):
        pki.opener("cert-eu").open(sealed.data, topic=TOPIC)


def test_content_key_is_reused_for_the_same_recipients_within_the_bound(pki: Pki) -> None:
    sealer = Sealer(
        "cert-eu",
        keystore=pki.keystore_of("cert-eu"),
        keyring=pki.keyring(),
        store=pki.store,
        clock=pki.clock,
        content_keys=ContentKeyCache(max_messages=3),
    )

    def seal(to: list[str]) -> EnvelopeHeader:
        return sealer.seal(
            "Indicator", _indicator(), recipients=to, topic=TOPIC, labels=AMBER
        ).header

    a, b, c, d = (seal(["enisa", "eda"]) for _ in range(4))
    assert a.content_key_id == b.content_key_id == c.content_key_id  # reused 3 times
    assert d.content_key_id != a.content_key_id  # the bound forces a fresh key
    assert seal(["enisa"]).content_key_id not in (a.content_key_id, d.content_key_id)
    assert seal(["eda", "enisa"]).content_key_id == d.content_key_id  # same set, any order


def test_content_key_expires_after_max_age(pki: Pki) -> None:
    clock = type(pki.clock)(pki.clock.now)
    sealer = Sealer(
        "cert-eu",
        keystore=pki.keystore_of("cert-eu"),
        keyring=pki.keyring(),
        store=pki.store,
        clock=clock,
        content_keys=ContentKeyCache(max_age=timedelta(minutes=10)),
    )
    first = sealer.seal("Indicator", _indicator(), recipients=["enisa"], topic=TOPIC, labels=AMBER)
    clock.advance(timedelta(minutes=11))
    later = sealer.seal("Indicator", _indicator(), recipients=["enisa"], topic=TOPIC, labels=AMBER)
    assert first.header.content_key_id != later.header.content_key_id


def test_nonces_never_repeat_under_one_content_key(pki: Pki) -> None:
    sealer = Sealer(
        "cert-eu",
        keystore=pki.keystore_of("cert-eu"),
        keyring=pki.keyring(),
        store=pki.store,
        clock=pki.clock,
        content_keys=ContentKeyCache(max_messages=200),
    )
    seen: set[tuple[bytes, bytes]] = set()
    for _ in range(450):
        data = sealer.seal(
            "Indicator", _indicator(), recipients=["enisa"], topic=TOPIC, labels=AMBER
        ).data
        _, rec = pki.store.decode(data)
        pair = (bytes(rec["content_key_id"]), bytes(rec["nonce"]))
        assert pair not in seen
        seen.add(pair)
    assert len({ck for ck, _ in seen}) == 3  # 200 + 200 + 50


def test_reused_content_key_messages_all_open(pki: Pki) -> None:
    sealer = pki.sealer("cert-eu")
    opener = pki.opener("eda")
    for i in range(5):
        sealed = sealer.seal(
            "Indicator",
            _indicator(f"198.51.100.{i}"),
            recipients=["eda"],
            topic=TOPIC,
            labels=AMBER,
        )
        assert opener.open(sealed.data, topic=TOPIC).record["value"] == f"198.51.100.{i}"


def test_content_keys_never_show_in_repr(pki: Pki) -> None:
    cache = ContentKeyCache()
    ck, new = cache.key_for([("enisa", "00" * 8)], T0)
    assert new
    assert ck.key.hex() not in repr(ck) and repr(ck.key) not in repr(ck)


def test_sealing_for_an_unknown_recipient_is_a_registry_error(pki: Pki) -> None:
    with pytest.raises(RegistryError, match="nobody"):
        pki.sealer("cert-eu").seal(
            "Indicator", _indicator(), recipients=["enisa", "nobody"], topic=TOPIC, labels=AMBER
        )
    with pytest.raises(ConfigError):
        pki.sealer("cert-eu").seal(
            "Indicator", _indicator(), recipients=[], topic=TOPIC, labels=AMBER
        )
