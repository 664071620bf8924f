"""The opener's header checks (broker.envelope.checks), one by one and as the opener runs
them: each refusal asserted through the policy the opener uses (`before_key`,
`after_key`, `after_signature`), so a check removed from it fails its test; the
same case passes that policy without the check."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from broker.clock import to_millis
from broker.envelope import Labels, MemoryReplayGuard
from broker.envelope.checks import (
    APPEND_SKEW,
    CLOCK_SKEW,
    AllOf,
    Arrival,
    NotBackdated,
    NotReplayed,
    OriginCommunity,
    TopicBinding,
    ValidityWindow,
    after_key,
    after_signature,
    before_key,
)
from broker.envelope.sealer import MAX_VALIDITY
from broker.errors import Backdated, Expired, Rejected, Replay, WrongSender, WrongTopic
from tests.broker._pki import Pki
from tests.broker.pep.records import indicator

TOPIC = "jcu.civilian.indicators"


@pytest.fixture
def arrival(pki: Pki) -> Arrival:
    sealed = pki.sealer("cert-eu").seal(
        "Indicator", indicator(), recipients=["enisa"], topic=TOPIC, labels=Labels.of("GREEN")
    )
    return Arrival(sealed.header, TOPIC, None, to_millis(pki.clock()))


def refusal(policy: AllOf[Arrival], arrival: Arrival) -> Rejected:
    with pytest.raises(Rejected) as caught:
        policy.verify(arrival)
    return caught.value


def test_the_opener_policies_are_the_named_checks_in_order(pki: Pki) -> None:
    guard = MemoryReplayGuard()
    assert [type(c) for c in before_key().checks] == [TopicBinding]
    assert [type(c) for c in after_key(pki.keyring().community_of).checks] == [OriginCommunity]
    assert [type(c) for c in after_signature(guard).checks] == [
        NotBackdated,
        ValidityWindow,
        NotReplayed,
    ]


def test_a_good_header_passes_every_policy(pki: Pki, arrival: Arrival) -> None:
    before_key().verify(arrival)
    after_key(pki.keyring().community_of).verify(arrival)
    after_signature(MemoryReplayGuard()).verify(arrival)


def test_read_from_another_topic_is_wrong_topic(arrival: Arrival) -> None:
    moved = dataclasses.replace(arrival, topic="jcu.law_enforcement.indicators")
    error = refusal(before_key(), moved)
    assert isinstance(error, WrongTopic)
    assert error.reason == TopicBinding.reason == "wrong-topic"
    before_key().without(TopicBinding).verify(moved)


def test_a_claimed_origin_that_is_not_the_senders_community_is_wrong_sender(
    pki: Pki, arrival: Arrival
) -> None:
    claimed = dataclasses.replace(
        arrival, header=dataclasses.replace(arrival.header, origin_community="defence")
    )
    policy = after_key(pki.keyring().community_of)
    error = refusal(policy, claimed)
    assert isinstance(error, WrongSender)
    assert error.reason == OriginCommunity.reason == "wrong-sender"
    assert "not in the claimed origin community defence" in str(error)
    policy.without(OriginCommunity).verify(claimed)


def test_created_long_before_it_was_appended_is_backdated(arrival: Arrival) -> None:
    late = dataclasses.replace(
        arrival, appended=arrival.header.created + APPEND_SKEW + timedelta(seconds=1)
    )
    error = refusal(after_signature(MemoryReplayGuard()), late)
    assert isinstance(error, Backdated)
    assert error.reason == NotBackdated.reason == "backdated"
    after_signature(MemoryReplayGuard()).without(NotBackdated).verify(late)
    # within the skew, or with no append time known, it is not
    NotBackdated().verify(dataclasses.replace(late, appended=late.appended - timedelta(seconds=2)))
    NotBackdated().verify(dataclasses.replace(late, appended=None))


@pytest.mark.parametrize(
    ("case", "shift"),
    [
        ("expired", "now-past-expiry"),
        ("not valid yet", "created-in-the-future"),
        ("validity over", "validity-too-long"),
    ],
)
def test_outside_its_validity_window_is_expired(arrival: Arrival, case: str, shift: str) -> None:
    header = arrival.header
    if shift == "now-past-expiry":
        outside = dataclasses.replace(arrival, now=header.expires)
    elif shift == "created-in-the-future":
        outside = dataclasses.replace(
            arrival, now=header.created - CLOCK_SKEW - timedelta(milliseconds=1)
        )
    else:
        outside = dataclasses.replace(
            arrival,
            header=dataclasses.replace(
                header, expires=header.created + MAX_VALIDITY + timedelta(milliseconds=1)
            ),
        )
    error = refusal(after_signature(MemoryReplayGuard()), outside)
    assert isinstance(error, Expired)
    assert error.reason == ValidityWindow.reason == "expired"
    assert case in str(error)
    after_signature(MemoryReplayGuard()).without(ValidityWindow).verify(outside)


def test_the_validity_bound_is_inclusive_of_max_validity(arrival: Arrival) -> None:
    header = arrival.header
    ValidityWindow().verify(
        dataclasses.replace(
            arrival, header=dataclasses.replace(header, expires=header.created + MAX_VALIDITY)
        )
    )
    ValidityWindow().verify(dataclasses.replace(arrival, now=header.created - CLOCK_SKEW))


def test_a_message_id_already_received_is_a_replay(arrival: Arrival) -> None:
    guard = MemoryReplayGuard()
    policy = after_signature(guard)
    policy.verify(arrival)
    guard.remember(arrival.header.message_id, arrival.header.expires)
    error = refusal(policy, arrival)
    assert isinstance(error, Replay)
    assert error.reason == NotReplayed.reason == "replay"
    policy.without(NotReplayed).verify(arrival)


def test_the_opener_refuses_through_its_policies(pki: Pki) -> None:
    """The opener runs these policies: a record read from another topic than it was sealed
    for is refused there, before any key is looked up."""
    sealed = pki.sealer("cert-eu").seal(
        "Indicator", indicator(), recipients=["enisa"], topic=TOPIC, labels=Labels.of("GREEN")
    )
    opener = pki.opener("enisa")
    with pytest.raises(WrongTopic):
        opener.open(sealed.data, topic="jcu.civilian.reports")
    opened = opener.open(sealed.data, topic=TOPIC)
    with pytest.raises(Replay):
        opener.open(sealed.data, topic=TOPIC)
    assert opened.message_id == sealed.header.message_id
