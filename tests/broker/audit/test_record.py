"""AuditRecord construction: the faster paths build the same records as the plain constructor."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit.record import AuditRecord, new_decision_id, new_decision_ids
from broker.clock import to_millis
from broker.policy import Decision

DECISION = Decision(
    org="enisa",
    decision="redact",
    rules=("tlp-amber-community",),
    legal_basis=("Regulation (EU) 2019/881 art. 7",),
    obligations=("no-onward-sharing",),
    redact_fields=("contact_email",),
    reasons=("member of the community",),
)


def test_decision_ids_are_random_rfc_4122_version_4_uuids_in_canonical_form() -> None:
    ids = [new_decision_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for s in ids:
        u = uuid.UUID(s)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, s)
    # The 122 random bits are all used: every hex digit occurs at every free position.
    for position in (0, 15, 20, 35):
        assert {s[position] for s in ids} == set("0123456789abcdef")
    assert {s[19] for s in ids} == set("89ab")
    assert {s[14] for s in ids} == {"4"}


def test_a_record_gets_its_own_decision_id_and_the_current_millisecond() -> None:
    before = to_millis(datetime.now(UTC))
    record = AuditRecord(action="publish", organisation="o", message_id="m", decision="allow")
    after = datetime.now(UTC)
    assert uuid.UUID(record.decision_id).version == 4
    assert record.time.tzinfo is UTC and record.time.microsecond % 1000 == 0
    assert before <= record.time <= after


@settings(max_examples=200, deadline=None)
@given(
    time=st.none()
    | st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from((UTC, timezone(timedelta(hours=3, minutes=30)), None)),
    ),
    action=st.sampled_from(("publish", "receive", "forward")),
)
def test_from_decision_builds_what_the_constructor_builds(
    time: datetime | None, action: str
) -> None:
    fast = AuditRecord.from_decision(
        DECISION,
        action=action,  # type: ignore[arg-type]
        message_id="m-1",
        content_hash=b"h",
        labels={"tlp": "AMBER"},
        bundle_hash="ab",
        time=time,
    )
    plain = AuditRecord(
        action=action,  # type: ignore[arg-type]
        organisation="enisa",
        message_id="m-1",
        decision="redact",
        decision_id=fast.decision_id,
        time=time or fast.time,
        content_hash=b"h",
        labels={"tlp": "AMBER"},
        rule_ids=("tlp-amber-community",),
        legal_basis=("Regulation (EU) 2019/881 art. 7",),
        obligations=("no-onward-sharing",),
        redacted_fields=("contact_email",),
        reasons=("member of the community",),
        policy_bundle_hash="ab",
    )
    assert fast == plain
    assert fast.time.tzinfo is UTC and fast.time == to_millis(time or fast.time)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.organisation = "someone else"  # type: ignore[misc]


def test_from_decision_still_checks_action_and_verdict() -> None:
    with pytest.raises(ValueError, match="action"):
        AuditRecord.from_decision(
            DECISION,
            action="approve",  # type: ignore[arg-type]
            message_id="m",
            content_hash=None,
            labels=None,
            bundle_hash=None,
        )
    with pytest.raises(ValueError, match="allow, redact or deny"):
        AuditRecord.from_decision(
            dataclasses.replace(DECISION, decision="reject"),  # type: ignore[arg-type]
            action="publish",
            message_id="m",
            content_hash=None,
            labels=None,
            bundle_hash=None,
        )


def test_from_decision_of_a_subclass_makes_the_subclass() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Tagged(AuditRecord):
        pass

    record = Tagged.from_decision(
        DECISION, action="publish", message_id="m", content_hash=None, labels=None, bundle_hash=None
    )
    assert type(record) is Tagged


def test_times_are_kept_to_the_millisecond_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    for given_time, stored in [
        (
            datetime(2026, 1, 1, 12, 0, 0, 999_999, tzinfo=UTC),
            datetime(2026, 1, 1, 12, 0, 0, 999_000, tzinfo=UTC),
        ),
        (
            datetime(2026, 1, 1, 13, 0, 0, 1_500, tzinfo=paris),
            datetime(2026, 1, 1, 12, 0, 0, 1_000, tzinfo=UTC),
        ),
        (datetime(2026, 1, 1, 12, 0, 0, 2_000), datetime(2026, 1, 1, 12, 0, 0, 2_000, tzinfo=UTC)),
    ]:
        record = AuditRecord(
            action="publish", organisation="o", message_id="m", decision="allow", time=given_time
        )
        assert record.time == stored and record.time.tzinfo is UTC


@pytest.mark.parametrize("n", [1, 14, 256, 300])
def test_the_ids_of_one_leaf_are_distinct_v4_uuids_and_differ_from_other_leaves(n: int) -> None:
    first, second = new_decision_ids(n), new_decision_ids(n)
    for decision_id in first + second:
        u = uuid.UUID(decision_id)
        assert str(u) == decision_id and u.version == 4 and u.variant == uuid.RFC_4122
    assert len(set(first)) == n and len(set(second)) == n
    assert not set(first) & set(second)
