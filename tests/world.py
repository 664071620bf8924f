"""One federation on the real broker: the authority's home, a node per organisation, topics.

Session-scoped (the `world` fixture in tests/conftest.py) because key
generation is deliberately slow (scrypt) and the topic names are a contract
shared by every test: tests keep apart by their own message ids and consumer
groups, never by mocking. Every organisation has its own home, keys and Kafka
principal (`User:<id>`, with the ACLs the registry implies), as in a real
deployment; a test acts as an organisation through `world.ctx(org)`
(in-process) or `world.env(org)` (a `jcu` subprocess), as the platform admin
through `world.admin`, and as an auditor through `world.auditor` or
`world.auditor_env(org)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
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
from broker.kafka.acl import Roles
from broker.kafka.connection import CLIENT_FILE, CONFIG_ENV, KafkaConnection, read_client_file
from broker.kafka.local import LocalKafka
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
    #: the platform admin's connection (a super user: topics, ACLs, any read or write)
    admin: KafkaConnection
    #: where the roles' client files are (auditor, operator), from `jcu acl apply`
    credentials: Path
    roles: Roles = field(default_factory=Roles)
    #: the local cluster's runner, when the session started it
    cluster: LocalKafka | None = None
    _contexts: dict[str, PepContext] = field(default_factory=dict)

    def kafka(self, org: str) -> KafkaConnection:
        """`org`'s own Kafka connection (or the authority's): its home's client file."""
        return self.settings(org).kafka

    @property
    def auditor(self) -> KafkaConnection:
        """An auditor's connection: the only principal that reads the audit topics."""
        return read_client_file(self.credentials / f"{self.roles.auditors[0]}.toml")

    @property
    def operator(self) -> KafkaConnection:
        return read_client_file(self.credentials / f"{self.roles.operators[0]}.toml")

    @property
    def console_view(self) -> Path:
        """The client file of jcu-console: an auditor and an operator, for the console."""
        return self.credentials / "jcu-console.toml"

    def operator_env(self, org: str = "enisa") -> dict[str, str]:
        """A `jcu` process of the platform's operator (`jcu stats`): `org`'s home, the
        operator's Kafka principal."""
        operator = self.credentials / f"{self.roles.operators[0]}.toml"
        return {**self.env(org), CONFIG_ENV: str(operator)}

    def auditor_env(self, org: str = "enisa") -> dict[str, str]:
        """A `jcu` process of an auditor: `org`'s home (its accepted registry, for the keys),
        the auditor's Kafka principal."""
        auditor = self.credentials / f"{self.roles.auditors[0]}.toml"
        return {**self.env(org), CONFIG_ENV: str(auditor)}

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

    async def nodes_on(
        self,
        admin: KafkaConnection,
        orgs: Sequence[str],
        where: Path,
        *,
        partitions: int = 2,
        replication: int = 1,
    ) -> dict[str, PepContext]:
        """Copies of `orgs`' nodes on another cluster (`admin` administers it): its topics
        made, the same walls put up there, each copy with its own principal's client file
        and a new audit log there. The roles' client files are in `where / "credentials"`."""
        from broker.kafka.acl import Member, plan_acls
        from broker.kafka.acl_admin import CA_COPY, apply_plan
        from broker.kafka.topics import contract_topics, ensure_topics

        await ensure_topics(admin, contract_topics(partitions=partitions, replication=replication))
        registry = self.ctx(orgs[0]).registry
        members = [
            Member(p.id, p.community, p.status, p.exercises, p.role)
            for p in registry.participants.values()
        ]
        credentials = where / "credentials"
        # New passwords for these copies and the auditors, so that their files are written
        # here even when the cluster already knows them (an earlier test's copies).
        await apply_plan(
            admin,
            plan_acls(members, self.roles),
            credentials_dir=credentials,
            rotate=[*orgs, *self.roles.auditors],
        )
        nodes = {}
        for org in orgs:
            home = where / org
            # Everything but its audit state: on another cluster its audit log starts anew.
            shutil.copytree(self.home(org), home, ignore=shutil.ignore_patterns("audit"))
            shutil.copyfile(credentials / f"{org}.toml", home / CLIENT_FILE)
            shutil.copyfile(credentials / CA_COPY, home / CA_COPY)
            env = {**self.env(org), "JCU_HOME": str(home), "KAFKA_BOOTSTRAP": admin.bootstrap}
            nodes[org] = PepContext.load(config.load(env), env)
        return nodes

    @contextlib.asynccontextmanager
    async def audit_walls(self, prefix: str, names: dict[str, str]) -> AsyncIterator[None]:
        """The walls `jcu acl apply` puts on the contract's audit topics, put on a test's own
        (`names`: contract topic -> the test's, all under `prefix`) while in the block: who
        may write, read or witness there may do the same here, and no one else. Taken down
        after it (they are bindings of the participants' principals: `jcu acl check` would
        call them drift)."""
        await self._audit_walls(prefix, names)
        try:
            yield
        finally:
            await self._audit_walls(prefix, {})

    async def _audit_walls(self, prefix: str, names: dict[str, str]) -> None:
        from broker.kafka.acl import AclPlan, Member, plan_acls
        from broker.kafka.acl_admin import apply_plan

        registry = self.ctx(self.orgs[0]).registry
        members = [
            Member(p.id, p.community, p.status, p.exercises, p.role)
            for p in registry.participants.values()
        ]
        rules = frozenset(
            dataclasses.replace(rule, name=names[rule.name])
            for rule in plan_acls(members, self.roles).rules
            if rule.resource == "topic" and rule.pattern == "literal" and rule.name in names
        )
        assert all(name.startswith(prefix) for name in names.values())
        plan = AclPlan(rules, frozenset(), frozenset(), topic_prefix=prefix)
        await apply_plan(self.admin, plan)

    def group(self, org: str, purpose: str = "test") -> str:
        """A fresh consumer group of `org`'s: prefixed with its id, as its ACLs require."""
        return f"{org}.{purpose}.{uuid.uuid4().hex[:8]}"


def make_world(
    admin: KafkaConnection,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    cluster: LocalKafka | None = None,
) -> Iterator[World]:
    """A federation in a fresh directory: every organisation of the sample registry a node,
    their requests approved, the contract's topics made, the walls the registry implies put
    up (a principal and ACLs per organisation, the roles' principals), the snapshot published
    on jcu.registry by the authority's principal."""
    from broker.kafka.topics import contract_topics, ensure_topics
    from broker.trust.federation import put_up_walls
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
    asyncio.run(ensure_topics(admin, contract_topics(partitions=2)))
    roles = Roles()
    credentials = asyncio.run(
        put_up_walls(federation, admin, schemas=settings.schemas, roles=roles)
    )
    world = World(admin.bootstrap, federation, admin, credentials, roles, cluster)
    asyncio.run(publish_snapshot(world.kafka("authority"), federation.snapshot.read_bytes()))
    yield world
