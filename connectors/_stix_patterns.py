"""STIX patterns without ANTLR where a pattern is simple.

stix2, parsing an indicator, checks its pattern with the STIX pattern grammar
(ANTLR), and misp-stix reads it with the same grammar: a millisecond or so an
indicator, most of the time a feed of indicators takes to parse (`jcu publish
--stix`) and to turn into MISP events (the MISP sinks). Almost every shared
indicator is one observation of equality tests, `[ipv4-addr:value =
'198.51.100.7']`, `[file:hashes.'SHA-256' = '…' OR file:name = 'x.exe']`.
`simple_pattern_data` reads those with one regular expression into exactly the
data the grammar would give (the inspector's comparisons, checked by the same
object validator); anything else (other operators, qualifiers, several
observations, parentheses, other literals) goes to the grammar unchanged. Our
`Indicator` (stix2's, subclassed) checks a simple pattern that way;
`connectors._misp_stix.SimplePatternParser` reads one that way for misp-stix.
`tests/connectors/test_stix_patterns.py` holds each to the result of the parser
it stands in for. Nothing here loads misp-stix: publishing a STIX file uses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import stix2
import stix2.v21
from stix2patterns.inspector import _PatternData  # type: ignore[import-untyped]
from stix2patterns.v21 import object_validator  # type: ignore[import-untyped]

_STRING = r"'(?:[^'\\]|\\['\\])*'"
_NAME = r"[a-z_][a-z0-9_]*"
_STEP = rf"(?:{_NAME}|{_STRING})"
_COMPARISON = rf"([a-z][a-z0-9-]*):({_STEP}(?:\.{_STEP})*) = ({_STRING})"
_SIMPLE = re.compile(rf"\[{_COMPARISON}(?: (?:OR|AND) {_COMPARISON})*\]")
_ONE = re.compile(_COMPARISON)
_PATH_STEP = re.compile(_STEP)
#: Words the pattern grammar reads as literals, not names: those patterns go to ANTLR.
_KEYWORDS = frozenset({"true", "false"})


def _unquote(literal: str) -> str:
    """A string literal's text, as the pattern inspector gives it."""
    return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")


def simple_pattern_data(pattern: str) -> Any | None:
    """The inspector's pattern data for a simple STIX 2.1 pattern; None for any other."""
    if not _SIMPLE.fullmatch(pattern):
        return None
    comparisons: dict[str, list[tuple[list[str], str, str]]] = {}
    for match in _ONE.finditer(pattern):
        obj_type, path, value = match.groups()
        steps = [_unquote(s) if s.startswith("'") else s for s in _PATH_STEP.findall(path)]
        if obj_type in _KEYWORDS or any(s in _KEYWORDS for s in _PATH_STEP.findall(path)):
            return None
        comparisons.setdefault(obj_type, []).append((steps, "=", value))
    return _PatternData(comparisons, set(), set())


def valid_pattern_data(pattern: str) -> Any | None:
    """`simple_pattern_data` of a pattern the object validator also finds valid (what
    stix2patterns' grammar, then the same validator, would say); None for any other."""
    data = simple_pattern_data(pattern)
    return data if data is not None and not object_validator.verify_object(data) else None


def simple_pattern_valid(pattern: str) -> bool:
    """True if `pattern` is simple and valid STIX 2.1, as stix2patterns' validator would say
    (its grammar, then the same object validator); False if it is not simple or not valid."""
    return valid_pattern_data(pattern) is not None


def parse(obj: Mapping[str, Any], *, version: str | None = None) -> Any:
    """`stix2.parse(obj, allow_custom=True, version=version)`, a STIX 2.1 indicator's
    simple pattern checked without ANTLR (`Indicator`)."""
    if obj.get("type") == "indicator" and (version or obj.get("spec_version")) == "2.1":
        return Indicator(allow_custom=True, **obj)
    return stix2.parse(dict(obj), allow_custom=True, version=version)


class Indicator(stix2.v21.Indicator):  # type: ignore[misc]
    """stix2's STIX 2.1 Indicator, its pattern checked without ANTLR when it is simple
    (named as stix2's: stix2's errors name the class).

    stix2 validates the pattern of every indicator it parses with the ANTLR grammar;
    a simple valid pattern skips it, and everything else stix2 checks is still checked
    (any other pattern by stix2 itself)."""

    def _check_object_constraints(self) -> None:
        pattern = self.get("pattern")
        if not (
            self.get("pattern_type") == "stix"
            and self.get("pattern_version") == "2.1"
            and isinstance(pattern, str)
            and simple_pattern_valid(pattern)
        ):
            super()._check_object_constraints()
            return
        # The Indicator's own checks but its pattern's, which simple_pattern_valid made.
        super(stix2.v21.Indicator, self)._check_object_constraints()
        valid_from, valid_until = self.get("valid_from"), self.get("valid_until")
        if valid_from and valid_until and valid_until <= valid_from:
            raise ValueError(f"{self.id} 'valid_until' must be greater than 'valid_from'")
