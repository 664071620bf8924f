"""What an enforcement point needs, loaded once from Settings.

The publisher, the subscriber and the control verbs share one loading path:
the envelope context (schemas, keystore, keyring), the registry, the policy
engine, and the audit log of the enforcement point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broker.audit import AuditLog
from broker.clock import utc_now
from broker.config import Settings
from broker.envelope.context import EnvelopeContext
from broker.policy import PolicyEngine
from broker.trust.registry import Registry, load_registry


@dataclass(frozen=True, slots=True)
class PepContext:
    settings: Settings
    envelope: EnvelopeContext
    registry: Registry
    policy: PolicyEngine

    @classmethod
    def load(cls, settings: Settings, env: Mapping[str, str] | None = None) -> PepContext:
        envelope = EnvelopeContext.load(settings, env)
        registry = load_registry(settings.policies / "participants.yaml")
        policy = PolicyEngine.load(
            settings.policies,
            registry,
            personal_data_fields=envelope.store.personal_data_fields,
        )
        return cls(settings, envelope, registry, policy)

    @property
    def audit_dir(self) -> Path:
        return self.settings.home / "audit"

    def audit_log(self, participant: str, side: str, *, checkpoint_every: int = 1000) -> AuditLog:
        """The audit log of enforcement point `<participant>/<side>`, signed with its key."""
        keyring = self.envelope.keyring
        kid = keyring.current_signing_key_id(participant, utc_now())
        signer = self.envelope.keystore.signing_key(participant, kid)
        return AuditLog(
            f"{participant}/{side}",
            signer,
            self.settings.bootstrap,
            self.audit_dir,
            checkpoint_every=checkpoint_every,
            store=self.envelope.store,
        )
