"""What an enforcement point needs, loaded once from Settings.

The publisher, the subscriber and the control verbs share one loading path:
the envelope context (schemas, the node's keystore and accepted registry
state), the policy engine over the registry facts the authority signed, and
the audit log of the enforcement point. The node's own Cedar bundle must be
the one the registry authority approved (the snapshot carries its hash): a
node whose rules differ refuses to start, and one that learns of a new
snapshot whose hash its rules do not match stops acting (`trust_failure`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from broker import config
from broker.audit import AuditLog
from broker.clock import utc_now
from broker.config import Settings
from broker.envelope.context import EnvelopeContext
from broker.errors import ConfigError
from broker.logs import get_logger
from broker.policy import PolicyEngine
from broker.schemas import SchemaStore
from broker.trust.keystore import Keystore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from broker.trust.registry import Registry
from broker.trust.snapshot import VerifiedSnapshot

_log = get_logger(__name__)


def _mismatch(policy: PolicyEngine, snapshot: VerifiedSnapshot) -> str | None:
    if policy.bundle_hash == snapshot.policy_bundle_hash:
        return None
    return (
        f"this node's policy bundle ({policy.bundle_hash[:16]}) is not the one the registry "
        f"authority approved in snapshot epoch {snapshot.epoch} "
        f"({snapshot.policy_bundle_hash[:16]}); install the approved policies (JCU_POLICIES)"
    )


@dataclass
class _Trust:
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class PepContext:
    settings: Settings
    envelope: EnvelopeContext
    policy: PolicyEngine
    _trust: _Trust = field(default_factory=_Trust, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PepContext:
        """The node `env` (default: this process's environment) names, as `jcu` finds it:
        its home `JCU_HOME` (made by `jcu init` and approved by the registry authority), its
        keystore opened with `JCU_KEY_PASSPHRASE` (or `JCU_KEY_PASSPHRASE_FILE`), Kafka as
        the home's connection settings or `KAFKA_BOOTSTRAP` say."""
        e = dict(os.environ if env is None else env)
        return cls.load(config.load(e), e)

    @classmethod
    def load(
        cls,
        settings: Settings,
        env: Mapping[str, str] | None = None,
        *,
        keystore: Keystore | None = None,
        store: SchemaStore | None = None,
    ) -> PepContext:
        """`keystore`, `store`: the node's, if the caller has them already (`node_context`
        opens the keystore first, to unlock it early)."""
        envelope = EnvelopeContext.load(settings, env, keystore=keystore, store=store)
        snapshot = envelope.trusted.current
        policy = PolicyEngine.load(
            settings.policies,
            envelope.trusted.registry,
            personal_data_fields=envelope.store.personal_data_fields,
        )
        assert snapshot is not None  # noqa: S101 - `registry` above raised otherwise
        problem = _mismatch(policy, snapshot)
        if problem:
            raise ConfigError(problem)
        ctx = cls(settings, envelope, policy)
        envelope.trusted.on_change(ctx._take_snapshot)
        return ctx

    def _take_snapshot(self, snapshot: VerifiedSnapshot) -> None:
        """A newer snapshot: the policy reads its facts; its bundle hash must still match."""
        self.policy.reload(snapshot.registry)
        self._trust.failure = _mismatch(self.policy, snapshot)
        if self._trust.failure:
            _log.error("policy bundle differs from the approved one", error=self._trust.failure)

    @property
    def registry(self) -> Registry:
        """The registry facts of the newest snapshot this node accepted."""
        return self.envelope.trusted.registry

    @property
    def identity(self) -> str:
        """The participant this node is: the only one it acts as."""
        return self.envelope.identity

    @property
    def trust_failure(self) -> str | None:
        """Why this node must not act now (its rules differ from the approved ones), or None."""
        return self._trust.failure

    def check_trusted(self) -> None:
        if self._trust.failure:
            raise ConfigError(self._trust.failure)

    @property
    def audit_dir(self) -> Path:
        return self.settings.home / "audit"

    def signing_key(self, participant: str) -> Ed25519PrivateKey:
        """This node's current signing key (its keystore unlocked: a wrong passphrase is a
        KeystoreError here)."""
        kid = self.envelope.keyring.current_signing_key_id(participant, utc_now())
        return self.envelope.keystore.signing_key(participant, kid)

    def audit_log(
        self,
        participant: str,
        side: str,
        *,
        checkpoint_every: int = 1000,
        key_when_needed: bool = False,
    ) -> AuditLog:
        """The audit log of enforcement point `<participant>/<side>`, signed with its key.
        With `key_when_needed`, the key is opened at its first use: a publisher or subscriber
        opens it (`signing_key`) while it connects, the keystore still unlocking."""
        self.envelope.node.acting_as(participant)
        keyring = self.envelope.keyring
        kid = keyring.current_signing_key_id(participant, utc_now())
        keystore = self.envelope.keystore
        signer = (
            keystore.signing_key_when_needed(participant, kid)
            if key_when_needed
            else keystore.signing_key(participant, kid)
        )
        return AuditLog(
            f"{participant}/{side}",
            signer,
            self.settings.kafka,
            self.audit_dir,
            checkpoint_every=checkpoint_every,
            store=self.envelope.store,
        )
