"""docs/contracts.md says what the code does: topics, streams, schemas and verbs.

The page is hand-written prose around tables; this test fails when the code
gains (or loses) a topic, a payload type, a schema or a verb the page does not
name, so the contract others read cannot drift from the one the code keeps.
"""

from __future__ import annotations

import re

import click

from broker.cli import cli
from broker.envelope.topics import PAYLOAD_STREAMS
from broker.kafka.topics import contract_topics
from broker.vocabulary import COMMUNITIES, STREAMS
from tests.samples import REPO

DOC = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")


def test_every_topic_of_the_contract_is_named() -> None:
    names = {t.name for t in contract_topics()}
    data = {f"jcu.{c}.{s}" for c in COMMUNITIES for s in STREAMS}
    exercise = {f"jcu.exercise.{c}.{s}" for c in COMMUNITIES for s in STREAMS}
    for name in sorted(names - data - exercise):
        assert f"`{name}`" in DOC, name
    assert data | exercise <= names  # the pattern rows stand for exactly these
    for community in COMMUNITIES:
        assert f"`{community}`" in DOC


def test_every_payload_type_is_in_its_stream_row() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+) \|$", DOC, re.MULTILINE))
    for payload_type, stream in PAYLOAD_STREAMS.items():
        assert f"`{payload_type}`" in rows.get(stream, ""), (payload_type, stream)
    assert set(STREAMS) <= set(rows)


def test_every_schema_is_listed() -> None:
    for path in sorted((REPO / "schemas").glob("*.avsc")):
        assert f"| `{path.name}` (" in DOC, path.name


def _verbs(group: click.Group, ctx: click.Context, path: str) -> list[str]:
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            sub = click.Context(command, parent=ctx, info_name=name)
            out += _verbs(command, sub, f"{path} {name}")
        else:
            out.append(f"{path} {name}")
    return out


def test_every_verb_is_listed() -> None:
    verbs = _verbs(cli, click.Context(cli, info_name="jcu"), "jcu")
    assert len(verbs) > 50
    listed = set(re.findall(r"^\| `(jcu [a-z -]+?)(?: [A-Z_.]+)*` \|", DOC, re.MULTILINE))
    assert set(verbs) == listed
