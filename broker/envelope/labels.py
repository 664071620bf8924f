"""Handling labels: TLP 2.0, SIENA handling codes, categories and the other flags.

They travel encrypted with the payload (envelope format version 2), so only
the recipients learn them; the envelope's clear, signed header repeats the TLP
and whether the record is exercise traffic, which the receiver checks against
the labels inside. Enforcement points re-check policy once they have opened a
record. (Format version 1 carried all labels in the clear header.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.errors import ConfigError
from broker.vocabulary import CATEGORIES, tlp_avro_symbol
from broker.vocabulary import HANDLING_CODES as HANDLING_CODES
from broker.vocabulary import TLP_LEVELS as TLP_LEVELS

# Avro enum symbols cannot hold '+'.
_TLP_TO_AVRO = {t: tlp_avro_symbol(t) for t in TLP_LEVELS}
_TLP_FROM_AVRO = {v: k for k, v in _TLP_TO_AVRO.items()}


@dataclass(frozen=True, slots=True)
class Labels:
    tlp: str
    handling_codes: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    personal_data: bool = False
    exercise: str | None = None
    incident: str | None = None
    member_states: tuple[str, ...] = ()
    #: Personal-data fields the policy removed from this copy (a "redact" decision).
    redacted_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.tlp not in TLP_LEVELS:
            raise ConfigError(f"TLP must be one of {', '.join(TLP_LEVELS)}; got {self.tlp!r}")
        bad = set(self.handling_codes) - set(HANDLING_CODES)
        if bad:
            raise ConfigError(f"handling codes must be among {HANDLING_CODES}; got {sorted(bad)}")
        bad = set(self.categories) - set(CATEGORIES)
        if bad:
            raise ConfigError(f"unknown categories {sorted(bad)}; known: {', '.join(CATEGORIES)}")
        bad = {m for m in self.member_states if len(m) != 2 or not m.isalpha() or not m.isupper()}
        if bad:
            raise ConfigError(f"Member States are ISO 3166-1 alpha-2 codes; got {sorted(bad)}")

    @classmethod
    def of(
        cls,
        tlp: str,
        *,
        handling_codes: Iterable[str] = (),
        categories: Iterable[str] = (),
        personal_data: bool = False,
        exercise: str | None = None,
        incident: str | None = None,
        member_states: Iterable[str] = (),
        redacted_fields: Iterable[str] = (),
    ) -> Labels:
        """Labels from any iterables, sorted and de-duplicated (equal sets compare equal)."""
        return cls(
            tlp=tlp.upper(),
            handling_codes=tuple(sorted(set(handling_codes))),
            categories=tuple(sorted(set(categories))),
            personal_data=personal_data,
            exercise=exercise,
            incident=incident,
            member_states=tuple(sorted(set(member_states))),
            redacted_fields=tuple(sorted(set(redacted_fields))),
        )

    def to_avro(self) -> dict[str, Any]:
        return {
            "tlp": _TLP_TO_AVRO[self.tlp],
            "handling_codes": list(self.handling_codes),
            "categories": list(self.categories),
            "personal_data": self.personal_data,
            "exercise": self.exercise,
            "incident": self.incident,
            "member_states": list(self.member_states),
            "redacted_fields": list(self.redacted_fields),
        }

    @classmethod
    def from_avro(cls, rec: Mapping[str, Any]) -> Labels:
        return cls(
            tlp=_TLP_FROM_AVRO[rec["tlp"]],
            handling_codes=tuple(rec["handling_codes"]),
            categories=tuple(rec["categories"]),
            personal_data=bool(rec["personal_data"]),
            exercise=rec["exercise"],
            incident=rec["incident"],
            member_states=tuple(rec["member_states"]),
            redacted_fields=tuple(rec.get("redacted_fields") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        return {**self.to_avro(), "tlp": self.tlp}


def tlp_to_avro(tlp: str) -> str:
    """The Avro enum symbol of a TLP level (AMBER+STRICT is AMBER_STRICT)."""
    return _TLP_TO_AVRO[tlp]


def tlp_from_avro(symbol: str) -> str:
    """The TLP level of an Avro enum symbol."""
    return _TLP_FROM_AVRO[symbol]


class AvroLabelsCache:
    """The Avro form of labels, one shared dict per distinct labels (never mutate it).

    An enforcement point records thousands of messages under a handful of
    labels; handing the audit log the same dict each time lets its encoder
    recognise them instead of encoding them again.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._forms: dict[Labels, dict[str, Any]] = {}

    def __call__(self, labels: Labels) -> dict[str, Any]:
        form = self._forms.get(labels)
        if form is None:
            if len(self._forms) >= self._size:
                self._forms.clear()
            form = self._forms[labels] = labels.to_avro()
        return form
