"""Shared output helpers for CLI verbs: JSON or a rich table, same data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # rich is imported by whoever prints a table, not by every verb
    from rich.console import Console
    from rich.table import Table


def console(*, stderr: bool = False) -> Console:
    """A console for tables; when not a terminal (CI logs, pipes), wide enough not to wrap.
    On stderr when stdout is for `--json`."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else max(probe.width, 160)
    return Console(highlight=False, soft_wrap=False, width=width, stderr=stderr)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t
