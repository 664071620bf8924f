"""Shared output helpers for CLI verbs: JSON or a rich table, same data."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
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


def _dumps(value: Any, indent: str) -> str:
    """`value` as `emit_json` writes it, nested `indent` deep."""
    return json.dumps(value, indent=2, sort_keys=True, default=str).replace("\n", "\n" + indent)


def emit_json_items(head: Mapping[str, Any], key: str, items: Iterable[Any]) -> None:
    """What `emit_json({**head, key: list(items)})` prints, byte for byte, each item encoded
    as it comes: a report of a million objects is never one tree and one string in memory
    (as one, 100,000 objects' report held 2 GB)."""
    keys = sorted([*head, key])
    out = sys.stdout
    out.write("{")
    for n, name in enumerate(keys):
        out.write(f"\n  {json.dumps(name)}: ")
        if name != key:
            out.write(_dumps(head[name], "  "))
        else:
            first = True
            for item in items:
                out.write("[\n    " if first else ",\n    ")
                out.write(_dumps(item, "    "))
                first = False
            out.write("[]" if first else "\n  ]")
        if n < len(keys) - 1:
            out.write(",")
    out.write("\n}\n")
    out.flush()


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t
