"""`jcu console`'s own checks, before anything is served: where it may listen, and the
address key sign-in tokens are bound to."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from broker.cli.console import check_binding, public_origin, serve_in_background
from broker.errors import ConfigError
from broker.trust.sign_in import SignInVerifier


def test_off_loopback_the_console_needs_tls_and_a_login() -> None:
    # (S104: the addresses in these tests are checked, never bound)
    assert check_binding("127.0.0.1", None, False) is False
    assert check_binding("127.0.0.1", True, False) is True
    assert check_binding("0.0.0.0", None, True) is True  # noqa: S104
    with pytest.raises(ConfigError, match="refusing plain HTTP"):
        check_binding("0.0.0.0", None, False)  # noqa: S104
    with pytest.raises(ConfigError, match="needs a login"):
        check_binding("10.0.0.5", False, True)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "console.example"])  # noqa: S104 - refused here
def test_the_demo_console_without_login_serves_on_loopback_only(host: str) -> None:
    # Refused before the data is even looked at, and nothing is served.
    with pytest.raises(ConfigError, match="loopback only"):
        serve_in_background(object(), host, 8080)


def test_the_origin_tokens_are_bound_to() -> None:
    assert public_origin(None, "http", "127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert public_origin(None, "https", "::1", 8443) == "https://[::1]:8443"
    given = public_origin("https://Console.JCU.example:8443/", "https", "0.0.0.0", 8443)  # noqa: S104
    assert given == "https://console.jcu.example:8443"
    for bad in ("console.example", "ftp://console.example", "https://console.example/jcu"):
        with pytest.raises(ConfigError, match="--public-url"):
            public_origin(bad, "https", "0.0.0.0", 8443)  # noqa: S104
    with pytest.raises(ConfigError, match="serves https"):
        public_origin("http://console.example", "https", "0.0.0.0", 8443)  # noqa: S104


@pytest.mark.parametrize(
    ("challenge", "says"),
    [
        ("copied-the-wrong-line", "not a console sign-in challenge"),
        (
            SignInVerifier("enisa", "https://c.example", None, lifetime=timedelta(0))  # type: ignore[arg-type]
            .challenge()
            .text,
            "reload the console's login page",
        ),
    ],
)
def test_sign_in_refuses_a_challenge_it_cannot_sign_in_one_line(challenge: str, says: str) -> None:
    """Before any key is opened: a challenge that is not one, or has expired."""
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "console", "sign-in", challenge],
        env={k: v for k, v in os.environ.items() if not k.startswith("JCU_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert says in lines[0] and not result.stdout
