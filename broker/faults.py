"""Deterministic fault injection for tests: a process kills itself at a named point.

`JCU_FAULT=<point>` in a process's environment makes `point(<point>)` send
that process SIGKILL, exactly there, every time it is reached (a test starts a
process with it set, and again without it to recover). `<point>@<n>` fires
only where the point is reached with count n (`point(name, n)`: e.g. after the
n-th item), and a `:<SIGNAL>` suffix sends that signal instead of SIGKILL
(`publish.after-item@120:SIGINT` is a Ctrl-C at a known place). Nothing else
reads or changes it; without the variable a point costs one dictionary lookup.

Points: `publisher.after-audit` (decisions recorded, nothing sent yet),
`publisher.after-send` (envelopes in Kafka, their outcome not yet recorded),
`subscriber.after-audit` (a batch's receiving decisions recorded, the ledger
not yet committed), `publish.after-item` (a file publish, after its n-th item
is sent and its progress written), `subscriber.after-delivery` (its n-th
delivery is in the sink, not yet flushed, audited or in the ledger),
`parse.after-chunk` (a big file's parse, after the n-th chunk of its objects is
checked).

`fail(<point>)` raises an OSError instead (`<point>[@n]:ENOSPC`): a full disk
at a chosen write (`ledger.open`, `ledger.commit`, `sink.write`).
"""

from __future__ import annotations

import errno
import os
import signal
import threading

ENV = "JCU_FAULT"


def point(name: str, count: int | None = None, *, heard: threading.Event | None = None) -> None:
    """Die here (SIGKILL, no clean-up), or get the named signal, if the environment names
    this point (and this count). `heard`: a point on a worker thread waits (up to 10 s)
    for the event its signal's handler sets, as the main thread runs that handler when
    it next can: what follows the point then always sees the signal."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    where, _, sig = wanted.partition(":")
    at, _, nth = where.partition("@")
    if at != name or (nth and (count is None or nth != str(count))) or sig.startswith("E"):
        return  # another point, another count, or an errno (for `fail`)
    sig = sig or "SIGKILL"
    os.kill(os.getpid(), signal.Signals[sig if sig.startswith("SIG") else f"SIG{sig}"])
    if heard is not None:
        heard.wait(timeout=10)


def fail(name: str, count: int | None = None) -> None:
    """Raise an OSError here if the environment says so: `JCU_FAULT=<point>:<ERRNO>` (every
    time), or `<point>@<n>:<ERRNO>` (only where the point is reached with count n), e.g.
    `ledger.commit@2:ENOSPC` is a full disk at the ledger's second commit. Points:
    `ledger.open`, `ledger.commit`, `sink.write` (the JSON-lines sink)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    where, _, code = wanted.partition(":")
    at, _, nth = where.partition("@")
    if at != name or not code.startswith("E") or (nth and nth != str(count)):
        return
    number = getattr(errno, code, None)
    if not isinstance(number, int):
        return
    raise OSError(number, f"{os.strerror(number)} (injected at {name})")
