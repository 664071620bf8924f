"""Reading and changing a cluster's ACLs and SCRAM users, through confluent-kafka's admin client.

aiokafka has no admin calls for ACLs or SCRAM credentials (Kafka's
DescribeAcls/CreateAcls/DeleteAcls and Describe/AlterUserScramCredentials);
librdkafka, through confluent-kafka, has all of them, typed. Its calls are
blocking (futures on librdkafka's threads), so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.errors import ConfigError, KafkaForbidden, KafkaUnavailable
from broker.files import private_dir, write_private
from broker.kafka.acl import AclPlan, AclRule, ClusterWalls, drift
from broker.kafka.connection import KafkaConnection, client_file_text
from broker.logs import get_logger

SCRAM_ITERATIONS = 8192
CA_COPY = "kafka-ca.pem"
_log = get_logger(__name__)


def _admin(kafka: KafkaConnection) -> Any:
    from confluent_kafka.admin import AdminClient

    conf: dict[str, Any] = dict(kafka.librdkafka_config())
    conf["logger"] = logging.getLogger("librdkafka")
    return AdminClient(conf)


def _fail(kafka: KafkaConnection, what: str, exc: BaseException) -> Exception:
    from confluent_kafka import KafkaError, KafkaException

    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    code = err.code() if isinstance(err, KafkaError) else None
    if code in (
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.SECURITY_DISABLED,
    ):
        return KafkaForbidden(
            f"{kafka.describe()} may not {what}: run this as the platform admin "
            "(JCU_KAFKA_CONFIG pointing at the admin's client file)"
        )
    return KafkaUnavailable(f"{what} at {kafka.describe()} failed: {exc}")


def _to_rule(binding: Any) -> AclRule | None:
    from confluent_kafka.admin import AclPermissionType, ResourcePatternType, ResourceType

    kinds = {
        ResourceType.TOPIC: "topic",
        ResourceType.GROUP: "group",
        ResourceType.BROKER: "cluster",
    }
    patterns = {ResourcePatternType.LITERAL: "literal", ResourcePatternType.PREFIXED: "prefixed"}
    resource = kinds.get(binding.restype)
    pattern = patterns.get(binding.resource_pattern_type)
    if resource is None or pattern is None:
        return None
    return AclRule(
        principal=binding.principal,
        resource=resource,  # type: ignore[arg-type]
        pattern=pattern,  # type: ignore[arg-type]
        name=binding.name,
        operation=binding.operation.name,
        host=binding.host,
        permission=binding.permission_type.name
        if binding.permission_type != AclPermissionType.ALLOW
        else "ALLOW",
    )


def _binding(rule: AclRule, *, as_filter: bool = False) -> Any:
    """The binding for `rule` (to create), or the filter matching exactly it (to delete)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    kinds = {
        "topic": ResourceType.TOPIC,
        "group": ResourceType.GROUP,
        "cluster": ResourceType.BROKER,
    }
    patterns = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
    make = AclBindingFilter if as_filter else AclBinding
    return make(
        kinds[rule.resource],
        rule.name,
        patterns[rule.pattern],
        rule.principal,
        rule.host,
        AclOperation[rule.operation],
        AclPermissionType[rule.permission],
    )


def _read(kafka: KafkaConnection, plan: AclPlan) -> ClusterWalls:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = _admin(kafka)
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        bindings = admin.describe_acls(everything, request_timeout=30).result()
    except Exception as exc:
        raise _fail(kafka, "describe the cluster's ACLs", exc) from None
    rules = frozenset(r for b in bindings if (r := _to_rule(b)) is not None)
    try:
        described = admin.describe_user_scram_credentials(request_timeout=30).result()
    except Exception as exc:
        raise _fail(kafka, "describe SCRAM users", exc) from None
    users = frozenset(described) & (plan.users | plan.retired)
    return ClusterWalls(rules=rules, users=users)


async def read_walls(kafka: KafkaConnection, plan: AclPlan) -> ClusterWalls:
    """What the cluster holds: every ACL binding, and which of the plan's users exist."""
    return await asyncio.to_thread(_read, kafka, plan)


@dataclass
class Applied:
    """What `apply_plan` changed."""

    added: list[AclRule] = field(default_factory=list)
    removed: list[AclRule] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    users_deleted: list[str] = field(default_factory=list)
    #: user -> the client file written for it (its password inside, 0600)
    credential_files: dict[str, Path] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.users_created or self.users_deleted)

    def as_dict(self) -> dict[str, object]:
        return {
            "added": [r.as_dict() for r in self.added],
            "removed": [r.as_dict() for r in self.removed],
            "users_created": self.users_created,
            "users_deleted": self.users_deleted,
            "credential_files": {u: str(p) for u, p in self.credential_files.items()},
        }


def _results(futures: dict[Any, Any], what: str, kafka: KafkaConnection) -> None:
    for future in futures.values():
        try:
            future.result()
        except Exception as exc:
            raise _fail(kafka, what, exc) from None


def _apply(
    kafka: KafkaConnection,
    plan: AclPlan,
    credentials_dir: Path | None,
    rotate: Sequence[str],
    advertise: str | None,
) -> Applied:
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    walls = _read(kafka, plan)
    diff = drift(plan, walls)
    unknown = sorted(set(rotate) - plan.users)
    if unknown:
        raise ConfigError(f"cannot rotate {', '.join(unknown)}: not a user the registry implies")
    new_users = sorted(set(diff.users_missing) | set(rotate))
    if new_users and credentials_dir is None:
        raise ConfigError(
            f"{len(new_users)} SCRAM user(s) to create ({', '.join(new_users)}): pass "
            "--credentials-dir DIR, where each one's client file (with its generated password) "
            "is written, 0600, for you to hand to its owner"
        )
    admin = _admin(kafka)
    result = Applied()
    # Users first: a principal's ACLs are of no use to it before it can log in.
    if new_users:
        assert credentials_dir is not None  # noqa: S101 - narrows for mypy: checked above for new users
        private_dir(credentials_dir)
        mechanism = ScramMechanism.SCRAM_SHA_512
        if kafka.sasl_mechanism == "SCRAM-SHA-256":
            mechanism = ScramMechanism.SCRAM_SHA_256
        passwords = {u: secrets.token_urlsafe(32) for u in new_users}
        upserts = [
            UserScramCredentialUpsertion(
                u, ScramCredentialInfo(mechanism, SCRAM_ITERATIONS), passwords[u].encode()
            )
            for u in new_users
        ]
        _results(admin.alter_user_scram_credentials(upserts), "create SCRAM users", kafka)
        ca = None
        if kafka.ca_file is not None:
            ca = credentials_dir / CA_COPY
            shutil.copyfile(kafka.ca_file, ca)
            ca.chmod(0o644)
        for u in new_users:
            user_conn = KafkaConnection(
                bootstrap=advertise or kafka.bootstrap,
                security_protocol=kafka.security_protocol if kafka.sasl else "SASL_SSL",
                sasl_mechanism=kafka.sasl_mechanism or "SCRAM-SHA-512",
                username=u,
                password=passwords[u],
                source=f"credentials for {u}",
            )
            text = client_file_text(user_conn, ca_file=CA_COPY if ca is not None else None)
            result.credential_files[u] = write_private(credentials_dir / f"{u}.toml", text.encode())
        result.users_created = new_users
    if diff.missing:
        _results(admin.create_acls([_binding(r) for r in diff.missing]), "create ACLs", kafka)
        result.added = list(diff.missing)
    if diff.extra:
        filters = [_binding(r, as_filter=True) for r in diff.extra]
        _results(admin.delete_acls(filters), "delete ACLs", kafka)
        result.removed = list(diff.extra)
    if diff.users_extra:
        deletions = [
            UserScramCredentialDeletion(u, mech)
            for u in diff.users_extra
            for mech in (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256)
        ]
        futures = admin.alter_user_scram_credentials(deletions)
        for future in futures.values():
            try:
                future.result()
            except Exception as exc:  # a user with only one of the two mechanisms
                if "RESOURCE_NOT_FOUND" not in str(exc):
                    raise _fail(kafka, "delete SCRAM users", exc) from None
        result.users_deleted = list(diff.users_extra)
    if result.changed:
        _log.info(
            "kafka walls applied",
            added=len(result.added),
            removed=len(result.removed),
            users_created=len(result.users_created),
            users_deleted=len(result.users_deleted),
        )
    return result


async def apply_plan(
    kafka: KafkaConnection,
    plan: AclPlan,
    *,
    credentials_dir: Path | None = None,
    rotate: Iterable[str] = (),
    advertise: str | None = None,
) -> Applied:
    """Make the cluster match `plan`: create missing users (their client files into
    `credentials_dir`), add missing ACLs, remove those no longer implied, delete retired
    users' credentials. Idempotent: a second run changes nothing. `rotate` gives existing
    users new passwords; `advertise` is the bootstrap address written into client files."""
    done = await asyncio.to_thread(_apply, kafka, plan, credentials_dir, tuple(rotate), advertise)
    await _await_logins(kafka, done)
    return done


async def _await_logins(kafka: KafkaConnection, done: Applied, timeout: float = 60.0) -> None:
    """Return once every user just created can log in: the controller has their credentials
    when it answers, the brokers a moment later (they follow its metadata)."""
    import time

    from aiokafka.errors import KafkaError

    from broker.kafka.clients import admin_client
    from broker.kafka.connection import read_client_file

    deadline = time.monotonic() + timeout
    for user, path in done.credential_files.items():
        conn = read_client_file(path).with_bootstrap(kafka.bootstrap)
        while True:
            client = admin_client(conn, request_timeout_ms=5000)
            try:
                await client.start()
                await client.describe_cluster()
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"{user} cannot log in to {kafka.bootstrap} {timeout:.0f} s after its "
                        f"SCRAM credential was made ({exc})"
                    ) from None
                await asyncio.sleep(0.2)
            finally:
                await client.close()
