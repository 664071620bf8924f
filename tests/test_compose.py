"""docker-compose.yml cannot run here (no Docker engine); keep it valid and in step with the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from broker.cli import _VERBS
from broker.kafka.local import KAFKA_VERSION

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, object]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_kafka_is_three_official_kraft_nodes_at_our_version_with_walls() -> None:
    services = _compose()["services"]  # type: ignore[index]
    nodes = {name: s for name, s in services.items() if name.startswith("kafka-") and "image" in s}
    assert sorted(nodes) == ["kafka-1", "kafka-2", "kafka-3"]
    ids = set()
    for node in nodes.values():
        assert node["image"] == f"apache/kafka:{KAFKA_VERSION}"
        env = node["environment"]
        ids.add(env["KAFKA_NODE_ID"])
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        # The walls: authenticated clients, TLS everywhere, nothing allowed without an ACL.
        mapping = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        protocols = dict(p.split(":") for p in mapping.split(","))
        assert protocols == {
            "CLIENT": "SASL_SSL",
            "MTLS": "SSL",
            "INTERNAL": "SSL",
            "CONTROLLER": "SSL",
        }
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        assert set(env["KAFKA_SUPER_USERS"].split(";")) == {"User:kafka-broker", "User:admin"}
        for listener in ("MTLS", "INTERNAL", "CONTROLLER"):
            assert env[f"KAFKA_LISTENER_NAME_{listener}_SSL_CLIENT_AUTH"] == "required"
        assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == (
            "3",
            "2",
        )
        assert "PLAINTEXT" not in str(env)
    assert ids == {"1", "2", "3"}
    topics = services["jcu-topics"]["command"]
    assert topics[:2] == ["kafka", "topics"] and topics[topics.index("--replication") + 1] == "3"


def _verbs(svc: dict[str, object]) -> list[str]:
    """The jcu verbs a service runs: its command, or the `jcu VERB` calls of its shell script."""
    command = svc["command"]
    assert isinstance(command, list)
    if svc.get("entrypoint") == ["sh", "-c"]:
        words = " ".join(str(c) for c in command).split()
        return [words[i + 1] for i, w in enumerate(words[:-1]) if w.endswith("jcu")]
    return [str(command[0])]


def test_every_jcu_service_runs_an_existing_verb() -> None:
    services = _compose()["services"]  # type: ignore[index]
    jcu_services = {name: s for name, s in services.items() if "build" in s}
    assert jcu_services, "compose must run jcu itself"
    for name, svc in jcu_services.items():
        verbs = _verbs(svc)
        assert verbs, f"service {name} runs no jcu verb"
        for verb in verbs:
            assert verb == "--help" or verb in _VERBS, f"service {name} runs unknown verb {verb!r}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"service {name} depends on missing {dep}"
    for secret in {s for svc in jcu_services.values() for s in svc.get("secrets", [])}:
        assert secret in _compose()["secrets"]  # type: ignore[operator]


def test_dockerfile_copies_what_the_package_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("broker", "connectors", "schemas", "policies", "constraints.txt"):
        assert f"COPY {part}" in dockerfile or part in dockerfile.split("COPY", 1)[1]
    assert 'ENTRYPOINT ["jcu"]' in dockerfile


def _recipe(makefile: str, target: str) -> str:
    found = re.search(rf"^{target}:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert found, f"no {target} target"
    return found.group(1)


def test_ci_runs_lint_then_the_whole_suite_the_readme_runs() -> None:
    """CI runs lint first, then the unit lane and the Kafka lane: together exactly what the
    README's `make test` runs (one marker expression and its negation), nothing weaker."""
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    steps = [line for line in ci if line.startswith("make ")]
    assert steps == ["make lint", "make test-unit", "make test-kafka"]
    makefile = (ROOT / "Makefile").read_text()
    whole = _recipe(makefile, "test")
    assert whole == "$(BIN)/python -m pytest"
    assert _recipe(makefile, "test-unit") == f'{whole} -m "$(UNIT_LANE)" -n $(UNIT_JOBS)'
    assert _recipe(makefile, "test-kafka") == f'{whole} -m "not ($(UNIT_LANE))"'


def test_monitoring_is_wired_to_what_the_services_export() -> None:
    """Prometheus scrapes the compose services' metrics ports; the alert rules and the
    Grafana dashboard only ask for metrics the code defines."""
    import json
    import re

    services = _compose()["services"]  # type: ignore[index]
    prom = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    for job in prom["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert host in services, f"scrape target {target} is no compose service"
            assert port in services[host]["command"], f"{host} does not serve metrics on {port}"
    mounted = " ".join(v for s in ("prometheus", "grafana") for v in services[s]["volumes"])
    for part in ("prometheus.yml", "alerts.yml", "grafana/provisioning", "grafana/dashboards"):
        assert part in mounted
    code = "".join(
        (ROOT / f).read_text() for f in ("broker/metrics.py", "connectors/console/metrics.py")
    )
    defined = set(re.findall(r'"(jcu_[a-z_]+)"', code))
    rules = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dash = json.loads((ROOT / "monitoring" / "grafana" / "dashboards" / "jcu.json").read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"jcu_[a-z_]+", e)
    }
    assert used and used <= defined, f"unknown metrics: {sorted(used - defined)}"
    for needed in ("jcu_audit_verify_failed", "jcu_rejected_total", "jcu_policy_violations_total"):
        assert needed in used
    assert any("lag" in m for m in used)
