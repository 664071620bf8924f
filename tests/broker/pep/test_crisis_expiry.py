"""Crisis declarations expire, so an old one replayed after compaction cannot re-open a crisis
for long. Unit tests: a test PKI with a movable clock, no Kafka (the board is fed by hand)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from broker import config
from broker.envelope.context import EnvelopeContext
from broker.errors import ConfigError, MalformedRecord
from broker.pep.control import (
    MAX_CRISIS_VALIDITY,
    CrisisBoard,
    CrisisDeclaration,
    sign_declaration,
    verify_declaration,
)
from tests.broker._pki import T0, FakeClock, make_pki
from tests.cli import run

#: The signing domain as the schema documents it (not the module's constant: a second reading).
DOMAIN = b"jcu-control-v1\x00"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> EnvelopeContext:
    root = tmp_path_factory.mktemp("crisis-pki")
    pki = make_pki(root)
    node = pki.nodes["eu-cyclone"]  # the declarer's own node
    settings = config.load({"JCU_HOME": str(node.root)})
    return EnvelopeContext(
        settings, pki.store, pki.keystores["eu-cyclone"], pki.trusted("eu-cyclone"), node
    )


def _board(ctx: EnvelopeContext, clock: FakeClock) -> CrisisBoard:
    return CrisisBoard(ctx, "unused", clock=clock)  # fed by hand: never opens Kafka


def _signed_as_is(ctx: EnvelopeContext, validity: timedelta) -> bytes:
    """A declaration signed by eu-cyclone's real key with any validity: what a rogue or buggy
    declarer could produce, bypassing `sign_declaration`'s check."""
    kid = ctx.keyring.current_signing_key_id("eu-cyclone", T0)
    unsigned = CrisisDeclaration(
        str(uuid.uuid4()), "INC-LONG", ("DE", "FR"), True, "eu-cyclone", kid, T0, T0 + validity
    )
    body = ctx.store.encode("CrisisDeclaration", unsigned.to_avro())
    signature = ctx.keystore.signing_key("eu-cyclone", kid).sign(DOMAIN + body)
    return ctx.store.encode("CrisisDeclaration", {**unsigned.to_avro(), "signature": signature})


def test_a_declaration_is_active_until_its_expiry_and_not_after(ctx: EnvelopeContext) -> None:
    clock = FakeClock(T0)
    board = _board(ctx, clock)
    data = sign_declaration(
        ctx, "eu-cyclone", "INC-E", ("FR", "DE"), True, timedelta(days=2), clock=clock
    )
    board._feed.receive(b"INC-E", data)
    assert board.active_incidents() == {"INC-E"}
    (decl,) = board.declarations()
    assert decl.expires == T0 + timedelta(days=2)

    clock.advance(timedelta(days=2) - timedelta(milliseconds=1))
    assert board.active_incidents() == {"INC-E"}, "still in force a millisecond before expiry"
    clock.advance(timedelta(milliseconds=1))
    assert board.active_incidents() == frozenset(), "expired: no longer widens sharing"
    assert [d.incident for d in board.declarations()] == ["INC-E"]  # still known, for `list --all`


def test_a_new_declaration_extends_the_crisis(ctx: EnvelopeContext) -> None:
    clock = FakeClock(T0)
    board = _board(ctx, clock)
    board._feed.receive(
        b"INC-X", sign_declaration(ctx, "eu-cyclone", "INC-X", ("FR", "DE"), True, clock=clock)
    )
    clock.advance(timedelta(days=6))
    board._feed.receive(
        b"INC-X", sign_declaration(ctx, "eu-cyclone", "INC-X", ("FR", "DE"), True, clock=clock)
    )
    clock.advance(timedelta(days=2))  # past the first declaration's 7 days, within the second's
    assert board.active_incidents() == {"INC-X"}
    (decl,) = board.declarations()
    assert decl.expires == T0 + timedelta(days=13)


def test_sign_declaration_refuses_a_validity_over_the_maximum_or_not_positive(
    ctx: EnvelopeContext,
) -> None:
    for bad, says in (
        (MAX_CRISIS_VALIDITY + timedelta(milliseconds=1), "at most 30 days"),
        (timedelta(0), "must be valid for some time"),
        (timedelta(days=-1), "must be valid for some time"),
    ):
        with pytest.raises(ConfigError, match=says):
            sign_declaration(ctx, "eu-cyclone", "INC-C", ("FR", "DE"), True, bad)
    ended = sign_declaration(
        ctx, "eu-cyclone", "INC-C", ("FR", "DE"), False, MAX_CRISIS_VALIDITY, clock=FakeClock()
    )
    assert verify_declaration(ctx, ended).expires == T0 + MAX_CRISIS_VALIDITY  # ends expire too


def test_verify_refuses_a_correctly_signed_declaration_valid_for_too_long(
    ctx: EnvelopeContext,
) -> None:
    # The same construction at the maximum verifies: the refusal below is for the validity alone.
    assert verify_declaration(ctx, _signed_as_is(ctx, MAX_CRISIS_VALIDITY)).incident == "INC-LONG"
    too_long = _signed_as_is(ctx, MAX_CRISIS_VALIDITY + timedelta(days=1))
    with pytest.raises(MalformedRecord, match="at most 30 days"):
        verify_declaration(ctx, too_long)
    with pytest.raises(MalformedRecord, match="more than 0"):
        verify_declaration(ctx, _signed_as_is(ctx, timedelta(0)))

    board = _board(ctx, FakeClock(T0))
    board._feed.receive(b"INC-LONG", too_long)
    assert board.active_incidents() == frozenset()
    assert board.rejected == [(b"INC-LONG", "malformed")]


@pytest.mark.parametrize(
    ("days", "says"), [("0", "must be valid for some time"), ("31", "at most 30 days")]
)
def test_cli_declare_refuses_days_out_of_range_in_one_line(
    jcu_home: Path, capsys: pytest.CaptureFixture[str], days: str, says: str
) -> None:
    argv = ["crisis", "declare", "--as", "eu-cyclone", "--incident", "INC-D",
            "--member-states", "FR,DE", "--days", days]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jcu: error: a crisis declaration ")
    assert says in lines[0]
    assert out == ""
