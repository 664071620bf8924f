"""Deterministic fault injection for tests: a process kills itself at a named point.

`JCU_FAULT=<point>` in a process's environment makes `point(<point>)` send
that process SIGKILL, exactly there, every time it is reached (a test starts a
process with it set, and again without it to recover). Nothing else reads or
changes it; without the variable a point costs one dictionary lookup.

Points: `publisher.after-audit` (decisions recorded, nothing sent yet),
`publisher.after-send` (envelopes in Kafka, their outcome not yet recorded),
`subscriber.after-audit` (a batch's receiving decisions recorded, the ledger
not yet committed).
"""

from __future__ import annotations

import os
import signal

ENV = "JCU_FAULT"


def point(name: str) -> None:
    """Die here (SIGKILL, no clean-up) if the environment names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
