"""The options many verbs share, defined once: the same names, metavars, choices and
spellings wherever they appear (tests/broker/cli/test_options.py walks every verb).

Every value is checked against the one vocabulary (broker.vocabulary) and comes out
canonical whatever case it was typed in: `--handling h1` is H1, `--tlp white` is
CLEAR (said on stderr), `--member-states fr,de` is FR,DE.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from broker.errors import ConfigError
from broker.vocabulary import (
    CATEGORIES,
    HANDLING_CODES,
    TLP_LEVELS,
    category,
    handling_code,
    not_member_states,
    tlp_level,
)

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # click's types are generic to the type checker (and from click 8.2 on)
    _Choice = click.Choice[str]
    _ParamType = click.ParamType[str, Any]
else:
    _Choice, _ParamType = click.Choice, click.ParamType


class _VocabularyChoice(_Choice):
    """A click.Choice whose value is looked up in the vocabulary (any case, any of its
    spellings) and comes out canonical; `--help` lists the canonical words."""

    def __init__(self, choices: tuple[str, ...], lookup: Callable[[str], str | None]) -> None:
        super().__init__(choices, case_sensitive=False)
        self._lookup = lookup

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            found = self._lookup(value)
            if found is not None:
                return found
            self.fail(f"{value!r} is not one of {', '.join(self.choices)}", param, ctx)
        return super().convert(value, param, ctx)

    def get_missing_message(self, param: click.Parameter, ctx: click.Context | None) -> str:
        return f"Choose from {', '.join(map(str, self.choices))}."


class _TlpChoice(_VocabularyChoice):
    """TLP 2.0; TLP 1.0 WHITE is read as CLEAR, and the operator is told so."""

    def __init__(self) -> None:
        super().__init__(TLP_LEVELS, tlp_level)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        level = super().convert(value, param, ctx)
        if isinstance(value, str) and value.strip().upper().removeprefix("TLP:") == "WHITE":
            click.echo("jcu: note: TLP 1.0 WHITE is TLP 2.0 CLEAR; labelled CLEAR", err=True)
        return level


class _MemberStates(_ParamType):
    """Comma-separated ISO 3166-1 alpha-2 codes, any case, as `FR,DE`.

    Whether each is an EU Member State is for the verb to say (`eu_member_states`): a
    crisis authority's control point refuses others itself, and audits the refusal.
    """

    name = "member states"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "CC[,CC...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        codes = [v.strip().upper() for v in str(value).split(",") if v.strip()]
        bad = [c for c in codes if len(c) != 2 or not (c.isascii() and c.isalpha())]
        if bad:
            self.fail(
                f"{', '.join(repr(b) for b in bad)}: give ISO 3166-1 alpha-2 codes, such as FR,DE",
                param,
                ctx,
            )
        return ",".join(codes)


def eu_member_states(values: tuple[str, ...] | list[str]) -> list[str]:
    """The codes of `--member-states` (repeatable, comma-separated), each an EU Member State;
    ConfigError, saying which are not, otherwise."""
    codes = [c.strip().upper() for item in values for c in item.split(",") if c.strip()]
    wrong = not_member_states(codes)
    if wrong is not None:
        raise ConfigError(wrong)
    return codes


def _payload_type(value: str) -> str | None:
    from broker.envelope.topics import PAYLOAD_STREAMS

    short = value.strip().rpartition(".")[2].lower()
    return next((t for t in PAYLOAD_STREAMS if t.lower() == short), None)


def _payload_types() -> tuple[str, ...]:
    from broker.envelope.topics import PAYLOAD_STREAMS

    return tuple(PAYLOAD_STREAMS)


TLP = _TlpChoice()
HANDLING = _VocabularyChoice(HANDLING_CODES, handling_code)
CATEGORY = _VocabularyChoice(CATEGORIES, category)
MEMBER_STATES = _MemberStates()


def tlp_option(*, required: bool = False, help: str = "TLP 2.0 label.") -> Callable[[F], F]:
    """`--tlp LEVEL`: any case; WHITE (TLP 1.0) is CLEAR."""
    return click.option(
        "--tlp", required=required, type=TLP, help=help + " WHITE is read as CLEAR."
    )


def handling_option(help: str = "SIENA handling code (repeatable: all apply).") -> Callable[[F], F]:
    return click.option("--handling", multiple=True, type=HANDLING, help=help)


def category_option(
    help: str = "Category of the ENISA taxonomy, attribution or capability (repeatable).",
) -> Callable[[F], F]:
    return click.option("--category", "categories", multiple=True, type=CATEGORY, help=help)


def member_states_option(
    *, required: bool = False, help: str = "Member States affected, comma-separated (FR,DE)."
) -> Callable[[F], F]:
    return click.option(
        "--member-states", multiple=True, required=required, type=MEMBER_STATES, help=help
    )


def payload_type_option(*, required: bool = False, help: str = "Payload type.") -> Callable[[F], F]:
    """`--type`: a payload type of the contract (any case, with or without its namespace)."""
    return click.option(
        "--type",
        "payload_type",
        required=required,
        type=_VocabularyChoice(_payload_types(), _payload_type),
        help=help,
    )


def chunk_option(f: F) -> F:
    """`--chunk`: objects of a file per call to Kafka (connectors.soc.publishing.CHUNK)."""
    return click.option(
        "--chunk",
        type=click.IntRange(1, 10_000),
        default=None,
        metavar="N",
        help="Objects per call to Kafka (each call: one audit record, one batch signature, "
        "progress saved after it). Larger is faster; a stopped run resumes after the last "
        "whole call, and objects sent beyond it are recognised as already sent. Default 500.",
    )(f)


def json_option(help: str = "Print JSON, not a table or text.") -> Callable[[F], F]:
    """`--json`: the same data as the readable output, for scripts."""
    return click.option("--json", "as_json", is_flag=True, help=help)


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """`values` set in the environment (None: left as is) for the verb's run, then restored."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def connection_options(f: F) -> F:
    """`--bootstrap` and `--kafka-config`: every verb that talks to Kafka takes both.

    They stand for KAFKA_BOOTSTRAP and JCU_KAFKA_CONFIG for this one run, so every client
    the verb builds (through broker.config) connects as they say.
    """

    @functools.wraps(f)
    def run(*args: Any, bootstrap: str | None, kafka_config: Path | None, **kwargs: Any) -> Any:
        wanted = {
            "KAFKA_BOOTSTRAP": bootstrap,
            "JCU_KAFKA_CONFIG": None if kafka_config is None else str(kafka_config),
        }
        with _environment(wanted):
            return f(*args, **kwargs)

    run = click.option(
        "--kafka-config",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        metavar="FILE",
        help="Kafka client file: TLS and credentials (default: JCU_KAFKA_CONFIG, else "
        "$JCU_HOME/kafka.toml).",
    )(run)
    run = click.option(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP, the Kafka client file, or "
        "the local broker).",
    )(run)
    return run  # type: ignore[return-value]
