"""What `jcu` start-up must not load, checked structurally (bench/startup.py has the times).

Each check imports a path's modules in a fresh interpreter and lists what
landed in `sys.modules`: a later top-level import that undoes a win (PyMISP
for a STIX file, the subscriber for a publisher, every verb for `--help`)
fails here, whatever the machine's speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest

from broker.cli import _SUMMARIES, _VERBS, cli

#: Never needed to publish a STIX, MISP-less file: other formats, other services, test tools.
NOT_FOR_A_STIX_PUBLISH = (
    "pymisp",
    "misp_stix_converter",
    "reportlab",
    "starlette",
    "uvicorn",
    "jinja2",
    "confluent_kafka",
    "playwright",
    "httpx",
    "broker.pep.subscriber",
    "broker.envelope._reader",
    "connectors.isac",
    "connectors.taxii",
    "connectors.soc._misp",
    "connectors.soc._csv",
    "rich.progress",
    "rich.table",
    "structlog",
    "prometheus_client",  # a one-shot publisher counts no metrics: it serves none
    "broker.metrics",
    "yaml",  # the authority's registry source and policy test tables only
)
#: Loaded only once the node is open (its keystore unlocking meanwhile), not by the verb's module.
AFTER_THE_NODE_OPENS = (
    "stix2",
    "aiokafka",
    "cedarpy",
    "prometheus_client",
    "rich",
    "structlog",
    "broker.pep.publisher",
    "broker.pep.subscriber",
    "broker.pep.context",
    "broker.audit",
    "broker.policy",
    "connectors",
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def under(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of `names` (packages count with their submodules) are in `modules`."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize("verb", ["publish", "subscribe"])
def test_a_verb_module_leaves_the_heavy_imports_until_its_node_is_open(verb: str) -> None:
    loaded = loaded_after(f"import broker.cli.{verb}")
    assert under(loaded, AFTER_THE_NODE_OPENS) == []


def test_publishing_a_stix_file_loads_no_other_format_or_service() -> None:
    loaded = loaded_after(
        """
        import tempfile
        from pathlib import Path

        from broker.cli import _soc, publish
        from broker.pep import Publisher
        from connectors.soc import parse_file
        from connectors.soc.publishing import publish_parsed

        path = Path(tempfile.mkdtemp()) / "one.json"
        path.write_text(
            '{"type": "bundle", "id": "bundle--7b1e9e4c-1d48-4e3a-9d5e-0c6c3f1f0a11",'
            ' "objects": [{"type": "indicator", "spec_version": "2.1",'
            ' "id": "indicator--0c7b5b88-8ba7-4f1b-8a2e-5d3f7c7f0a01",'
            ' "created": "2026-11-27T10:00:00.000Z", "modified": "2026-11-27T10:00:00.000Z",'
            ' "pattern_type": "stix", "pattern": "[ipv4-addr:value = \\'192.0.2.1\\']",'
            ' "valid_from": "2026-11-27T10:00:00Z"}]}'
        )
        assert len(parse_file(path, default_tlp="GREEN").items) == 1
        """
    )
    assert "stix2" in loaded  # the parser is the stix2 library's (house rule)
    assert under(loaded, NOT_FOR_A_STIX_PUBLISH) == []


def test_a_json_lines_subscriber_loads_no_misp_stix_or_taxii_library() -> None:
    loaded = loaded_after(
        """
        import tempfile

        from broker.cli import _workflows, subscribe
        from broker.pep import Subscriber
        from connectors.isac.factory import make_sink

        make_sink("jsonl", tempfile.mkdtemp(), "enisa", None)  # settings: for taxii only
        """
    )
    assert "broker.pep.subscriber" in loaded
    # ... nor prometheus_client: metrics are counted only when served (--metrics-port)
    unneeded = ("pymisp", "misp_stix_converter", "stix2", "connectors.taxii", "prometheus_client")
    assert under(loaded, unneeded) == []


def test_jcu_help_imports_no_verb() -> None:
    loaded = loaded_after(
        """
        import contextlib, io
        from broker.cli import main

        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        """
    )
    verbs = {target.split(":")[0] for target in _VERBS.values()}
    assert sorted(verbs & loaded) == []


def test_every_verb_has_its_help_summary_listed() -> None:
    """`jcu --help` lists `_SUMMARIES` instead of importing each verb for its help: each must
    say what the verb's own help says."""
    ctx = click.Context(cli)
    for name in _VERBS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert _SUMMARIES.get(name) == command.get_short_help_str(limit=1000), (
            f"add or update {name!r} in broker.cli._SUMMARIES: it must be its help's first sentence"
        )


def test_jcu_help_lists_every_verb_with_its_summary() -> None:
    text = cli.get_help(click.Context(cli, terminal_width=200, max_content_width=200))
    for name, summary in _SUMMARIES.items():
        assert f"{name}  " in text and summary in text


def test_a_log_event_below_the_level_loads_no_structlog_and_one_above_it_is_shown() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from broker import logs

                logs.configure("json", "WARNING")
                log = logs.get_logger("startup-test")
                log.info("below the level", detail=1)
                print("structlog" in sys.modules)
                log.warning("above the level", passphrase="hunter2")
                print("structlog" in sys.modules)
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["False", "True"]
    (line,) = done.stderr.strip().splitlines()
    event = json.loads(line)
    assert event["event"] == "above the level" and event["level"] == "warning"
    assert event["passphrase"] == "[redacted]" and "hunter2" not in done.stderr
