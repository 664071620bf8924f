"""`jcu demo`: the whole sharing scenario on a local Kafka, from nothing.

Kafka starts with the contract's topics, and the federation is set up as
separate organisations would: the registry authority in a home of its own, a
node per organisation (its own keys and nothing else, a registration request),
every request approved against the fingerprint its node shows, a signed
registry snapshot exported and published on jcu.registry. Then, each
organisation acting from its own node:

1. the French national SOC publishes the scenario's STIX bundles, MISP
   events and indicator CSV at different TLP levels (SOC connector): the
   fictitious "Operation Night Ward" of examples/ (shipped with the package),
   or every file under stix/, misp/ and csv/ of `--fixtures DIR`/JCU_FIXTURES;
2. CERT-EU publishes an AMBER incident report that carries personal data;
3. Europol EC3 sends a SIENA-style H2 case message to two named recipients;
4. EU-CyCLONe declares a crisis for the incident; CERT-EU's AMBER update
   about it now reaches every operational participant;
4b. during the crisis, a mutual-assistance episode (`_demo_assist`): the
   capability inventory, the French SOC's request on behalf of France,
   matching, offers (one refused: no mandate), acceptance, deployment;
5. ENISA publishes a TLP:CLEAR situation report;
6. ENISA (STIX), an ISAC (MISP), EEAS (JSON lines) and EDA (JSON lines)
   subscribe, CERT-EU reads its SIENA mailbox;

and it ends with who received what, the receipts, two witnesses cosigning the
audit logs, `jcu audit verify --witnesses 1`, the files under demo-out/ (with
EDA's and ENISA's situation reports as PDF), and the address of the operator
console on ENISA's node, which `--serve` keeps serving until interrupted. This
module is part of the CLI, the composition root:
the one place that puts broker and connectors together.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from broker import config
from broker.cli._demo_assist import Episode, assistance_episode, report_assistance
from broker.cli._options import json_option
from broker.cli._output import console, emit_json, table
from broker.cli._workflows import node_workflows
from broker.envelope import Labels
from broker.errors import ConfigError
from broker.kafka.connection import KafkaConnection
from broker.kafka.local import LocalKafka, free_ports
from broker.pep import Publisher, PublishResult, Subscriber
from broker.pep.context import PepContext
from broker.trust.federation import Federation
from broker.trust.registry import load_registry

INCIDENT = "INC-2026-0042"

#: One file the SOC publishes: (path under the samples dir, default TLP for what carries no
#: marking, categories added to the file's own, named recipients).
SocInput = tuple[str, str, tuple[str, ...], tuple[str, ...]]
#: The scenario on the shipped examples (examples/README.md): every TLP level, a stricter
#: granular marking, MISP objects, a CSV, and a RED event for two named recipients.
SOC_INPUTS: tuple[SocInput, ...] = (
    ("stix/vpn-exploitation-indicators.json", "CLEAR", ("malicious-code",), ()),
    ("stix/night-ward-campaign-report.json", "GREEN", ("malicious-code",), ()),
    ("stix/heronloader-c2-with-coa.json", "AMBER", ("malicious-code",), ()),
    ("stix/invoice-lure-sighting.json", "AMBER+STRICT", ("malicious-code",), ()),
    ("misp/glassward-ransomware.json", "GREEN", ("malicious-code",), ()),
    ("misp/hospital-intrusion-objects.json", "AMBER", ("malicious-code",), ()),
    ("misp/energy-portal-compromise.json", "RED", ("intrusions",), ("enisa", "isac-energy")),
    ("csv/night-ward-indicators.csv", "GREEN", ("malicious-code",), ()),
)
#: What other data is published with: its own markings, else this default.
OTHER_DATA_TLP = "GREEN"
#: Who subscribes, in which format (the issue's four, plus CERT-EU's SIENA mailbox).
SUBSCRIBERS: tuple[tuple[str, str], ...] = (
    ("enisa", "stix"),
    ("isac-energy", "misp"),
    ("eeas-intcen", "jsonl"),
    ("eda", "jsonl"),
)


@dataclass
class Step:
    """One publication of the scenario (a file's items, or one record)."""

    label: str
    sender: str
    results: list[PublishResult] = field(default_factory=list)
    skipped: int = 0


def soc_inputs(option: Path | None) -> tuple[Path, tuple[SocInput, ...]]:
    """The samples directory and what the SOC publishes from it.

    The shipped examples play the scenario above; other data (`--fixtures DIR`, else
    JCU_FIXTURES) is published whole: every stix/*.json, misp/*.json and csv/*.csv in name
    order, each with its own markings, else TLP:GREEN.
    """
    given = option or (Path(os.environ["JCU_FIXTURES"]) if os.environ.get("JCU_FIXTURES") else None)
    if given is None:
        return config.examples_dir(), SOC_INPUTS
    found = tuple(
        (p.relative_to(given).as_posix(), OTHER_DATA_TLP, ("malicious-code",), ())
        for pattern in ("stix/*.json", "misp/*.json", "csv/*.csv")
        for p in sorted(given.glob(pattern))
    )
    if not found:
        raise ConfigError(
            f"no samples in {given}: expected stix/*.json, misp/*.json or csv/*.csv under it; "
            "pass another --fixtures DIR, or neither it nor JCU_FIXTURES for the shipped examples"
        )
    return given, found


def _incident_report(personal: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "title": "Ransomware against hospital networks in FR and DE",
        "description": "Coordinated encryption of clinical systems; initial access via VPN.",
        "reported": now,
        "detected": now,
        "severity": "HIGH",
        "category": "malicious-code",
        "sectors": ["health"],
        "member_states": ["FR", "DE"],
        "affected_systems": ["VPN concentrator", "PACS"],
        "reporter": {"name": "Duty officer", "email": "duty@cert.europa.eu"} if personal else None,
        "affected_persons": (
            [{"name": "On-call administrator", "organisation": "Hospital A"}] if personal else []
        ),
    }


def _situation_report() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "title": "Joint situation report: ransomware against health care",
        "issued": now,
        "period_start": now,
        "period_end": now,
        "author": "enisa",
        "threat_level": "ELEVATED",
        "summary": "Two Member States affected; crisis declared by EU-CyCLONe.",
        "key_findings": ["Initial access through unpatched VPN appliances"],
        "recommendations": ["Patch VPN concentrators", "Share indicators through the JCU"],
        "incident_ids": [INCIDENT],
        "member_states": ["FR", "DE"],
    }


def _case_document() -> dict[str, Any]:
    return {
        "format": "jcu-case-message/1",
        "case_reference": "EC3-2026-0042",
        "created": datetime.now(UTC).isoformat(),
        "sender": "europol-ec3",
        "recipients": ["cert-eu", "enisa"],
        "subject": "Night Ward affiliate infrastructure",
        "body": "Servers 192.0.2.44 and 192.0.2.45 serve the Pale Heron affiliate; "
        "coordinate with EC3 before any takedown.",
        "handling_codes": ["H2"],
        "evaluation": {"source_reliability": "B", "information_accuracy": 2},
        "tlp": "AMBER",
    }


def _own_env() -> dict[str, str]:
    """This process's environment without another home's Kafka identity: each node connects
    with the client file in its own home."""
    return {k: v for k, v in os.environ.items() if not k.startswith("JCU_KAFKA_")}


class Scenario:
    def __init__(
        self,
        federation: Federation,
        samples: tuple[Path, tuple[SocInput, ...]],
        out: Path,
        progress: Progress,
    ) -> None:
        self.federation = federation
        self._nodes: dict[str, PepContext] = {}
        self.samples_dir, self.inputs = samples
        self.out = out
        self.progress = progress
        self.steps: list[Step] = []
        self.delivered: dict[str, int] = {}
        self.assistance: Episode | None = None

    def node(self, org: str) -> PepContext:
        """`org`'s own node: its home, its keys, the registry it accepted."""
        ctx = self._nodes.get(org)
        if ctx is None:
            env = {**_own_env(), **self.federation.env(org)}
            ctx = self._nodes[org] = PepContext.load(config.load(env), env)
        return ctx

    def expected(self, org: str) -> int:
        """Deliveries the policy decided for `org` over the whole scenario."""
        return sum(
            1
            for st in self.steps
            for r in st.results
            for d in r.decisions
            if d.org == org and d.allowed
        )

    async def publish_file(
        self, sender: str, rel: str, tlp: str, cats: tuple[str, ...], named: tuple[str, ...]
    ) -> Step:
        from connectors.soc import Item, parse_file
        from connectors.soc.publishing import publish_parsed

        def labels(item: Item) -> Labels:
            return Labels.of(item.tlp, categories=set(cats) | set(item.categories))

        parsed = parse_file(self.samples_dir / rel, default_tlp=tlp)
        to = f" to {','.join(named)}" if named else ""
        step = Step(
            f"{Path(rel).name} ({len(parsed.items)} items, {tlp}{to})",
            sender,
            skipped=len(parsed.skipped),
        )
        async with Publisher(sender, self.node(sender)) as pub:
            report = await publish_parsed(
                pub, parsed, source=rel, labels_for=labels, recipients=named
            )
        step.results = list(report.results)
        return step

    async def publish_one(
        self,
        label: str,
        sender: str,
        ptype: str,
        record: dict[str, Any],
        labels: Labels,
        named: tuple[str, ...] = (),
    ) -> Step:
        async with Publisher(sender, self.node(sender)) as pub:
            res = await pub.publish(ptype, record, labels=labels, recipients=named)
        return Step(label, sender, [res])

    async def publish_case(self) -> Step:
        from connectors.siena import parse_case_message

        inbox = self.out / "europol-ec3" / "siena-outbox"
        inbox.mkdir(parents=True, exist_ok=True)
        path = inbox / "EC3-2026-0042.json"
        path.write_text(json.dumps(_case_document(), indent=2))
        case = parse_case_message(path.read_bytes())
        labels = Labels.of(
            case.tlp,
            handling_codes=case.handling_codes,
            categories=["fraud"],
            personal_data=case.personal_data,
            incident=INCIDENT,
        )
        async with Publisher("europol-ec3", self.node("europol-ec3")) as pub:
            res = await pub.publish(
                "CaseMessage",
                case.record,
                labels=labels,
                recipients=case.recipients,
                message_id=str(case.record["id"]),  # the case id: receipts and mailboxes use it
            )
        return Step("SIENA case EC3-2026-0042 (AMBER, H2)", "europol-ec3", [res])

    async def declare_crisis(self) -> None:
        """As `jcu crisis declare` does: decided and audited by eu-cyclone/control first."""
        from broker.pep.control import enact

        await enact(self.node("eu-cyclone"), "eu-cyclone", INCIDENT, ["FR", "DE"], True)

    async def subscribe(self, org: str, fmt: str) -> int:
        from connectors.isac.factory import make_sink

        node = self.node(org)
        sink = make_sink(fmt, str(self.out / org), org, node.settings)
        with node_workflows(node, org) as workflows:
            sub = Subscriber(org, node, sink, workflows=workflows)
            async with sub:
                stats = await sub.run(until_idle=True)
        return stats.delivered

    async def siena_mailbox(self, org: str) -> int:
        from connectors.siena.mailbox import MailboxSink

        sink = MailboxSink(self.out / org / "siena-mailbox")
        node = self.node(org)
        with node_workflows(node, org) as workflows:
            sub = Subscriber(org, node, sink, group_id=f"{org}.siena", workflows=workflows)
            async with sub:
                stats = await sub.run(until_idle=True)
        return stats.delivered

    async def mutual_assistance(self) -> None:
        """The assistance episode during the crisis; its messages count as the others do."""
        self.assistance = await assistance_episode(self.node, INCIDENT)
        for label, sender, result in self.assistance.published:
            self.steps.append(Step(f"assistance: {label}", sender, [result]))

    async def run(self) -> None:
        task = self.progress.add_task("SOC connector: soc-fr publishes", total=None)
        for rel, tlp, cats, named in self.inputs:
            self.progress.update(task, description=f"SOC connector: soc-fr publishes {rel}")
            self.steps.append(await self.publish_file("soc-fr", rel, tlp, cats, named))
        self.progress.update(task, description="cert-eu: AMBER incident report, personal data")
        inc_labels = Labels.of(
            "AMBER",
            categories=["malicious-code"],
            personal_data=True,
            incident=INCIDENT,
            member_states=["FR", "DE"],
        )
        self.steps.append(
            await self.publish_one(
                f"incident report {INCIDENT} (AMBER, personal data)",
                "cert-eu",
                "IncidentReport",
                _incident_report(True),
                inc_labels,
            )
        )
        self.progress.update(task, description="europol-ec3: SIENA-style H2 case message")
        self.steps.append(await self.publish_case())
        update = Labels.of(
            "AMBER", categories=["availability"], incident=INCIDENT, member_states=["FR", "DE"]
        )
        self.steps.append(
            await self.publish_one(
                f"update on {INCIDENT}, availability (AMBER), before the crisis",
                "cert-eu",
                "IncidentReport",
                _incident_report(False),
                update,
            )
        )
        self.progress.update(task, description=f"eu-cyclone declares a crisis for {INCIDENT}")
        await self.declare_crisis()
        self.steps.append(
            await self.publish_one(
                f"the same update during the crisis (AMBER, crisis {INCIDENT})",
                "cert-eu",
                "IncidentReport",
                _incident_report(False),
                update,
            )
        )
        self.progress.update(task, description="mutual assistance: soc-fr asks on behalf of FR")
        await self.mutual_assistance()
        self.steps.append(
            await self.publish_one(
                "situation report (CLEAR)",
                "enisa",
                "SituationReport",
                _situation_report(),
                Labels.of("CLEAR", incident=INCIDENT),
            )
        )
        for org, fmt in SUBSCRIBERS:
            self.progress.update(task, description=f"{org} subscribes ({fmt})")
            self.delivered[org] = await self.subscribe(org, fmt)
        self.progress.update(task, description="cert-eu reads its SIENA mailbox")
        self.delivered["cert-eu"] = await self.siena_mailbox("cert-eu")
        self.progress.remove_task(task)


def _cell(step: Step, org: str) -> str:
    if step.sender == org:
        return "sender"
    outcomes: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for res in step.results:
        d = next((x for x in res.decisions if x.org == org), None)
        if d is None:
            continue
        outcomes[d.decision] += 1
        if d.decision == "deny":
            rules[
                next((r for r in d.rules if r != "default-deny"), d.rules[0] if d.rules else "?")
            ] += 1
    n = len(step.results)
    if not n:
        return "-"
    parts = []
    if outcomes["allow"]:
        parts.append("received" if outcomes["allow"] == n else f"received {outcomes['allow']}/{n}")
    if outcomes["redact"]:
        parts.append(
            "redacted" if outcomes["redact"] == n else f"redacted {outcomes['redact']}/{n}"
        )
    if outcomes["deny"]:
        top = rules.most_common(1)[0][0]
        parts.append(
            f"denied ({top})" if outcomes["deny"] == n else f"denied {outcomes['deny']}/{n} ({top})"
        )
    return "; ".join(parts)


async def _receipts(scenario: Scenario, senders: set[str]) -> list[list[Any]]:
    from broker.pep.receipts import read_receipts

    rows = []
    for s in sorted(senders):
        views = await read_receipts(scenario.node(s), s)  # each sender reads its own
        per: Counter[str] = Counter(v.receiver for v in views)
        rows.append([s, sum(per.values()), ", ".join(f"{k} {v}" for k, v in sorted(per.items()))])
    return rows


#: The nodes that witness the others' audit logs in the demo (none witnesses its own).
WITNESSES = ("enisa", "europol-ec3")


async def _witness(ctx: PepContext, org: str) -> int:
    """One `jcu audit witness --once` pass on `org`'s node, as its own principal (it reads
    the checkpoints and writes cosignatures: docs/deployment.md); how many it cosigned."""
    from broker.audit import Witness, witness_round
    from broker.audit.witness import keys_and_validity
    from broker.cli._audit_io import witness_dir
    from broker.clock import utc_now
    from broker.kafka.topics import AUDIT_CHECKPOINTS

    keyring = ctx.envelope.keyring
    signer = ctx.envelope.keystore.signing_key(org, keyring.current_signing_key_id(org, utc_now()))
    resolve, valid = keys_and_validity(keyring)
    witness = Witness(
        org, signer, resolve, witness_dir(ctx.settings, AUDIT_CHECKPOINTS), key_validity=valid
    )
    done = await witness_round(witness, ctx.envelope.store, ctx.settings.kafka)
    if done.refused:
        raise ConfigError(f"witness {org} refused: {done.refused[0].reason}")
    return len(done.published)


async def _verify(ctx: PepContext, auditor: KafkaConnection) -> Any:
    """`jcu audit verify --witnesses 1` on `ctx`'s node as an auditor would run it: the keys
    from the node's registry, the audit topics read with the auditor's own Kafka principal
    (no organisation may); streamed, witnessed, every leaf."""
    from broker.audit import VerificationPolicy
    from broker.cli._audit_io import Topics, audit_keys, verification
    from broker.kafka.topics import AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES, AUDIT_DECISIONS

    report, _ = await verification(
        ctx.envelope.store,
        ctx.settings,
        auditor,
        Topics(AUDIT_DECISIONS, AUDIT_CHECKPOINTS, AUDIT_COSIGNATURES),
        policy=VerificationPolicy().with_witnesses(1),
        keys=audit_keys(ctx.settings, ()),
    )
    return report


def _report(
    out: Console,
    scenario: Scenario,
    receipts: list[list[Any]],
    report: Any,
    out_dir: Path,
    seconds: float,
) -> None:
    orgs = [o for o, _ in SUBSCRIBERS] + ["cert-eu"]
    out.print(
        table(
            "who received what",
            ["message", "from", *orgs],
            [[s.label, s.sender, *(_cell(s, o) for o in orgs)] for s in scenario.steps],
        )
    )
    out.print(
        table(
            "deliveries: what the policy decided vs what each subscriber's sink got",
            ["subscriber", "format", "decided", "delivered"],
            [
                [o, f, scenario.expected(o), scenario.delivered.get(o, 0)]
                for o, f in [*SUBSCRIBERS, ("cert-eu", "siena mailbox + jsonl")]
            ],
        )
    )
    out.print(
        table("delivery receipts (verified, by sender)", ["sender", "receipts", "from"], receipts)
    )
    if scenario.assistance is not None:
        report_assistance(out, scenario.assistance)
    out.print(
        table(
            "jcu audit verify --witnesses 1 (as enisa; witnesses: " + ", ".join(WITNESSES) + ")",
            ["enforcement point", "leaves", "decisions", "checkpoints", "witnessed by", "result"],
            [
                [
                    r.enforcement_point,
                    r.records,
                    r.decisions,
                    r.checkpoints,
                    ", ".join(w.witness.partition("/")[0] for w in r.witnesses) or "-",
                    "ok" if r.failure is None else f"FAIL ({r.failure.kind}: {r.failure.message})",
                ]
                for r in report.reports
            ],
        )
    )
    files = sorted(p for p in out_dir.rglob("*") if p.is_file())
    per_dir: Counter[str] = Counter(str(p.parent.relative_to(out_dir)) for p in files)
    out.print(
        table(f"files written under {out_dir}", ["directory", "files"], sorted(per_dir.items()))
    )
    out.print(f"demo finished in {seconds:.0f} s")


async def _sitreps(scenario: Scenario, out_dir: Path) -> list[list[Any]]:
    """Each of a few subscribers' situation report of the run, as PDF and Markdown."""
    from datetime import timedelta

    from connectors.sitrep import gather, to_markdown, to_pdf

    rows = []
    (out_dir / "sitrep").mkdir(exist_ok=True)
    for org in ("eda", "enisa"):
        report = await gather(scenario.node(org), org, window=timedelta(hours=1))
        (out_dir / "sitrep" / f"{org}.pdf").write_bytes(to_pdf(report))
        (out_dir / "sitrep" / f"{org}.md").write_text(to_markdown(report))
        rows.append([org, report.total.now, f"sitrep/{org}.pdf"])
    return rows


def _every_audit_key(scenario: Scenario) -> Any:
    """The demo's operator holds every organisation's audit keys (as if each had exported
    them with `jcu audit keys export`): its console reads every log."""
    from broker.audit import POINT_SIDES, AuditKeys

    keys = AuditKeys()
    for org, home in scenario.federation.homes.items():
        theirs = AuditKeys.open(home / "audit", owner=org, create=False)
        for side in POINT_SIDES:
            key = theirs.point(f"{org}/{side}")
            if key is not None:
                keys.add(key)
    return keys


async def _serve_console(scenario: Scenario, out: Console, port: int, view: Path) -> None:
    """The operator console on ENISA's node (loopback, local operator) until SIGINT/SIGTERM."""
    import signal

    from broker.cli._audit_io import keyring_resolvers
    from broker.cli.console import serve_in_background
    from broker.cli.stats import collect
    from broker.kafka.connection import read_client_file
    from connectors.console import ConsoleData

    ctx = scenario.node("enisa")
    keys, valid = keyring_resolvers(ctx.settings, ctx.envelope.store)
    # Its platform view reads as jcu-console (an auditor and an operator), not as ENISA.
    data = ConsoleData(
        ctx,
        keys=keys,
        valid=valid,
        stats=collect,
        sample_every=5,
        view=read_client_file(view),
        audit_keys=_every_audit_key(scenario),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server, task = serve_in_background(data, "127.0.0.1", port)
    try:
        while not getattr(server, "started", False) and not task.done():
            await asyncio.sleep(0.1)
        if task.done():
            task.result()
        out.print(f"operator console: http://127.0.0.1:{port}/ (serving; Ctrl-C stops it)")
        await stop.wait()
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _main(
    out_dir: Path,
    samples: tuple[Path, tuple[SocInput, ...]],
    home: Path,
    keep: bool,
    serve: int | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Run the scenario; what it showed, as `jcu demo --json` prints it (`ok`: the audit
    log verified and every subscriber got what the policy decided)."""
    from broker.kafka.acl import Roles
    from broker.kafka.connection import read_client_file
    from broker.kafka.topics import contract_topics, ensure_topics
    from broker.trust.federation import build_federation, put_up_walls
    from broker.trust.topic import publish_snapshot

    t0 = time.monotonic()
    out = console(stderr=as_json)
    settings = config.load()
    local = LocalKafka(
        home / "kafka",
        port=free_ports(3),  # client, controller and inter-broker listeners
        cache_dir=settings.kafka_cache,
        secure=True,
    )
    orgs = sorted(load_registry(settings.policies / "participants.yaml").participants)
    # Throw-away homes for a throw-away run: each passphrase is random and never shown.
    words = {o: secrets.token_urlsafe(24) for o in [*orgs, "authority"]}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    ) as progress:
        t = progress.add_task("starting Kafka (fetched once from Maven Central)", total=None)
        await local.start()
        os.environ["KAFKA_BOOTSTRAP"] = local.bootstrap
        admin = local.connection()
        roles = Roles()
        try:
            await ensure_topics(admin, contract_topics())
            progress.update(
                t,
                description=f"federation: the registry authority and {len(orgs)} nodes, "
                "each with its own keys; requests approved, snapshot signed",
            )
            federation = await asyncio.to_thread(
                build_federation,
                home / "federation",
                orgs,
                policies=settings.policies,
                schemas=settings.schemas,
                passphrase=words,
            )
            progress.update(
                t,
                description="Kafka walls: a principal per organisation and per role, "
                "ACLs from the registry (jcu acl apply)",
            )
            credentials = await put_up_walls(
                federation, admin, schemas=settings.schemas, roles=roles
            )
            authority = config.load({**_own_env(), **federation.env("authority")}).kafka
            await publish_snapshot(authority, federation.snapshot.read_bytes())
            progress.remove_task(t)
            scenario = Scenario(federation, samples, out_dir, progress)
            await scenario.run()
            t = progress.add_task("receipts, witnesses, audit verification", total=None)
            receipts = await _receipts(scenario, {s.sender for s in scenario.steps})
            auditor = read_client_file(credentials / f"{roles.auditors[0]}.toml")
            for org in WITNESSES:
                await _witness(scenario.node(org), org)
            report = await _verify(scenario.node("enisa"), auditor)
            sitreps = await _sitreps(scenario, out_dir)
            progress.remove_task(t)
            if serve is not None:
                _report_federation(out, federation)
                _report(out, scenario, receipts, report, out_dir, time.monotonic() - t0)
                out.print(table("situation reports", ["reader", "messages", "file"], sitreps))
                await _serve_console(scenario, out, serve, credentials / "jcu-console.toml")
        finally:
            if not keep:
                await asyncio.to_thread(local.stop)
    if serve is None:
        _report_federation(out, federation)
        _report(out, scenario, receipts, report, out_dir, time.monotonic() - t0)
        out.print(table("situation reports", ["reader", "messages", "file"], sitreps))
        out.print(
            "operator console: http://127.0.0.1:8080/ on ENISA's node: run "
            "`make demo DEMO_ARGS=--serve` (jcu demo --serve) to keep it serving"
        )
    if keep:
        out.print(f"kafka left running at {local.bootstrap} (homes under {home / 'federation'})")
    consistent = all(
        scenario.delivered.get(o, 0) == scenario.expected(o)
        for o in [*(o for o, _ in SUBSCRIBERS), "cert-eu"]
    )
    if not consistent:
        out.print("[bold red]a subscriber's deliveries differ from the policy's decisions[/]")
    return {
        "ok": bool(report.ok) and consistent,
        "seconds": round(time.monotonic() - t0, 1),
        "out_dir": str(out_dir),
        "deliveries": [
            {
                "subscriber": o,
                "format": f,
                "decided": scenario.expected(o),
                "delivered": scenario.delivered.get(o, 0),
            }
            for o, f in [*SUBSCRIBERS, ("cert-eu", "siena mailbox + jsonl")]
        ],
        "receipts": [{"sender": s, "receipts": n, "from": f} for s, n, f in receipts],
        "audit": [
            {
                "enforcement_point": r.enforcement_point,
                "leaves": r.records,
                "decisions": r.decisions,
                "checkpoints": r.checkpoints,
                "witnessed_by": [w.witness.partition("/")[0] for w in r.witnesses],
                "failure": None if r.failure is None else f"{r.failure.kind}: {r.failure.message}",
            }
            for r in report.reports
        ],
        "situation_reports": [{"reader": r, "messages": n, "file": f} for r, n, f in sitreps],
        "kafka": local.bootstrap if keep else None,
    }


def _report_federation(out: Console, federation: Federation) -> None:
    """Each trust domain, the private keys its home holds (its own, and no one else's) and
    the Kafka principal it connects as (its own)."""
    rows = []
    for org, home in [("authority", federation.authority_home), *sorted(federation.homes.items())]:
        owners = sorted(p.name for p in (home / "keys").iterdir() if p.is_dir())
        keys = sorted((home / "keys").glob("*/*.pem"))
        principal = config.load({**_own_env(), **federation.env(org)}).kafka.principal
        rows.append([org, ", ".join(owners), len(keys), principal or "-"])
    out.print(
        table(
            f"trust domains: one home each (registry snapshot {federation.snapshot.name})",
            ["home of", "private keys of", "key files", "Kafka principal"],
            rows,
        )
    )


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Where the subscribers write what they receive (emptied first).",
)
@click.option(
    "--fixtures",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Publish every stix/*.json, misp/*.json and csv/*.csv under DIR instead of the "
    "shipped examples (also: JCU_FIXTURES).",
)
@click.option("--keep-kafka", is_flag=True, help="Leave Kafka and the demo state running.")
@click.option(
    "--serve",
    is_flag=True,
    help="At the end, serve the operator console on 127.0.0.1 until interrupted (Ctrl-C).",
)
@click.option(
    "--console-port",
    type=int,
    default=8080,
    show_default=True,
    help="Port of the console with --serve.",
)
@json_option(
    "Print a JSON summary on stdout (deliveries, receipts, audit, reports); progress and "
    "tables go to stderr."
)
def demo(
    out_dir: Path,
    fixtures: Path | None,
    keep_kafka: bool,
    serve: bool,
    console_port: int,
    as_json: bool,
) -> None:
    """Run the whole sharing scenario end to end on a local Kafka, from nothing."""
    samples = soc_inputs(fixtures)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    home = config.load().home / "demo" / f"run-{uuid.uuid4().hex[:8]}"
    try:
        summary = asyncio.run(
            _main(
                out_dir.resolve(),
                samples,
                home,
                keep_kafka,
                console_port if serve else None,
                as_json,
            )
        )
    finally:
        if not keep_kafka:
            shutil.rmtree(home, ignore_errors=True)
    if as_json:
        emit_json(summary)
    if not summary["ok"]:
        raise click.ClickException(
            "the demo failed: the audit log did not verify or deliveries differ from decisions"
        )
