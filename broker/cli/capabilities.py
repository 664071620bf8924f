"""`jcu capabilities publish FILE | list | withdraw ID`: the capability inventory.

Each entry is sealed for exactly the organisations the policy lets see it (rule 13:
operational participants all; members only entries marked shareable; supporting
participants none) on the compacted `jcu.capabilities`, signed by its owner. An entry
stands for 30 days; publish it again to keep it listed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import yaml

from broker.assist.inventory import (
    CapabilityEntry,
    CapabilityPublisher,
    InventoryView,
    Published,
    load_own,
    read_inventory,
)
from broker.cli._node import as_option, node_context
from broker.cli._options import connection_options
from broker.cli._output import console, emit_json, table
from broker.cli._parse import choice_of, hours, kind_of, when
from broker.clock import utc_now
from broker.errors import ConfigError
from broker.pep.context import PepContext
from broker.trust.registry import Participant
from broker.vocabulary import TLP_LEVELS, tlp_level

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def capabilities() -> None:
    """The capability inventory: what each participant could deploy for mutual assistance."""


def _legal_basis(who: Participant, categories: tuple[str, ...], given: Any) -> str:
    if given:
        return str(given)
    bases = who.legal_basis_for(set(categories)) or tuple(m.legal_basis for m in who.mandates)
    if not bases:
        raise ConfigError(f"{who.id} has no mandate to deploy anything under")
    return bases[0]


def _entries(path: Path, ctx: PepContext, me: str) -> list[tuple[CapabilityEntry, str]]:
    """Entries from a YAML/JSON file: one mapping, a list, or {capabilities: [...]}."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {exc}") from None
    items = data.get("capabilities", [data]) if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected an entry, a list of them, or capabilities: [...]")
    who = ctx.registry.get(me)
    now = utc_now()
    out = []
    for i, raw in enumerate(items, 1):
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: entry {i} is not a mapping")
        where = f"{path}: entry {raw.get('id', i)}"
        try:
            categories = tuple(str(c) for c in raw.get("categories") or ())
            shareable = raw.get("shareable")
            given = str(raw.get("tlp") or ("GREEN" if shareable else "AMBER"))
            tlp = tlp_level(given) or ""  # any spelling the command line takes, WHITE too
            if not tlp:
                raise ConfigError(f"tlp {given!r} is not one of {', '.join(TLP_LEVELS)}")
            notice = raw.get("notice", raw.get("notice_hours"))
            if notice is None:
                raise ConfigError("say how soon it can start: notice: 12h")
            entry = CapabilityEntry(
                id=str(raw["id"]),
                owner=me,
                kind=kind_of(str(raw["kind"])),
                title=str(raw["title"]),
                notice_hours=hours(str(notice), "notice"),
                legal_basis=_legal_basis(who, categories, raw.get("legal_basis")),
                updated=now,
                description=str(raw.get("description") or ""),
                skills=tuple(str(s) for s in raw.get("skills") or ()),
                languages=tuple(str(x).lower() for x in raw.get("languages") or ()),
                capacity=int(raw.get("capacity", 1)),
                deployment=choice_of(str(raw.get("deployment", "either")), _DEPLOY, "deployment"),
                available_from=when(_opt(raw.get("available_from")), "available_from"),
                available_until=when(_opt(raw.get("available_until")), "available_until"),
                categories=categories,
            )
        except KeyError as exc:
            raise ConfigError(f"{where}: needs {exc.args[0]}") from None
        except (ConfigError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        out.append((entry, tlp))
    return out


_DEPLOY = ("REMOTE", "ON_SITE", "EITHER")


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _print_published(results: list[Published], as_json: bool) -> None:
    if as_json:
        emit_json([r.to_json() for r in results])
        return
    out = console()
    for r in results:
        verb = "withdrawn" if r.entry.withdrawn else "published"
        who = ", ".join(r.recipients) or "nobody"
        out.print(f"{r.entry.key} (TLP:{r.tlp}) {verb}; visible to {len(r.recipients)}: {who}")


@capabilities.command()
@as_option("Owning participant")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@_json_option
@connection_options
def publish(participant: str | None, path: Path, as_json: bool) -> None:
    """Publish (or refresh) entries from FILE (YAML or JSON): id, kind, title, skills,
    languages, capacity, deployment, notice, available_from/until, categories, legal_basis
    (default: the mandate covering the categories), shareable (members may see it)."""
    ctx, me = node_context(participant)
    entries = _entries(path, ctx, me)

    async def run() -> list[Published]:
        async with CapabilityPublisher(me, ctx) as pub:
            return await pub.publish(entries)

    _print_published(asyncio.run(run()), as_json)


@capabilities.command()
@as_option("Owning participant")
@click.argument("entry_id", metavar="ID")
@_json_option
@connection_options
def withdraw(participant: str | None, entry_id: str, as_json: bool) -> None:
    """Withdraw one of this organisation's entries (everyone who could see it is told)."""
    ctx, me = node_context(participant)

    async def run() -> Published:
        async with CapabilityPublisher(me, ctx) as pub:
            return await pub.withdraw(entry_id)

    _print_published([asyncio.run(run())], as_json)


@capabilities.command("list")
@as_option("Reading participant")
@click.option("--mine", is_flag=True, help="Only this organisation's own entries.")
@_json_option
@connection_options
def list_(participant: str | None, mine: bool, as_json: bool) -> None:
    """The entries this node may see (and its own), newest version of each."""
    ctx, me = node_context(participant)
    own = load_own(ctx, me)
    view = InventoryView() if mine else asyncio.run(read_inventory(ctx, me))
    rows: list[dict[str, Any]] = [
        {**e.to_json(), "key": e.key, "tlp": tlp, "shareable": tlp in ("CLEAR", "GREEN")}
        for e, tlp in own.values()
    ]
    rows += [x.to_json() for x in view.listed()]
    if as_json:
        emit_json(
            {
                "entries": rows,
                "refused": [
                    {"key": r.key, "reason": r.reason, "error": r.error} for r in view.refused
                ],
                "not_visible": view.hidden,
                "expired": view.expired,
            }
        )
        return
    out = console()
    out.print(
        table(
            f"capabilities {me} can see",
            ["capability", "kind", "title", "skills", "languages", "capacity", "notice", "TLP"],
            [
                [
                    r["key"],
                    str(r["kind"]).lower().replace("_", " "),
                    r["title"],
                    ", ".join(r["skills"]) or "-",
                    ", ".join(r["languages"]) or "-",
                    r["capacity"],
                    f"{r['notice_hours']} h",
                    r["tlp"],
                ]
                for r in rows
            ],
        )
    )
    if view.hidden:
        out.print(f"{view.hidden} entries are sealed for others (the policy keeps them from {me})")
    for r in view.refused:
        out.print(f"refused {r.key or '?'} ({r.reason}): {r.error}")
