"""The audit log: every decision in a leaf of an RFC 6962 Merkle tree, with signed checkpoints.

Writers use `AuditLog` (one per enforcement point) with `AuditRecord`s, or
with a `DecisionSet` per message (all its decisions in one leaf, cheaply).
Operators use `verify` (recompute trees, check checkpoints), `prove` (an
inclusion proof against the latest checkpoint), `query` and `explain`.
The Merkle tree itself is `broker.merkle`.
"""

from broker.audit.checkpoint import Checkpoint
from broker.audit.log import AuditLog
from broker.audit.query import InclusionProof, explain, prove, query
from broker.audit.record import (
    AuditEntry,
    AuditRecord,
    DecisionSet,
    LeafEntry,
    LoggedLeaf,
    LoggedRecord,
)
from broker.audit.verify import (
    EnforcementPointReport,
    Failure,
    KeyResolver,
    KeyValidity,
    VerificationReport,
    VerifiedLog,
    verify,
)

__all__ = [
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "Checkpoint",
    "DecisionSet",
    "EnforcementPointReport",
    "Failure",
    "InclusionProof",
    "KeyResolver",
    "KeyValidity",
    "LeafEntry",
    "LoggedLeaf",
    "LoggedRecord",
    "VerificationReport",
    "VerifiedLog",
    "explain",
    "prove",
    "query",
    "verify",
]
