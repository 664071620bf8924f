"""Format version 1 still opens; format version 2's re-checks after decrypting.

Version 1 envelopes are built with the legacy schema and the version 1
construction (`tests.broker._forge`); version 2 envelopes that `Sealer` would
never write (clear TLP or exercise flag unlike the labels inside, another payload
than declared) are forged with the sender's real key, so each passes every
check up to the one under test.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.envelope import EnvelopeReader, Labels, read_header
from broker.envelope.header import decode_envelope
from broker.errors import (
    BadSignature,
    LabelMismatch,
    MalformedRecord,
    UnknownSchema,
)
from broker.record_json import to_json
from tests.broker._forge import V1_FINGERPRINT, encode_v1, forge
from tests.broker._pki import T0, Pki
from tests.broker.envelope._records import strategy

TOPIC = "jcu.civilian.indicators"
EXERCISE_TOPIC = "jcu.exercise.civilian.indicators"
LABELS = Labels.of(
    "AMBER",
    handling_codes=["H2"],
    categories=["malicious-code"],
    incident="INC-1",
    member_states=["FR", "DE"],
)
PAYLOADS = ("Indicator", "IncidentReport", "SituationReport", "AssistanceRequest", "Receipt")


def _indicator(value: str = "203.0.113.9") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "observable_type": "ipv4-addr",
        "value": value,
        "valid_from": T0,
    }


def _forge(
    pki: Pki,
    labels: Labels = LABELS,
    topic: str = TOPIC,
    payload_type: str = "Indicator",
    record: dict[str, Any] | None = None,
    to: tuple[str, ...] = ("eda", "enisa"),
    **bent: Any,
) -> bytes:
    data, _ = forge(
        pki.store,
        pki.keyring(),
        pki.keystore_of("cert-eu"),
        "cert-eu",
        payload_type,
        record if record is not None else _indicator(),
        recipients=list(to),
        topic=topic,
        labels=labels,
        now=T0,
        **bent,
    )
    return data


# -- format version 1 ----------------------------------------------------------------


def test_a_version_1_envelope_opens_with_its_clear_labels(pki: Pki) -> None:
    data = _forge(pki, version=1)
    assert data[2:10] == V1_FINGERPRINT
    name, rec = pki.store.decode(data, expected="Envelope")
    assert name == "eu.jcu.v1.Envelope"
    assert rec["version"] == 1 and rec["labels"]["incident"] == "INC-1"  # not resolved to v2
    opened = pki.opener("eda").open(data, topic=TOPIC)
    assert opened.record["value"] == "203.0.113.9"
    assert opened.labels == LABELS
    assert opened.header.version == 1
    assert (opened.header.tlp, opened.header.exercise, opened.header.labels) == (
        "AMBER",
        False,
        LABELS,
    )
    assert opened.content_hash  # of the payload, as in version 2


def test_a_version_1_exercise_envelope_shows_the_exercise_flag(pki: Pki) -> None:
    labels = Labels.of("GREEN", exercise="cyber-europe-2026")
    data = _forge(pki, labels=labels, topic=EXERCISE_TOPIC, version=1)
    header = read_header(pki.store, data)
    assert (header.tlp, header.exercise, header.labels) == ("GREEN", True, labels)
    assert pki.opener("enisa").open(data, topic=EXERCISE_TOPIC).labels == labels


def test_a_version_1_envelope_decodes_alike_through_every_receiver_path(pki: Pki) -> None:
    data = _forge(pki, version=1)
    reader = EnvelopeReader(pki.store)
    full = decode_envelope(pki.store, data)
    assert reader.decode(data).header == full.header == read_header(pki.store, data)
    opened = pki.opener("eda").open(data, topic=TOPIC, decoded=full)
    assert opened.header is full.header and opened.labels == LABELS


def test_version_1_labels_are_still_signed(pki: Pki) -> None:
    rec = pki.store.decode(_forge(pki, version=1), expected="Envelope")[1]
    rec["labels"] = {**rec["labels"], "incident": "INC-2"}
    with pytest.raises(BadSignature):
        pki.opener("eda").open(encode_v1(rec), topic=TOPIC)


def test_a_version_2_envelope_in_the_version_1_schema_is_malformed(pki: Pki) -> None:
    data = _forge(pki, version=2, v1_layout=True)
    with pytest.raises(MalformedRecord, match="version 1 schema"):
        read_header(pki.store, data)
    with pytest.raises(MalformedRecord, match="version 1 schema"):
        pki.opener("eda").open(data, topic=TOPIC)


def test_a_version_1_envelope_in_the_version_2_schema_is_malformed(pki: Pki) -> None:
    data = _forge(pki, version=1, v1_layout=False)
    with pytest.raises(MalformedRecord, match="version 2 schema"):
        pki.opener("eda").open(data, topic=TOPIC)


@pytest.mark.parametrize("payload_type", PAYLOADS)
def test_version_1_round_trips(pki: Pki, payload_type: str) -> None:
    schema = pki.store.schema(payload_type)
    opener = pki.opener("enisa")

    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        record=strategy(schema),
        labels=st.builds(
            Labels.of,
            st.sampled_from(["CLEAR", "RED", "AMBER+STRICT"]),
            categories=st.lists(st.sampled_from(["fraud", "test"])),
            incident=st.none() | st.text(max_size=10),
        ),
    )
    def check(record: dict[str, Any], labels: Labels) -> None:
        data = _forge(pki, labels=labels, payload_type=payload_type, record=record, version=1)
        opened = opener.open(data, topic=TOPIC)
        assert to_json(opened.record) == to_json(record)
        assert opened.labels == labels
        assert opened.payload_type == f"eu.jcu.v1.{payload_type}"

    check()


# -- format version 2: the re-checks after decrypting ---------------------------------


def test_the_forged_control_opens(pki: Pki) -> None:
    """Built like the sealer builds it, the forge's output opens: what the tests below
    bend is the only reason they fail."""
    opened = pki.opener("eda").open(_forge(pki), topic=TOPIC)
    assert opened.labels == LABELS and opened.header.version == 2


@pytest.mark.parametrize(
    ("labels", "topic", "bent"),
    [
        pytest.param(LABELS, TOPIC, {"clear_tlp": "GREEN"}, id="clear-tlp-lower"),
        pytest.param(LABELS, TOPIC, {"clear_tlp": "RED"}, id="clear-tlp-higher"),
        pytest.param(
            Labels.of("RED", exercise="ce-2026"),
            EXERCISE_TOPIC,
            {"clear_exercise": False},
            id="exercise-inside-only",
        ),
        pytest.param(LABELS, EXERCISE_TOPIC, {"clear_exercise": True}, id="exercise-clear-only"),
    ],
)
def test_clear_labels_unlike_the_encrypted_ones_are_refused(
    pki: Pki, labels: Labels, topic: str, bent: dict[str, Any]
) -> None:
    data = _forge(pki, labels=labels, topic=topic, **bent)
    with pytest.raises(LabelMismatch) as caught:
        pki.opener("eda").open(data, topic=topic)
    assert caught.value.reason == "label-mismatch"
    assert "in the clear" in str(caught.value)


def test_a_plaintext_that_is_not_a_sealed_content_is_refused(pki: Pki) -> None:
    bare = pki.store.encode("Indicator", _indicator())  # the version 1 plaintext
    with pytest.raises(UnknownSchema, match="SealedContent"):
        pki.opener("eda").open(_forge(pki, plaintext=bare), topic=TOPIC)
    with pytest.raises(MalformedRecord):
        pki.opener("eda").open(_forge(pki, plaintext=b"\xc3\x01garbage"), topic=TOPIC)


def test_an_inner_payload_of_another_type_than_declared_is_refused(pki: Pki) -> None:
    entry = {"message_id": str(uuid.uuid4()), "received": T0, "status": "DELIVERED"}
    receipt = {"id": str(uuid.uuid4()), "receiver": "eda", "root": bytes(32), "entries": [entry]}
    data = _forge(pki, payload=pki.store.encode("Receipt", receipt))
    with pytest.raises(UnknownSchema, match=r"header says eu\.jcu\.v1\.Indicator"):
        pki.opener("eda").open(data, topic=TOPIC)


def test_an_inner_payload_of_another_fingerprint_than_declared_is_refused(pki: Pki) -> None:
    data = _forge(pki, declared_fingerprint=bytes(8))
    with pytest.raises(MalformedRecord, match="fingerprint"):
        pki.opener("eda").open(data, topic=TOPIC)
