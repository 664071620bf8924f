"""Reading a situation report's inputs: the reader's inbox for the period and the one
before it, and the crisis board, all as the reader's own node sees them."""

from __future__ import annotations

from datetime import datetime, timedelta

from broker.clock import utc_now
from broker.pep.context import PepContext
from broker.pep.control import CrisisBoard
from broker.pep.inbox import read_inbox
from connectors.sitrep.model import Sitrep, build


async def gather(
    ctx: PepContext,
    reader: str,
    *,
    window: timedelta,
    until: datetime | None = None,
    board: CrisisBoard | None = None,
) -> Sitrep:
    """The report of the `window` up to `until` (now), against the window before it.

    `board`: a crisis board already following jcu.control (the console has one);
    without it one is read to the end here.
    """
    until = until or utc_now()
    since = until - window
    if board is None:
        async with CrisisBoard(ctx.envelope, ctx.settings.kafka) as own:
            return await _gather(ctx, reader, since, until, window, own)
    return await _gather(ctx, reader, since, until, window, board)


async def _gather(
    ctx: PepContext,
    reader: str,
    since: datetime,
    until: datetime,
    window: timedelta,
    board: CrisisBoard,
) -> Sitrep:
    # Incidents under a crisis at some time in the period: a message received during a
    # crisis since ended was still the reader's to receive.
    crisis = board.active_incidents() | frozenset(
        d.incident for d in board.declarations() if d.created >= since - window
    )
    current = await read_inbox(ctx, reader, since, until=until, crisis_incidents=crisis)
    previous = await read_inbox(ctx, reader, since - window, until=since, crisis_incidents=crisis)
    community_of = {p.id: p.community for p in ctx.registry}
    return build(
        reader,
        current,
        previous,
        community_of=community_of,
        declarations=board.declarations(),
        generated=utc_now(),
    )
