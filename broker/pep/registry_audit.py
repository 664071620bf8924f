"""Each registry snapshot taking effect at an enforcement point, in that point's audit log.

The registry authority is offline and keeps no log on Kafka. What a node can
say, and an inquiry needs, is when each of its enforcement points started
acting on which snapshot, and what changed for it (keys added, retired or
revoked, a participant suspended): so every enforcement point logs, in its own
log, the snapshot in force when it starts (if it differs from the last one it
logged) and every newer one its registry feed accepts while it runs. The view
it logged last is kept beside its audit state (`<ep>.registry.json`), so a
restart logs only what changed in between.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import quote

from broker.audit import AuditEntry, AuditLog
from broker.audit.acts import RegistryView, registry_change
from broker.errors import JcuError
from broker.files import write_private
from broker.logs import get_logger
from broker.trust.snapshot import VerifiedSnapshot
from broker.trust.state import TrustedRegistry

_log = get_logger(__name__)


class RegistryAudit:
    """Logs registry snapshots as they take effect at one enforcement point. Start it after
    the audit log; stop it before."""

    def __init__(self, trusted: TrustedRegistry, audit: AuditLog) -> None:
        self._trusted = trusted
        self._audit = audit
        name = f"{quote(audit.enforcement_point, safe='')}.registry.json"
        self._path = audit.state_dir / name  # beside the log's own state
        self._observer = audit.enforcement_point.partition("/")[0]
        self._stop: Callable[[], None] | None = None
        self._logged: RegistryView | None = None

    def _load(self) -> RegistryView | None:
        try:
            return RegistryView.from_json(json.loads(self._path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            _log.warning(
                "registry view unreadable: logging the registry in full", path=str(self._path)
            )
            return None

    def _save(self, view: RegistryView) -> None:
        write_private(self._path, json.dumps(view.to_json(), indent=1).encode())
        self._logged = view

    async def start(self) -> None:
        self._logged = self._load()
        current = self._trusted.current
        if current is not None:
            view = RegistryView.of(current)
            if self._logged is None or self._logged.digest != view.digest:
                await self._audit.append_many(registry_change(self._observer, self._logged, view))
                self._save(view)
        self._stop = self._trusted.on_change(self._changed)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def _changed(self, snapshot: VerifiedSnapshot) -> None:
        view = RegistryView.of(snapshot)
        try:
            futures = self._audit.submit(registry_change(self._observer, self._logged, view))
        except JcuError as exc:
            _log.error("registry change not audited", error=str(exc), epoch=snapshot.epoch)
            return
        self._logged = view  # the next change is told against this one

        def written(done: asyncio.Future[list[AuditEntry]]) -> None:
            if not done.cancelled() and done.exception() is None:
                self._save(view)

        asyncio.gather(*futures).add_done_callback(written)


async def log_registry(trusted: TrustedRegistry, audit: AuditLog) -> None:
    """For a short-lived enforcement point (a CLI verb): log the snapshot in force, if it is
    not the one it logged last."""
    registry = RegistryAudit(trusted, audit)
    await registry.start()
    registry.stop()
