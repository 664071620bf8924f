"""The bundle's own scenario tables (`policies/tests/*.yaml`), run by `jcu policy check`.

Each scenario is a message and the decision expected for every organisation;
an operator who edits the rules edits these tables with them. A scenario also
checks that the cached decision equals a fresh Cedar decision.

    scenarios:
      - name: AMBER goes to mandate holders
        message: {from: cert-eu, type: Indicator, tlp: AMBER, categories: [fraud]}
        crisis: false               # optional: the incident is under a declared crisis
        statuses: {soc-fr: suspended}   # optional: registry status overrides
        expect: {europol-ec3: allow, soc-fr: deny, "*": deny}   # "*": everyone not listed
        rules: {europol-ec3: [tlp-amber-operational]}            # optional: ids that must appear
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from broker.errors import PolicyLoadError
from broker.policy._engine import PolicyEngine
from broker.policy._model import Decision, Message
from broker.trust.registry import Registry
from broker.vocabulary import STATUSES, Status

_VERDICTS = ("allow", "redact", "deny")
_MESSAGE_KEYS = frozenset(
    {
        "from",
        "type",
        "tlp",
        "categories",
        "handling",
        "personal_data",
        "to",
        "incident",
        "member_states",
        "exercise",
    }
)


@dataclass(frozen=True, slots=True)
class Scenario:
    file: str
    name: str
    message: Message
    crisis: bool
    statuses: Mapping[str, Status]
    expect: Mapping[str, str]
    rules: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    file: str
    name: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def _strings(value: Any, where: str, file: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyLoadError(f"{where} must be a list of strings", file=file)
    return frozenset(value)


def _message(raw: Any, file: str, name: str) -> Message:
    if not isinstance(raw, dict):
        raise PolicyLoadError(f"scenario {name!r}: 'message' must be a mapping", file=file)
    unknown = set(raw) - _MESSAGE_KEYS
    missing = {"from", "type", "tlp"} - set(raw)
    if unknown or missing:
        raise PolicyLoadError(
            f"scenario {name!r}: message keys unknown {sorted(unknown)}, missing {sorted(missing)}",
            file=file,
        )
    handling = raw.get("handling")
    return Message(
        sender=str(raw["from"]),
        payload_type=str(raw["type"]),
        tlp=str(raw["tlp"]),
        categories=_strings(raw.get("categories"), "categories", file),
        handling=_strings(
            handling if isinstance(handling, list) else ([] if handling is None else [handling]),
            "handling",
            file,
        ),
        personal_data=bool(raw.get("personal_data", False)),
        recipients=_strings(raw.get("to"), "to", file),
        incident=None if raw.get("incident") is None else str(raw["incident"]),
        member_states=_strings(raw.get("member_states"), "member_states", file),
        exercise=None if raw.get("exercise") is None else str(raw["exercise"]),
    )


def load_scenarios(directory: Path) -> list[Scenario]:
    """Read every `*.yaml` table in `directory` (none is fine: an empty list)."""
    import yaml  # `jcu policy test` only: an enforcement point never reads these

    scenarios: list[Scenario] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyLoadError(f"cannot read scenario table: {exc}", file=path.name) from None
        items = doc.get("scenarios") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise PolicyLoadError("top level needs a 'scenarios' list", file=path.name)
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise PolicyLoadError(f"scenario #{i + 1} needs a 'name'", file=path.name)
            name = item["name"]
            expect = item.get("expect")
            if not isinstance(expect, dict) or any(v not in _VERDICTS for v in expect.values()):
                raise PolicyLoadError(
                    f"scenario {name!r}: 'expect' maps organisations to one of {_VERDICTS}",
                    file=path.name,
                )
            statuses = item.get("statuses") or {}
            if not isinstance(statuses, dict) or any(v not in STATUSES for v in statuses.values()):
                raise PolicyLoadError(
                    f"scenario {name!r}: 'statuses' values are {STATUSES}", file=path.name
                )
            rules = item.get("rules") or {}
            if not isinstance(rules, dict):
                raise PolicyLoadError(
                    f"scenario {name!r}: 'rules' must be a mapping", file=path.name
                )
            scenarios.append(
                Scenario(
                    file=path.name,
                    name=name,
                    message=_message(item.get("message"), path.name, name),
                    crisis=bool(item.get("crisis", False)),
                    statuses={str(k): cast(Status, v) for k, v in statuses.items()},
                    expect={str(k): str(v) for k, v in expect.items()},
                    rules={
                        str(k): tuple(sorted(_strings(v, "rules", path.name)))
                        for k, v in rules.items()
                    },
                )
            )
    return scenarios


def _with_statuses(registry: Registry, statuses: Mapping[str, Status]) -> Registry:
    participants = dict(registry.participants)
    for pid, status in statuses.items():
        participants[pid] = dataclasses.replace(registry.get(pid), status=status)
    return Registry(communities=registry.communities, participants=participants)


def _describe(d: Decision) -> str:
    return f"{d.decision} ({', '.join(d.rules)})"


def run_scenario(engine: PolicyEngine, s: Scenario) -> ScenarioResult:
    registry = engine.registry
    failures: list[str] = []
    named = set(s.expect) | set(s.rules) | set(s.statuses) | {s.message.sender}
    unknown = sorted(n for n in named - {"*"} if n not in registry)
    if unknown:
        return ScenarioResult(s.file, s.name, (f"unknown organisations {unknown}",))
    if s.statuses:
        engine = engine.with_registry(_with_statuses(registry, s.statuses))
    crisis = frozenset({s.message.incident}) if s.crisis and s.message.incident else frozenset()
    cached = engine.decide_all(s.message, crisis_incidents=crisis)
    fresh = engine.decide_all(s.message, crisis_incidents=crisis, cached=False)
    for d, f in zip(cached, fresh, strict=True):
        if d != f:
            failures.append(
                f"{d.org}: cached decision {_describe(d)} differs from Cedar's {_describe(f)}"
            )
        expected = s.expect.get(d.org, s.expect.get("*"))
        if expected is None:
            failures.append(f'{d.org}: no expectation (list it or add "*")')
        elif d.decision != expected:
            failures.append(f"{d.org}: expected {expected}, got {_describe(d)}")
        for rule in s.rules.get(d.org, ()):
            if rule not in d.rules:
                failures.append(f"{d.org}: expected rule {rule} among {', '.join(d.rules)}")
    if s.message.sender in s.expect:
        failures.append(f"{s.message.sender}: is the sender; it gets no decision")
    return ScenarioResult(s.file, s.name, tuple(failures))


def run_scenarios(engine: PolicyEngine, scenarios: list[Scenario]) -> list[ScenarioResult]:
    return [run_scenario(engine, s) for s in scenarios]
