"""The case book: a node's record of the assistance cases it takes part in, and their state.

One SQLite file per node and participant (`$JCU_HOME/assist/<participant>.sqlite`),
shared by every process of the node (the `jcu assist` verbs, a running
`jcu subscribe`): each step sent or received is a row, in the order the node
took it, with the verdict the state machine gave it. A case's state is the
fold of `machine.advance` over its accepted steps.

The verdict is kept per message id, so a step asked about again (redelivered
after a crash, or delivered to a second consumer group of the node) gets the
answer it got the first time: all of one case's steps reach a node on one
partition in the order they were sent, so the first answer was given on the
state the steps before it made, whichever process gave it.

Only verified, decrypted, policy-checked records reach the book; a refused
step keeps its reason and error message, never its content.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.assist.machine import Case, advance
from broker.assist.steps import STEP_NAMES, Step, step_from_record, thread_of
from broker.clock import utc_now
from broker.envelope.labels import Labels
from broker.errors import (
    ConfigError,
    LabelMismatch,
    MalformedRecord,
    NoMandate,
    NotEntitled,
    OutOfOrder,
    Rejected,
)
from broker.files import FILE_MODE, private_file
from broker.schemas import SchemaStore
from broker.trust.registry import Registry

ACCEPTED = "accepted"
_ERRORS: dict[str, type[Rejected]] = {
    e.reason: e for e in (NotEntitled, NoMandate, OutOfOrder, LabelMismatch, MalformedRecord)
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    thread TEXT NOT NULL,
    payload_type TEXT NOT NULL,
    sender TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    taken_ms INTEGER NOT NULL,
    own INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    payload BLOB,
    labels TEXT NOT NULL DEFAULT '{}',
    recipients TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS steps_by_thread ON steps(thread, seq);
"""


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class StepEntry:
    """One step in a case's history: what it was, who sent it, and what this node made of it."""

    message_id: str
    payload_type: str
    sender: str
    created: datetime
    own: bool
    #: "accepted", or the reason it was refused (not-entitled, out-of-order, ...).
    verdict: str
    error: str = ""
    step: Step | None = None

    @property
    def name(self) -> str:
        return STEP_NAMES.get(self.payload_type, self.payload_type)

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPTED

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "step": self.name,
            "sender": self.sender,
            "created": self.created.isoformat(),
            "own": self.own,
            "verdict": self.verdict,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """One line about a case: what a board of open requests shows (CLI, console)."""

    id: str
    state: str
    requester: str
    member_states: tuple[str, ...]
    incident: str | None
    urgency: str
    tlp: str
    crisis: bool
    needs: int
    offers: int
    accepted: tuple[str, ...]
    requested: datetime
    updated: datetime
    #: This node's part: requester, offerer (accepted or not), or recipient of the request.
    role: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "requester": self.requester,
            "member_states": list(self.member_states),
            "incident": self.incident,
            "urgency": self.urgency,
            "tlp": self.tlp,
            "crisis": self.crisis,
            "needs": self.needs,
            "offers": self.offers,
            "accepted": list(self.accepted),
            "requested": self.requested.isoformat(),
            "updated": self.updated.isoformat(),
            "role": self.role,
        }


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case and its history as this node knows it (the read API: CLI, console)."""

    case: Case
    history: tuple[StepEntry, ...]

    @property
    def refused(self) -> tuple[StepEntry, ...]:
        return tuple(e for e in self.history if not e.accepted)

    def summary(self, viewer: str) -> CaseSummary:
        c = self.case
        if viewer == c.requester:
            role = "requester"
        elif viewer in c.accepted_offerers:
            role = "accepted offerer"
        elif viewer in c.offerers:
            role = "offerer"
        else:
            role = "recipient"
        return CaseSummary(
            id=c.id,
            state=c.state,
            requester=c.requester,
            member_states=c.request.member_states,
            incident=c.request.incident,
            urgency=c.request.urgency,
            tlp=c.labels.tlp,
            crisis=c.request.crisis,
            needs=len(c.request.needs),
            offers=len(c.offers),
            accepted=c.accepted_offerers,
            requested=c.request.requested,
            updated=c.updated(),
            role=role,
        )


class CaseBook:
    """The node's assistance cases. Open one per process; close it when done."""

    def __init__(self, path: Path, store: SchemaStore, participant: str) -> None:
        private_file(path)
        self.path = path
        self.participant = participant
        self._store = store
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        path.chmod(FILE_MODE)  # what this node's organisation received: its own, nobody else's

    @classmethod
    def of_node(cls, home: Path, store: SchemaStore, participant: str) -> CaseBook:
        return cls(home / "assist" / f"{participant}.sqlite", store, participant)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One writer at a time across the node's processes (BEGIN IMMEDIATE)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- taking steps ---------------------------------------------------------------

    def check(
        self,
        payload_type: str,
        record: dict[str, Any],
        *,
        sender: str,
        message_id: str,
        labels: Labels,
        recipients: tuple[str, ...],
        registry: Registry,
    ) -> Case:
        """The case after this step, if the machine allows it now; raises otherwise. Nothing
        is written (a node asks this before it sends)."""
        step = step_from_record(payload_type, record)
        return advance(
            self._fold(thread_of(step), registry),
            step,
            sender=sender,
            message_id=message_id,
            labels=labels,
            recipients=recipients,
            viewer=self.participant,
            registry=registry,
        )

    def take(
        self,
        payload_type: str,
        record: dict[str, Any],
        *,
        sender: str,
        message_id: str,
        labels: Labels,
        recipients: tuple[str, ...],
        created: datetime,
        registry: Registry,
        own: bool = False,
    ) -> Case:
        """Run the step through the machine and keep it with its verdict; raises the refusal.

        A message id already in the book gets its first verdict again (the case as it
        is, or the same refusal), whatever the book holds now.
        """
        refusal: Rejected | None = None
        with self._transaction():
            row = self._db.execute(
                "SELECT verdict, error, thread FROM steps WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is not None:
                verdict, error, thread = row
                if verdict != ACCEPTED:
                    refusal = _ERRORS.get(verdict, Rejected)(error)
                    case = None
                else:
                    case = self._fold(thread, registry)
            else:
                step = step_from_record(payload_type, record)
                thread = thread_of(step)
                try:
                    case = advance(
                        self._fold(thread, registry),
                        step,
                        sender=sender,
                        message_id=message_id,
                        labels=labels,
                        recipients=recipients,
                        viewer=self.participant,
                        registry=registry,
                    )
                except Rejected as exc:
                    refusal, case = exc, None
                    # Kept (committed) with its reason, so it is given again; no content.
                    self._insert(message_id, thread, payload_type, sender, created, own, exc)
                else:
                    self._insert(
                        message_id,
                        thread,
                        payload_type,
                        sender,
                        created,
                        own,
                        None,
                        self._store.encode(payload_type, record),
                        labels,
                        recipients,
                    )
        if refusal is not None:
            raise refusal
        assert case is not None  # noqa: S101 - narrows for mypy: no refusal means a case
        return case

    def _insert(
        self,
        message_id: str,
        thread: str,
        payload_type: str,
        sender: str,
        created: datetime,
        own: bool,
        refusal: Rejected | None,
        payload: bytes | None = None,
        labels: Labels | None = None,
        recipients: tuple[str, ...] = (),
    ) -> None:
        self._db.execute(
            "INSERT INTO steps (message_id, thread, payload_type, sender, created_ms, taken_ms,"
            " own, verdict, error, payload, labels, recipients)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                thread,
                payload_type.rpartition(".")[2],
                sender,
                _ms(created),
                _ms(utc_now()),
                int(own),
                ACCEPTED if refusal is None else refusal.reason,
                "" if refusal is None else str(refusal)[:1000],
                payload,
                json.dumps(labels.to_json() if labels is not None else {}),
                json.dumps(list(recipients)),
            ),
        )

    # -- reading ---------------------------------------------------------------------

    def _rows(self, thread: str) -> list[tuple[Any, ...]]:
        return self._db.execute(
            "SELECT message_id, payload_type, sender, created_ms, own, verdict, error, payload,"
            " labels, recipients FROM steps WHERE thread = ? ORDER BY seq",
            (thread,),
        ).fetchall()

    def _fold(self, thread: str, registry: Registry) -> Case | None:
        case, _ = self._replay(thread, registry)
        return case

    def _replay(self, thread: str, registry: Registry) -> tuple[Case | None, tuple[StepEntry, ...]]:
        case: Case | None = None
        history = []
        for (
            mid,
            ptype,
            sender,
            created_ms,
            own,
            verdict,
            error,
            payload,
            labels,
            named,
        ) in self._rows(thread):
            step = None
            if verdict == ACCEPTED and payload is not None:
                _, record = self._store.decode(bytes(payload))
                step = step_from_record(ptype, record)
                try:
                    case = advance(
                        case,
                        step,
                        sender=sender,
                        message_id=mid,
                        labels=_labels(json.loads(labels)),
                        recipients=tuple(json.loads(named)),
                        viewer=self.participant,
                        registry=registry,
                    )
                except Rejected as exc:  # the registry changed since (a mandate, a revocation)
                    verdict, error = exc.reason, f"no longer holds: {exc}"
            history.append(
                StepEntry(mid, ptype, sender, _time(created_ms), bool(own), verdict, error, step)
            )
        return case, tuple(history)

    def view(self, case_id: str, registry: Registry) -> CaseView:
        """The case `case_id` (a unique prefix will do) with its history."""
        thread = self.resolve(case_id)
        case, history = self._replay(thread, registry)
        if case is None:
            raise ConfigError(
                f"{self.participant} holds no accepted request {thread}: only refused steps "
                "(see `jcu assist show --json`)"
            )
        return CaseView(case, history)

    def cases(self, registry: Registry) -> list[CaseView]:
        """Every case this node knows, newest request first."""
        threads = [
            t
            for (t,) in self._db.execute(
                "SELECT thread FROM steps WHERE verdict = ? GROUP BY thread ORDER BY MIN(seq)",
                (ACCEPTED,),
            ).fetchall()
        ]
        views = []
        for thread in threads:
            case, history = self._replay(thread, registry)
            if case is not None:
                views.append(CaseView(case, history))
        return sorted(views, key=lambda v: v.case.request.requested, reverse=True)

    def summaries(self, registry: Registry, *, open_only: bool = False) -> list[CaseSummary]:
        """One line per case this node knows (open ones only, if asked), newest first."""
        return [
            v.summary(self.participant)
            for v in self.cases(registry)
            if not open_only or v.case.is_open
        ]

    def resolve(self, prefix: str) -> str:
        """The one case id starting with `prefix` (at least 4 characters)."""
        prefix = prefix.strip().lower()
        if len(prefix) < 4:
            raise ConfigError(f"give at least 4 characters of the request id, not {prefix!r}")
        found = [
            t
            for (t,) in self._db.execute(
                "SELECT DISTINCT thread FROM steps WHERE thread LIKE ? || '%'", (prefix,)
            ).fetchall()
        ]
        if not found:
            raise ConfigError(
                f"{self.participant} knows no assistance request {prefix}; `jcu assist list` "
                "shows the ones it knows (it reads what has arrived first)"
            )
        if len(found) > 1:
            raise ConfigError(f"{prefix} names {len(found)} requests; give more characters")
        return str(found[0])

    def history(self, thread: str) -> list[StepEntry]:
        """Every step of a thread this node took or refused, refused ones included."""
        return [
            StepEntry(mid, ptype, sender, _time(created), bool(own), verdict, error)
            for mid, ptype, sender, created, own, verdict, error, *_ in self._rows(thread)
        ]


def _labels(obj: dict[str, Any]) -> Labels:
    return Labels.of(
        obj["tlp"],
        handling_codes=obj.get("handling_codes", ()),
        categories=obj.get("categories", ()),
        personal_data=bool(obj.get("personal_data", False)),
        exercise=obj.get("exercise"),
        incident=obj.get("incident"),
        member_states=obj.get("member_states", ()),
        redacted_fields=obj.get("redacted_fields", ()),
    )


def step_names(home: Path) -> dict[str, str]:
    """message id -> "offer by cert-eu", from every case book under a node's home (read
    only; empty for a home without one): what `jcu audit explain` calls each message."""
    out: dict[str, str] = {}
    for path in sorted((home / "assist").glob("*.sqlite")):
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            for mid, ptype, sender in db.execute(
                "SELECT message_id, payload_type, sender FROM steps"
            ).fetchall():
                out[mid] = f"{STEP_NAMES.get(ptype, ptype)} by {sender}"
        except sqlite3.Error:
            continue
        finally:
            db.close()
    return out
