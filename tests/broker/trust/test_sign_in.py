"""Console sign-in by organisation identity: one accepted token, and each refusal on its own.

enisa's node runs the console; eeas-intcen's node signs tokens with its real keystore,
on the Kafka-free test federation. Every refusal test makes a token that passes every
other check, so it fails if its own check is deleted.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from broker.clock import to_millis
from broker.errors import MalformedSignIn
from broker.trust.registry import parse_registry
from broker.trust.sign_in import (
    CHALLENGE_LIFETIME,
    TOKEN_PREFIX,
    Challenge,
    Refused,
    SignedIn,
    SignInVerifier,
    Statement,
    key_id_of,
    sign_token,
)
from broker.trust.snapshot import canonical_facts
from broker.trust.state import TrustedRegistry
from tests.broker._pki import BUNDLE_HASH, REPO, Pki, make_pki

CONSOLE, ORIGIN = "enisa", "https://console.jcu.example:8443"
AUDITOR_OF = "eeas-intcen"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), participants=("enisa", "eeas-intcen", "eda"))


@pytest.fixture(scope="module")
def trusted(pki: Pki) -> TrustedRegistry:
    """The console node's registry state (enisa's), at the authority's newest snapshot."""
    return pki.trusted(CONSOLE)


@pytest.fixture
def verifier(pki: Pki, trusted: TrustedRegistry) -> SignInVerifier:
    return SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)


def token_of(
    pki: Pki,
    challenge: Challenge,
    org: str = AUDITOR_OF,
    *,
    key_id: str | None = None,
    role: str = "auditor",
) -> str:
    """What `jcu console sign-in` on `org`'s node makes: signed with its current key."""
    kid = key_id or key_id_of(pki.trusted(org), org, pki.clock())
    signer = pki.keystores[org].signing_key(org, kid)
    return sign_token(challenge, org, kid, signer, role=role, clock=pki.clock)


def refused(verdict: object, reason: str) -> Refused:
    assert isinstance(verdict, Refused), verdict
    assert verdict.reason == reason, verdict
    return verdict


def _statement(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def _with_statement(token: str, statement: dict[str, Any]) -> str:
    prefix, _, sig = token.split(".")
    raw = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return f"{prefix}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{sig}"


# -- accepted ------------------------------------------------------------------------


def test_a_token_signed_by_the_current_key_signs_its_auditor_in(
    pki: Pki, verifier: SignInVerifier
) -> None:
    challenge = verifier.challenge()
    assert (challenge.console, challenge.origin) == (CONSOLE, ORIGIN)
    assert challenge.expires == pki.clock() + CHALLENGE_LIFETIME
    token = token_of(pki, challenge)
    verdict = verifier.verify(token)
    assert isinstance(verdict, SignedIn), verdict
    assert (verdict.participant, verdict.role) == (AUDITOR_OF, "auditor")
    assert verdict.key_id == key_id_of(pki.trusted(AUDITOR_OF), AUDITOR_OF, pki.clock())
    statement = _statement(token)
    assert statement["participant"] == AUDITOR_OF and statement["challenge"] == challenge.text
    assert statement["origin"] == ORIGIN and statement["type"] == "jcu-console-sign-in/v1"
    assert verifier.still_good(AUDITOR_OF, verdict.key_id) is None


def test_wrapped_pasted_text_is_read(pki: Pki, verifier: SignInVerifier) -> None:
    token = token_of(pki, verifier.challenge())
    wrapped = "\n".join(token[i : i + 64] for i in range(0, len(token), 64))
    assert isinstance(verifier.verify(f"  {wrapped}\n"), SignedIn)


# -- refusals, one check each -----------------------------------------------------------


def test_a_reused_challenge_is_refused(pki: Pki, verifier: SignInVerifier) -> None:
    challenge = verifier.challenge()
    assert isinstance(verifier.verify(token_of(pki, challenge)), SignedIn)
    again = verifier.verify(token_of(pki, challenge))  # a second token over the same challenge
    assert "already signed someone in" in refused(again, "challenge-reused").message


def test_a_replayed_token_is_refused(pki: Pki, verifier: SignInVerifier) -> None:
    token = token_of(pki, verifier.challenge())
    assert isinstance(verifier.verify(token), SignedIn)
    refused(verifier.verify(token), "challenge-reused")


def test_an_expired_challenge_is_refused(pki: Pki, trusted: TrustedRegistry) -> None:
    clock = type(pki.clock)(pki.clock())
    verifier = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=clock)
    challenge = verifier.challenge()
    token = token_of(pki, challenge)
    clock.advance(CHALLENGE_LIFETIME)
    assert "expired" in refused(verifier.verify(token), "challenge-expired").message


def test_a_token_for_another_console_is_refused(pki: Pki, trusted: TrustedRegistry) -> None:
    here = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)
    elsewhere = SignInVerifier(CONSOLE, "https://other.jcu.example", trusted, clock=pki.clock)
    other_node = SignInVerifier("eda", ORIGIN, trusted, clock=pki.clock)
    for other in (elsewhere, other_node):
        verdict = here.verify(token_of(pki, other.challenge()))
        assert "this is the console of enisa" in refused(verdict, "wrong-console").message


def test_a_challenge_this_console_did_not_issue_is_refused(
    pki: Pki, trusted: TrustedRegistry
) -> None:
    """Same node and address, another process (or a forged challenge): its tag differs."""
    here = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)
    before_restart = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)
    refused(here.verify(token_of(pki, before_restart.challenge())), "unknown-challenge")


def test_a_tampered_token_is_refused(pki: Pki, verifier: SignInVerifier) -> None:
    token = token_of(pki, verifier.challenge())
    for field, value in (("signed_at", "2026-11-01T12:00:01.000Z"), ("origin", ORIGIN + "/")):
        statement = {**_statement(token), field: value}
        refused(verifier.verify(_with_statement(token, statement)), "bad-signature")
    prefix, body, sig = token.split(".")
    flipped = "A" if sig[0] != "A" else "B"
    refused(verifier.verify(f"{prefix}.{body}.{flipped}{sig[1:]}"), "bad-signature")
    assert isinstance(verifier.verify(token), SignedIn)  # the untouched one still works


def test_an_operator_cannot_sign_in_with_a_key(pki: Pki, verifier: SignInVerifier) -> None:
    verdict = verifier.verify(token_of(pki, verifier.challenge(), role="operator"))
    assert "jcu console passwd" in refused(verdict, "role-not-allowed").message


def test_an_organisation_the_registry_does_not_hold_is_refused(
    pki: Pki, verifier: SignInVerifier
) -> None:
    token = token_of(pki, verifier.challenge())
    statement = {**_statement(token), "participant": "not-registered"}
    refused(verifier.verify(_with_statement(token, statement)), "unknown-participant")


def test_a_key_the_registry_never_held_is_refused(pki: Pki, verifier: SignInVerifier) -> None:
    keystore = pki.keystores[AUDITOR_OF]
    kid, _ = keystore.generate_signing_key(AUDITOR_OF)  # made on the node, never approved
    refused(verifier.verify(token_of(pki, verifier.challenge(), key_id=kid)), "unknown-key")


def test_a_revoked_key_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, participants=("enisa", "eeas-intcen"))
    trusted = pki.trusted(CONSOLE)
    verifier = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)
    kid = key_id_of(pki.trusted(AUDITOR_OF), AUDITOR_OF, pki.clock())
    pki.clock.advance(timedelta(minutes=1))
    pki.revoke(AUDITOR_OF, "compromised")
    trusted.offer(pki.export())  # the console's node learns of it
    pki.clock.advance(timedelta(seconds=1))
    # the eeas-intcen node has not synced: it still signs with the key it knew as current
    token = token_of(pki, verifier.challenge(), key_id=kid)
    assert "revoked" in refused(verifier.verify(token), "revoked-key").message
    assert refused(verifier.still_good(AUDITOR_OF, kid), "revoked-key")


def test_a_rotated_out_key_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, participants=("enisa", "eeas-intcen"))
    trusted = pki.trusted(CONSOLE)
    verifier = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)
    old = key_id_of(pki.trusted(AUDITOR_OF), AUDITOR_OF, pki.clock())
    pki.clock.advance(timedelta(minutes=1))
    pki.rotate(AUDITOR_OF)
    trusted.offer(pki.export())
    pki.clock.advance(timedelta(seconds=1))
    verdict = verifier.verify(token_of(pki, verifier.challenge(), key_id=old))
    assert "rotated out" in refused(verdict, "rotated-out-key").message
    new = key_id_of(trusted, AUDITOR_OF, pki.clock())
    assert new != old
    assert isinstance(verifier.verify(token_of(pki, verifier.challenge(), key_id=new)), SignedIn)


def test_a_suspended_organisation_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, participants=("enisa", "eeas-intcen"))
    trusted = pki.trusted(CONSOLE)
    verifier = SignInVerifier(CONSOLE, ORIGIN, trusted, clock=pki.clock)
    kid = key_id_of(pki.trusted(AUDITOR_OF), AUDITOR_OF, pki.clock())
    document = yaml.safe_load((REPO / "policies" / "participants.yaml").read_text())
    for p in document["participants"]:
        if p["id"] == AUDITOR_OF:
            p["status"] = "suspended"
    pki.clock.advance(timedelta(minutes=1))
    snapshot = pki.authority.export(
        canonical_facts(document), parse_registry(document), BUNDLE_HASH
    )
    trusted.offer(snapshot.data)
    verdict = verifier.verify(token_of(pki, verifier.challenge(), key_id=kid))
    assert "suspended" in refused(verdict, "participant-suspended").message
    assert refused(verifier.still_good(AUDITOR_OF, kid), "participant-suspended")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "   ",
        "hello",
        f"{TOKEN_PREFIX}.e30.AAAA",  # {} : no fields
        f"{TOKEN_PREFIX}.!!!.AAAA",
        "jcu-challenge-v1.e30.AAAA",  # a challenge, not a token
        f"{TOKEN_PREFIX}.{'A' * 40000}.AAAA",
    ],
)
def test_what_is_not_a_token_is_one_clear_refusal(verifier: SignInVerifier, token: str) -> None:
    assert refused(verifier.verify(token), "malformed-token").message


# -- the formats, for any input -----------------------------------------------------------


@given(st.text(max_size=300) | st.builds(lambda s: f"{TOKEN_PREFIX}.{s}", st.text(max_size=300)))
def test_verify_never_raises_on_any_text(trusted: TrustedRegistry, text: str) -> None:
    verdict = SignInVerifier(CONSOLE, ORIGIN, trusted).verify(text)
    assert isinstance(verdict, Refused) and verdict.reason == "malformed-token"


@given(st.text(max_size=300))
def test_a_challenge_parses_or_is_malformed(text: str) -> None:
    with contextlib.suppress(MalformedSignIn):  # anything else fails the test
        Challenge.parse(text)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=80))
def test_an_issued_challenge_reads_back(
    trusted: TrustedRegistry, console: str, origin: str
) -> None:
    issued = SignInVerifier(console, origin, trusted).challenge()
    again = Challenge.parse(issued.text)
    assert again == issued and (again.console, again.origin) == (console, origin)


_field = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


@given(_field, _field, _field, _field, _field, _field, st.datetimes(timezones=st.just(UTC)))
def test_a_statement_reads_back_as_written(
    participant: str, role: str, kid: str, console: str, origin: str, challenge: str, at: Any
) -> None:
    s = Statement(participant, role, kid, console, origin, challenge, to_millis(at))
    assert Statement.from_bytes(s.to_bytes()) == s
    assert s.to_bytes() == Statement.from_bytes(s.to_bytes()).to_bytes()  # canonical
