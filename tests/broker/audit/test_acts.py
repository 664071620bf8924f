"""The records of acts: what was sent where, retractions, crises, registry changes, replays."""

from __future__ import annotations

from datetime import UTC, datetime

from broker.audit.acts import (
    PUBLISHER_STOPPED,
    CopyOutcome,
    RegistryView,
    crisis_act,
    registry_change,
    replay,
    retraction_sent,
    send_outcome,
)
from broker.audit.query import sentence
from broker.audit.record import LoggedRecord

T = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _words(record) -> str:  # type: ignore[no-untyped-def]
    return sentence(LoggedRecord("cert-eu/publish", 7, b"", record, b"", b""))


def test_a_send_outcome_has_a_record_per_recipient_naming_where_its_copy_went() -> None:
    records = send_outcome(
        "m-1",
        [
            CopyOutcome("civilian", "jcu.civilian.indicators", ("enisa", "cert-eu"), 2, 41),
            CopyOutcome("diplomatic", "jcu.diplomatic.indicators", ("eeas-intcen",),
                        error=PUBLISHER_STOPPED, reason="never sent",
                        redacted_fields=("contact_email",)),
        ],
        time=T,
    )  # fmt: skip
    assert [(r.organisation, r.decision) for r in records] == [
        ("enisa", "sent"),
        ("cert-eu", "sent"),
        ("eeas-intcen", "unsent"),
    ]
    assert dict(records[0].details) == {
        "community": "civilian",
        "topic": "jcu.civilian.indicators",
        "partition": "2",
        "offset": "41",
    }
    assert records[2].rejection_reason == PUBLISHER_STOPPED
    assert records[2].details["copy"] == "redacted"
    assert {(r.action, r.message_id) for r in records} == {("send", "m-1")}
    assert _words(records[0]).startswith("sent at jcu.civilian.indicators[2]@41")
    assert _words(records[2]).startswith("not sent (publisher-stopped)")


def test_a_retraction_and_a_crisis_read_as_what_they_are() -> None:
    (withdrawn,) = retraction_sent(
        "m-1",
        "r-9",
        [CopyOutcome("civilian", "jcu.civilian.indicators", ("enisa",), 0, 3)],
        reason="false positive",
    )
    assert withdrawn.action == "retract" and withdrawn.details["retraction"] == "r-9"
    assert _words(withdrawn).startswith("retraction sent at jcu.civilian.indicators[0]@3")
    declared = crisis_act("eu-cyclone", "INC-1", ("DE", "FR"), active=True, time=T)
    assert (declared.message_id, declared.details["act"]) == ("crisis:INC-1", "declare")
    assert declared.rule_ids == ("crisis-authority",)
    refused = crisis_act("eu-cyclone", "INC-1", ("FR",), active=True, decision="reject",
                         rejection_reason="too-few-member-states", reasons=("why",))  # fmt: skip
    assert refused.rule_ids == () and _words(refused).startswith(
        "crisis act refused (too-few-member-states)"
    )
    dead = replay("enisa", "m-2", source="jcu.civilian.indicators:0:7", reason="expired")
    assert dead.action == "replay" and dead.details["dead_letter_reason"] == "expired"


def _view(epoch: int, **participants: tuple[str, dict[str, str]]) -> RegistryView:
    return RegistryView(epoch, f"digest-{epoch}", "bundle", "authority", participants)


def test_a_registry_change_says_what_changed_per_participant() -> None:
    before = _view(
        3,
        cert_eu=("active", {"k1": "signing active", "k2": "kem active"}),
        enisa=("active", {"k3": "signing active"}),
    )
    after = _view(
        4,
        cert_eu=("active", {"k1": "signing revoked compromised at T", "k2": "kem active",
                            "k4": "signing active"}),
        enisa=("active", {"k3": "signing active"}),
        pesco=("suspended", {"k5": "signing active"}),
    )  # fmt: skip
    records = registry_change("enisa", before, after, time=T)
    assert [r.organisation for r in records] == ["cert_eu", "pesco"]
    cert = records[0]
    assert cert.reasons == (
        "key k1: signing active -> signing revoked compromised at T",
        "key k4 added (signing active)",
    )
    assert dict(cert.details) == {
        "epoch": "4",
        "snapshot": "digest-4",
        "authority_key": "authority",
        "previous_epoch": "3",
    }
    assert records[1].reasons[0].startswith("registered (suspended)")
    assert {(r.action, r.decision, r.message_id) for r in records} == {
        ("registry", "applied", "registry:4")
    }
    quiet = registry_change("enisa", after, _view(5, **after.participants), time=T)
    assert [(r.organisation, r.reasons) for r in quiet] == [
        ("enisa", ("registry snapshot epoch 5 took effect: no key or status changed",))
    ]
    (first,) = registry_change("enisa", None, after, time=T)
    assert first.reasons == ("registry snapshot epoch 4 in force",)
    assert RegistryView.from_json(after.to_json()) == after
