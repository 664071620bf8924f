"""Parts of a record that not every recipient of the record gets.

The publisher already sends a redacted copy to organisations the policy allows
only without personal data. The same mechanism carries two more reasons to
send a recipient less than the whole record:

- a `Part` marked stricter than the record (a STIX granular marking, a MISP
  attribute with its own TLP): the policy decides, per organisation, whether it
  is cleared for that part's TLP; one that is not gets the record without it;
- a `Restriction` the caller imposes on one organisation (a relationship whose
  target that organisation does not receive): the whole record withheld, or
  named parts of it. A restriction only ever narrows what the policy allowed.

What a part is and how it is removed is the caller's business (a `Redactor`
over the record); the publisher decides who gets which variant, seals one copy
per community and variant, and records every part it removed in the copy's
labels (`redacted_fields`) and in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.envelope.labels import TLP_LEVELS
from broker.errors import ConfigError

#: Rule id of a part withheld because the organisation is not cleared for its marking.
PART_MARKING_RULE = "part-marking-not-cleared"

#: Removes the named parts from a record: `redactor(record, parts) -> record without them`.
Redactor = Callable[[Mapping[str, Any], frozenset[str]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of a record marked stricter than the record itself."""

    name: str  # how labels and the audit log call it, e.g. "description", "Attribute/<uuid>"
    tlp: str  # TLP 2.0 level of the piece

    def __post_init__(self) -> None:
        if self.tlp not in TLP_LEVELS:
            raise ConfigError(f"part {self.name!r}: TLP must be one of {', '.join(TLP_LEVELS)}")


@dataclass(frozen=True, slots=True)
class Restriction:
    """What the caller withholds from one organisation, and why (audited as said)."""

    rule: str  # a stable id, e.g. "graph-reference-not-shared"
    reason: str  # plain words, for the audit log and the publisher's report
    parts: tuple[str, ...] = ()  # empty: the whole record

    @property
    def whole(self) -> bool:
        return not self.parts
