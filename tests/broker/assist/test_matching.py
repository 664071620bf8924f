"""Matching inventory entries against needs: each criterion, and properties of the ranking."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.assist.inventory import CapabilityEntry
from broker.assist.matching import WEIGHTS, rank, rank_need, score
from broker.assist.steps import DEPLOYMENTS, KINDS, Need, Request
from broker.trust.registry import load_registry

REGISTRY = load_registry(Path(__file__).resolve().parents[3] / "policies" / "participants.yaml")
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NEED = Need(
    "n1",
    "INCIDENT_RESPONSE",
    categories=("malicious-code",),
    skills=("ransomware", "ot"),
    languages=("fr",),
    people=2,
    deployment="ON_SITE",
    max_notice_hours=24,
)


def entry(owner: str = "cert-eu", **changes: object) -> CapabilityEntry:
    base = CapabilityEntry(
        id="ir",
        owner=owner,
        kind="INCIDENT_RESPONSE",
        title="team",
        notice_hours=12,
        legal_basis="x",
        updated=NOW,
        skills=("ransomware", "ot", "windows"),
        languages=("fr", "en"),
        capacity=3,
        deployment="ON_SITE",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_weights_sum_to_one() -> None:
    assert abs(sum(WEIGHTS.values()) - 1.0) < 1e-9


def test_a_perfect_entry_scores_one_and_each_shortfall_says_why() -> None:
    total, criteria = score(NEED, entry(), NOW)
    assert total == 1.0 and all(c.met for c in criteria)
    cases = {
        "skills 1/2 (missing: ot)": entry(skills=("ransomware",)),
        "speaks none of fr": entry(languages=("de",)),
        "notice 48 h > 24 h": entry(notice_hours=48),
        "remote only, on site asked": entry(deployment="REMOTE"),
        "1 < 2 asked": entry(capacity=1),
        "available from 2026-12-03": entry(available_from=NOW + timedelta(days=2)),
        "forensics, not incident response": entry(kind="FORENSICS"),
        "rapid reaction team includes incident response": entry(kind="RAPID_REACTION_TEAM"),
    }
    for words, e in cases.items():
        total, criteria = score(NEED, e, NOW)
        assert total < 1.0, words
        assert any(words in c.words for c in criteria), (words, [c.words for c in criteria])


def test_owners_who_may_not_offer_come_last_with_the_reason() -> None:
    fraud = replace(NEED, categories=("fraud",))
    entries = [
        entry("eda", id="a"),  # supporting: a perfect entry, but it cannot offer
        entry("europol-ec3", id="b", skills=()),  # operational, its mandate covers fraud
        entry("commission", id="c"),  # operational, its mandate does not cover fraud
    ]
    ranked = rank_need(fraud, entries, REGISTRY, (), NOW)
    assert [m.entry.owner for m in ranked] == ["europol-ec3", "commission", "eda"]
    assert [m.eligible for m in ranked] == [True, False, False]
    assert ranked[1].score == ranked[2].score == 1.0 > ranked[0].score
    assert "mandate covers none of fraud" in ranked[1].why()
    assert ranked[2].why().startswith("cannot offer: eda is a supporting participant")


def test_rank_leaves_out_the_requesters_own_and_withdrawn_entries() -> None:
    req = Request("r", "enisa", NOW, ("FR",), (NEED,), "IMMEDIATE", "x")
    got = rank(req, ("malicious-code",), [entry("enisa"), entry(withdrawn=True)], REGISTRY, NOW)
    assert got == {"n1": []}


entries_st = st.builds(
    entry,
    owner=st.sampled_from(["cert-eu", "enisa", "europol-ec3", "eda", "soc-fr", "eeas-intcen"]),
    id=st.text("abcdefgh", min_size=1, max_size=6),
    kind=st.sampled_from(KINDS),
    skills=st.lists(st.sampled_from(["ransomware", "ot", "windows", "linux"])).map(tuple),
    languages=st.lists(st.sampled_from(["fr", "en", "de"])).map(tuple),
    capacity=st.integers(1, 5),
    notice_hours=st.integers(0, 96),
    deployment=st.sampled_from(DEPLOYMENTS),
    available_from=st.none() | st.integers(-48, 96).map(lambda h: NOW + timedelta(hours=h)),
)


@settings(max_examples=200, deadline=None)
@given(e=entries_st, extra=st.sampled_from(["ransomware", "ot"]))
def test_scores_stay_in_range_and_a_matching_skill_never_lowers_one(
    e: CapabilityEntry, extra: str
) -> None:
    total, criteria = score(NEED, e, NOW)
    assert 0.0 <= total <= 1.0 and all(0.0 <= c.score <= 1.0 for c in criteria)
    better, _ = score(NEED, replace(e, skills=(*e.skills, extra)), NOW)
    assert better >= total
    sooner, _ = score(NEED, replace(e, notice_hours=max(0, e.notice_hours - 12)), NOW)
    assert sooner >= total


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(entries_st, max_size=8), seed=st.randoms())
def test_the_ranking_does_not_depend_on_the_order_entries_came_in(
    entries: list[CapabilityEntry], seed: object
) -> None:
    shuffled = list(entries)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    one = rank_need(NEED, entries, REGISTRY, ("malicious-code",), NOW)
    two = rank_need(NEED, shuffled, REGISTRY, ("malicious-code",), NOW)
    assert [(m.entry, m.score, m.eligible) for m in one] == [
        (m.entry, m.score, m.eligible) for m in two
    ]
    # Every eligible entry before every ineligible one, and scores descending within each.
    flags = [m.eligible for m in one]
    assert flags == sorted(flags, reverse=True)
    for group in (True, False):
        scores = [m.score for m in one if m.eligible is group]
        assert scores == sorted(scores, reverse=True)
