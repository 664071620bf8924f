"""The audit log: every decision a leaf of an RFC 6962 Merkle tree, with signed checkpoints.

Writers use `AuditLog` (one per enforcement point) with `AuditRecord`s.
Operators use `verify` (recompute trees, check checkpoints), `prove` (an
inclusion proof against the latest checkpoint), `query` and `explain`.
The Merkle tree itself is `broker.merkle`.
"""

from broker.audit.checkpoint import Checkpoint
from broker.audit.log import AuditLog
from broker.audit.query import InclusionProof, explain, prove, query
from broker.audit.record import AuditEntry, AuditRecord, LoggedRecord
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
    "EnforcementPointReport",
    "Failure",
    "InclusionProof",
    "KeyResolver",
    "KeyValidity",
    "LoggedRecord",
    "VerificationReport",
    "VerifiedLog",
    "explain",
    "prove",
    "query",
    "verify",
]
