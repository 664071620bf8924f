"""The console on enisa's node, as a real `jcu console` process on the session's broker,
with an operator account and an auditor account of enisa; and the traffic it shows."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from broker.kafka.local import free_port
from tests.connectors.console.traffic import Traffic, make_traffic
from tests.world import World

#: Test-only console passwords (never real secrets): given through the environment.
OPERATOR = ("night-operator", "operator test password, not a secret")
AUDITOR = ("enisa-auditor", "auditor test password, not a secret")
NODE = "enisa"


@dataclass
class Console:
    url: str
    traffic: Traffic
    world: World
    #: every organisation's audit keys, as the operator holds them (`jcu audit keys export`)
    keys: Path

    def client(self, who: tuple[str, str] | None) -> httpx.Client:
        """An HTTP client logged in as `who` (None: not logged in)."""
        c = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        if who is not None:
            r = c.post("/login", data={"user": who[0], "password": who[1], "next": "/flows"})
            assert r.status_code == 303, r.text
        return c

    def challenge(self, client: httpx.Client) -> str:
        """The sign-in challenge the login page shows now."""
        page = client.get("/login")
        assert page.status_code == 200, page.text
        return challenge_on(page.text)

    def signed_in(self, org: str) -> httpx.Client:
        """An HTTP client signed in as `org`'s auditor with a token `org`'s node made."""
        c = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        token = sign_in_token(self.world, org, self.challenge(c))
        r = c.post("/login/key", data={"token": token, "next": "/flows"})
        assert r.status_code == 303, r.text
        return c


def challenge_on(html: str) -> str:
    found = re.search(r"jcu console sign-in (jcu-challenge-v1\.[A-Za-z0-9_.-]+)", html)
    assert found, "no sign-in challenge on the login page"
    return found.group(1)


def sign_in_token(world: World, org: str, challenge: str) -> str:
    """`jcu console sign-in CHALLENGE`, run on `org`'s own node: the token it prints."""
    out = subprocess.run(
        [sys.executable, "-m", "broker.cli", "console", "sign-in", challenge],
        env=world.env(org),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "nowhere else" in out.stderr
    return out.stdout.strip()


def _passwd(world: World, name: str, role: str, password: str) -> None:
    env = {**world.env(NODE), "JCU_CONSOLE_PASSWORD": password}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "console",
            "passwd",
            name,
            "--role",
            role,
            "--from-env",
            "JCU_CONSOLE_PASSWORD",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def _export_audit_keys(world: World, out: Path) -> Path:
    """What each organisation hands the platform operator: `jcu audit keys export`."""
    for org in world.orgs:
        if org == "authority":
            continue
        subprocess.run(
            [sys.executable, "-m", "broker.cli", "audit", "keys", "export", "--out",
             str(out / f"{org}.key")],
            env=world.env(org),
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def console(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    traffic = asyncio.run(make_traffic(world, tmp_path_factory.mktemp("console-sinks")))
    keys = _export_audit_keys(world, tmp_path_factory.mktemp("audit-keys"))
    _passwd(world, OPERATOR[0], "operator", OPERATOR[1])
    _passwd(world, AUDITOR[0], "auditor", AUDITOR[1])
    port = free_port()
    log = tmp_path_factory.mktemp("console-log") / "console.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker.cli",
                "console",
                "--port",
                str(port),
                "--login",
                "--sample-every",
                "2",
                "--audit-keys",
                str(keys),
            ],
            # The console's platform view reads as jcu-console (an auditor and an operator).
            env={**world.env(NODE), "JCU_CONSOLE_KAFKA_CONFIG": str(world.console_view)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the console did not start: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield Console(url, traffic, world, keys)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = log.read_text()
        for secret in (OPERATOR[1], AUDITOR[1]):
            assert secret not in text, "a password reached the console's log"
        assert not re.search(r"Traceback", text), text[-3000:]
