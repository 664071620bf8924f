"""`jcu assist request | offers | offer | accept | status | close | list | show | match`.

Mutual assistance, from a Member State's request to a deployed team (docs/assistance.md).
Every verb acts as this node's organisation, first reads what has arrived on its
assistance stream (`--no-sync` skips that), and checks the case's state machine before
it sends anything: a refusal is one line, says why, exits 1 and is audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from broker.assist import (
    AssistDesk,
    CaseSummary,
    CaseView,
    Need,
    OfferDraft,
    RequestDraft,
    Sent,
)
from broker.assist.inventory import load_own, read_inventory
from broker.assist.matching import rank
from broker.assist.steps import DEPLOYMENTS, OUTCOMES, PHASES, URGENCIES, Contact
from broker.cli._labels import split_csv
from broker.cli._node import as_option, node_context
from broker.cli._options import (
    category_option,
    connection_options,
    eu_member_states,
    member_states_option,
    tlp_option,
)
from broker.cli._output import console, emit_json, table
from broker.cli._parse import choice_of, hours, kind_of, when, word
from broker.clock import utc_now
from broker.errors import ConfigError
from broker.pep.context import PepContext

T = TypeVar("T")


def _run(ctx: PepContext, me: str, sync: bool, work: Callable[[AssistDesk], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AssistDesk(ctx, me) as desk:
            if sync:
                await desk.sync()
            return await work(desk)

    return asyncio.run(main())


def _sync_option(f: Any) -> Any:
    return click.option(
        "--no-sync",
        "no_sync",
        is_flag=True,
        help="Do not read what has arrived on the assistance stream first.",
    )(f)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _print_sent(sent: Sent, what: str, as_json: bool) -> None:
    if as_json:
        emit_json(sent.to_json())
        return
    out = console()
    state = f"; the case is now {sent.case.state}" if sent.case is not None else ""
    to = ", ".join(sent.recipients) or "nobody else"
    out.print(f"{what} {sent.message_id} sent to {to}{state}")


@click.group()
def assist() -> None:
    """Mutual assistance: request help on behalf of Member States, offer, accept, report,
    close; `list` is the board of cases this node knows."""


# -- request ----------------------------------------------------------------------------


def _need_from(spec: Mapping[str, Any], n: int, defaults: Mapping[str, Any]) -> Need:
    def get(key: str, default: Any = None) -> Any:
        return spec.get(key, defaults.get(key, default))

    notice = get("max_notice")
    return Need(
        id=str(spec.get("id") or f"n{n}"),
        kind=kind_of(str(spec["kind"])),
        categories=tuple(get("categories", ()) or ()),
        skills=tuple(str(s) for s in get("skills", ()) or ()),
        languages=tuple(str(x).lower() for x in get("languages", ()) or ()),
        people=int(get("people", 1)),
        deployment=choice_of(str(get("deployment", "either")), DEPLOYMENTS, "deployment"),
        max_notice_hours=hours(str(notice), "max notice") if notice is not None else None,
        needed_from=when(_opt(spec.get("from")), "from"),
        needed_until=when(_opt(spec.get("until")), "until"),
        note=str(spec.get("note") or ""),
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _need_spec(value: str) -> dict[str, Any]:
    """`KIND[:skill,skill]` from --need."""
    kind, _, skills = value.partition(":")
    return {"kind": kind, "skills": [s.strip() for s in skills.split(",") if s.strip()]}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping (member_states, needs, ...)")
    return data


@assist.command()
@as_option("Requesting organisation (acts for the Member States named)")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A request in YAML or JSON (member_states, needs, description, ...); flags win.",
)
@member_states_option(
    help="Member States on whose behalf, comma-separated (FR,DE): those it acts for."
)
@click.option(
    "--need",
    "needs",
    multiple=True,
    metavar="KIND[:SKILL,...]",
    help="What is needed: incident-response, forensics, malware-analysis, threat-intelligence, "
    "rapid-reaction-team, vulnerability-assessment, crisis-coordination, other; skills after "
    "':'. Repeatable.",
)
@category_option(
    help="What the incident is (ENISA taxonomy; repeatable): who may receive and offer."
)
@click.option("--language", "languages", multiple=True, help="Working language (ISO 639-1).")
@click.option("--people", type=click.IntRange(1, 1000), default=None, help="People per need.")
@click.option(
    "--deployment",
    type=click.Choice(["on-site", "remote", "either"]),
    default=None,
    help="Where the teams work (default either).",
)
@click.option("--max-notice", default=None, help="Longest acceptable notice: 24h, 2d.")
@click.option("--summary", "description", default=None, help="The situation and the ask.")
@click.option("--incident", default=None, help="Incident reference (flagged if under crisis).")
@click.option(
    "--urgency",
    type=click.Choice([u.lower() for u in URGENCIES]),
    default=None,
    help="routine, priority (default) or immediate.",
)
@tlp_option(help="TLP of the request and every later step (default AMBER).")
@click.option("--deadline", default=None, help="Offers wanted before: ISO time or 6h, 1d.")
@click.option(
    "--exercise",
    default=None,
    help="Exercise id: a drill, on exercise topics, among the organisations enrolled in it.",
)
@click.option("--contact-name", default=None, help="Who to call (personal data).")
@click.option("--contact-email", default=None)
@click.option("--contact-phone", default=None)
@_sync_option
@_json_option
@connection_options
def request(
    participant: str | None,
    path: Path | None,
    member_states: tuple[str, ...],
    needs: tuple[str, ...],
    categories: tuple[str, ...],
    languages: tuple[str, ...],
    people: int | None,
    deployment: str | None,
    max_notice: str | None,
    description: str | None,
    incident: str | None,
    urgency: str | None,
    tlp: str | None,
    deadline: str | None,
    exercise: str | None,
    contact_name: str | None,
    contact_email: str | None,
    contact_phone: str | None,
    no_sync: bool,
    as_json: bool,
) -> None:
    """Ask for help on behalf of Member States: sealed for the operational participants the
    policy allows (every one, for AMBER, during a crisis declared for the incident)."""
    data = _read_file(path) if path is not None else {}
    states = eu_member_states(
        split_csv(member_states) or [str(m) for m in data.get("member_states") or ()]
    )
    if not states:
        raise ConfigError("name the Member States on whose behalf you ask: --member-states FR")
    defaults = {
        k: v
        for k, v in {
            "categories": list(categories) or None,
            "languages": [x.lower() for x in split_csv(languages)] or None,
            "people": people,
            "deployment": deployment,
            "max_notice": max_notice,
        }.items()
        if v is not None
    }
    specs = [_need_spec(n) for n in needs] or list(data.get("needs") or ())
    if not specs:
        raise ConfigError("say what you need: --need incident-response:ransomware (repeatable)")
    try:
        drafted = tuple(_need_from(s, i, defaults) for i, s in enumerate(specs, 1))
    except KeyError as exc:
        raise ConfigError(f"each need names its {exc.args[0]}") from None
    summary = description or data.get("description")
    if not summary:
        raise ConfigError("describe the situation and the ask in a few words: --summary TEXT")
    contact_data = data.get("contact") or {}
    name = contact_name or contact_data.get("name")
    contact = (
        Contact(
            str(name),
            contact_data.get("organisation"),
            contact_email or contact_data.get("email"),
            contact_phone or contact_data.get("phone"),
        )
        if name
        else None
    )
    draft = RequestDraft(
        member_states=tuple(m.upper() for m in states),
        needs=drafted,
        description=str(summary),
        urgency=(urgency or str(data.get("urgency", "priority"))).upper(),
        tlp=(tlp or str(data.get("tlp", "AMBER"))).upper(),
        incident=incident or _opt(data.get("incident")),
        categories=tuple(categories) or tuple(data.get("categories") or ()),
        deadline=when(deadline or _opt(data.get("deadline")), "--deadline"),
        contact=contact,
        exercise=exercise or _opt(data.get("exercise")),
    )
    ctx, me = node_context(participant)
    sent = _run(ctx, me, not no_sync, lambda desk: desk.request(draft))
    if as_json:
        emit_json(sent.to_json())
        return
    out = console()
    case = sent.case
    flag = " CRISIS" if case is not None and case.request.crisis else ""
    about = f", incident {draft.incident}" if draft.incident else ""
    out.print(
        f"request {sent.case_id} sent on behalf of {', '.join(draft.member_states)} "
        f"({draft.urgency}, TLP:{draft.tlp}{about}){flag}"
    )
    out.print(f"  to {len(sent.recipients)}: {', '.join(sent.recipients) or 'nobody'}")
    short = sent.case_id[:8]
    out.print(
        f"next: `jcu assist offers {short}` as offers arrive; `jcu assist match {short}` "
        "for who could help"
    )


# -- board and views --------------------------------------------------------------------


def open_requests_by_incident(
    ctx: PepContext, me: str, *, sync: bool = True
) -> dict[str, list[CaseSummary]]:
    """The open assistance cases this node knows, by incident (the crisis board shows them)."""

    async def work(desk: AssistDesk) -> list[CaseView]:
        return desk.cases()

    out: dict[str, list[CaseSummary]] = {}
    for view in _run(ctx, me, sync, work):
        if view.case.is_open and view.case.request.incident:
            out.setdefault(view.case.request.incident, []).append(view.summary(me))
    return out


_URGENCY_ORDER = {"IMMEDIATE": 0, "PRIORITY": 1, "ROUTINE": 2}


@assist.command("list")
@as_option("Organisation whose cases to list")
@click.option("--all", "show_all", is_flag=True, help="Closed cases too.")
@_sync_option
@_json_option
@connection_options
def list_(participant: str | None, show_all: bool, no_sync: bool, as_json: bool) -> None:
    """The board: every assistance case this node knows and its state (open ones first,
    the most urgent first)."""
    ctx, me = node_context(participant)

    async def work(desk: AssistDesk) -> list[CaseView]:
        return desk.cases()

    views = _run(ctx, me, not no_sync, work)
    summaries = [v.summary(me) for v in views if show_all or v.case.is_open]
    summaries.sort(
        key=lambda s: (s.state == "CLOSED", not s.crisis, _URGENCY_ORDER.get(s.urgency, 9))
    )
    if as_json:
        emit_json([s.to_json() for s in summaries])
        return
    if not summaries:
        console().print(f"{me} knows no {'' if show_all else 'open '}assistance case")
        return
    console().print(
        table(
            f"assistance cases known to {me}",
            ["request", "state", "urgency", "by", "for", "incident", "offers", "accepted", "role"],
            [
                [
                    s.id[:8] + (" CRISIS" if s.crisis else ""),
                    s.state,
                    s.urgency,
                    s.requester,
                    ",".join(s.member_states),
                    s.incident or "-",
                    s.offers,
                    ", ".join(s.accepted) or "-",
                    s.role,
                ]
                for s in summaries
            ],
        )
    )


def _view_json(view: CaseView) -> dict[str, Any]:
    c = view.case
    return {
        "id": c.id,
        "state": c.state,
        "requester": c.requester,
        "member_states": list(c.request.member_states),
        "incident": c.request.incident,
        "crisis": c.request.crisis,
        "urgency": c.request.urgency,
        "tlp": c.labels.tlp,
        "description": c.request.description,
        "needs": [
            {
                "id": n.id,
                "kind": n.kind,
                "categories": list(n.categories),
                "skills": list(n.skills),
                "languages": list(n.languages),
                "people": n.people,
                "deployment": n.deployment,
                "max_notice_hours": n.max_notice_hours,
            }
            for n in c.request.needs
        ],
        "offers": [_offer_json(view, o.id) for o in c.offers],
        "accepted": [{"offer": o, "offerer": who} for o, who in c.accepted],
        "deployed": sorted(c.deployed),
        "updates": [
            {"author": u.author, "phase": u.phase, "note": u.note, "time": u.time.isoformat()}
            for u in c.updates
        ],
        "closure": (
            {
                "by": c.closure.closed_by,
                "outcome": c.closure.outcome,
                "report": c.closure.report,
                "time": c.closure.closed.isoformat(),
            }
            if c.closure is not None
            else None
        ),
        "history": [e.to_json() for e in view.history],
    }


def _offer_json(view: CaseView, offer_id: str) -> dict[str, Any]:
    o = view.case.offer(offer_id)
    assert o is not None  # noqa: S101 - narrows for mypy: ids come from the case
    accepted = any(oid == offer_id for oid, _ in view.case.accepted)
    return {
        "id": o.id,
        "offerer": o.offerer,
        "kind": o.kind,
        "needs": list(o.needs) or [n.id for n in view.case.request.needs],
        "capabilities": list(o.capabilities),
        "people": o.people,
        "deployment": o.deployment,
        "notice_hours": o.notice_hours,
        "languages": list(o.languages),
        "note": o.note,
        "offered": o.offered.isoformat(),
        "accepted": accepted,
    }


@assist.command()
@as_option("Organisation whose view to show")
@click.argument("request_id", metavar="REQUEST")
@_sync_option
@_json_option
@connection_options
def show(participant: str | None, request_id: str, no_sync: bool, as_json: bool) -> None:
    """One case: the request, its needs, offers, acceptance, status updates, closure, and any
    step this node refused (REQUEST: the id or its first characters)."""
    ctx, me = node_context(participant)

    async def work(desk: AssistDesk) -> CaseView:
        return desk.view(request_id)

    view = _run(ctx, me, not no_sync, work)
    if as_json:
        emit_json(_view_json(view))
        return
    c, out = view.case, console()
    r = c.request
    out.print(
        f"request {c.id} by {c.requester} for {', '.join(r.member_states)}: {c.state}"
        f"{' (CRISIS)' if r.crisis else ''}"
    )
    out.print(f"  {r.urgency}, TLP:{c.labels.tlp}, incident {r.incident or '-'}: {r.description}")
    out.print(
        table(
            "needs",
            ["need", "kind", "categories", "skills", "languages", "people", "where", "notice"],
            [
                [
                    n.id,
                    word(n.kind),
                    ", ".join(n.categories or c.labels.categories),
                    ", ".join(n.skills) or "-",
                    ", ".join(n.languages) or "-",
                    n.people,
                    word(n.deployment),
                    f"<= {n.max_notice_hours} h" if n.max_notice_hours is not None else "-",
                ]
                for n in r.needs
            ],
        )
    )
    if c.offers:
        _offers_table(view)
    for u in c.updates:
        out.print(f"  {u.time:%Y-%m-%d %H:%M} {u.author} {u.phase}: {u.note}")
    if c.closure is not None:
        out.print(
            f"  closed {c.closure.closed:%Y-%m-%d %H:%M} by {c.closure.closed_by}, "
            f"{c.closure.outcome}: {c.closure.report}"
        )
    for e in view.refused:
        out.print(f"  refused {e.name} from {e.sender} ({e.verdict}): {e.error}")


def _offers_table(view: CaseView) -> None:
    rows = []
    for o in view.case.offers:
        j = _offer_json(view, o.id)
        rows.append(
            [
                o.id[:8],
                o.offerer,
                word(o.kind),
                ", ".join(j["needs"]),
                o.people,
                f"{o.notice_hours} h",
                word(o.deployment),
                ", ".join(o.languages) or "-",
                "accepted" if j["accepted"] else "open",
                o.note or "-",
            ]
        )
    console().print(
        table(
            f"offers on {view.case.id[:8]}",
            [
                "offer",
                "from",
                "kind",
                "needs",
                "people",
                "notice",
                "where",
                "languages",
                "",
                "note",
            ],
            rows,
        )
    )


@assist.command()
@as_option("Requesting organisation")
@click.argument("request_id", metavar="REQUEST")
@_sync_option
@_json_option
@connection_options
def offers(participant: str | None, request_id: str, no_sync: bool, as_json: bool) -> None:
    """The offers made on a request (the requester sees every one)."""
    ctx, me = node_context(participant)

    async def work(desk: AssistDesk) -> CaseView:
        return desk.view(request_id)

    view = _run(ctx, me, not no_sync, work)
    if as_json:
        emit_json([_offer_json(view, o.id) for o in view.case.offers])
        return
    if not view.case.offers:
        console().print(f"no offer on {view.case.id[:8]} yet ({view.case.state})")
        return
    _offers_table(view)
    console().print(f"accept with `jcu assist accept {view.case.id[:8]} OFFER...`")


# -- the steps --------------------------------------------------------------------------


@assist.command()
@as_option("Offering organisation (an operational participant)")
@click.argument("request_id", metavar="REQUEST")
@click.option("--need", "needs", multiple=True, help="Need id answered (default: all).")
@click.option(
    "--capability",
    "capabilities",
    multiple=True,
    help="Id of one of this organisation's inventory entries behind the offer: its kind, "
    "languages, notice and deployment are the defaults.",
)
@click.option("--kind", default=None, help="What is offered (default: the capability's).")
@click.option("--people", type=click.IntRange(1, 1000), default=None)
@click.option("--notice", default=None, help="Notice from acceptance to work starting: 12h.")
@click.option("--deployment", type=click.Choice(["on-site", "remote", "either"]), default=None)
@click.option("--from", "available_from", default=None, help="Available from (ISO or 6h).")
@click.option("--until", "available_until", default=None, help="Available until (ISO or 7d).")
@click.option("--language", "languages", multiple=True, help="Working language (repeatable).")
@click.option("--note", default="", help="A word for the requester.")
@click.option("--contact-name", default=None, help="The team lead (personal data).")
@click.option("--contact-email", default=None)
@_sync_option
@_json_option
@connection_options
def offer(
    participant: str | None,
    request_id: str,
    needs: tuple[str, ...],
    capabilities: tuple[str, ...],
    kind: str | None,
    people: int | None,
    notice: str | None,
    deployment: str | None,
    available_from: str | None,
    available_until: str | None,
    languages: tuple[str, ...],
    note: str,
    contact_name: str | None,
    contact_email: str | None,
    no_sync: bool,
    as_json: bool,
) -> None:
    """Offer help on a request (sealed to the requester alone). Only an operational
    participant whose mandate covers the needs it answers may offer."""
    ctx, me = node_context(participant)
    own = load_own(ctx, me)
    entries = []
    for cid in capabilities:
        if cid not in own:
            mine = ", ".join(sorted(own)) or "none published from this node"
            raise ConfigError(f"{me} has no capability {cid!r} ({mine})")
        entries.append(own[cid][0])
    first = entries[0] if entries else None
    if kind is None and first is None:
        raise ConfigError("say what you offer: --kind incident-response, or --capability ID")
    if notice is None and first is None:
        raise ConfigError("say how soon the team can start: --notice 12h")
    draft = OfferDraft(
        kind=kind_of(kind) if kind else first.kind if first else "OTHER",
        notice_hours=hours(notice, "--notice") if notice else first.notice_hours if first else 0,
        needs=tuple(split_csv(needs)),
        capabilities=tuple(capabilities),
        people=people or (sum(e.capacity for e in entries) if entries else 1),
        deployment=(
            choice_of(deployment, DEPLOYMENTS, "deployment")
            if deployment
            else first.deployment
            if first
            else "EITHER"
        ),
        available_from=when(available_from, "--from"),
        available_until=when(available_until, "--until"),
        languages=tuple(x.lower() for x in split_csv(languages))
        or tuple(dict.fromkeys(x for e in entries for x in e.languages)),
        note=note,
        contact=Contact(contact_name, me, contact_email) if contact_name else None,
    )
    sent = _run(ctx, me, not no_sync, lambda desk: desk.offer(request_id, draft))
    _print_sent(sent, "offer", as_json)


@assist.command()
@as_option("Requesting organisation")
@click.argument("request_id", metavar="REQUEST")
@click.argument("offer_ids", metavar="OFFER...", nargs=-1, required=True)
@click.option("--note", default="", help="A word for the offerers.")
@_sync_option
@_json_option
@connection_options
def accept(
    participant: str | None,
    request_id: str,
    offer_ids: tuple[str, ...],
    note: str,
    no_sync: bool,
    as_json: bool,
) -> None:
    """Accept one or more offers (ids or their first characters): every offerer learns
    whether its offer was taken. Only the requester may."""
    ctx, me = node_context(participant)
    sent = _run(ctx, me, not no_sync, lambda desk: desk.accept(request_id, offer_ids, note))
    _print_sent(sent, "acceptance", as_json)


@assist.command()
@as_option("A party to the case (the requester or an accepted offerer)")
@click.argument("request_id", metavar="REQUEST")
@click.option(
    "--phase",
    type=click.Choice([p.lower() for p in PHASES]),
    default="update",
    show_default=True,
    help="deploying / deployed / completed / withdrawn: where your team is (accepted "
    "offerers); update: news.",
)
@click.option("--note", default="", help="What happened.")
@_sync_option
@_json_option
@connection_options
def status(
    participant: str | None,
    request_id: str,
    phase: str,
    note: str,
    no_sync: bool,
    as_json: bool,
) -> None:
    """Report deployment and progress to the case's other parties (until it is closed)."""
    ctx, me = node_context(participant)
    sent = _run(ctx, me, not no_sync, lambda desk: desk.status(request_id, phase.upper(), note))
    _print_sent(sent, f"status update ({phase})", as_json)


@assist.command()
@as_option("Requesting organisation")
@click.argument("request_id", metavar="REQUEST")
@click.option(
    "--outcome",
    type=click.Choice([o.lower().replace("_", "-") for o in OUTCOMES]),
    required=True,
    help="How it ended.",
)
@click.option("--report", required=True, help="A short report: what was done, what is left.")
@_sync_option
@_json_option
@connection_options
def close(
    participant: str | None,
    request_id: str,
    outcome: str,
    report: str,
    no_sync: bool,
    as_json: bool,
) -> None:
    """Close a request with a short report; everyone it reached learns it is closed, and
    nothing may follow. Only the requester may."""
    ctx, me = node_context(participant)
    result = outcome.upper().replace("-", "_")
    sent = _run(ctx, me, not no_sync, lambda desk: desk.close(request_id, result, report))
    _print_sent(sent, "closure", as_json)


# -- matching ---------------------------------------------------------------------------


@assist.command()
@as_option("Organisation whose view of the inventory to use")
@click.argument("request_id", metavar="REQUEST")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True)
@_sync_option
@_json_option
@connection_options
def match(participant: str | None, request_id: str, top: int, no_sync: bool, as_json: bool) -> None:
    """Rank the capability inventory entries this node can see against the request's needs
    (kind, skills, languages, availability, notice, deployment, capacity) and say why."""
    ctx, me = node_context(participant)

    async def work(desk: AssistDesk) -> tuple[CaseView, Any]:
        view = desk.view(request_id)
        inventory = await read_inventory(ctx, me)
        return view, inventory

    view, inventory = _run(ctx, me, not no_sync, work)
    entries = [x.entry for x in inventory.listed()] + [e for e, _ in load_own(ctx, me).values()]
    ranked = rank(view.case.request, view.case.labels.categories, entries, ctx.registry, utc_now())
    if as_json:
        emit_json({need: [m.to_json() for m in ms[:top]] for need, ms in ranked.items()})
        return
    out = console()
    if not entries:
        out.print(f"{me} sees no capability inventory entry (`jcu capabilities list`)")
        return
    for need in view.case.request.needs:
        matches = ranked[need.id][:top]
        out.print(
            table(
                f"need {need.id}: {need.kind.lower().replace('_', ' ')}",
                ["#", "capability", "score", "why"],
                [
                    [
                        i,
                        m.entry.key + ("" if m.eligible else " (cannot offer)"),
                        f"{m.score:.2f}",
                        m.why(),
                    ]
                    for i, m in enumerate(matches, 1)
                ],
            )
        )
