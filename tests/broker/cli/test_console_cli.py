"""`jcu console`'s own checks, before anything is served: where it may listen, and the
address key sign-in tokens are bound to."""

from __future__ import annotations

import pytest

from broker.cli.console import check_binding, public_origin
from broker.errors import ConfigError


def test_off_loopback_the_console_needs_tls_and_a_login() -> None:
    assert check_binding("127.0.0.1", None, False) is False
    assert check_binding("127.0.0.1", True, False) is True
    assert check_binding("0.0.0.0", None, True) is True
    with pytest.raises(ConfigError, match="refusing plain HTTP"):
        check_binding("0.0.0.0", None, False)
    with pytest.raises(ConfigError, match="needs a login"):
        check_binding("10.0.0.5", False, True)


def test_the_origin_tokens_are_bound_to() -> None:
    assert public_origin(None, "http", "127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert public_origin(None, "https", "::1", 8443) == "https://[::1]:8443"
    given = public_origin("https://Console.JCU.example:8443/", "https", "0.0.0.0", 8443)
    assert given == "https://console.jcu.example:8443"
    for bad in ("console.example", "ftp://console.example", "https://console.example/jcu"):
        with pytest.raises(ConfigError, match="--public-url"):
            public_origin(bad, "https", "0.0.0.0", 8443)
    with pytest.raises(ConfigError, match="serves https"):
        public_origin("http://console.example", "https", "0.0.0.0", 8443)
