"""What a topic reader who is not a recipient learns from a format-2 envelope (docs/envelope.md).

Decoded with the schema alone, no key: routing and verification fields, the TLP
and an exercise flag; none of the other labels, neither as fields nor anywhere
in the bytes. A format-1 envelope of the same labels is the control: there they
are all in the clear, so the byte searches below do find what they look for.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from broker.avro_binary import encode_bytes, encode_long
from broker.envelope import Labels, read_header
from broker.errors import NotARecipient
from tests.broker._forge import forge
from tests.broker._pki import T0, Pki

TOPIC = "jcu.exercise.civilian.incidents"
#: Every field a non-recipient can read in format 2: nothing else may be added unnoticed.
CLEAR_FIELDS = (
    "version",
    "message_id",
    "sender",
    "sender_key_id",
    "signature_algorithm",
    "created",
    "expires",
    "origin_community",
    "target_community",
    "topic",
    "payload_type",
    "payload_fingerprint",
    "tlp",
    "exercise",
    "content_algorithm",
    "content_key_id",
    "recipients",
    "nonce",
    "ciphertext",
    "signature",
)
MOVED = (
    "labels",
    "categories",
    "incident",
    "member_states",
    "personal_data",
    "handling_codes",
    "redacted_fields",
)
SECRETS = dict(
    incident="INC-2026-BALTIC-GRID-0042",
    exercise="cyber-europe-2026-grid",
    categories=["information-content-security", "intrusion-attempts"],
    member_states=["EE", "LT", "LV"],
    redacted_fields=["affected_persons", "reporter"],
)
LABELS = Labels.of("AMBER", handling_codes=["H3"], personal_data=True, **SECRETS)


@pytest.fixture
def report() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "title": "Grid operator intrusion",
        "reported": T0,
        "severity": "HIGH",
        "category": "intrusions",
    }


def _needles(pki: Pki, labels: Labels) -> dict[str, bytes]:
    """Distinctive label values as they would appear in Avro bytes."""
    avro = pki.store.encode("Labels", labels.to_avro())[10:]
    states = b"".join(encode_bytes(m.encode()) for m in labels.member_states)
    needles = {
        "incident": labels.incident.encode() if labels.incident else b"",
        "exercise id": labels.exercise.encode() if labels.exercise else b"",
        # an Avro array of strings: count, then each (length, bytes), then 0
        "member states": encode_long(len(labels.member_states)) + states + b"\x00",
        "all labels": avro,
    }
    for c in [*labels.categories, *labels.redacted_fields]:
        needles[c] = c.encode()
    return needles


def test_the_clear_fields_of_a_sealed_envelope_hold_no_moved_label(
    pki: Pki, report: dict[str, Any]
) -> None:
    sealed = pki.sealer("cert-eu").seal(
        "IncidentReport", report, recipients=["enisa", "eda"], topic=TOPIC, labels=LABELS
    )
    name, rec = pki.store.decode(sealed.data, expected="Envelope")  # the schema, no key
    assert name == "eu.jcu.v1.Envelope"
    assert tuple(rec) == CLEAR_FIELDS
    assert not set(MOVED) & set(rec)
    assert (rec["tlp"], rec["exercise"]) == ("AMBER", True)
    for what, needle in _needles(pki, LABELS).items():
        assert needle and needle not in sealed.data, f"{what} is visible"
    header = read_header(pki.store, sealed.data)
    assert (header.tlp, header.exercise, header.labels) == ("AMBER", True, None)
    assert "labels" not in header.to_json()
    # the recipients do get them
    assert pki.opener("eda").open(sealed.data, topic=TOPIC).labels == LABELS


def test_the_control_a_format_1_envelope_shows_every_label(
    pki: Pki, report: dict[str, Any]
) -> None:
    data, _ = forge(
        pki.store,
        pki.keyring(),
        pki.keystore_of("cert-eu"),
        "cert-eu",
        "IncidentReport",
        report,
        recipients=["enisa"],
        topic=TOPIC,
        labels=LABELS,
        now=T0,
        version=1,
    )
    for what, needle in _needles(pki, LABELS).items():
        assert needle in data, f"the search for {what} finds nothing even where it is"
    assert read_header(pki.store, data).labels == LABELS


def test_a_non_recipient_learns_the_header_and_cannot_open(
    pki: Pki, report: dict[str, Any]
) -> None:
    sealed = pki.sealer("cert-eu").seal(
        "IncidentReport", report, recipients=["enisa"], topic=TOPIC, labels=LABELS
    )
    with pytest.raises(NotARecipient):
        pki.opener("europol-ec3").open(sealed.data, topic=TOPIC)
    header = read_header(pki.store, sealed.data)
    assert header.recipient_ids == ("enisa",) and header.tlp == "AMBER"


def test_an_operational_envelope_says_so_in_the_clear(pki: Pki, report: dict[str, Any]) -> None:
    labels = Labels.of("RED", incident="INC-9")
    sealed = pki.sealer("cert-eu").seal(
        "IncidentReport",
        report,
        recipients=["enisa"],
        topic="jcu.civilian.incidents",
        labels=labels,
    )
    header = read_header(pki.store, sealed.data)
    assert (header.tlp, header.exercise) == ("RED", False)
    assert b"INC-9" not in sealed.data
