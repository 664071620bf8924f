"""misp-stix's converter of STIX 2.1 from outside MISP, as the MISP sinks use it.

The mapping stays misp-stix's; this subclass changes how fast it gets there and
one crash: simple patterns are read without ANTLR (`_stix_patterns`), the
indicators an observable matches are looked up (`_indicator_links`), and a
sighting naming an identity the bundle lacks no longer raises.
"""

from __future__ import annotations

from typing import Any

from misp_stix_converter import ExternalSTIX2toMISPParser
from misp_stix_converter.stix2misp.stix2_pattern_parser import STIX2PatternParser

from connectors import _stix_patterns
from connectors._indicator_links import IndexedIndicatorLinks


class SimplePatternParser(STIX2PatternParser):  # type: ignore[misc]
    """misp-stix's pattern parser, with simple STIX 2.1 patterns read without ANTLR."""

    def handle_indicator(self, indicator: Any) -> None:
        if str(indicator.get("spec_version", "2.0")) == "2.1":
            data = _stix_patterns.valid_pattern_data(str(indicator["pattern"]))
            if data is not None:
                # What the parent does once its grammar has read the pattern: its own
                # post-processing of the comparisons (literal values), then valid.
                self._STIX2PatternParser__set_pattern_data(data)
                self._STIX2PatternParser__valid = True
                return
        super().handle_indicator(indicator)


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
