"""Loading the policy bundle: the Cedar schema and rule files, checked once.

Everything that can be wrong with the bundle is found here, before anything
starts: a file that does not parse, a rule that does not match the schema, a
rule without its `@id` or legal basis, two rules with one `@id`, a rule the
decision cache could not serve. Each problem is a `PolicyLoadError` naming the
file and the rule.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cedarpy

from broker.errors import PolicyLoadError
from broker.policy._cacheable import USAGE, first_uncacheable_use

SHARE_ACTIONS: tuple[str, ...] = ("publish", "receive")
SHARE_GROUP = "share"
OBLIGE_ACTION = "oblige"

_ID_ANNOTATION = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
_POLICY_NUMBER = re.compile(r"^policy(\d+)$")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the bundle and the annotations the engine uses to explain it."""

    id: str
    effect: Literal["permit", "forbid"]
    file: str
    order: int
    rulebook: str
    legal_basis: str
    summary: str
    #: permits on the share action: the TLP they serve and their named conditions
    tlp: str | None = None
    requires: tuple[str, ...] = ()
    #: forbids: the plain-words reason, with {placeholders}
    reason: str = ""
    redactable: bool = False
    #: permits on the oblige action: the obligation they attach
    obligation: str | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    """The parsed, validated bundle. `digest` covers the schema and every rule file."""

    schema: cedarpy.Schema
    policies: cedarpy.PolicySet
    rules: Mapping[str, Rule]
    files: tuple[str, ...]
    digest: str

    def share_permits(self) -> tuple[Rule, ...]:
        return tuple(
            r for r in self.rules.values() if r.effect == "permit" and r.obligation is None
        )


def load_bundle(policies_dir: Path, predicates: Collection[str]) -> Bundle:
    """Read `*.cedarschema` and `*.cedar` from `policies_dir` and check them all.

    `predicates` are the condition names a permit's `@requires` may use (the
    explanation layer knows how to test and word each of them).
    """
    if not policies_dir.is_dir():
        raise PolicyLoadError(f"policy directory not found: {policies_dir}", file=str(policies_dir))
    schema_files = sorted(policies_dir.glob("*.cedarschema"))
    rule_files = sorted(policies_dir.glob("*.cedar"))
    if not schema_files:
        raise PolicyLoadError(f"no *.cedarschema file in {policies_dir}", file=str(policies_dir))
    if not rule_files:
        raise PolicyLoadError(f"no *.cedar rule file in {policies_dir}", file=str(policies_dir))

    digest = hashlib.sha256()
    schema_text = ""
    for path in schema_files:
        text = _read(path)
        schema_text += text + "\n"
        _digest_file(digest, path, text)
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        names = ", ".join(p.name for p in schema_files)
        raise PolicyLoadError(f"the Cedar schema does not parse: {exc}", file=names) from None
    _check_actions(schema_text, schema_files)

    rules: dict[str, Rule] = {}
    texts: list[str] = []
    for path in rule_files:
        text = _read(path)
        _digest_file(digest, path, text)
        for rule in _load_rule_file(path, text, schema, predicates, order=len(rules)):
            if rule.id in rules:
                other = rules[rule.id].file
                raise PolicyLoadError(
                    f"duplicate @id (also in {other})", file=path.name, rule=rule.id
                )
            rules[rule.id] = rule
        texts.append(text)
    try:
        policies = cedarpy.PolicySet.from_str("\n".join(texts))
    except ValueError as exc:  # each file parsed alone, so this is unexpected
        raise PolicyLoadError(f"the rule files do not parse together: {exc}") from None
    return Bundle(
        schema=schema,
        policies=policies,
        rules=rules,
        files=tuple(p.name for p in (*schema_files, *rule_files)),
        digest=digest.hexdigest(),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"cannot read: {exc}", file=path.name) from None


def _digest_file(digest: Any, path: Path, text: str) -> None:
    digest.update(f"{path.name}\0{len(text.encode())}\0".encode())
    digest.update(text.encode())


def _check_actions(schema_text: str, schema_files: list[Path]) -> None:
    """The engine asks about these actions; a schema without them cannot serve it."""
    for action in (*SHARE_ACTIONS, SHARE_GROUP, OBLIGE_ACTION):
        if not re.search(rf"\baction\b[^;{{]*\b{re.escape(action)}\b", schema_text):
            names = ", ".join(p.name for p in schema_files)
            raise PolicyLoadError(f"the schema does not declare action {action!r}", file=names)


def _load_rule_file(
    path: Path, text: str, schema: cedarpy.Schema, predicates: Collection[str], order: int
) -> list[Rule]:
    try:
        cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        raise PolicyLoadError(
            f"does not parse: {exc}", file=path.name, rule=_failing_rule(text)
        ) from None
    est = json.loads(cedarpy.policies_to_json_str(text))
    if est.get("templates"):
        raise PolicyLoadError("templates are not supported in the rulebook", file=path.name)
    static: dict[str, Any] = est.get("staticPolicies", {})
    ids = {pid: p.get("annotations", {}).get("id") for pid, p in static.items()}

    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        first = result.errors[0]
        rule = ids.get(first.policy_id) or first.policy_id or None
        raise PolicyLoadError(
            f"does not match the schema: {first.error}", file=path.name, rule=rule
        )

    rules = []
    for n, pid in enumerate(sorted(static, key=_policy_number)):
        rules.append(_rule_from_est(path.name, pid, static[pid], predicates, order + n))
    if not rules:
        raise PolicyLoadError("contains no rules", file=path.name)
    return rules


def _policy_number(pid: str) -> int:
    match = _POLICY_NUMBER.match(pid)
    return int(match.group(1)) if match else 0


def _failing_rule(text: str) -> str | None:
    """Find which rule breaks parsing: parse the file rule by rule (split at each @id)."""
    starts = [m.start() for m in _ID_ANNOTATION.finditer(text)]
    if not starts:
        return None
    bounds = [*starts, len(text)]
    for begin, end in itertools.pairwise(bounds):
        chunk = text[begin:end]
        try:
            cedarpy.PolicySet.from_str(chunk)
        except ValueError:
            match = _ID_ANNOTATION.match(chunk)
            return match.group(1) if match else None
    return None


def _rule_from_est(
    file: str, pid: str, policy: dict[str, Any], predicates: Collection[str], order: int
) -> Rule:
    notes: dict[str, str] = policy.get("annotations", {})
    rule_id = notes.get("id")
    if not rule_id:
        raise PolicyLoadError("a rule has no @id annotation", file=file, rule=pid)

    def need(name: str) -> str:
        value = notes.get(name, "")
        if not value.strip():
            raise PolicyLoadError(f"missing @{name} annotation", file=file, rule=rule_id)
        return value

    effect = policy["effect"]
    action = policy.get("action", {})
    acts_on = {action.get("entity", {}).get("id")} | {
        e.get("id") for e in action.get("entities", [])
    }
    oblige = acts_on == {OBLIGE_ACTION} and action.get("op") == "=="
    problem = first_uncacheable_use(policy)
    if problem:
        raise PolicyLoadError(f"{problem}; {USAGE}", file=file, rule=rule_id)

    common: dict[str, Any] = {
        "id": rule_id,
        "effect": effect,
        "file": file,
        "order": order,
        "rulebook": notes.get("rulebook", ""),
        "legal_basis": need("legal_basis"),
        "summary": need("summary"),
    }
    if "obligation" in notes:
        if effect != "permit" or not oblige:
            raise PolicyLoadError(
                'an @obligation rule must be a permit on action == Action::"oblige" only',
                file=file,
                rule=rule_id,
            )
        return Rule(**common, obligation=need("obligation"))
    if oblige or OBLIGE_ACTION in acts_on:
        raise PolicyLoadError(
            'a rule on Action::"oblige" needs an @obligation', file=file, rule=rule_id
        )
    if action.get("op") == "All":
        raise PolicyLoadError(
            'scope the rule to action in Action::"share" (it would also match "oblige")',
            file=file,
            rule=rule_id,
        )
    if effect == "forbid":
        return Rule(**common, reason=need("reason"), redactable=notes.get("redactable") == "true")
    requires = tuple(notes.get("requires", "").split())
    unknown = [p for p in requires if p not in predicates]
    if "requires" not in notes or unknown:
        raise PolicyLoadError(
            f"a permit needs @requires naming its conditions from {sorted(predicates)}"
            + (f"; unknown: {unknown}" if unknown else ""),
            file=file,
            rule=rule_id,
        )
    return Rule(**common, tlp=need("tlp"), requires=requires)
