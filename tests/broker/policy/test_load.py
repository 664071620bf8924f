"""A broken bundle fails at load, naming the file and the rule; nothing starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import PolicyLoadError
from broker.policy import PolicyEngine
from broker.trust.registry import Registry
from tests.broker.policy.conftest import pd_fields

GOOD_RULE = """
@id("extra-rule")
@rulebook("2")
@legal_basis("test basis")
@summary("test rule")
@tlp("CLEAR")
@requires("")
permit (principal, action in Action::"share", resource)
when { resource.tlp == "CLEAR" };
"""


def load(directory: Path, registry: Registry) -> PolicyEngine:
    return PolicyEngine.load(directory, registry, personal_data_fields=pd_fields)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_the_sample_bundle_loads_with_every_rule_annotated(engine: PolicyEngine) -> None:
    rules = engine.rules
    assert len(rules) == 26
    assert all(r.legal_basis and r.summary for r in rules.values())
    assert {r.file for r in rules.values()} >= {
        "tlp.cedar",
        "personal_data.cedar",
        "exercise.cedar",
        "assistance.cedar",
        "capabilities.cedar",
    }


def test_a_rule_that_does_not_parse_names_file_and_rule(
    policies_copy: Path, registry: Registry
) -> None:
    broken = GOOD_RULE.replace("extra-rule", "broken-rule").replace(
        'resource.tlp == "CLEAR" }', "resource.tlp == }"
    )
    append(policies_copy / "tlp.cedar", broken)
    with pytest.raises(PolicyLoadError) as info:
        load(policies_copy, registry)
    assert (info.value.file, info.value.rule) == ("tlp.cedar", "broken-rule")
    assert "file tlp.cedar" in str(info.value) and "rule broken-rule" in str(info.value)


def test_a_rule_that_does_not_match_the_schema_names_file_and_rule(
    policies_copy: Path, registry: Registry
) -> None:
    append(
        policies_copy / "roles.cedar", GOOD_RULE.replace("resource.tlp ==", "resource.colour ==")
    )
    with pytest.raises(PolicyLoadError) as info:
        load(policies_copy, registry)
    assert (info.value.file, info.value.rule) == ("roles.cedar", "extra-rule")
    assert "colour" in str(info.value)


def test_a_schema_missing_an_attribute_the_rules_use_names_file_and_rule(
    policies_copy: Path, registry: Registry
) -> None:
    schema = policies_copy / "jcu.cedarschema"
    schema.write_text(schema.read_text().replace("  tlp: String,", ""))
    with pytest.raises(PolicyLoadError) as info:
        load(policies_copy, registry)
    # The first rule, in file order, that reads resource.tlp.
    first = ("assistance.cedar", "assistance-step-to-party-green")
    assert (info.value.file, info.value.rule) == first
    assert "attribute `tlp`" in str(info.value)


def test_a_schema_missing_an_optional_label_is_refused(
    policies_copy: Path, registry: Registry
) -> None:
    # Cedar types `resource has exercise && ...` as false without the attribute, so
    # the rules alone would validate; the engine's own labels must match too.
    schema = policies_copy / "jcu.cedarschema"
    text = schema.read_text()
    line = next(x for x in text.splitlines() if "exercise?: String" in x)
    schema.write_text(text.replace(line + "\n", ""))
    with pytest.raises(PolicyLoadError, match="Message attribute 'exercise'") as info:
        load(policies_copy, registry)
    assert info.value.file == "jcu.cedarschema"


def test_a_schema_that_does_not_parse_names_the_schema_file(
    policies_copy: Path, registry: Registry
) -> None:
    schema = policies_copy / "jcu.cedarschema"
    schema.write_text(schema.read_text().replace("status: String,", "status: Strin,"))
    with pytest.raises(PolicyLoadError) as info:
        load(policies_copy, registry)
    assert info.value.file == "jcu.cedarschema"
    assert "Strin" in str(info.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.replace('@legal_basis("test basis")\n', ""), "missing @legal_basis"),
        (lambda r: r.replace('@requires("")\n', ""), "@requires"),
        (lambda r: r.replace('@requires("")', '@requires("lucky")'), "unknown: ['lucky']"),
        (
            lambda r: r.replace(
                'resource.tlp == "CLEAR"', 'principal.categories.contains("fraud")'
            ),
            "principal.categories",
        ),
        (lambda r: r.replace('action in Action::"share"', "action"), 'Action::"share"'),
        (lambda r: r.replace('@tlp("CLEAR")', '@obligation("x")'), "@obligation"),
    ],
)
def test_rules_the_engine_cannot_explain_or_cache_are_refused(
    policies_copy: Path, registry: Registry, edit: object, message: str
) -> None:
    append(policies_copy / "tlp.cedar", edit(GOOD_RULE))  # type: ignore[operator]
    with pytest.raises(PolicyLoadError) as info:
        load(policies_copy, registry)
    assert (info.value.file, info.value.rule) == ("tlp.cedar", "extra-rule")
    assert message in str(info.value)


def test_a_rule_without_id_is_refused(policies_copy: Path, registry: Registry) -> None:
    append(policies_copy / "exercise.cedar", GOOD_RULE.replace('@id("extra-rule")\n', ""))
    with pytest.raises(PolicyLoadError, match="no @id") as info:
        load(policies_copy, registry)
    assert info.value.file == "exercise.cedar"


def test_a_duplicate_id_is_refused(policies_copy: Path, registry: Registry) -> None:
    append(policies_copy / "roles.cedar", GOOD_RULE.replace("extra-rule", "tlp-clear"))
    with pytest.raises(PolicyLoadError, match="duplicate @id") as info:
        load(policies_copy, registry)
    assert info.value.rule == "tlp-clear"


def test_a_missing_policy_directory_is_a_clear_error(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(PolicyLoadError, match="policy directory not found"):
        load(tmp_path / "nowhere", registry)


def test_a_broken_reload_keeps_the_engine_as_it_was(
    policies_copy: Path, registry: Registry
) -> None:
    engine = load(policies_copy, registry)
    before = engine.bundle_hash
    append(policies_copy / "tlp.cedar", "permit (principal, action, resource) when { ;")
    with pytest.raises(PolicyLoadError):
        engine.reload()
    assert engine.bundle_hash == before
