"""A whole federation on one machine: the authority's home and one home per organisation.

What `jcu demo` and the tests run, done the way separate organisations would do
it: each node makes its own keys and registration request in its own home,
the authority (in a home of its own) approves each request against the
fingerprint the node shows, exports a signed snapshot, and every node accepts
it. No home ever holds another's private key. Only the time it takes is
shortened: nodes are made in parallel threads (scrypt and key generation
release the GIL).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from broker.clock import Clock, utc_now
from broker.errors import ConfigError
from broker.files import write_private
from broker.kafka.acl import Roles
from broker.kafka.connection import CLIENT_FILE, KafkaConnection
from broker.schemas import SchemaStore
from broker.trust.authority import Authority
from broker.trust.keystore import DEFAULT_SCRYPT_N, Keystore
from broker.trust.node import NodeHome, RequestFile, register
from broker.trust.passphrase import PASSPHRASE_ENV
from broker.trust.registry import load_registry, parse_registry
from broker.trust.snapshot import canonical_facts
from broker.trust.state import TrustedRegistry


@dataclass(frozen=True)
class Federation:
    """Where each trust domain lives, and how to run a process as one of them."""

    root: Path
    authority_home: Path
    homes: Mapping[str, Path]
    snapshot: Path
    passphrases: Mapping[str, str] = field(repr=False)

    def env(self, org: str) -> dict[str, str]:
        """The environment of a process run by `org` (or "authority")."""
        home = self.authority_home if org == "authority" else self.homes[org]
        return {"JCU_HOME": str(home), PASSPHRASE_ENV: self.passphrases[org]}

    def home(self, org: str) -> Path:
        return self.homes[org]


def build_federation(
    root: Path,
    participants: Iterable[str] | None,
    *,
    policies: Path,
    schemas: Path,
    passphrase: str | Mapping[str, str],
    scrypt_n: int = DEFAULT_SCRYPT_N,
    min_scrypt_n: int | None = None,
    clock: Clock = utc_now,
) -> Federation:
    """The authority's home and a node per participant (default: every one in the
    registry source) under `root`, every request approved and one snapshot exported
    and accepted by every node. `passphrase`: one for all, or one per org and
    "authority". `scrypt_n` below the minimum is for unit tests only; `clock` is the time
    of the authority and the nodes while they are set up (the keys' validity starts then)."""
    store = SchemaStore.load(schemas)
    source = policies / "participants.yaml"
    registry = load_registry(source)
    orgs = list(participants) if participants is not None else list(registry.participants)
    words = (
        {o: passphrase for o in [*orgs, "authority"]}
        if isinstance(passphrase, str)
        else dict(passphrase)
    )
    floor = {"min_scrypt_n": min_scrypt_n} if min_scrypt_n is not None else {}

    def keystore(home: Path, org: str) -> Keystore:
        return Keystore(home / "keys", words[org].encode(), scrypt_n=scrypt_n, **floor)

    authority_home = root / "authority"
    authority = Authority.create(
        authority_home, keystore(authority_home, "authority"), store, clock=clock
    )
    anchor = authority.public_key_file.read_bytes()

    def make_node(org: str) -> tuple[NodeHome, RequestFile]:
        node = NodeHome.create(root / "nodes" / org, org)
        node.install_anchor(anchor)
        request = register(
            node,
            keystore(node.root, org),
            store,
            registry.get(org),
            registry.kem_of(org),
            clock=clock,
        )
        return node, request

    with ThreadPoolExecutor(max_workers=2) as pool:
        made = list(pool.map(make_node, orgs))
    for _, request in made:
        # The fingerprint the node showed its operator, read out to the authority.
        authority.approve(request.path.read_bytes(), registry, fingerprints=[request.fingerprint])
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    from broker.policy import PolicyEngine  # the composition of trust and policy, here only

    engine = PolicyEngine.load(
        policies,
        parse_registry(document, source=str(source)),
        personal_data_fields=store.personal_data_fields,
    )
    export = authority.export(canonical_facts(document), registry, engine.bundle_hash)
    for node, _ in made:
        trusted = TrustedRegistry.load(node.registry_dir, store)
        if trusted.offer(export.data) is None:
            raise ConfigError(f"{node.participant} did not accept the first snapshot")
    return Federation(
        root=root,
        authority_home=authority_home,
        homes={n.participant: n.root for n, _ in made},
        snapshot=export.path,
        passphrases=words,
    )


async def put_up_walls(
    federation: Federation,
    admin: KafkaConnection,
    *,
    schemas: Path,
    roles: Roles | None = None,
) -> Path:
    """Give every trust domain its own Kafka principal on the cluster `admin` administers.

    What a platform admin and the organisations do by hand (docs/deployment.md),
    done here for the whole federation: the ACLs and SCRAM users the snapshot's
    registry implies are applied, and each home gets its own client file
    (`kafka.toml`, 0600, with the cluster's CA): every organisation's node
    connects as `User:<id>`, the authority as the registry authority. The files
    of the other roles (auditors, operators) stay in the returned directory.
    """
    from broker.kafka.acl import Member, plan_acls
    from broker.kafka.acl_admin import CA_COPY, apply_plan

    roles = roles or Roles()
    any_node = next(iter(federation.homes.values()))
    trusted = TrustedRegistry.load(any_node / "registry", SchemaStore.load(schemas))
    members = [
        Member(p.id, p.community, p.status, p.exercises, p.role)
        for p in trusted.registry.participants.values()
    ]
    credentials = federation.root / "kafka-credentials"
    done = await apply_plan(admin, plan_acls(members, roles), credentials_dir=credentials)
    for org, home in [*federation.homes.items(), ("authority", federation.authority_home)]:
        user = roles.authorities[0] if org == "authority" else org
        source = done.credential_files.get(user, credentials / f"{user}.toml")
        write_private(home / CLIENT_FILE, source.read_bytes())
        if (credentials / CA_COPY).exists():
            shutil.copyfile(credentials / CA_COPY, home / CA_COPY)
    return credentials
