"""The audit log: every decision in a leaf of an RFC 6962 Merkle tree, with witnessed checkpoints.

Writers use `AuditLog` (one per enforcement point) with `AuditRecord`s, or
with a `DecisionSet` per message (all its decisions in one leaf, cheaply);
`broker.audit.acts` builds the records of what an enforcement point did
besides deciding (what it sent, retractions, crises, registry changes).
Leaf contents are sealed under each enforcement point's audit key (`AuditKeys`).
Checkpoints are C2SP signed notes (`SignedCheckpoint`); a `Witness` on another
participant's node cosigns them once it has checked that the log only grew.
Readers use `Verifier` / `verify` (streamed, bounded memory, resumable),
`Prover` and the offline proof bundle (`check_bundle`), `query`, `explain` and `story`.
The Merkle tree itself is `broker.merkle`.
"""

from broker.audit._codec import leaf_encoder
from broker.audit.checkpoint import (
    Checkpoint,
    Cosignature,
    SignedCheckpoint,
    cosign,
    sign_checkpoint,
    witness_name,
)
from broker.audit.keys import POINT_SIDES, AuditKeys, PointKey
from broker.audit.log import AuditLog, AuditMark
from broker.audit.proof import (
    BundleCheck,
    InclusionProof,
    Prover,
    check_bundle,
    proof_against,
    write_bundle,
)
from broker.audit.query import (
    ReadCount,
    ThreadMessage,
    decode_records,
    explain,
    iter_records,
    query,
    sentence,
    story,
)
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
    Seen,
    VerificationPolicy,
    VerificationReport,
    Verifier,
    VerifyState,
    WitnessStatus,
    verify,
)
from broker.audit.witness import Witness, WitnessRound, WitnessState, WitnessVerdict, witness_round

__all__ = [
    "POINT_SIDES",
    "AuditEntry",
    "AuditKeys",
    "AuditLog",
    "AuditMark",
    "AuditRecord",
    "BundleCheck",
    "Checkpoint",
    "Cosignature",
    "DecisionSet",
    "EnforcementPointReport",
    "Failure",
    "InclusionProof",
    "KeyResolver",
    "KeyValidity",
    "LeafEntry",
    "LoggedLeaf",
    "LoggedRecord",
    "PointKey",
    "Prover",
    "ReadCount",
    "Seen",
    "SignedCheckpoint",
    "ThreadMessage",
    "VerificationPolicy",
    "VerificationReport",
    "Verifier",
    "VerifyState",
    "Witness",
    "WitnessRound",
    "WitnessState",
    "WitnessStatus",
    "WitnessVerdict",
    "check_bundle",
    "cosign",
    "decode_records",
    "explain",
    "iter_records",
    "leaf_encoder",
    "proof_against",
    "query",
    "sentence",
    "sign_checkpoint",
    "story",
    "verify",
    "witness_name",
    "witness_round",
    "write_bundle",
]
