"""One federation on the real broker: the authority's home, a node per organisation, topics.

Session-scoped (the `world` fixture in tests/conftest.py) because key
generation is deliberately slow (scrypt) and the topic names are a contract
shared by every test: tests keep apart by their own message ids and consumer
groups, never by mocking. Every organisation has its own home and keys, as in
a real deployment; a test acts as an organisation through `world.ctx(org)`
(in-process) or `world.env(org)` (a `jcu` subprocess).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker import config
from broker.audit import POINT_SIDES, AuditKeys
from broker.clock import to_millis, utc_now
from broker.config import Settings
from broker.pep.context import PepContext
from broker.policy import PolicyEngine
from broker.schemas import SchemaStore
from broker.trust.authority import Authority
from broker.trust.federation import Federation, build_federation
from broker.trust.keystore import open_keystore
from broker.trust.registry import parse_registry
from broker.trust.snapshot import canonical_facts
from broker.trust.state import TrustedRegistry

PASSPHRASE = "test-only passphrase, not a secret"


@dataclass
class World:
    bootstrap: str
    federation: Federation
    _contexts: dict[str, PepContext] = field(default_factory=dict)

    def env(self, org: str) -> dict[str, str]:
        """The environment of a `jcu` process run by `org` (or "authority")."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("JCU_")}
        return {**base, **self.federation.env(org), "KAFKA_BOOTSTRAP": self.bootstrap}

    def env_for(self, args: Sequence[str], default: str = "enisa") -> dict[str, str]:
        """The environment for `jcu ARGS`: the node of the organisation `--as` names."""
        argv = list(args)
        org = argv[argv.index("--as") + 1] if "--as" in argv[:-1] else default
        return self.env(org)

    def settings(self, org: str) -> Settings:
        return config.load(self.env(org))

    def ctx(self, org: str) -> PepContext:
        """`org`'s node, loaded once per session (its own home, keystore and keyring)."""
        ctx = self._contexts.get(org)
        if ctx is None:
            env = self.env(org)
            ctx = self._contexts[org] = PepContext.load(config.load(env), env)
        return ctx

    def fresh_ctx(self, org: str) -> PepContext:
        """`org`'s node loaded anew: for tests that change its registry state."""
        env = self.env(org)
        return PepContext.load(config.load(env), env)

    def authority_copy(self, where: Path) -> Authority:
        """A copy of the registry authority's home, opened: for tests that change the
        registry without changing it for the rest of the session."""
        shutil.copytree(self.federation.authority_home, where)
        settings = self.settings("authority")
        keystore = open_keystore(where / "keys", self.env("authority"))
        return Authority.open(where, keystore, SchemaStore.load(settings.schemas))

    def node_copy(self, org: str, where: Path, snapshot: bytes | None = None) -> PepContext:
        """A copy of `org`'s node (after taking `snapshot`, if given), loaded."""
        shutil.copytree(self.home(org), where)
        store = SchemaStore.load(self.settings(org).schemas)
        if snapshot is not None:
            TrustedRegistry.load(where / "registry", store).offer(snapshot)
        settings = dataclasses.replace(self.settings(org), home=where)
        return PepContext.load(settings, self.env(org))

    def export(
        self,
        edit: Callable[[dict[str, Any]], None] | None = None,
        authority: Authority | None = None,
    ) -> bytes:
        """`authority`'s (default: the session's) next snapshot, of the registry source as
        `edit` changes it (participants.yaml itself is not changed). Not published."""
        settings = self.settings("authority")
        store = SchemaStore.load(settings.schemas)
        source = settings.policies / "participants.yaml"
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        if edit is not None:
            edit(document)
        registry = parse_registry(document, source=str(source))
        engine = PolicyEngine.load(
            settings.policies, registry, personal_data_fields=store.personal_data_fields
        )
        if authority is None:
            keystore = open_keystore(settings.keystore, self.env("authority"))
            authority = Authority.open(settings.home, keystore, store)
        return authority.export(canonical_facts(document), registry, engine.bundle_hash).data

    def home(self, org: str) -> Path:
        return self.federation.home(org)

    def audit_keys(self, *orgs: str) -> AuditKeys:
        """An auditor's keys: every enforcement point's audit key of `orgs` (default: every
        organisation), as each would hand them over with `jcu audit keys export`."""
        keys = AuditKeys()
        for org in orgs or self.orgs:
            theirs = AuditKeys.open(self.home(org) / "audit", owner=org, create=False)
            for side in POINT_SIDES:
                key = theirs.point(f"{org}/{side}")
                if key is not None:
                    keys.add(key)
        return keys

    @property
    def orgs(self) -> tuple[str, ...]:
        return tuple(sorted(self.federation.homes))

    def group(self, name: str) -> str:
        return f"jcu.test.{name}.{uuid.uuid4().hex[:8]}"


def make_world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A federation in a fresh directory: every organisation of the sample registry a node,
    their requests approved, the snapshot on jcu.registry, the contract's topics made."""
    from broker.kafka.topics import contract_topics, ensure_topics
    from broker.trust.topic import publish_snapshot

    root: Path = tmp_path_factory.mktemp("world")
    settings = config.load({})
    # Set up a day ago, so the keys have a past: tests can sign records with dates before now.
    set_up = to_millis(utc_now() - timedelta(days=1))
    federation = build_federation(
        root,
        None,
        policies=settings.policies,
        schemas=settings.schemas,
        passphrase=PASSPHRASE,
        clock=lambda: set_up,
    )
    asyncio.run(ensure_topics(kafka_bootstrap, contract_topics(partitions=2)))
    asyncio.run(publish_snapshot(kafka_bootstrap, federation.snapshot.read_bytes()))
    yield World(kafka_bootstrap, federation)
