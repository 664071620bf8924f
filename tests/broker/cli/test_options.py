"""Every verb spells the shared options alike, and checks their values against the one
vocabulary (the click tree walked from `jcu`, as `--help` shows it)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import click
import pytest

from broker.cli import cli
from broker.cli._options import connection_options
from broker.vocabulary import CATEGORIES, HANDLING_CODES, TLP_LEVELS
from tests.cli import run

#: Options many verbs take: wherever one appears it is the same option.
SHARED = (
    "--as",
    "--json",
    "--bootstrap",
    "--kafka-config",
    "--tlp",
    "--handling",
    "--category",
    "--member-states",
    "--type",
    "--incident",
    "--exercise",
    "--personal-data",
    "--to",
    "--no-sync",
    "--chunk",
)
#: Verbs that never talk to Kafka (files, keys, the local cluster's processes, servers of
#: what a node already holds). Every other verb takes the connection options.
OFFLINE = {
    "jcu audit keys export",
    "jcu audit verify-proof",
    "jcu authority approve",
    "jcu authority export",
    "jcu authority init",
    "jcu authority revoke",
    "jcu authority rotate-own-key",
    "jcu authority show",
    "jcu console passwd",
    "jcu demo",  # starts its own Kafka
    "jcu init",
    "jcu kafka cert",
    "jcu kafka down",
    "jcu kafka status",
    "jcu kafka up",
    "jcu keys list",
    "jcu keys passwd",
    "jcu keys register",
    "jcu keys revoke",
    "jcu keys rotate",
    "jcu open",
    "jcu policy check",
    "jcu registry import",
    "jcu registry show",
    "jcu registry trust",
    "jcu taxii collections",
    "jcu taxii passwd",
    "jcu taxii serve",
}
#: Verbs without --json: services, and output that is not a table (envelope bytes, a report
#: in the --format asked for).
NO_JSON = {"jcu console", "jcu taxii serve", "jcu seal", "jcu sitrep"}


def _verbs() -> Iterator[tuple[str, click.Command]]:
    def walk(command: click.Command, ctx: click.Context, path: str) -> Iterator[Any]:
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                yield path, command
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(
                    sub, click.Context(sub, parent=ctx, info_name=name), f"{path} {name}"
                )
        else:
            yield path, command

    yield from walk(cli, click.Context(cli, info_name="jcu"), "jcu")


VERBS = dict(_verbs())


def _options(command: click.Command) -> dict[str, click.Option]:
    return {o: p for p in command.params if isinstance(p, click.Option) for o in p.opts}


def _shape(option: click.Option, ctx: click.Context) -> tuple[object, ...]:
    """What a user sees and gets: its type, metavar and choices, repeatable or a flag."""
    choices = tuple(getattr(option.type, "choices", ()) or ())
    return (
        type(option.type).__name__,
        option.make_metavar(ctx),
        choices,
        option.multiple,
        option.is_flag,
    )


def test_the_walk_finds_every_verb() -> None:
    assert len(VERBS) > 50 and "jcu publish" in VERBS and "jcu crisis end" in VERBS


@pytest.mark.parametrize("name", SHARED)
def test_a_shared_option_is_spelled_alike_wherever_it_appears(name: str) -> None:
    shapes: dict[tuple[object, ...], list[str]] = {}
    for path, command in VERBS.items():
        option = _options(command).get(name)
        if option is not None:
            ctx = click.Context(command, info_name=path)
            shapes.setdefault(_shape(option, ctx), []).append(path)
    assert shapes, f"no verb takes {name}"
    assert len(shapes) == 1, f"{name} differs: {shapes}"


def test_the_vocabulary_options_offer_the_vocabulary() -> None:
    publish = _options(VERBS["jcu publish"])
    assert tuple(publish["--tlp"].type.choices) == TLP_LEVELS  # type: ignore[attr-defined]
    assert tuple(publish["--handling"].type.choices) == HANDLING_CODES  # type: ignore[attr-defined]
    assert tuple(publish["--category"].type.choices) == CATEGORIES  # type: ignore[attr-defined]


def test_every_verb_that_talks_to_kafka_takes_the_connection_options() -> None:
    assert set(VERBS) >= OFFLINE, sorted(OFFLINE - set(VERBS))
    for path, command in VERBS.items():
        names = set(_options(command))
        if path in OFFLINE:
            assert not names & {"--bootstrap", "--kafka-config"}, path
        else:
            assert {"--bootstrap", "--kafka-config"} <= names, path


def test_every_verb_prints_json_on_request() -> None:
    missing = sorted(p for p, c in VERBS.items() if "--json" not in _options(c))
    assert set(missing) == NO_JSON


def test_crisis_end_does_not_demand_member_states() -> None:
    assert not _options(VERBS["jcu crisis end"])["--member-states"].required
    assert _options(VERBS["jcu crisis declare"])["--member-states"].required


def _explain(capsys: pytest.CaptureFixture[str], *labels: str) -> tuple[int, str, str]:
    argv = ["policy", "explain", "--from", "cert-eu", "--incident", "INC-1", "--no-crisis"]
    argv += ["--json", *labels]
    return run(argv, capsys)


def test_any_spelling_of_a_label_means_the_canonical_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    canonical = _explain(
        capsys,
        *("--type", "Indicator", "--tlp", "CLEAR", "--handling", "H1"),
        *("--category", "malicious-code", "--member-states", "FR,GR"),
    )
    assert canonical[0] == 0, canonical
    other = _explain(
        capsys,
        *("--type", "eu.jcu.v1.indicator", "--tlp", "white", "--handling", "h1"),
        *("--category", "Malicious_Code", "--member-states", "fr,gr"),
    )
    assert other[0] == 0, other
    assert json.loads(other[1]) == json.loads(canonical[1])
    assert "TLP 1.0 WHITE is TLP 2.0 CLEAR" in other[2]


@pytest.mark.parametrize(
    ("labels", "option"),
    [
        (("--type", "Bogus", "--tlp", "GREEN"), "--type"),
        (("--type", "Indicator", "--tlp", "purple"), "--tlp"),
        (("--type", "Indicator", "--tlp", "GREEN", "--handling", "H9"), "--handling"),
        (("--type", "Indicator", "--tlp", "GREEN", "--category", "gossip"), "--category"),
        (("--type", "Indicator", "--tlp", "GREEN", "--member-states", "FR,F1"), "--member-states"),
        (("--type", "Indicator"), "--tlp"),  # missing
    ],
)
def test_a_bad_value_is_one_usage_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], labels: tuple[str, ...], option: str
) -> None:
    code, out, err = _explain(capsys, *labels)
    assert code == 2 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jcu: usage error: ") and option in lines[0]
    assert "jcu policy explain --help" in lines[0]


def test_a_member_state_outside_the_eu_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _explain(
        capsys, "--type", "Indicator", "--tlp", "GREEN", "--member-states", "fr,el,us"
    )
    assert code == 1 and not out
    assert err.strip().splitlines() == [
        "jcu: error: EL, US are not EU Member States: name them by their ISO 3166-1 codes "
        "(FR, DE, ...) (Greece is GR in ISO 3166-1)"
    ]


def test_the_connection_options_hold_for_the_run_and_no_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "kafka.example:9092")
    seen: list[str | None] = []

    @click.command()
    @connection_options
    def probe() -> None:
        seen.append(os.environ.get("KAFKA_BOOTSTRAP"))

    probe.main(["--bootstrap", "127.0.0.1:19092"], standalone_mode=False)
    probe.main([], standalone_mode=False)
    assert seen == ["127.0.0.1:19092", "kafka.example:9092"]
    assert os.environ["KAFKA_BOOTSTRAP"] == "kafka.example:9092"
