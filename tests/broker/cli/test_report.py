"""`jcu publish`'s per-object report: a table for a small file, one plain line an object
for a large one (the same columns, every id whole), then the one-line summary."""

from __future__ import annotations

import pytest

from broker.cli._soc import TABLE_ROWS, print_report
from connectors.soc.publishing import Denied, Outcome, PublishReport


def _report(n: int) -> PublishReport:
    outcomes = [
        Outcome(
            f"indicator--00000000-0000-4000-8000-{i:012d}",
            "indicator",
            "published",
            "GREEN",
            f"5235b777-9380-8767-961d-{i:012d}",
            ("enisa", "cert-eu"),
            redacted={"cert-eu": ("x_acme_contact",)},
        )
        for i in range(n - 2)
    ]
    outcomes.append(
        Outcome(
            "malware--00000000-0000-4000-8000-00000000aaaa",
            "malware",
            "withheld",
            "RED",
            denied=(Denied("enisa", ("tlp-red-named-only",)),),
        )
    )
    outcomes.append(
        Outcome(
            "x-thing--00000000-0000-4000-8000-00000000bbbb",
            "x-thing",
            "skipped",
            reason="unknown STIX object type 'x-thing'",
        )
    )
    return PublishReport("feed.json", "stix", tuple(outcomes))


def test_a_large_file_is_listed_one_plain_line_an_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = _report(TABLE_ROWS + 1)
    print_report(report)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "feed.json (stix)"
    assert lines[1].split() == ["object", "type", "status", "TLP", "message", "recipients",
                                "why", "not"]  # fmt: skip
    assert len(lines) == 2 + len(report.outcomes)
    first = lines[2].split("  ")
    assert first[0] == report.outcomes[0].source_id
    assert "5235b777-9380-8767-961d-000000000000" in lines[2]
    assert lines[2].endswith("enisa, cert-eu (without x_acme_contact)")
    assert lines[-2].endswith("withheld from everyone: tlp-red-named-only")
    assert lines[-1].endswith("unknown STIX object type 'x-thing'")
    # the columns line up: every object id starts its line, the statuses start together
    at = lines[1].index("status")
    assert {line[at:].split()[0] for line in lines[2:]} == {"published", "withheld", "skipped"}
    assert err.strip() == "feed.json: 499 published, 1 withheld from everyone, 1 skipped"


def test_a_small_file_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    print_report(_report(3))
    out, err = capsys.readouterr()
    assert "━" in out or "─" in out  # rich's table rules
    assert all(word in out for word in ("published", "withheld", "skipped", "tlp-red-named"))
    assert err.strip() == "feed.json: 1 published, 1 withheld from everyone, 1 skipped"
