"""What a node believes about the registry: the newest snapshot it accepted, and never less.

A node trusts one registry authority key (installed at `jcu init` or with `jcu
registry trust`), accepts a snapshot only if that authority signed it (or a
key the authority moved to, see `broker.trust.snapshot`), and keeps, across
restarts, the highest epoch and the highest record serial per participant it
has accepted. It refuses anything older: an old snapshot replayed onto the
topic after compaction must not undo a revocation, and one epoch signed twice
with different content (a fork) is refused too. After it accepts a snapshot
signed by a newer authority key, it trusts only that key from then on.

On disk, one file written atomically (0600): $JCU_HOME/registry/trusted.json.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.config import Settings
from broker.errors import ConfigError, KeystoreError, OlderEpoch, RegistryFork, StaleRegistry
from broker.files import write_private
from broker.logs import get_logger
from broker.schemas import SchemaStore
from broker.trust.keyring import Keyring
from broker.trust.material import SIGNING_ALGORITHM, key_id, load_ed25519_public
from broker.trust.registry import Registry
from broker.trust.snapshot import VerifiedSnapshot, verify_snapshot

ANCHOR_FILE = "authority.pem"
STATE_FILE = "trusted.json"
_log = get_logger(__name__)

Listener = Callable[[VerifiedSnapshot], None]


def registry_dir(settings: Settings) -> Path:
    """Where a node keeps its trust anchor and the registry state it accepted."""
    return settings.home / "registry"


def load_anchor(path: Path) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise KeystoreError(
            f"no registry authority key at {path}; install the one the authority gave you "
            "with `jcu registry trust FILE`"
        ) from None
    except ValueError:
        raise KeystoreError(f"{path} is not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeystoreError(f"{path} is not an Ed25519 public key")
    return key


class TrustedRegistry:
    """The registry state of one node. `load` it; `offer` it snapshots; read `current`."""

    def __init__(self, directory: Path, store: SchemaStore) -> None:
        self.directory = Path(directory)
        self._store = store
        self._anchor: ed25519.Ed25519PublicKey | None = None
        self._epoch = 0
        self._serials: dict[str, int] = {}
        self.current: VerifiedSnapshot | None = None
        #: Replaced in place on every accepted snapshot: sealers and openers hold it.
        self.keyring = Keyring(())
        self._listeners: list[Listener] = []

    @classmethod
    def load(cls, directory: Path, store: SchemaStore) -> TrustedRegistry:
        """The state kept in `directory`; a held snapshot is verified again."""
        trusted = cls(directory, store)
        path = trusted.directory / STATE_FILE
        if not path.exists():
            return trusted
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            anchor = load_ed25519_public(bytes.fromhex(state["authority_key"]))
            epoch = int(state["epoch"])
            serials = {str(k): int(v) for k, v in state["serials"].items()}
            data = base64.b64decode(state["snapshot"]) if state.get("snapshot") else None
        except (OSError, ValueError, KeyError, TypeError, KeystoreError):
            raise ConfigError(
                f"{path} is damaged; restore it from backup (or remove it and run "
                "`jcu registry sync`: the node then trusts the anchor in authority.pem again)"
            ) from None
        trusted._anchor, trusted._epoch, trusted._serials = anchor, epoch, serials
        if data is not None:
            snapshot = verify_snapshot(store, data, anchor)
            trusted._take(snapshot)
        return trusted

    # -- reading ----------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The highest epoch accepted (0: none yet)."""
        return self._epoch

    @property
    def registry(self) -> Registry:
        if self.current is None:
            raise ConfigError(
                "this node has accepted no registry snapshot yet: run `jcu registry sync` once "
                "the authority's snapshot is on jcu.registry, or `jcu registry import FILE`"
            )
        return self.current.registry

    @property
    def anchor(self) -> ed25519.Ed25519PublicKey:
        if self._anchor is None:
            self._anchor = load_anchor(self.directory / ANCHOR_FILE)
        return self._anchor

    @property
    def anchor_key_id(self) -> str:
        return key_id(SIGNING_ALGORITHM, self.anchor.public_bytes_raw())

    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(snapshot)` after every snapshot accepted from now on; returns
        what stops it (a service that stops must not be called any more)."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # -- accepting --------------------------------------------------------------------

    def check(self, data: bytes) -> VerifiedSnapshot | None:
        """Verify `data` and compare it with what was accepted, changing nothing.

        Returns the snapshot if it is newer, None if it is the one held. Raises a
        `Rejected` subclass for a forgery (BadSignature), a key the authority does
        not lead to (UnknownKey), an older epoch or a lower record serial
        (StaleRegistry), another snapshot of the held epoch (RegistryFork).
        """
        snapshot = verify_snapshot(self._store, data, self.anchor)
        if snapshot.epoch < self._epoch:
            raise OlderEpoch(
                f"registry snapshot epoch {snapshot.epoch} is older than epoch {self._epoch}, "
                "which this node accepted: refused (a replay cannot undo a later change)"
            )
        if snapshot.epoch == self._epoch:
            if self.current is not None and snapshot.digest == self.current.digest:
                return None
            raise RegistryFork(
                f"a second, different registry snapshot of epoch {snapshot.epoch}: refused; "
                "the registry authority signed two histories, tell its security officer"
            )
        for pid, serial in snapshot.serials.items():
            held = self._serials.get(pid, 0)
            if serial < held:
                raise StaleRegistry(
                    f"registry snapshot epoch {snapshot.epoch} holds record {serial} of {pid}, "
                    f"older than record {held} this node accepted: refused"
                )
        return snapshot

    def offer(self, data: bytes) -> VerifiedSnapshot | None:
        """Accept `data` if it is a newer snapshot (persisted before it takes effect);
        None if it is the one held. Refusals raise as in `check`."""
        snapshot = self.check(data)
        if snapshot is None:
            return None
        self._persist(snapshot)
        self._take(snapshot)
        _log.info(
            "registry snapshot accepted",
            epoch=snapshot.epoch,
            participants=len(snapshot.registry.participants),
            records=len(snapshot.entries),
        )
        for listener in self._listeners:
            listener(snapshot)
        return snapshot

    def _persist(self, snapshot: VerifiedSnapshot) -> None:
        serials = dict(self._serials)
        for pid, serial in snapshot.serials.items():
            serials[pid] = max(serial, serials.get(pid, 0))
        state = {
            "format": 1,
            "authority_key": snapshot.authority_key.public_bytes_raw().hex(),
            "authority_key_id": snapshot.authority_key_id,
            "epoch": snapshot.epoch,
            "serials": serials,
            "snapshot": base64.b64encode(snapshot.data).decode(),
        }
        write_private(self.directory / STATE_FILE, json.dumps(state, indent=1).encode())
        self._serials = serials

    def _take(self, snapshot: VerifiedSnapshot) -> None:
        self.current = snapshot
        self._epoch = snapshot.epoch
        self._anchor = snapshot.authority_key  # only the newest authority key from now on
        for pid, serial in snapshot.serials.items():
            self._serials[pid] = max(serial, self._serials.get(pid, 0))
        self.keyring.replace(snapshot.entries.values())
