"""Everything the console shows, read as this node may read it, kept fresh on demand.

One `ConsoleData` per console process (explicit start/stop). Pages call
`fresh()`: the audit topics and data-topic headers are read incrementally
when the last read is older than `refresh_every` seconds, so a page costs a
few milliseconds when nothing changed and never reads a whole topic twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import timedelta

from broker.audit import AuditKeys, KeyResolver, KeyValidity
from broker.clock import utc_now
from broker.kafka.connection import KafkaConnection
from broker.kafka.topics import community_topic
from broker.lifecycle import Service
from broker.logs import get_logger
from broker.pep.context import PepContext
from broker.pep.control import CrisisBoard
from broker.pep.receipts import ReceiptView, receipts_of
from broker.pep.subscriber import DATA_STREAMS
from broker.trust.feed import RegistryFeed
from broker.vocabulary import COMMUNITIES
from connectors.console.feeds import AuditFeed, EnvelopeIndex
from connectors.console.health import Health, Sample, StatsSource
from connectors.console.metrics import ConsoleMetrics
from connectors.sitrep import Sitrep, gather

_log = get_logger(__name__)


class ConsoleData(Service):
    def __init__(
        self,
        ctx: PepContext,
        *,
        keys: KeyResolver,
        valid: KeyValidity,
        stats: StatsSource,
        sample_every: float = 15.0,
        refresh_every: float = 2.0,
        metrics: ConsoleMetrics | None = None,
        view: KafkaConnection | None = None,
        audit_keys: AuditKeys | None = None,
    ) -> None:
        """`view`: the connection of the console's platform view (the audit topics, every
        group's lag, the dead letters), a principal that is an auditor and an operator
        (docs/deployment.md); the node's own reads its community's topics and the crises."""
        self.ctx = ctx
        self.node = ctx.identity
        own = ctx.settings.kafka
        # The clear headers (type, sender, recipients) of the messages the pages list, and
        # the retractions: with a platform view (an operator, which may READ every data
        # topic), every community's data topics; as the node, its own community's only.
        communities = (
            COMMUNITIES if view is not None else (ctx.registry.get(ctx.identity).community,)
        )
        #: which data topics the message types come from, in words (the pages say it)
        self.data_topics = (
            "every community's data topics"
            if view is not None
            else f"the {communities[0]} community's data topics only (read as this node; "
            "the console's platform view, JCU_CONSOLE_KAFKA_CONFIG, reads every community's)"
        )
        view = view or own
        store = ctx.envelope.store
        if audit_keys is None:  # what this node itself may read: its own logs
            audit_keys = AuditKeys.open(ctx.audit_dir, owner=self.node, create=False)
        self.audit = AuditFeed(view, store, keys, valid, audit_keys)
        self.envelopes = EnvelopeIndex(
            view, store, [community_topic(c, s) for c in communities for s in DATA_STREAMS]
        )
        self.crisis = CrisisBoard(ctx.envelope, own)
        #: the newest registry snapshot (read as the node, as every service does): key
        #: sign-ins are checked against current keys
        self.registry = RegistryFeed(ctx.envelope.trusted, own)
        self.metrics = metrics or ConsoleMetrics()
        self.health = Health(view, stats, every=sample_every, on_sample=self._sampled)
        self.refresh_every = refresh_every
        self._refreshed = 0.0
        self._lock = asyncio.Lock()
        self._receipts: tuple[float, dict[str, list[ReceiptView]]] | None = None
        self._refused_told: set[str] = set()  # receipts refused and logged, by position
        self._sitreps: dict[int, tuple[float, Sitrep]] = {}

    async def start(self) -> None:
        started: list[Service] = []
        try:
            parts: tuple[Service, ...] = (
                self.registry,
                self.crisis,
                self.audit,
                self.envelopes,
                self.health,
            )
            for part in parts:
                await part.start()
                started.append(part)
            await self.fresh(force=True)
        except BaseException:
            for part in reversed(started):
                await part.stop()
            raise

    async def stop(self) -> None:
        for part in (self.health, self.envelopes, self.audit, self.crisis, self.registry):
            await part.stop()

    async def fresh(self, *, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._refreshed < self.refresh_every:
                return
            await self.audit.refresh(utc_now())
            await self.envelopes.refresh()
            self._refreshed = time.monotonic()
            self.metrics.audited(self.audit.report)

    async def _sampled(self, sample: Sample) -> None:
        """Each health sample also refreshes the audit view, so metrics and alerts stay
        current while nobody has a page open."""
        self.metrics.sampled(sample)
        await self.fresh()

    async def receipts(self) -> dict[str, list[ReceiptView]]:
        """Receipts for what this node sent (sealed to it alone), by message id."""
        cached = self._receipts
        if cached is not None and time.monotonic() - cached[0] < self.refresh_every * 2:
            return cached[1]
        by_id: dict[str, list[ReceiptView]] = defaultdict(list)
        got = await receipts_of(self.ctx, self.node)
        for view in got.views:
            by_id[view.message_id].append(view)
        for refused in got.refused:  # said once, never counted
            if refused.where not in self._refused_told:
                self._refused_told.add(refused.where)
                _log.warning(
                    "receipt refused",
                    where=refused.where,
                    signer=refused.signer,
                    reason=refused.reason,
                    detail=refused.detail,
                )
        self._receipts = (time.monotonic(), dict(by_id))
        return self._receipts[1]

    async def sitrep(self, window: timedelta) -> Sitrep:
        """This node's situation report, cached for half a minute per window."""
        key = int(window.total_seconds())
        cached = self._sitreps.get(key)
        if cached is not None and time.monotonic() - cached[0] < 30:
            return cached[1]
        report = await gather(self.ctx, self.node, window=window, board=self.crisis)
        self._sitreps[key] = (time.monotonic(), report)
        return report
