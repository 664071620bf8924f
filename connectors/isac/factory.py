"""The one place that turns `jcu subscribe --format/--out/--webhook` into a `broker.pep` Sink.

The CLI is the composition root: it imports this lazily, so broker code never
imports connectors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from broker.config import Settings
from broker.errors import ConfigError
from broker.pep.sink import JsonlSink, Sink

if TYPE_CHECKING:
    from connectors.isac.subscriber import FileFormat

#: Formats `make_sink` knows, in the order `jcu subscribe --help` lists them.
SINK_FORMATS: tuple[str, ...] = ("jsonl", "stix", "misp", "misp-feed", "taxii")


def make_sink(
    fmt: str,
    out: str,
    participant: str,
    settings: Settings,
    *,
    webhook: str | None = None,
) -> Sink:
    """The sink for one subscriber run.

    - `webhook`: POST each delivery to the URL (`fmt` must be jsonl, the body's format);
    - `jsonl` with `out` "-": the broker's JSON lines on stdout; with a directory:
      `<out>/<participant>.jsonl` (the broker's JSON lines);
    - `stix` / `misp`: one file per STIX object / MISP event (per message for Indicator and
      IncidentReport records) in `out`, other payload types as JSON lines there;
    - `misp-feed`: the MISP feed layout in `out` (manifest.json, hashes.csv, an event
      file per event, and stix/<uuid>.json bundles for OpenCTI);
    - `taxii`: the participant's TAXII store (served by `jcu taxii serve`), other payload
      types as JSON lines in `out` (default `$JCU_HOME/taxii/<participant>-other/`).

    With both a webhook and `out` a directory, every delivery goes to both (a FanOutSink:
    settled only when each has it).
    """
    if webhook is not None:
        from connectors.isac.subscriber import FanOutSink
        from connectors.isac.webhook import Backoff, WebhookSink

        # A few quick retries here; the subscriber holds the batch and retries beyond them.
        hook = WebhookSink(webhook, backoff=Backoff(attempts=3))
        if out == "-":
            if fmt != "jsonl":
                raise ConfigError(
                    f"--format {fmt} writes files: give --out DIR as well as --webhook"
                )
            return hook
        return FanOutSink([_file_sink(fmt, out, participant, settings), hook])
    return _file_sink(fmt, out, participant, settings)


def _file_sink(fmt: str, out: str, participant: str, settings: Settings) -> Sink:
    if fmt == "jsonl":
        if out == "-":
            return JsonlSink(sys.stdout)
        return JsonlSink(Path(out) / f"{participant}.jsonl")
    if fmt in ("stix", "misp", "misp-feed"):
        from connectors.isac.subscriber import FormatSink

        if out == "-":
            raise ConfigError(f"--format {fmt} writes files into a directory: give --out DIR")
        kind: FileFormat = "stix" if fmt == "stix" else "misp" if fmt == "misp" else "misp-feed"
        return FormatSink(kind, Path(out))
    if fmt == "taxii":
        from connectors.isac._stix import STIX_PAYLOADS
        from connectors.isac.subscriber import FormatSink, RoutedSink, stix_objects_of
        from connectors.taxii import TaxiiSink, TaxiiStore, store_path

        store = TaxiiStore(store_path(settings.home, participant), participant)
        store.open_sync()
        other = settings.home / "taxii" / f"{participant}-other" if out == "-" else Path(out)
        return RoutedSink(
            TaxiiSink(store, stix_objects_of), FormatSink("jsonl", other), STIX_PAYLOADS
        )
    raise ConfigError(f"unknown output format {fmt!r}; one of {', '.join(SINK_FORMATS)}")
