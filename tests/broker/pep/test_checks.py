"""The receive checks (broker.pep.checks), without Kafka: each refuses what it is named for,
with its own reason, inside the default policies the subscriber runs.

Each refusal is asserted through `arrival_checks()` / `receipt_checks(...)`, the
policies the subscriber uses: a check removed from them fails its test. The
same case passes the policy without that check (`AllOf.without`), so it is that
check, and no other, that refuses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from broker.envelope import Labels
from broker.errors import MalformedRecord, OutOfOrder, Rejected, Unauthorised, Unchecked
from broker.pep.checks import (
    ActiveSender,
    AllOf,
    DeclaredPersonalData,
    ExerciseSeparation,
    PolicyRecheck,
    Received,
    RecordKeyBinding,
    StreamPlacement,
    WorkflowStep,
    arrival_checks,
    policy_decider,
    receipt_checks,
)
from broker.pep.workflow import WorkflowMessage, Workflows
from broker.policy import Decision, PolicyEngine
from broker.trust.registry import Registry
from tests.broker._pki import REPO, Pki, make_pki
from tests.broker.pep.records import incident_report, indicator

TOPIC = "jcu.civilian.indicators"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), participants=["cert-eu", "enisa"])


@pytest.fixture(scope="module")
def policy(pki: Pki) -> PolicyEngine:
    return PolicyEngine.load(
        REPO / "policies", pki.registry, personal_data_fields=pki.store.personal_data_fields
    )


@pytest.fixture
def received(pki: Pki, policy: PolicyEngine) -> Received:
    """A GREEN indicator from cert-eu to enisa, sealed and opened for real, as read."""
    sealed = pki.sealer("cert-eu").seal(
        "Indicator",
        indicator(),
        recipients=["enisa"],
        topic=TOPIC,
        labels=Labels.of("GREEN", categories=["malicious-code"]),
    )
    opened = pki.opener("enisa").open(sealed.data, topic=TOPIC)
    return Received(
        TOPIC,
        opened.message_id.encode(),
        opened.header,
        opened.labels,
        "Indicator",
        opened.record,
        decide=policy_decider(policy, "enisa", frozenset),
    )


def receipt(pki: Pki, workflows: Workflows | None = None) -> AllOf:
    return receipt_checks(
        "enisa", registry=lambda: pki.registry, store=pki.store, workflows=workflows or {}
    )


def refusal(policy: AllOf, received: Received) -> Rejected:
    with pytest.raises(Rejected) as caught:
        policy.verify(received)
    return caught.value


def test_a_good_message_passes_both_policies_and_is_allowed(pki: Pki, received: Received) -> None:
    arrival_checks().verify(received)
    receipt(pki).verify(received)
    assert received.decision.decision == "allow"


def test_the_default_policies_are_the_named_checks_in_order(pki: Pki) -> None:
    assert [type(c) for c in arrival_checks().checks] == [
        RecordKeyBinding,
        ExerciseSeparation,
        StreamPlacement,
    ]
    assert [type(c) for c in receipt(pki).checks] == [
        ActiveSender,
        DeclaredPersonalData,
        PolicyRecheck,
        WorkflowStep,
    ]


# -- arrival ------------------------------------------------------------------


def test_a_record_keyed_by_another_id_is_refused_as_malformed(received: Received) -> None:
    raced = dataclasses.replace(received, key=b"some-other-id")
    error = refusal(arrival_checks(), raced)
    assert isinstance(error, MalformedRecord)
    assert error.reason == RecordKeyBinding.reason == "malformed"
    assert "record key" in str(error)
    arrival_checks().without(RecordKeyBinding).verify(raced)


def test_a_retraction_is_keyed_by_what_it_retracts(received: Received) -> None:
    retraction = dataclasses.replace(
        received, payload_type="Retraction", record={"message_id": "m-1"}, key=b"m-1"
    )
    arrival_checks().verify(retraction)
    error = refusal(arrival_checks(), dataclasses.replace(retraction, key=b"m-2"))
    assert error.reason == "malformed"


def test_a_workflow_message_is_keyed_by_its_thread(received: Received) -> None:
    step = dataclasses.replace(received, workflow="assistance", thread="t-1", key=b"t-1")
    arrival_checks().verify(step)
    error = refusal(arrival_checks(), dataclasses.replace(step, key=received.key))
    assert error.reason == "malformed"


def test_an_exercise_message_on_an_operational_topic_is_unauthorised(
    received: Received,
) -> None:
    drill = dataclasses.replace(received, labels=Labels.of("GREEN", exercise="cyber-europe-2026"))
    error = refusal(arrival_checks(), drill)
    assert isinstance(error, Unauthorised)
    assert error.reason == ExerciseSeparation.reason == "unauthorised"
    assert "never mix" in str(error)
    arrival_checks().without(ExerciseSeparation).verify(drill)


def test_an_operational_message_on_an_exercise_topic_is_unauthorised(
    received: Received,
) -> None:
    moved = dataclasses.replace(received, topic="jcu.exercise.civilian.indicators")
    assert refusal(arrival_checks(), moved).reason == "unauthorised"


def test_a_payload_on_another_stream_is_refused_as_malformed(received: Received) -> None:
    misplaced = dataclasses.replace(received, topic="jcu.civilian.reports")
    error = refusal(arrival_checks(), misplaced)
    assert isinstance(error, MalformedRecord)
    assert error.reason == StreamPlacement.reason
    assert "travels on the indicators stream" in str(error)
    arrival_checks().without(StreamPlacement).verify(misplaced)


def test_a_type_that_is_not_delivered_is_refused_and_a_retraction_goes_anywhere(
    received: Received,
) -> None:
    receipt_msg = dataclasses.replace(received, payload_type="CrisisDeclaration")
    assert "not a payload type to deliver" in str(refusal(arrival_checks(), receipt_msg))
    StreamPlacement().verify(
        dataclasses.replace(received, payload_type="Retraction", topic="jcu.civilian.reports")
    )


# -- receipt ------------------------------------------------------------------


def _suspended(registry: Registry, org: str) -> Registry:
    participants = dict(registry.participants)
    participants[org] = dataclasses.replace(participants[org], status="suspended")
    return dataclasses.replace(registry, participants=participants)


def test_a_message_from_a_suspended_sender_is_unauthorised(pki: Pki, received: Received) -> None:
    suspended = _suspended(pki.registry, "cert-eu")
    policy = receipt_checks("enisa", registry=lambda: suspended, store=pki.store, workflows={})
    error = refusal(policy, received)
    assert error.reason == ActiveSender.reason == "unauthorised"
    assert "cert-eu is not an active organisation" in str(error)


def test_the_sender_is_checked_against_the_registry_of_the_moment(
    pki: Pki, received: Received
) -> None:
    """The registry is asked at each check: a suspension taking effect counts at once."""
    now = {"registry": pki.registry}
    check = ActiveSender(lambda: now["registry"])
    check.verify(received)
    now["registry"] = _suspended(pki.registry, "cert-eu")
    with pytest.raises(Unauthorised):
        check.verify(received)


def test_undeclared_personal_data_is_unauthorised(pki: Pki, received: Received) -> None:
    report = dataclasses.replace(
        received, payload_type="IncidentReport", record=incident_report(with_persons=True)
    )
    error = refusal(receipt(pki), report)
    assert error.reason == DeclaredPersonalData.reason
    assert "personal data its labels do not declare" in str(error)
    # declared, or absent, it passes this check
    DeclaredPersonalData(pki.store).verify(
        dataclasses.replace(report, labels=dataclasses.replace(report.labels, personal_data=True))
    )
    DeclaredPersonalData(pki.store).verify(
        dataclasses.replace(report, record=incident_report(with_persons=False))
    )


def _decided(verdict: Any) -> Any:
    def decide(received: Received) -> Decision:
        return Decision("enisa", verdict, ("rule-x",), (), reasons=("because rule-x",))

    return decide


def test_a_message_the_policy_denies_now_is_unauthorised(pki: Pki, received: Received) -> None:
    denied = dataclasses.replace(received, decide=_decided("deny"))
    error = refusal(receipt(pki), denied)
    assert error.reason == PolicyRecheck.reason
    assert "policy refuses enisa this message: because rule-x" in str(error)
    receipt(pki).without(PolicyRecheck).verify(denied)


def test_the_real_policy_refuses_what_it_would_not_have_sent(pki: Pki, received: Received) -> None:
    """TLP:RED to someone the sender did not name: the Cedar rules deny it on receipt."""
    red = dataclasses.replace(
        received,
        labels=Labels.of("RED", categories=["malicious-code"]),
        header=dataclasses.replace(received.header, recipients=()),
    )
    assert red.decision.decision == "deny"
    assert refusal(receipt(pki), red).reason == "unauthorised"


def test_a_redacted_copy_carrying_personal_data_is_unauthorised(
    pki: Pki, received: Received
) -> None:
    redacted = dataclasses.replace(
        received,
        labels=dataclasses.replace(received.labels, personal_data=True),
        decide=_decided("redact"),
    )
    assert refusal(receipt(pki), redacted).reason == "unauthorised"
    PolicyRecheck("enisa").verify(dataclasses.replace(redacted, labels=received.labels))


class _Thread:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.seen: list[WorkflowMessage] = []

    def outbound(self, message: WorkflowMessage) -> None:
        raise AssertionError("not asked on receipt")

    def sent(self, message: WorkflowMessage) -> None:
        raise AssertionError("not told on receipt")

    def inbound(self, message: WorkflowMessage) -> None:
        if self.refuse:
            raise OutOfOrder(f"{message.payload_type} out of order")
        self.seen.append(message)


def test_a_workflow_step_no_check_is_registered_for_is_not_delivered_unchecked(
    pki: Pki, received: Received
) -> None:
    step = dataclasses.replace(received, workflow="assistance", thread="t-1")
    error = refusal(receipt(pki), step)
    assert isinstance(error, Unchecked)
    assert error.reason == WorkflowStep.reason == "unchecked-workflow"
    receipt(pki).without(WorkflowStep).verify(step)


def test_a_workflow_step_is_asked_of_its_workflow(pki: Pki, received: Received) -> None:
    step = dataclasses.replace(received, workflow="assistance", thread="t-1")
    accepting = _Thread(refuse=False)
    receipt(pki, {"assistance": accepting}).verify(step)
    assert [(m.thread, m.message_id) for m in accepting.seen] == [
        ("t-1", received.header.message_id)
    ]
    assert refusal(receipt(pki, {"assistance": _Thread(refuse=True)}), step).reason == (
        "out-of-order"
    )


def test_the_first_refusal_decides_and_the_later_checks_are_not_asked(
    pki: Pki, received: Received
) -> None:
    """Order matters: a workflow is not told of a message the policy refused."""
    thread = _Thread(refuse=False)
    denied = dataclasses.replace(
        received, workflow="assistance", thread="t-1", decide=_decided("deny")
    )
    assert refusal(receipt(pki, {"assistance": thread}), denied).reason == "unauthorised"
    assert thread.seen == []


def test_the_decision_is_asked_once(received: Received) -> None:
    asked: list[str] = []

    def decide(r: Received) -> Decision:
        asked.append(r.header.message_id)
        return Decision("enisa", "allow", ("r",), ())

    once = dataclasses.replace(received, decide=decide)
    PolicyRecheck("enisa").verify(once)
    assert once.decision.decision == "allow"
    assert len(asked) == 1


def test_checks_compose_with_one_of_the_embedders_own(pki: Pki, received: Received) -> None:
    class OnlyFromCertEu:
        reason = "unauthorised"

        def verify(self, received: Received) -> None:
            if received.sender != "cert-eu":
                raise Unauthorised(f"{received.sender} is not cert-eu")

    mine = AllOf([*receipt(pki).checks, OnlyFromCertEu()])
    mine.verify(received)
    other = dataclasses.replace(
        received, header=dataclasses.replace(received.header, sender="csirts-network")
    )
    assert "csirts-network is not cert-eu" in str(refusal(mine, other))


def test_a_received_message_without_a_policy_cannot_be_decided(received: Received) -> None:
    undecided = dataclasses.replace(received, decide=None)
    with pytest.raises(Exception, match="no policy decides"):
        PolicyRecheck("enisa").verify(undecided)
