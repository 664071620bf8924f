"""misp-stix's linking of indicators with the observables they match, by lookup.

Converting a bundle, misp-stix marks an observable `to_ids` and links it to
every indicator whose pattern compares the observable's type (or a related one)
with a value the observable carries. It finds them by testing every observable
against every indicator: quadratic in the bundle, most of a MISP sink's time on
a bundle of a few thousand objects. `IndexedIndicatorLinks` finds the same
indicators through an index of the pattern values by type, built once per
bundle; a value that cannot be hashed is compared the way misp-stix does.
`tests/connectors/test_indicator_links.py` holds the two to the same links.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class _LinkIndex:
    """Indicator ids by (observable type, pattern value), of one bundle's indicators."""

    def __init__(self, references: dict[str, dict[str, tuple[Any, ...]]]) -> None:
        self.source = references
        self.position = {indicator_id: n for n, indicator_id in enumerate(references)}
        self.by_value: dict[str, dict[Any, set[str]]] = {}
        # (indicator id, values) whose values are not all hashable, by observable type
        self.unhashable: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for indicator_id, patterns in references.items():
            for obs_type, values in patterns.items():
                if all(_hashable(v) for v in values):
                    table = self.by_value.setdefault(obs_type, {})
                    for value in values:
                        table.setdefault(value, set()).add(indicator_id)
                else:
                    self.unhashable.setdefault(obs_type, []).append((indicator_id, values))

    def matches(self, obs_types: set[str], refs: tuple[Any, ...]) -> list[str]:
        """The indicators comparing one of `obs_types` with one of `refs`, in misp-stix's
        order (a set made of them iterates as misp-stix's would)."""
        found: set[str] = set()
        for obs_type in obs_types:
            table = self.by_value.get(obs_type, {})
            for ref in refs:
                if _hashable(ref):
                    found.update(table.get(ref, ()))
                else:  # misp-stix's own test (`in`), against every value of this type
                    found.update(i for value, ids in table.items() if ref in (value,) for i in ids)
            for indicator_id, values in self.unhashable.get(obs_type, ()):
                if any(ref in values for ref in refs):
                    found.add(indicator_id)
        return sorted(found, key=self.position.__getitem__)


class IndexedIndicatorLinks:
    """Mixin for misp-stix's external STIX 2 converter: `_fetch_indicator_reference` by index.

    It yields the indicators misp-stix's own method yields, in the same order, each once
    (its callers only ever make a set of them), without testing each indicator."""

    _indicator_references: dict[str, dict[str, tuple[Any, ...]]]
    _mapping: Any
    __index: _LinkIndex | None = None

    _fetch_observable_references: Callable[[Any], Iterator[Any]]  # misp-stix's

    def _fetch_indicator_reference(self, observable: Any) -> Iterator[str]:
        index = self.__index
        if index is None or index.source is not self._indicator_references:
            index = self.__index = _LinkIndex(self._indicator_references)
        obs_type = observable.type
        obs_types = {obs_type, *self._mapping.related_observable_types(obs_type)}
        refs = tuple(self._fetch_observable_references(observable))
        yield from index.matches(obs_types, refs)
