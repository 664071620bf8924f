"""misp-stix's converter of STIX 2.1 from outside MISP, as the MISP sinks use it.

The mapping stays misp-stix's; this subclass changes how fast it gets there and
one crash: simple patterns are read without ANTLR (`_stix_patterns`), the
indicators an observable matches are looked up (`_indicator_links`), and a
sighting naming an identity the bundle lacks no longer raises.
"""

from __future__ import annotations

from typing import Any

from misp_stix_converter import ExternalSTIX2toMISPParser

from connectors._indicator_links import IndexedIndicatorLinks
from connectors._stix_patterns import SimplePatternParser


class STIX2toMISPConverter(IndexedIndicatorLinks, ExternalSTIX2toMISPParser):  # type: ignore[misc]
    """misp-stix's external STIX 2 converter, its indicator converter reading patterns with
    `SimplePatternParser` (from the loading of a bundle on: misp-stix reads the patterns
    there too, to link indicators with observables)."""

    def _reset_bundle_state(self) -> None:
        # misp-stix makes its identity table when it loads an identity, yet reads it for every
        # sighting with `where_sighted_refs`: a sighting whose identities are not in the bundle
        # (a group rendered before they arrive, or sent without them) raised AttributeError.
        super()._reset_bundle_state()
        self._identity: dict[str, Any] = {}

    def _get_converter(self, stix_type: str) -> Any:
        converter = super()._get_converter(stix_type)
        if stix_type == "indicator" and not isinstance(
            getattr(converter, "_pattern_parser", None), SimplePatternParser
        ):
            converter._pattern_parser = SimplePatternParser()
        return converter
