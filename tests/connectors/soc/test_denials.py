"""A report's denied entries: made once per tuple of decisions, always the tuple's own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.policy import Decision
from connectors.soc.publishing import Denied, _Denials, _denied

_decisions = st.lists(
    st.builds(
        Decision,
        org=st.sampled_from(["enisa", "cert-eu", "soc-de", "europol-ec3"]),
        decision=st.sampled_from(["allow", "redact", "deny"]),
        rules=st.lists(st.sampled_from(["default-deny", "tlp-red", "no-mandate"])).map(tuple),
        legal_basis=st.just(()),
        reasons=st.lists(st.text(max_size=5), max_size=2).map(tuple),
    ),
    max_size=6,
).map(tuple)


@given(st.lists(_decisions, min_size=1, max_size=12), st.integers(1, 4))
def test_each_tuple_gets_its_own_denials_however_they_repeat(
    tuples: list[tuple[Decision, ...]], limit: int
) -> None:
    denials = _Denials(limit)  # a small memory, to pass it too
    seen = [*tuples, *tuples]  # each tuple again, as items with the same labels come
    for decisions in seen:
        assert denials(decisions) == _denied(decisions)
        assert all(isinstance(d, Denied) for d in denials(decisions))


def test_the_same_tuple_shares_one_result() -> None:
    decisions = (Decision("enisa", "deny", ("tlp-red",), ()), Decision("cert-eu", "allow", (), ()))
    denials = _Denials()
    first = denials(decisions)
    assert first == (Denied("enisa", ("tlp-red",), ()),)
    assert denials(decisions) is first
    equal_but_another = tuple(list(decisions))
    assert denials(equal_but_another) == first
