"""A session signed in with an organisation's key lasts only while the registry still
stands behind it: the console's node learns of a suspension, and the next request of
that session is sent back to log in.

An in-process console on a copy of enisa's node (the registry change stays in the
copy), on the session's broker; the token is made by a real `jcu console sign-in`
on eeas-intcen's node.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.cli._audit_io import keyring_resolvers
from broker.cli.stats import collect
from broker.kafka.connection import read_client_file
from broker.trust.sign_in import SignInVerifier
from connectors.console import ConsoleData, create_app
from tests.connectors.console.fixture import challenge_on, sign_in_token
from tests.world import World

pytestmark = pytest.mark.kafka

ORG = "eeas-intcen"
ORIGIN = "http://testserver"


async def test_a_key_session_ends_when_its_organisation_is_suspended(
    world: World, tmp_path: Path
) -> None:
    authority = world.authority_copy(tmp_path / "authority")
    ctx = world.node_copy("enisa", tmp_path / "enisa")
    keys, valid = keyring_resolvers(ctx.settings, ctx.envelope.store)
    view = read_client_file(world.console_view)  # the platform view, as jcu-console
    data = ConsoleData(ctx, keys=keys, valid=valid, stats=collect, sample_every=60, view=view)
    verifier = SignInVerifier("enisa", ORIGIN, ctx.envelope.trusted)
    app = create_app(data, None, login=True, sign_in=verifier, manage_data=False)
    transport = httpx.ASGITransport(app=app)
    async with data, httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        login = await client.get("/login")
        token = await asyncio.to_thread(sign_in_token, world, ORG, challenge_on(login.text))
        signed_in = await client.post("/login/key", data={"token": token})
        assert signed_in.status_code == 303
        client.cookies = signed_in.cookies
        works = await client.get("/api/flows", params={"since": "1h"})
        assert works.status_code == 200  # the session works

        def suspend(document: dict[str, Any]) -> None:
            for p in document["participants"]:
                if p["id"] == ORG:
                    p["status"] = "suspended"

        ctx.envelope.trusted.offer(world.export(suspend, authority=authority))
        ended = await client.get("/api/flows", params={"since": "1h"})
        assert ended.status_code == 401
        page = await client.get("/flows")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        # and a new token is refused, saying why
        login = await client.get("/login")
        again = await asyncio.to_thread(sign_in_token, world, ORG, challenge_on(login.text))
        refused = await client.post("/login/key", data={"token": again})
        assert refused.status_code == 401
        assert 'data-reason="participant-suspended"' in refused.text
