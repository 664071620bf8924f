"""Crisis declarations judged on their own (no Kafka): who may make them, for which Member
States, each refusal with its real reason, whether written or read from jcu.control."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from broker.errors import (
    NotACrisisAuthority,
    NotAMemberState,
    Rejected,
    TooFewMemberStates,
)
from broker.pep.control import (
    _DOMAIN,
    CrisisDeclaration,
    check_authority,
    check_member_states,
    sign_declaration,
    verify_declaration,
)
from broker.vocabulary import EU_MEMBER_STATES
from tests.broker._pki import Pki, make_pki


@dataclasses.dataclass(frozen=True)
class _Ctx:
    """What signing and checking a declaration use of an envelope context."""

    store: object
    keyring: object
    keystore: object


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), participants=["eu-cyclone", "enisa"])


def _ctx(pki: Pki, org: str) -> _Ctx:
    return _Ctx(pki.store, pki.keyring(), pki.keystores[org])


def test_the_eu_27_and_nothing_else() -> None:
    states = set(EU_MEMBER_STATES)
    assert len(states) == 27 and {"FR", "DE", "GR", "HR", "MT"} <= states
    assert not {"XX", "US", "UK", "GB", "CH", "NO", "EL", "EU"} & states
    check_member_states(("FR", "DE"))
    with pytest.raises(NotAMemberState, match="US, XX are not EU Member States"):
        check_member_states(("FR", "XX", "US"))
    with pytest.raises(NotAMemberState, match="Greece is GR"):
        check_member_states(("EL",))


@pytest.mark.parametrize(
    ("declarer", "states", "active", "error", "reason"),
    [
        ("enisa", ("FR", "DE"), True, NotACrisisAuthority, "not-a-crisis-authority"),
        ("enisa", (), False, NotACrisisAuthority, "not-a-crisis-authority"),
        ("eu-cyclone", ("FR",), True, TooFewMemberStates, "too-few-member-states"),
        ("eu-cyclone", ("FR", "FR"), True, TooFewMemberStates, "too-few-member-states"),
        ("eu-cyclone", ("FR", "XX"), True, NotAMemberState, "not-a-member-state"),
    ],
)
def test_each_refusal_names_its_real_reason(
    declarer: str, states: tuple[str, ...], active: bool, error: type[Rejected], reason: str
) -> None:
    with pytest.raises(error) as refused:
        check_authority(declarer, states, active)
    assert refused.value.reason == reason
    check_authority("csirts-network", ("BE", "NL"), True)  # and who may, may
    check_authority("eu-cyclone", (), False)  # an end names no Member States of its own


def test_a_signed_declaration_naming_no_member_state_is_refused_when_read(pki: Pki) -> None:
    """Someone with eu-cyclone's key writes what `jcu crisis declare` refuses to: readers
    refuse it too, with the same reason."""
    ctx = _ctx(pki, "eu-cyclone")
    good = verify_declaration(
        ctx,  # type: ignore[arg-type]
        sign_declaration(ctx, "eu-cyclone", "INC-7", ("FR", "DE"), True),  # type: ignore[arg-type]
    )
    assert good.member_states == ("DE", "FR")
    forged = CrisisDeclaration(
        str(uuid.uuid4()), "INC-7", ("US", "XX"), True, "eu-cyclone", good.signer_key_id,
        good.created, good.created + timedelta(days=1),
    )  # fmt: skip
    body = pki.store.encode("CrisisDeclaration", forged.to_avro())
    key = pki.keystores["eu-cyclone"].signing_key("eu-cyclone", good.signer_key_id)
    signed = dataclasses.replace(forged, signature=key.sign(_DOMAIN + body))
    with pytest.raises(NotAMemberState):
        verify_declaration(ctx, pki.store.encode("CrisisDeclaration", signed.to_avro()))  # type: ignore[arg-type]


def test_nothing_is_signed_for_a_refused_declaration(pki: Pki) -> None:
    ctx = _ctx(pki, "eu-cyclone")
    with pytest.raises(NotAMemberState):
        sign_declaration(ctx, "eu-cyclone", "INC-8", ("FR", "XX"), True)  # type: ignore[arg-type]
