"""Signing in to another organisation's console with one's own node's key.

An auditor of ORG may use a console that runs on someone else's node (the
platform operator's, a partner's) without an account there: the console shows
a fresh challenge, ORG's node signs a statement over it with ORG's current
Ed25519 signing key (`jcu console sign-in CHALLENGE`), and the console checks
the token against ORG's keys in the registry snapshot it trusts. No password
or key leaves ORG's node; the registry authority already vouches for the key.

Formats (base64url without padding, JSON canonical: sorted keys, no spaces):

    challenge  jcu-challenge-v1.<json {console, expires, nonce, origin}>.<tag>
    token      jcu-sign-in-v1.<json statement>.<Ed25519 signature>
    statement  {challenge, console, key_id, origin, participant, role, signed_at, type}

The tag is an HMAC under a key that lives only in the console's process, so
only a challenge this process issued verifies; the signature covers
`DOMAIN || statement bytes`, as sent. Checks, each with its own reason
(`broker.errors.SignInRefused` and the key errors): a token that parses, a
participant the registry holds, the participant's key that is current now
(not unknown, revoked, rotated out or expired), a signature that verifies, a
participant that is active, the role `auditor` (the only one a key grants),
this console's node and origin, a challenge this process issued, not
expired, and not used before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from broker.clock import Clock, to_millis, utc_now
from broker.errors import (
    BadSignature,
    ChallengeExpired,
    ChallengeReused,
    MalformedSignIn,
    ParticipantRevoked,
    ParticipantSuspended,
    Rejected,
    RoleNotAllowed,
    RotatedOutKey,
    UnknownChallenge,
    UnknownKey,
    UnknownParticipant,
    WrongConsole,
)
from broker.trust.state import TrustedRegistry

CHALLENGE_PREFIX = "jcu-challenge-v1"
TOKEN_PREFIX = "jcu-sign-in-v1"  # noqa: S105 - a format tag, not a token
STATEMENT_TYPE = "jcu-console-sign-in/v1"
#: Domain separation: a signature over a sign-in statement is never one over anything else.
DOMAIN = b"jcu-broker/console-sign-in/v1\x00"
#: The only role a node's key grants (operator is a platform role granted on the console's node).
AUDITOR = "auditor"
#: Long enough to run one command on another machine and paste its output.
CHALLENGE_LIFETIME = timedelta(minutes=5)
_MAX_TEXT = 8192
_TAG_DOMAIN = CHALLENGE_PREFIX.encode() + b"\x00"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) > _MAX_TEXT:
        raise MalformedSignIn("an empty or oversized part")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except ValueError:
        raise MalformedSignIn("a part is not base64url") from None


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedSignIn(f"{what} is not a time")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedSignIn(f"{what} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise MalformedSignIn(f"{what} has no time zone")
    return to_millis(t)


def _iso(t: datetime) -> str:
    return to_millis(t).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(data: bytes, names: tuple[str, ...], what: str) -> dict[str, str]:
    try:
        obj = json.loads(data)
    except ValueError:
        raise MalformedSignIn(f"the {what} is not JSON") from None
    if not isinstance(obj, dict) or set(obj) != set(names):
        raise MalformedSignIn(f"the {what} does not have exactly the fields {', '.join(names)}")
    if not all(isinstance(obj[n], str) and obj[n] for n in names):
        raise MalformedSignIn(f"every field of the {what} is a non-empty string")
    return {n: str(obj[n]) for n in names}


def _split(text: str, prefix: str, what: str) -> tuple[str, bytes, bytes]:
    text = "".join(text.split())  # pasted text may be wrapped
    parts = text.split(".")
    if len(parts) != 3 or parts[0] != prefix:
        raise MalformedSignIn(f"not a {what} (it starts {prefix}. and has three parts)")
    return text, _unb64(parts[1]), _unb64(parts[2])


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a console asks to be signed: for whom (its node, its address), until when."""

    console: str
    origin: str
    nonce: str
    expires: datetime
    #: the challenge as issued (what the statement carries and the console checks)
    text: str
    tag: bytes

    _NAMES = ("console", "expires", "nonce", "origin")

    @classmethod
    def parse(cls, text: str) -> Challenge:
        """Read a challenge's fields (without checking its tag: only its console can)."""
        text, body, tag = _split(text, CHALLENGE_PREFIX, "console sign-in challenge")
        f = _fields(body, cls._NAMES, "challenge")
        return cls(f["console"], f["origin"], f["nonce"], _time(f["expires"], "expires"), text, tag)


@dataclass(frozen=True, slots=True)
class Statement:
    """What an organisation's node signs: its auditor signs in to that console, now."""

    participant: str
    role: str
    key_id: str
    console: str
    origin: str
    challenge: str
    signed_at: datetime

    _NAMES = (
        "challenge",
        "console",
        "key_id",
        "origin",
        "participant",
        "role",
        "signed_at",
        "type",
    )

    def to_bytes(self) -> bytes:
        return _canonical(
            {
                "challenge": self.challenge,
                "console": self.console,
                "key_id": self.key_id,
                "origin": self.origin,
                "participant": self.participant,
                "role": self.role,
                "signed_at": _iso(self.signed_at),
                "type": STATEMENT_TYPE,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Statement:
        f = _fields(data, cls._NAMES, "statement")
        if f["type"] != STATEMENT_TYPE:
            raise MalformedSignIn(f"a statement of type {f['type']!r}, not {STATEMENT_TYPE}")
        return cls(
            f["participant"],
            f["role"],
            f["key_id"],
            f["console"],
            f["origin"],
            f["challenge"],
            _time(f["signed_at"], "signed_at"),
        )


def sign_token(
    challenge: Challenge,
    participant: str,
    key_id: str,
    signer: ed25519.Ed25519PrivateKey,
    *,
    role: str = AUDITOR,
    clock: Clock = utc_now,
) -> str:
    """The token an organisation's node gives its auditor to paste into the console."""
    statement = Statement(
        participant, role, key_id, challenge.console, challenge.origin, challenge.text, clock()
    ).to_bytes()
    return f"{TOKEN_PREFIX}.{_b64(statement)}.{_b64(signer.sign(DOMAIN + statement))}"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """An accepted token: ORG's auditor, proven by ORG's current key."""

    participant: str
    role: str
    key_id: str
    signed_at: datetime

    accepted = True


@dataclass(frozen=True, slots=True)
class Refused:
    """A refused token: `reason` is the stable code, `message` says what to do."""

    reason: str
    message: str
    #: whom the token claimed to be, if it could be read (for the log; never trusted)
    claimed: str | None = None

    accepted = False


Verdict = SignedIn | Refused


class SignInVerifier:
    """One console's challenges and the tokens that answer them.

    `challenge()` issues a fresh challenge (stateless: tagged under a key of this
    process); `verify(token)` checks a token against the registry snapshot the
    node trusts now, and remembers each redeemed challenge until it expires.
    """

    def __init__(
        self,
        console: str,
        origin: str,
        trusted: TrustedRegistry,
        *,
        lifetime: timedelta = CHALLENGE_LIFETIME,
        clock: Clock = utc_now,
    ) -> None:
        self.console = console
        self.origin = origin
        self.lifetime = lifetime
        self._trusted = trusted
        self._clock = clock
        self._mac_key = secrets.token_bytes(32)
        #: nonce -> its challenge's expiry: redeemed challenges, forgotten once expired
        self._used: dict[str, datetime] = {}

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._mac_key, _TAG_DOMAIN + body, hashlib.sha256).digest()

    def challenge(self) -> Challenge:
        expires = to_millis(self._clock() + self.lifetime)
        body = _canonical(
            {
                "console": self.console,
                "expires": _iso(expires),
                "nonce": _b64(secrets.token_bytes(16)),
                "origin": self.origin,
            }
        )
        tag = self._tag(body)
        return Challenge.parse(f"{CHALLENGE_PREFIX}.{_b64(body)}.{_b64(tag)}")

    def verify(self, token: str) -> Verdict:
        """Accept or refuse `token`, saying why; never raises for a bad token."""
        claimed: str | None = None
        try:
            statement, body, signature = self._read(token)
            claimed = statement.participant
            return self._check(statement, body, signature)
        except Rejected as exc:
            reason = exc.reason if exc.reason != "rejected" else "sign-in-refused"
            return Refused(reason, str(exc), claimed)

    @staticmethod
    def _read(token: str) -> tuple[Statement, bytes, bytes]:
        if not isinstance(token, str) or not token.strip():
            raise MalformedSignIn("no token given: paste what `jcu console sign-in` printed")
        if len(token) > 4 * _MAX_TEXT:
            raise MalformedSignIn("the token is far too long to be one")
        _, body, signature = _split(token, TOKEN_PREFIX, "console sign-in token")
        return Statement.from_bytes(body), body, signature

    def still_good(self, participant: str, key_id: str) -> Refused | None:
        """Whether a session this key signed in may go on: the participant is still active
        and the key still current (a revocation or rotation since ends it); None if so."""
        try:
            self._key(participant, key_id, to_millis(self._clock()))
            self._standing(participant)
        except Rejected as exc:
            return Refused(exc.reason, str(exc), participant)
        return None

    def _key(self, participant: str, key_id: str, now: datetime) -> ed25519.Ed25519PublicKey:
        """`participant`'s signing key `key_id` if it is current now."""
        keyring = self._trusted.keyring
        if participant not in self._trusted.registry or participant not in keyring:
            raise UnknownParticipant(
                f"{participant!r} is not an organisation in this node's registry snapshot "
                f"(epoch {self._trusted.epoch})"
            )
        info = keyring.entry(participant).key(key_id)
        retired = info.retired if info is not None and info.revoked is None else None
        if retired is not None and now >= retired:
            raise RotatedOutKey(
                f"key {key_id} of {participant} was rotated out at {_iso(retired)}: run "
                f"`jcu registry sync` on {participant}'s node and sign in again with its "
                "current key"
            )
        return keyring.signing_key(participant, key_id, now)  # unknown/revoked/expired

    def _standing(self, participant: str) -> None:
        status = self._trusted.registry.get(participant).status
        if status == "suspended":
            raise ParticipantSuspended(
                f"{participant} is suspended in the registry: its auditors cannot sign in"
            )
        if status != "active":
            raise ParticipantRevoked(f"{participant} is {status} in the registry")

    def _check(self, st: Statement, body: bytes, signature: bytes) -> SignedIn:
        now = to_millis(self._clock())
        public = self._key(st.participant, st.key_id, now)
        try:
            public.verify(signature, DOMAIN + body)
        except InvalidSignature:
            raise BadSignature(
                f"the token's signature does not verify with {st.participant}'s key "
                f"{st.key_id}: it was altered after signing; make a new one"
            ) from None
        self._standing(st.participant)
        if st.role != AUDITOR:
            raise RoleNotAllowed(
                f"a node's key signs in only an auditor of its organisation, not {st.role!r}: "
                "the operator role is an account on the console's own node (`jcu console passwd`)"
            )
        if (st.console, st.origin) != (self.console, self.origin):
            raise WrongConsole(
                f"the token is for the console of {st.console} at {st.origin}; this is the "
                f"console of {self.console} at {self.origin}: sign this page's challenge"
            )
        # A challenge whose tag verifies was issued here, so it names this console too.
        ch = Challenge.parse(st.challenge)
        if not hmac.compare_digest(ch.tag, self._tag(_unb64(ch.text.split(".")[1]))):
            raise UnknownChallenge(
                "this console did not issue that challenge (or restarted since): take the "
                "fresh one on the login page"
            )
        if now >= ch.expires:
            raise ChallengeExpired(
                f"the challenge expired at {_iso(ch.expires)}: take the fresh one on the "
                "login page and sign it"
            )
        self._forget_expired(now)
        if ch.nonce in self._used:
            raise ChallengeReused(
                "this challenge already signed someone in; each is good once: take the "
                "fresh one on the login page"
            )
        self._used[ch.nonce] = ch.expires
        return SignedIn(st.participant, st.role, st.key_id, st.signed_at)

    def _forget_expired(self, now: datetime) -> None:
        for nonce in [n for n, exp in self._used.items() if exp <= now]:
            del self._used[nonce]


def key_id_of(trusted: TrustedRegistry, participant: str, at: datetime) -> str:
    """The signing key `participant` signs in with: its current one in `trusted`."""
    try:
        return trusted.keyring.current_signing_key_id(participant, at)
    except UnknownKey:
        raise UnknownParticipant(f"{participant} has no keys in this node's registry") from None
