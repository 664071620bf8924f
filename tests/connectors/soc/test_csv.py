"""Indicator CSV: good rows become Indicators, bad rows skipped by line, bad headers refused."""

from __future__ import annotations

import csv
import io
import ipaddress
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import InputFormatError
from broker.schemas import SchemaStore
from connectors.soc import NO_TLP, parse_csv

GOOD = """type,value,tlp,valid_from,confidence,name,labels,categories
ipv4-addr,192.0.2.10,AMBER,2026-11-01T10:00:00Z,80,C2 server,c2;botnet,malicious-code
domain-name,evil.example,,2026-11-01,,,,
sha256,9B23BFC35B18ED80104C496B2AA722B3E56FF9CEB9DAE60D1AFF7230321C1D12,red,,,,,
url,https://evil.example/x?a='b',,,,,,
"""


def test_good_rows_become_indicators(store: SchemaStore) -> None:
    result = parse_csv(GOOD, default_tlp="GREEN")
    assert result.skipped == ()
    assert [i.source_id for i in result.items] == ["line 2", "line 3", "line 4", "line 5"]
    first, second, third, fourth = (i.record for i in result.items)
    assert first["pattern"] == "[ipv4-addr:value = '192.0.2.10']"
    assert first["confidence"] == 80 and first["labels"] == ["c2", "botnet"]
    assert first["valid_from"] == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert result.items[0].categories == frozenset({"malicious-code"})
    assert [i.tlp for i in result.items] == ["AMBER", "GREEN", "RED", "GREEN"]
    assert second["valid_from"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert third["observable_type"] == "file" and third["value"] == third["value"].lower()
    assert fourth["pattern"] == "[url:value = 'https://evil.example/x?a=\\'b\\'']"
    for item in result.items:
        store.encode("Indicator", item.record)


def test_row_ids_are_stable_for_the_same_observable() -> None:
    one = parse_csv("type,value\ndomain-name,a.example\n", default_tlp="GREEN")
    two = parse_csv("type,value\ndomain-name,a.example\n", default_tlp="GREEN")
    assert one.items[0].record["id"] == two.items[0].record["id"]


def test_bad_rows_are_skipped_with_line_and_reason_rest_published() -> None:
    data = (
        "type,value,tlp,confidence,valid_from,categories\n"
        "ipv4-addr,192.0.2.1,,,,\n"
        "ipv4-addr,999.1.1.1,,,,\n"
        "printer,hp-1,,,,\n"
        "domain-name,ok.example,purple,,,\n"
        "domain-name,ok.example,,101,,\n"
        "domain-name,ok.example,,,2026-01-01T10:00:00,\n"
        "domain-name,ok.example,,,,gossip\n"
        "md5,abc,,,,\n"
        "only-one-field\n"
        "\n"
        "email-addr,soc@example.org,,,,\n"
    )
    result = parse_csv(data, default_tlp="GREEN")
    assert [i.source_id for i in result.items] == ["line 2", "line 12"]
    reasons = {s.source_id: s.reason for s in result.skipped}
    assert reasons == {
        "line 3": "not an IP address or CIDR: '999.1.1.1'",
        "line 4": reasons["line 4"],
        "line 5": "tlp: not a TLP level: 'purple'",
        "line 6": "confidence: 101 is outside 0-100",
        "line 7": "valid_from: '2026-01-01T10:00:00' has no time zone (add Z or +01:00)",
        "line 8": "categories: unknown gossip; use ENISA taxonomy classes",
        "line 9": "not a md5 hex digest: 'abc'",
        "line 10": "expected 6 fields, got 1",
    }
    assert reasons["line 4"].startswith("unknown type 'printer'")


def test_row_without_tlp_and_no_default_is_refused() -> None:
    result = parse_csv("type,value\ndomain-name,a.example\n", default_tlp=None)
    assert result.items == ()
    assert result.skipped[0].reason == NO_TLP


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "empty CSV"),
        ("value,tlp\n", "missing column"),
        ("type,value,colour\n", "unknown column"),
        ("type,value,type\n", "appears twice"),
    ],
)
def test_bad_header_refuses_the_file(header: str, message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        parse_csv(header, default_tlp="GREEN")


def test_non_utf8_input_is_refused() -> None:
    with pytest.raises(InputFormatError, match="not UTF-8"):
        parse_csv(b"type,value\nurl,http://\xff\n", default_tlp="GREEN")


ROWS = st.one_of(
    st.tuples(st.just("ipv4-addr"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("ipv6-addr"), st.ip_addresses(v=6).map(str)),
    st.tuples(
        st.just("domain-name"),
        st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.(eu|org|example)\Z"),
    ),
    st.tuples(st.just("sha1"), st.binary(min_size=20, max_size=20).map(bytes.hex)),
    st.tuples(st.just("url"), st.from_regex(r"\Ahttps?://[a-z]{1,10}\.eu/[a-z0-9'\\,\"]{0,10}\Z")),
)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(ROWS, st.sampled_from(["", "green", "AMBER", "tlp:red"])), max_size=8)
)
def test_generated_valid_rows_all_publish_with_their_values(
    rows: list[tuple[tuple[str, str], str]],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["type", "value", "tlp"])
    for (kind, value), level in rows:
        writer.writerow([kind, value, level])
    result = parse_csv(out.getvalue(), default_tlp="CLEAR")
    assert result.skipped == ()
    assert [(i.record["observable_type"], i.record["value"]) for i in result.items] == [
        ("file" if kind == "sha1" else kind, value) for (kind, value), _ in rows
    ]
    for item, ((kind, _value), _) in zip(result.items, rows, strict=True):
        if kind in ("ipv4-addr", "ipv6-addr"):
            ipaddress.ip_address(item.record["value"])
        assert item.record["pattern"].startswith(f"[{'file' if kind == 'sha1' else kind}:")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(max_size=12), min_size=0, max_size=4), max_size=6))
def test_arbitrary_rows_never_crash_and_are_all_accounted_for(rows: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["type", "value", "tlp"])
    writer.writerows(rows)
    result = parse_csv(out.getvalue(), default_tlp="AMBER")
    non_blank = sum(1 for r in csv.reader(io.StringIO(out.getvalue())) if r) - 1
    assert len(result.items) + len(result.skipped) == non_blank


def test_a_row_is_what_it_says_not_where_it_stands() -> None:
    """The row identity (docs/connectors.md): moved rows, reordered or empty columns and
    case in hashes keep it; any changed value makes another row."""
    first = parse_csv(
        "type,value,tlp\nipv4-addr,192.0.2.10,AMBER\nsha256," + "AB" * 32 + ",\n",
        default_tlp="GREEN",
    )
    moved = parse_csv(
        "tlp,value,type,name\n," + "ab" * 32 + ",SHA256,\nAMBER, 192.0.2.10 ,ipv4-addr,\n",
        default_tlp="GREEN",
    )
    assert [i.identity for i in first.items] == [i.identity for i in reversed(moved.items)]
    changed = parse_csv("type,value,tlp\nipv4-addr,192.0.2.10,RED\n", default_tlp="GREEN")
    assert changed.items[0].identity != first.items[0].identity


@given(
    st.permutations(["type", "value", "tlp", "name", "labels"]),
    st.text(alphabet="abcdefghij ", min_size=1, max_size=12).filter(lambda s: s.strip() != ""),
)
@settings(max_examples=50)
def test_the_row_identity_does_not_depend_on_column_order(columns: list[str], name: str) -> None:
    row = {"type": "domain-name", "value": "evil.example", "tlp": "AMBER", "name": name,
           "labels": ""}  # fmt: skip
    text = ",".join(columns) + "\n" + ",".join(f'"{row[c]}"' for c in columns) + "\n"
    (item,) = parse_csv(text, default_tlp=None).items
    (plain,) = parse_csv(
        f'type,value,tlp,name\ndomain-name,evil.example,AMBER,"{name}"\n', default_tlp=None
    ).items
    assert item.identity == plain.identity
