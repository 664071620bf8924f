"""The Kafka walls: which principal may do what on which topic and group, from the registry.

`plan_acls` turns the registry's facts (who takes part, in which community,
enrolled in which exercises, active or not) and the platform's roles into the
complete set of ACL bindings the cluster must hold, and the SCRAM users that
must exist. Nothing else is allowed: the brokers run with
`allow.everyone.if.no.acl.found=false`, and only the platform admin (a super
user in the brokers' configuration) may create, delete or alter topics.

The rules (docs/deployment.md says why):

- `User:<org>` (an active organisation): READ its own community's topics
  `jcu.<community>.*` (data and receipts), and `jcu.exercise.<community>.*`
  if enrolled in an exercise; WRITE every community's `jcu.<c>.*` (a
  publisher seals one copy per target community; a receipt goes to the
  sender's community) and, if enrolled, `jcu.exercise.<c>.*`; READ
  `jcu.registry`, `jcu.control` and `jcu.capabilities` (WRITE too for a JCU
  participant, which keeps entries there); WRITE `jcu.audit.decisions`,
  `jcu.audit.checkpoints` and `jcu.dlq`; READ (join, commit, fetch offsets)
  the consumer groups prefixed `<org>.`; as a witness of the others' audit
  logs (every active organisation, unless the roles name the witnesses): READ
  `jcu.audit.checkpoints` (origin, size, root, time: never a leaf) and WRITE
  `jcu.audit.cosignatures`;
- the crisis authorities (eu-cyclone, csirts-network), besides: WRITE `jcu.control`;
- the registry authority: READ and WRITE `jcu.registry`;
- an auditor: READ `jcu.audit.decisions`, `jcu.audit.checkpoints`,
  `jcu.audit.cosignatures`, `jcu.dlq`, `jcu.registry`;
- an operator: DESCRIBE every `jcu.` topic and every group (counts, lag); READ `jcu.dlq`
  and the data topics (the append time of a group's oldest unconsumed record: lag in
  seconds; envelopes are encrypted, the clear header is all a non-recipient learns);
- a suspended or revoked organisation: nothing.

Scope: a cluster may host others' applications. `read_state` and the diff
consider only what the plan speaks for: bindings on `jcu.`-prefixed topics,
bindings of the principals the plan names (every registry participant, active
or not, and the roles), and groups prefixed with a participant's id; SCRAM
users likewise only those principals.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from broker.errors import ConfigError
from broker.vocabulary import COMMUNITIES, CRISIS_AUTHORITIES

Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
#: Kafka ACL operations this plan uses (READ, WRITE and others imply DESCRIBE).
Operation = Literal[
    "READ",
    "WRITE",
    "DESCRIBE",
    "CREATE",
    "DELETE",
    "ALTER",
    "ALTER_CONFIGS",
    "DESCRIBE_CONFIGS",
    "CLUSTER_ACTION",
    "IDEMPOTENT_WRITE",
    "ALL",
]

REGISTRY_TOPIC = "jcu.registry"
CONTROL_TOPIC = "jcu.control"
CAPABILITIES_TOPIC = "jcu.capabilities"
#: Roles whose members may keep entries in the capability inventory (JCU participants).
INVENTORY_ROLES = frozenset({"operational", "supporting"})
AUDIT_TOPICS = ("jcu.audit.decisions", "jcu.audit.checkpoints")
AUDIT_CHECKPOINTS_TOPIC = "jcu.audit.checkpoints"
COSIGNATURES_TOPIC = "jcu.audit.cosignatures"
DLQ_TOPIC = "jcu.dlq"
TOPIC_PREFIX = "jcu."


@dataclass(frozen=True, order=True, slots=True)
class AclRule:
    """One binding: `principal` may `operation` on `resource` `name` (`pattern`)."""

    principal: str
    resource: Resource
    pattern: Pattern
    name: str
    operation: str
    host: str = "*"
    #: ALLOW for everything the plan makes; a DENY found on the cluster is shown as such
    permission: str = "ALLOW"

    def __str__(self) -> str:
        where = f"{self.resource} {'prefix ' if self.pattern == 'prefixed' else ''}{self.name}"
        return f"{self.principal} {self.permission} {self.operation} on {where}"

    def as_dict(self) -> dict[str, str]:
        return {
            "principal": self.principal,
            "resource": self.resource,
            "pattern": self.pattern,
            "name": self.name,
            "operation": self.operation,
            "host": self.host,
            "permission": self.permission,
        }


@dataclass(frozen=True, slots=True)
class Member:
    """What the walls need to know of one registry participant."""

    id: str
    community: str
    status: str = "active"
    exercises: frozenset[str] = frozenset()
    role: str = "member"


@dataclass(frozen=True, slots=True)
class Roles:
    """Principals of the platform's roles (user names, without `User:`)."""

    authorities: tuple[str, ...] = ("registry-authority",)
    #: jcu-console is both: the operator console's platform view (audit, health, lag)
    auditors: tuple[str, ...] = ("jcu-auditor", "jcu-console")
    operators: tuple[str, ...] = ("jcu-operator", "jcu-console")
    #: the super user the brokers name (`super.users`): never given ACLs, never touched
    admin: str = "admin"
    crisis_authorities: frozenset[str] = CRISIS_AUTHORITIES
    #: participants that may witness others' audit logs (None: every active organisation)
    witnesses: tuple[str, ...] | None = None

    @classmethod
    def load(cls, path: Path) -> Roles:
        """Read roles from a TOML file (`authorities`, `auditors`, `operators`: lists of
        user names; `admin`: one name)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        known = {"authorities", "auditors", "operators", "admin", "witnesses"}
        if set(data) - known:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(set(data) - known))}")
        base = cls()

        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = data.get(key, list(default))
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{path}: {key} is a list of user names")
            return tuple(value)

        admin = data.get("admin", base.admin)
        if not isinstance(admin, str) or not admin:
            raise ConfigError(f"{path}: admin is one user name")
        return cls(
            authorities=names("authorities", base.authorities),
            auditors=names("auditors", base.auditors),
            operators=names("operators", base.operators),
            admin=admin,
            witnesses=names("witnesses", ()) if "witnesses" in data else None,
        )

    def principals(self) -> frozenset[str]:
        return frozenset((*self.authorities, *self.auditors, *self.operators))


@dataclass(frozen=True, slots=True)
class AclPlan:
    """Everything the registry and the roles imply for the cluster."""

    rules: frozenset[AclRule]
    #: user names that must have a SCRAM credential
    users: frozenset[str]
    #: user names whose credentials must go (revoked participants)
    retired: frozenset[str]
    #: participant ids (their groups are in scope) and every principal the plan speaks for
    participants: frozenset[str] = field(default_factory=frozenset)
    principals: frozenset[str] = field(default_factory=frozenset)
    #: the topic namespace the plan owns (every binding on it is its business), or None for
    #: a plan that speaks only for its own principals
    topic_prefix: str | None = TOPIC_PREFIX

    def in_scope(self, rule: AclRule) -> bool:
        """Whether an existing binding is this plan's business (see the module docstring)."""
        if rule.principal in self.principals:
            return True
        prefix = self.topic_prefix
        if rule.resource == "topic" and prefix is not None:
            # Ours, or a binding that reaches ours: the wildcard, or a shorter prefix.
            return (
                rule.name.startswith(prefix)
                or (rule.pattern == "literal" and rule.name == "*")
                or (rule.pattern == "prefixed" and prefix.startswith(rule.name))
            )
        if rule.resource == "group":
            return any(rule.name == p or rule.name.startswith(f"{p}.") for p in self.participants)
        return False

    def for_principal(self, principal: str) -> list[AclRule]:
        return sorted(r for r in self.rules if r.principal == principal)


def _topic(principal: str, name: str, op: str, *, prefixed: bool = False) -> AclRule:
    return AclRule(principal, "topic", "prefixed" if prefixed else "literal", name, op)


def plan_acls(members: Iterable[Member], roles: Roles) -> AclPlan:
    """The whole wall: every binding and SCRAM user the registry and the roles imply."""
    rules: set[AclRule] = set()
    users: set[str] = set()
    retired: set[str] = set()
    ids: set[str] = set()
    for m in members:
        ids.add(m.id)
        if m.status == "revoked":
            retired.add(m.id)
            continue
        users.add(m.id)  # a suspended organisation keeps its credential, and no ACL
        if m.status != "active":
            continue
        me = f"User:{m.id}"
        rules.add(_topic(me, f"jcu.{m.community}.", "READ", prefixed=True))
        for community in COMMUNITIES:
            rules.add(_topic(me, f"jcu.{community}.", "WRITE", prefixed=True))
        if m.exercises:
            rules.add(_topic(me, f"jcu.exercise.{m.community}.", "READ", prefixed=True))
            for community in COMMUNITIES:
                rules.add(_topic(me, f"jcu.exercise.{community}.", "WRITE", prefixed=True))
        rules.add(_topic(me, REGISTRY_TOPIC, "READ"))
        rules.add(_topic(me, CONTROL_TOPIC, "READ"))
        rules.add(_topic(me, CAPABILITIES_TOPIC, "READ"))
        if m.role in INVENTORY_ROLES:
            rules.add(_topic(me, CAPABILITIES_TOPIC, "WRITE"))
        if m.id in roles.crisis_authorities:
            rules.add(_topic(me, CONTROL_TOPIC, "WRITE"))
        for name in (*AUDIT_TOPICS, DLQ_TOPIC):
            rules.add(_topic(me, name, "WRITE"))
        rules.add(AclRule(me, "group", "prefixed", f"{m.id}.", "READ"))
        if roles.witnesses is None or m.id in roles.witnesses:
            rules.add(_topic(me, AUDIT_CHECKPOINTS_TOPIC, "READ"))
            rules.add(_topic(me, COSIGNATURES_TOPIC, "WRITE"))
    for name in roles.authorities:
        users.add(name)
        rules.add(_topic(f"User:{name}", REGISTRY_TOPIC, "READ"))
        rules.add(_topic(f"User:{name}", REGISTRY_TOPIC, "WRITE"))
    for name in roles.auditors:
        users.add(name)
        for topic in (*AUDIT_TOPICS, COSIGNATURES_TOPIC, DLQ_TOPIC, REGISTRY_TOPIC):
            rules.add(_topic(f"User:{name}", topic, "READ"))
    for name in roles.operators:
        users.add(name)
        rules.add(_topic(f"User:{name}", TOPIC_PREFIX, "DESCRIBE", prefixed=True))
        rules.add(_topic(f"User:{name}", DLQ_TOPIC, "READ"))
        rules.add(AclRule(f"User:{name}", "group", "literal", "*", "DESCRIBE"))
        # Lag in seconds is the append time of the oldest record a group has not consumed:
        # reading it needs READ. What a non-recipient reads there is the clear header only.
        for community in COMMUNITIES:
            rules.add(_topic(f"User:{name}", f"jcu.{community}.", "READ", prefixed=True))
            rules.add(_topic(f"User:{name}", f"jcu.exercise.{community}.", "READ", prefixed=True))
    clash = (ids | retired) & roles.principals() | ({roles.admin} & (ids | roles.principals()))
    if clash:
        raise ConfigError(
            f"principal name(s) {', '.join(sorted(clash))} are both a participant and a platform "
            "role (or the admin): give the roles other names"
        )
    principals = {f"User:{n}" for n in ids | roles.principals()}
    return AclPlan(
        rules=frozenset(rules),
        users=frozenset(users),
        retired=frozenset(retired),
        participants=frozenset(ids),
        principals=frozenset(principals),
    )


@dataclass(frozen=True, slots=True)
class ClusterWalls:
    """What the cluster holds now, within a plan's scope."""

    rules: frozenset[AclRule]
    users: frozenset[str]


@dataclass(frozen=True, slots=True)
class Drift:
    """How the cluster differs from the plan: what `apply` would add and remove."""

    missing: tuple[AclRule, ...]
    extra: tuple[AclRule, ...]
    users_missing: tuple[str, ...]
    users_extra: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.users_missing or self.users_extra)

    def as_dict(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "missing": [r.as_dict() for r in self.missing],
            "extra": [r.as_dict() for r in self.extra],
            "users_missing": list(self.users_missing),
            "users_extra": list(self.users_extra),
        }


def drift(plan: AclPlan, cluster: ClusterWalls) -> Drift:
    """The differences between `plan` and what `cluster` holds (within the plan's scope)."""
    held = {r for r in cluster.rules if plan.in_scope(r)}
    return Drift(
        missing=tuple(sorted(plan.rules - held)),
        extra=tuple(sorted(held - plan.rules)),
        users_missing=tuple(sorted(plan.users - cluster.users)),
        users_extra=tuple(sorted(cluster.users & plan.retired)),
    )
