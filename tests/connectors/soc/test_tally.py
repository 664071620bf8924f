"""A run's outcomes counted as they come (`Tally`): the counts its report gives, and what
its progress file says after every chunk, without going over all outcomes each time."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from broker.cli._progress import ProgressFile
from connectors.soc.publishing import Outcome, PublishReport, Status, Tally

STATUSES: tuple[Status, ...] = typing.get_args(Status)

outcome_lists = st.lists(
    st.builds(Outcome, st.just("indicator--x"), st.just("indicator"), st.sampled_from(STATUSES))
)


@given(outcome_lists, st.integers(min_value=1, max_value=7))
def test_counted_in_chunks_the_counts_are_the_reports(outcomes: list[Outcome], chunk: int) -> None:
    tally = Tally("stix")
    for start in range(0, len(outcomes), chunk):
        tally.add(outcomes[start : start + chunk])
    report = PublishReport("feed.json", "stix", tuple(outcomes))
    assert tally.counts == {
        "published": len(report.published),
        "withheld": len(report.withheld),
        "skipped": len(report.skipped),
        "already_sent": len(report.already_sent),
        "not_sent": len(report.not_sent),
    }
    assert tally.handled == sum(1 for o in outcomes if o.status != "not sent")
    assert report.tally().counts == tally.counts


def test_the_progress_file_says_what_the_tally_counted(tmp_path: Path) -> None:
    source = tmp_path / "feed.json"
    source.write_text("{}")
    tally = Tally("stix", stopped="interrupted")
    tally.add(
        [
            Outcome("indicator--a", "indicator", "published"),
            Outcome("indicator--b", "indicator", "skipped", reason="no TLP"),
            Outcome("indicator--c", "indicator", "not sent"),
        ]
    )
    progress = ProgressFile(tmp_path / "home", "soc-fr", source)
    progress.save("d1g35t", tally, 5)
    written = json.loads(progress.path.read_text())
    assert written["handled"] == 2 and written["objects"] == 5 and not written["finished"]
    assert written["counts"] == {
        "published": 1, "withheld": 0, "skipped": 1, "already_sent": 0, "not_sent": 1,
    }  # fmt: skip
    assert written["stopped"] == "interrupted" and written["format"] == "stix"
    loaded = progress.load()
    assert loaded is not None and loaded.handled == 2
