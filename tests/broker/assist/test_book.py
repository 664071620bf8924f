"""The case book: steps kept with their verdict, the same answer for the same message id
however many channels ask, refusals without content, private files."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest

from broker.assist.book import CaseBook, step_names
from broker.assist.machine import recipients_for
from broker.errors import ConfigError, NotEntitled, OutOfOrder
from tests.broker._pki import load_store
from tests.broker.assist.test_machine import LABELS, REGISTRY, T0, accept, close, offer, request


def _take(book: CaseBook, step: object, sender: str, to: tuple[str, ...] = ()) -> object:
    return book.take(
        step.payload_type,  # type: ignore[attr-defined]
        step.to_avro(),  # type: ignore[attr-defined]
        sender=sender,
        message_id=step.id,  # type: ignore[attr-defined]
        labels=LABELS,
        recipients=to,
        created=T0,
        registry=REGISTRY,
        own=sender == book.participant,
    )


@pytest.fixture
def book(tmp_path: Path) -> CaseBook:
    b = CaseBook(tmp_path / "assist" / "soc-fr.sqlite", load_store(), "soc-fr")
    yield b  # type: ignore[misc]
    b.close()


def test_a_case_is_the_fold_of_its_accepted_steps(book: CaseBook) -> None:
    r = request()
    case = _take(book, r, "soc-fr", ("cert-eu", "enisa"))
    o = offer(case, "cert-eu")  # type: ignore[arg-type]
    _take(book, o, "cert-eu", ("soc-fr",))
    view = book.view(r.id[:6], REGISTRY)
    assert view.case.state == "OFFERED" and view.case.audience == ("cert-eu", "enisa")
    assert [e.name for e in view.history] == ["request", "offer"]
    assert [s.id for s in book.summaries(REGISTRY)] == [r.id]
    assert book.summaries(REGISTRY)[0].role == "requester"


def test_the_same_message_gets_the_same_answer_whoever_asks_again(tmp_path: Path) -> None:
    """Two channels of one node (two processes, one file): a refusal stays a refusal, an
    acceptance stays one, even when the case has moved on since."""
    store, path = load_store(), tmp_path / "soc-fr.sqlite"
    first, second = CaseBook(path, store, "soc-fr"), CaseBook(path, store, "soc-fr")
    try:
        r = request()
        case = _take(first, r, "soc-fr", ("cert-eu",))
        o = offer(case, "cert-eu")  # type: ignore[arg-type]
        wrong = accept(case, o, by="cert-eu")  # type: ignore[arg-type]
        _take(first, o, "cert-eu", ("soc-fr",))
        with pytest.raises(NotEntitled):
            _take(first, wrong, "cert-eu", ("soc-fr",))
        fin = close(case)  # type: ignore[arg-type]
        _take(first, fin, "soc-fr")
        # The second channel meets the offer after the closure: the offer was taken before
        # it, so it is taken again, not refused as out of order.
        assert _take(second, o, "cert-eu", ("soc-fr",)).state == "CLOSED"  # type: ignore[attr-defined]
        with pytest.raises(NotEntitled, match="only soc-fr"):
            _take(second, wrong, "cert-eu", ("soc-fr",))
        late = offer(case, "enisa")  # type: ignore[arg-type]
        with pytest.raises(OutOfOrder, match="closed"):
            _take(second, late, "enisa", ("soc-fr",))
    finally:
        first.close()
        second.close()


def test_a_refused_step_keeps_its_reason_not_its_content(book: CaseBook, tmp_path: Path) -> None:
    r = request()
    _take(book, r, "soc-fr")
    o = offer(book.view(r.id, REGISTRY).case, "eeas-intcen")
    with pytest.raises(Exception, match="mandate"):
        _take(book, o, "eeas-intcen", ("soc-fr",))
    view = book.view(r.id, REGISTRY)
    (refused,) = view.refused
    assert (refused.verdict, refused.sender, refused.step) == ("no-mandate", "eeas-intcen", None)
    import sqlite3

    with sqlite3.connect(book.path) as db:
        payload, labels = db.execute(
            "SELECT payload, labels FROM steps WHERE message_id = ?", (o.id,)
        ).fetchone()
    assert payload is None and labels == "{}"
    assert step_names(tmp_path) == {r.id: "request by soc-fr", o.id: "offer by eeas-intcen"}


def test_the_book_is_private_and_ids_resolve_by_prefix(book: CaseBook) -> None:
    assert stat.S_IMODE(book.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(book.path.parent.stat().st_mode) == 0o700
    r = request()
    _take(book, r, "soc-fr")
    assert book.resolve(r.id[:4].upper()) == r.id
    with pytest.raises(ConfigError, match="at least 4"):
        book.resolve("ab")
    with pytest.raises(ConfigError, match="knows no assistance request"):
        book.resolve(str(uuid.uuid4()))


def test_recipients_follow_the_case() -> None:
    from broker.assist.machine import advance

    r = request()
    case = advance(
        None,
        r,
        sender="soc-fr",
        message_id=r.id,
        labels=LABELS,
        recipients=("cert-eu", "enisa"),
        viewer="soc-fr",
        registry=REGISTRY,
    )
    o = offer(case, "europol-ec3")
    assert recipients_for(case, o, "europol-ec3") == ("soc-fr",)
    assert recipients_for(case, close(case), "soc-fr") == ("cert-eu", "enisa")
