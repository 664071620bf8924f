"""The graph check: per recipient, nothing that points at what it does not get."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.pep import Reach
from broker.policy import Decision
from connectors.soc._graph import GRAPH_TRIMMED, GRAPH_WITHHELD, resolve
from connectors.soc.result import Item, Ref, RefKind

ORGS = ("a", "b", "c")


def item(sid: str, *refs: Ref) -> Item:
    return Item("StixObject", {}, "GREEN", frozenset(), sid, refs=refs)


def reach(*orgs: str, withheld: dict[str, tuple[str, ...]] | None = None) -> Reach:
    return Reach(
        tuple(Decision(o, "allow" if o in orgs else "deny", ("r",), ()) for o in ORGS),
        withheld or {},
    )


def never(_target: str, _org: str) -> bool:
    return False


def test_a_relationship_to_something_withheld_is_withheld_and_a_chain_follows() -> None:
    items = [
        item("malware--1"),
        item("actor--2"),
        item(
            "rel--3",
            Ref("source_ref", "actor--2", "essential"),
            Ref("target_ref", "malware--1", "essential"),
        ),
        item("sighting--4", Ref("sighting_of_ref", "rel--3", "essential")),
    ]
    reaches = [reach(*ORGS), reach("a"), reach(*ORGS), reach(*ORGS)]
    out = resolve(items, reaches, never)
    assert out[0] == {} and out[1] == {}
    for i in (2, 3):  # the relationship, then what needs the relationship
        assert set(out[i]) == {"b", "c"}
        assert all(r.rule == GRAPH_WITHHELD and r.whole for (r,) in out[i].values())
    assert "actor--2" in out[2]["b"][0].reason


def test_optional_references_are_trimmed_and_a_report_needs_one_left() -> None:
    items = [
        item("ind--1"),
        item("ind--2"),
        item("identity--9"),
        item("report--3", Ref("object_refs.[0]", "ind--1", "some"),
             Ref("object_refs.[1]", "ind--2", "some"), Ref("created_by_ref", "identity--9")),
    ]  # fmt: skip
    reaches = [reach("a", "b"), reach("a"), reach("a"), reach(*ORGS)]
    out = resolve(items, reaches, never)[3]
    assert "a" not in out
    (trim_2, trim_author) = out["b"]
    assert (trim_2.rule, trim_2.parts) == (GRAPH_TRIMMED, ("object_refs.[1]",))
    assert trim_author.parts == ("created_by_ref",)
    (whole,) = out["c"]  # c gets neither indicator: no report for c
    assert whole.whole and "none of the objects" in whole.reason


def test_what_the_sender_shared_before_counts_and_a_withheld_part_is_not_checked() -> None:
    items = [
        item("rel--1", Ref("source_ref", "ind--old", "essential"), Ref("description_ref", "x--9")),
    ]
    shared_before = {("ind--old", "a"), ("ind--old", "b")}
    reaches = [reach(*ORGS, withheld={"b": ("description_ref",)})]
    out = resolve(items, reaches, lambda t, o: (t, o) in shared_before)[0]
    assert out["a"][0].parts == ("description_ref",)  # a lacks x--9: trimmed
    assert "b" not in out  # b's copy goes without that reference anyway
    assert out["c"][0].whole  # c never got ind--old


KINDS: tuple[RefKind, ...] = ("essential", "trim", "some")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sets(st.sampled_from(ORGS)),
            st.lists(st.tuples(st.integers(0, 7), st.sampled_from(KINDS)), max_size=3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_nothing_delivered_dangles(spec: list[tuple[set[str], list[tuple[int, str]]]]) -> None:
    items = [
        item(f"o--{i}", *(Ref(f"p_ref.[{k}]", f"o--{t}", kind) for k, (t, kind) in enumerate(refs)))  # type: ignore[arg-type]
        for i, (_, refs) in enumerate(spec)
    ]
    reaches = [reach(*orgs) for orgs, _ in spec]
    out = resolve(items, reaches, never)
    gets: dict[str, set[str]] = {
        it.source_id: {o for o in orgs if not any(r.whole for r in out[i].get(o, ()))}
        for i, (it, (orgs, _)) in enumerate(zip(items, spec, strict=True))
    }
    for i, it in enumerate(items):
        for org in gets[it.source_id]:
            trimmed = {p for r in out[i].get(org, ()) for p in r.parts}
            left: list[Any] = []
            for ref in it.refs:
                target = gets.get(ref.target, set())
                if ref.path in trimmed:
                    assert org not in target
                    continue
                assert org in target, (it.source_id, org, ref)  # nothing dangles
                left.append(ref)
            if any(r.kind == "some" for r in it.refs):
                assert any(r.kind == "some" for r in left)
