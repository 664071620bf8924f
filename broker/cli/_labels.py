"""The label options every verb that shares a record takes, and the Labels they build."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from broker.cli._options import (
    category_option,
    eu_member_states,
    handling_option,
    member_states_option,
    tlp_option,
)
from broker.envelope import Labels
from broker.errors import ConfigError
from broker.record_json import from_json
from broker.schemas import SchemaStore

F = TypeVar("F", bound=Callable[..., Any])


def split_csv(values: tuple[str, ...] | list[str]) -> list[str]:
    """`--to a,b --to c` -> [a, b, c]."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def label_options(*, tlp_required: bool = True) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        options = [
            tlp_option(required=tlp_required),
            handling_option(),
            category_option(),
            click.option(
                "--personal-data",
                is_flag=True,
                help="Mark as personal data (set anyway when a personal-data field is filled).",
            ),
            click.option("--exercise", default=None, help="Exercise id: exercise traffic only."),
            click.option("--incident", default=None, help="Incident reference."),
            member_states_option(),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def labelled_record(
    store: SchemaStore, payload_type: str, raw: bytes, source: str, **label_opts: Any
) -> tuple[dict[str, Any], Labels]:
    """A JSON record of `payload_type` and its labels, from `--tlp`-style options.

    One clear error for input that is not JSON or does not fit the schema.
    """
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source} is not a JSON record: {exc}") from None
    record = from_json(store, payload_type, obj)
    return record, build_labels(store, payload_type, record, **label_opts)


def build_labels(
    store: SchemaStore,
    payload_type: str,
    record: dict[str, Any],
    *,
    tlp: str,
    handling: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    personal_data: bool = False,
    exercise: str | None = None,
    incident: str | None = None,
    member_states: tuple[str, ...] = (),
) -> Labels:
    """Labels from the options; the personal-data flag is set whenever a marked field is filled."""
    personal = personal_data or store.has_personal_data(payload_type, record)
    return Labels.of(
        tlp,
        handling_codes=handling,
        categories=categories,
        personal_data=personal,
        exercise=exercise,
        incident=incident,
        member_states=eu_member_states(member_states),
    )
