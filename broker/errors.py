"""Every error jcu-broker raises on purpose, in one hierarchy.

Callers catch `JcuError` to turn any of them into one clear line and a
non-zero exit. Rejections of a received record carry a stable `reason` code,
which is what the dead-letter topic, the audit log and the metrics record.
"""

from __future__ import annotations


class JcuError(Exception):
    """Base of every deliberate jcu-broker error. The message is safe to print."""


class ConfigError(JcuError):
    """Bad configuration or bad command-line input."""


class InputFormatError(ConfigError):
    """An input file (STIX, MISP, CSV, case message) cannot be read at all; says where."""


class AttachmentDigestMismatch(InputFormatError):
    """An attachment's content does not match the SHA-256 its file states."""


class KafkaRuntimeError(JcuError):
    """The local Kafka broker could not be fetched, started, stopped or reached."""


class KafkaUnavailable(JcuError):
    """No Kafka answered at the configured bootstrap address, or it refused the credentials."""


class KafkaForbidden(JcuError):
    """The cluster's ACLs do not allow this principal the operation (a wall, not a fault)."""


class Interrupted(JcuError):
    """A run was asked to stop (SIGINT, SIGTERM) before it was done; what it did is kept."""


class RegistryError(JcuError):
    """The participant registry is malformed or names an unknown participant."""


class KeystoreError(JcuError):
    """A key could not be generated, loaded or decrypted."""


class PolicyError(JcuError):
    """The policy bundle could not be loaded or evaluated."""


class PolicyLoadError(PolicyError):
    """A rule file or the schema is broken; names the file and the rule."""

    def __init__(self, message: str, *, file: str | None = None, rule: str | None = None):
        self.file = file
        self.rule = rule
        where = ", ".join(
            p for p in (f"file {file}" if file else "", f"rule {rule}" if rule else "") if p
        )
        super().__init__(f"{message} ({where})" if where else message)


class AuditError(JcuError):
    """The audit log could not be written or read."""


class AuditVerificationError(AuditError):
    """The audit log failed verification; names the first bad record or checkpoint."""


class SinkUnavailable(JcuError):
    """A sink cannot take deliveries now (its receiver is down, its disk full or
    read-only): the subscriber holds the batch and retries; never a dead letter."""


class SinkGaveUp(SinkUnavailable):
    """A sink stayed unavailable past the subscriber's give-up time: it stopped without
    committing the batch in hand (delivered again on the next run)."""


class WebhookFailed(SinkUnavailable):
    """A webhook did not accept a delivery within the retry bound."""


class StateError(JcuError):
    """A node's own state (a delivery ledger) cannot be written, is corrupt or is missing:
    the subscriber stops before delivering anything more."""


class Rejected(JcuError):
    """A record was refused. `reason` is a stable, machine-readable code."""

    reason: str = "rejected"


class MalformedRecord(Rejected):
    reason = "malformed"


class CompressionBomb(MalformedRecord):
    """A compressed record batch that expands past the configured limit: refused whole,
    before it takes the memory (broker.kafka.decompression)."""

    reason = "compression-bomb"


class LabelMismatch(MalformedRecord):
    """The clear header shows another TLP or exercise flag than the encrypted labels say:
    a faulty or lying sender (only a sender can make it: both are signed)."""

    reason = "label-mismatch"


class UnsupportedVersion(Rejected):
    reason = "unsupported-version"


class UnknownSchema(Rejected):
    reason = "unknown-schema"


class BadSignature(Rejected):
    reason = "bad-signature"


class UnknownKey(Rejected):
    reason = "unknown-key"


class RevokedKey(Rejected):
    reason = "revoked-key"


class ExpiredKey(Rejected):
    reason = "expired-key"


class WrongSender(Rejected):
    """The signing key exists but belongs to someone other than the named sender."""

    reason = "wrong-sender"


class NotARecipient(Rejected):
    reason = "not-a-recipient"


class Replay(Rejected):
    reason = "replay"


class Expired(Rejected):
    """The record is outside its validity window (expired or not yet valid)."""

    reason = "expired"


class TamperedCiphertext(Rejected):
    reason = "tampered-ciphertext"


class WrongTopic(Rejected):
    """The record was read from a topic other than the one it was sealed for."""

    reason = "wrong-topic"


class Undeliverable(Rejected):
    """Verified and allowed, but the sink cannot take it (a format cannot express it)."""

    reason = "undeliverable"


class Unauthorised(Rejected):
    """The policy does not allow this participant to send or receive this record."""

    reason = "unauthorised"


class NotEntitled(Unauthorised):
    """The sender may not take this step of a workflow: a request on behalf of a Member
    State it does not act for, an acceptance or closure by anyone but the requester, a
    status update from outside the case."""

    reason = "not-entitled"


class NoMandate(Unauthorised):
    """An offer of help from an organisation whose role or mandate does not cover the need."""

    reason = "no-mandate"


class ReceiptRefused(Rejected):
    """A delivery receipt its sender cannot believe: it proves nothing and is not counted."""

    reason = "receipt-refused"


class ReceiptRootMismatch(ReceiptRefused):
    """The receipt's message ids do not hash to the Merkle root it signs."""

    reason = "receipt-root-mismatch"


class ReceiptNotSent(ReceiptRefused):
    """The receipt names a message its sender's sent index says the receiver was never sent."""

    reason = "receipt-not-sent"


class ReceiptWrongSigner(ReceiptRefused):
    """The receipt speaks for a receiver other than the participant who signed it."""

    reason = "receipt-wrong-signer"


class OutOfOrder(Rejected):
    """A workflow step its case's state does not allow: an offer on a request never seen,
    an acceptance of an offer never made, anything after the case was closed."""

    reason = "out-of-order"


class Unchecked(Rejected):
    """A workflow's message reached an enforcement point with no check for that workflow:
    never delivered unchecked."""

    reason = "unchecked-workflow"


class StaleRegistry(Rejected):
    """A registry snapshot older than one accepted (an epoch or a record serial)."""

    reason = "stale-registry"


class OlderEpoch(StaleRegistry):
    """A registry snapshot of an epoch older than the one accepted."""


class RegistryFork(Rejected):
    """Two different registry snapshots of one epoch: the authority's history forked."""

    reason = "registry-fork"


class Backdated(Rejected):
    """Signed as created well before the broker appended it: a backdated record."""

    reason = "backdated"


class NotACrisisAuthority(Unauthorised):
    """Only the crisis authorities (rule 10) may declare or end a crisis."""

    reason = "not-a-crisis-authority"


class TooFewMemberStates(Rejected):
    """A crisis is a large-scale incident: it affects two or more Member States."""

    reason = "too-few-member-states"


class NotAMemberState(Rejected):
    """A code that is not one of the 27 EU Member States."""

    reason = "not-a-member-state"


class NoSuchCrisis(Rejected):
    """No crisis was ever declared for this incident."""

    reason = "no-such-crisis"


class CrisisNotInForce(Rejected):
    """The crisis was already ended, or its declaration expired: nothing to end."""

    reason = "crisis-not-in-force"


class NotThisNode(ConfigError):
    """A node asked to act as another organisation: it holds no key of that one."""


class SignInRefused(Rejected):
    """A console sign-in token (`broker.trust.sign_in`) was refused; `reason` names the check."""

    reason = "sign-in-refused"


class MalformedSignIn(SignInRefused):
    """Not a sign-in token or challenge this version makes (cut short, or not one at all)."""

    reason = "malformed-token"


class UnknownParticipant(SignInRefused):
    """The token names an organisation this node's registry snapshot does not hold."""

    reason = "unknown-participant"


class RotatedOutKey(ExpiredKey):
    """Signed with a key its owner has rotated out: only its current key signs in."""

    reason = "rotated-out-key"


class ParticipantSuspended(SignInRefused):
    """The registry authority suspended the organisation: its auditors do not sign in."""

    reason = "participant-suspended"


class ParticipantRevoked(SignInRefused):
    """The registry authority revoked the organisation's participation."""

    reason = "participant-revoked"


class RoleNotAllowed(SignInRefused):
    """Only an organisation's auditor signs in with its node's key; `operator` is a
    platform role granted on the console's own node."""

    reason = "role-not-allowed"


class WrongConsole(SignInRefused):
    """The token was made for another console (another node or another address)."""

    reason = "wrong-console"


class UnknownChallenge(SignInRefused):
    """The challenge was not issued by this console process (forged, or it restarted)."""

    reason = "unknown-challenge"


class ChallengeExpired(SignInRefused):
    """The challenge's few minutes have passed."""

    reason = "challenge-expired"


class ChallengeReused(SignInRefused):
    """The challenge already signed someone in: each is good once."""

    reason = "challenge-reused"
