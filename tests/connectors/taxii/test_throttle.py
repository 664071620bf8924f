"""Failed logins are throttled per client: 429 with Retry-After, and no password check."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from connectors.taxii import TAXII_MEDIA_TYPE, LoginThrottle, TaxiiStore, create_app

OWNER, PASSWORD = "cert-eu", "cert-eu taxii passphrase"


def test_a_client_is_blocked_after_too_many_failures_until_the_window_passes() -> None:
    t = LoginThrottle(max_failures=3, window=60.0)
    for second in (0.0, 1.0):
        t.failed("10.0.0.1", second)
        assert t.blocked_for("10.0.0.1", second) == 0.0
    t.failed("10.0.0.1", 2.0)
    assert t.blocked_for("10.0.0.1", 2.0) == pytest.approx(58.0)
    assert t.blocked_for("10.0.0.2", 2.0) == 0.0  # others are not affected
    assert t.blocked_for("10.0.0.1", 60.5) == 0.0  # the first failure has aged out
    t.failed("10.0.0.1", 61.0)
    assert t.blocked_for("10.0.0.1", 61.0) == 0.0  # 1 aged out too: 2 and 61 remain
    t.failed("10.0.0.1", 61.5)
    assert t.blocked_for("10.0.0.1", 61.5) == pytest.approx(0.5)  # 2, 61, 61.5


def test_a_success_clears_the_count_and_the_table_is_bounded() -> None:
    t = LoginThrottle(max_failures=2, window=60.0, max_clients=2)
    t.failed("a", 0.0)
    t.succeeded("a")
    t.failed("a", 1.0)
    assert t.blocked_for("a", 1.0) == 0.0
    for client in ("b", "c"):  # "a" is forgotten to make room
        t.failed(client, 2.0)
        t.failed(client, 2.0)
    assert t.blocked_for("b", 2.0) > 0 and t.blocked_for("c", 2.0) > 0
    t.failed("a", 3.0)
    assert t.blocked_for("a", 3.0) == 0.0


class _CountingVerifier:
    def __init__(self) -> None:
        self.checks = 0

    def verify(self, user: str, password: str) -> bool:
        self.checks += 1
        return (user, password) == (OWNER, PASSWORD)


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": TAXII_MEDIA_TYPE}


async def test_the_server_answers_429_without_checking_the_password(tmp_path: Path) -> None:
    store = TaxiiStore(tmp_path / "cert-eu.sqlite3", OWNER)
    store.open_sync()
    verifier = _CountingVerifier()
    app = create_app(store, OWNER, verifier, throttle=LoginThrottle(max_failures=2))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://taxii.test") as client:
        for _ in range(2):
            assert (await client.get("/taxii2/", headers=_auth(OWNER, "guess"))).status_code == 401
        blocked = await client.get("/taxii2/", headers=_auth(OWNER, PASSWORD))
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0
        assert blocked.json()["title"] == "Too many failed logins"
        assert verifier.checks == 2  # the blocked attempt cost no password check
