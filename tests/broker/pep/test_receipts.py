"""Receipts per batch: the record a receiver signs, and the checks its sender makes on read."""

from __future__ import annotations

import copy
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import fastavro
import fastavro.schema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.envelope import Labels
from broker.errors import ReceiptNotSent, ReceiptRootMismatch, ReceiptWrongSigner
from broker.pep.receipts import (
    ReceiptView,
    batch_receipt,
    check_receipt,
    fold,
    receipt_root,
)
from broker.pep.sent import SentCopy, SentMessage
from tests.broker._pki import REPO, T0, load_store

LEGACY = REPO / "schemas" / "legacy" / "Receipt.v1.avsc"
ids = st.lists(st.uuids().map(str), min_size=1, max_size=40, unique=True)


def _never_heard(_: str) -> SentMessage | None:
    return None


def _sent_to(*recipients: str) -> Any:
    def lookup(message_id: str) -> SentMessage:
        copy_ = SentCopy("civilian", "jcu.civilian.indicators", recipients)
        return SentMessage(message_id, "soc-fr", "Indicator", Labels.of("GREEN"), (copy_,))

    return lookup


def _roundtrip(record: dict[str, Any]) -> dict[str, Any]:
    store = load_store()
    _, decoded = store.decode(store.encode("Receipt", record), expected="Receipt")
    return decoded


@given(ids)
def test_a_batch_receipt_acknowledges_each_id_once_under_its_root(message_ids: list[str]) -> None:
    delivered = [(m, T0 + timedelta(seconds=i)) for i, m in enumerate(message_ids)]
    record = _roundtrip(batch_receipt("enisa", delivered + delivered[:1]))  # one twice
    views = check_receipt(record, "enisa", _never_heard)
    assert sorted(v.message_id for v in views) == sorted(message_ids)
    assert {v.message_id: v.received for v in views} == dict(delivered)
    assert {(v.receiver, v.status, v.reason) for v in views} == {("enisa", "DELIVERED", None)}
    assert record["root"] == receipt_root(reversed(message_ids))  # the ids, sorted


@given(ids)
def test_the_same_batch_acknowledged_again_has_the_same_receipt_id(message_ids: list[str]) -> None:
    first = batch_receipt("enisa", [(m, T0) for m in message_ids])
    again = batch_receipt("enisa", [(m, T0 + timedelta(hours=1)) for m in reversed(message_ids)])
    assert first["id"] == again["id"]
    assert batch_receipt("cert-eu", [(m, T0) for m in message_ids])["id"] != first["id"]


@given(ids, st.data())
def test_ids_that_do_not_hash_to_the_root_are_refused(message_ids: list[str], data: Any) -> None:
    record = _roundtrip(batch_receipt("enisa", [(m, T0) for m in message_ids]))
    bent = copy.deepcopy(record)
    change = data.draw(st.sampled_from(["add", "drop", "swap"]))
    if change == "add" or len(message_ids) == 1:
        bent["entries"].append({**bent["entries"][0], "message_id": str(uuid.uuid4())})
    elif change == "drop":
        bent["entries"].pop(data.draw(st.integers(0, len(message_ids) - 1)))
    else:
        bent["entries"][0] = {**bent["entries"][0], "message_id": str(uuid.uuid4())}
    with pytest.raises(ReceiptRootMismatch) as caught:
        check_receipt(bent, "enisa", _never_heard)
    assert caught.value.reason == "receipt-root-mismatch"


def test_a_receipt_speaks_only_for_its_signer() -> None:
    record = _roundtrip(batch_receipt("enisa", [(str(uuid.uuid4()), T0)]))
    with pytest.raises(ReceiptWrongSigner, match="speaks for enisa but cert-eu signed it") as c:
        check_receipt(record, "cert-eu", _never_heard)
    assert c.value.reason == "receipt-wrong-signer"


def test_a_receipt_naming_a_message_never_sent_to_its_receiver_is_refused() -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    record = _roundtrip(batch_receipt("cert-eu", [(mine, T0), (theirs, T0)]))
    sent_to_enisa = _sent_to("enisa")

    def lookup(message_id: str) -> SentMessage | None:
        return sent_to_enisa(message_id) if message_id == theirs else _sent_to("cert-eu")(mine)

    with pytest.raises(ReceiptNotSent, match=f"names message {theirs}.*never sent to cert-eu"):
        check_receipt(record, "cert-eu", lookup)
    # What the index sent it, or does not know (another host, pruned), counts.
    assert len(check_receipt(record, "cert-eu", _sent_to("cert-eu", "enisa"))) == 2
    assert len(check_receipt(record, "cert-eu", _never_heard)) == 2


def test_a_receipt_of_the_first_form_still_reads() -> None:
    """schemas/legacy/Receipt.v1.avsc is frozen: receipts on the topics carry its fingerprint."""
    old = json.loads(LEGACY.read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(old)
    assert fastavro.schema.fingerprint(canonical, "CRC-64-AVRO") == "8c0c05abc33e0504"
    mid = str(uuid.uuid4())
    record = {"id": str(uuid.uuid4()), "message_id": mid, "receiver": "enisa", "received": T0,
              "status": "REJECTED", "reason": "expired"}  # fmt: skip
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(copy.deepcopy(old)), record)
    name, decoded = load_store().decode(buf.getvalue(), expected="Receipt")
    assert name == "eu.jcu.v1.Receipt"
    [view] = check_receipt(decoded, "enisa", _sent_to("enisa"))
    assert (view.message_id, view.status, view.reason, view.received) == (
        mid, "REJECTED", "expired", T0,
    )  # fmt: skip
    with pytest.raises(ReceiptWrongSigner):
        check_receipt(decoded, "cert-eu", _never_heard)
    with pytest.raises(ReceiptNotSent):
        check_receipt(decoded, "enisa", _sent_to("cert-eu"))


def _view(mid: str, receiver: str, minutes: int, status: str = "DELIVERED") -> ReceiptView:
    when = T0 + timedelta(minutes=minutes)
    return ReceiptView(mid, receiver, when, status, None, receiver)


def test_a_batch_acknowledged_again_after_a_crash_shows_one_delivery_per_receiver() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    views = [
        _view(a, "enisa", 5),
        _view(a, "enisa", 1),
        _view(a, "cert-eu", 2),
        _view(b, "enisa", 3),
    ]
    assert fold(views) == [_view(a, "enisa", 1), _view(a, "cert-eu", 2), _view(b, "enisa", 3)]
    # A rejection later delivered (a replayed dead letter): the latest counts.
    assert fold([_view(a, "enisa", 1, "REJECTED"), _view(a, "enisa", 2)]) == [_view(a, "enisa", 2)]
