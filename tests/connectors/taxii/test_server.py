"""Acceptance: the TAXII 2.1 server under real uvicorn, driven by OASIS `taxii2-client`."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import uvicorn
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from connectors.taxii import (
    TAXII_MEDIA_TYPE,
    Delivery,
    ScryptCost,
    TaxiiStore,
    TaxiiUsers,
    collection_id_for,
    create_app,
)
from tests.connectors.taxii.conftest import OTHER_TOPIC, TOPIC, indicator

OWNER, OWNER_PW = "cert-eu", "cert-eu taxii passphrase"
OTHER, OTHER_PW = "enisa", "enisa taxii passphrase"


@dataclass(frozen=True)
class Running:
    base: str
    first_batch: Delivery
    second_batch: Delivery
    revoked_id: str

    @property
    def collection_url(self) -> str:
        return f"{self.base}/{OWNER}/collections/{collection_id_for(TOPIC)}/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _fill(store: TaxiiStore) -> tuple[Delivery, Delivery, str]:
    first = await store.deliver(TOPIC, [indicator(n) for n in range(1, 8)])
    v1 = indicator(1)
    newer = v1.new_version(name="C2 address 1 (confirmed)", modified="2026-11-05T00:00:00.000Z")
    second = await store.deliver(TOPIC, [newer, indicator(8)])
    await store.retract(TOPIC, indicator(2).id)
    await store.ensure_collection(OTHER_TOPIC)
    return first, second, indicator(2).id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("taxii")
    users = TaxiiUsers(home / "taxii-users.json", cost=ScryptCost(n=2**12))
    users.set_password(OWNER, OWNER_PW)
    users.set_password(OTHER, OTHER_PW)
    store = TaxiiStore(home / "cert-eu.sqlite3", OWNER)
    store.open_sync()
    first, second, revoked = asyncio.run(_fill(store))
    port = _free_port()
    config = uvicorn.Config(
        create_app(store, OWNER, users), host="127.0.0.1", port=port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Running(f"http://127.0.0.1:{port}", first, second, revoked)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        store.close_sync()


def _response(exc: pytest.ExceptionInfo[requests.HTTPError]) -> requests.Response:
    assert exc.value.response is not None
    return exc.value.response


def _collection(server: Running) -> Collection:
    return Collection(server.collection_url, user=OWNER, password=OWNER_PW)


def test_taxii2_client_discovers_the_root_and_lists_one_collection_per_stream(
    server: Running,
) -> None:
    discovery = Server(f"{server.base}/taxii2/", user=OWNER, password=OWNER_PW)
    assert discovery.title
    (root,) = discovery.api_roots
    assert root.url == f"{server.base}/{OWNER}/"
    assert root.versions == [TAXII_MEDIA_TYPE]
    assert root.max_content_length > 0
    by_alias = {c.alias: c for c in root.collections}
    assert set(by_alias) == {TOPIC, OTHER_TOPIC}
    assert by_alias[TOPIC].id == collection_id_for(TOPIC)
    assert by_alias[TOPIC].title == "Civilian community: indicators"
    assert by_alias[TOPIC].can_read and not by_alias[TOPIC].can_write


def test_pages_through_objects_with_limit_2(server: Running) -> None:
    pages = list(as_pages(_collection(server).get_objects, per_request=2))
    assert [len(p.get("objects", [])) for p in pages] == [2, 2, 2, 2]
    assert [p["more"] for p in pages] == [True, True, True, False]
    ids = [o["id"] for p in pages for o in p["objects"]]
    # Latest version of each of the 8 indicators, in date_added order: the
    # revised indicator 1 and the revoked indicator 2 moved to the end.
    assert ids == [indicator(n).id for n in (3, 4, 5, 6, 7, 1, 8, 2)]
    assert len(set(ids)) == 8


def test_objects_carry_date_added_headers(server: Running) -> None:
    resp = requests.get(
        server.collection_url + "objects/",
        params={"limit": 3},
        auth=(OWNER, OWNER_PW),
        headers={"Accept": TAXII_MEDIA_TYPE},
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == TAXII_MEDIA_TYPE
    body = resp.json()
    assert body["more"] is True and body["next"]
    first, last = (server.first_batch.added[i].date_added for i in (2, 4))
    assert resp.headers["X-TAXII-Date-Added-First"] == first
    assert resp.headers["X-TAXII-Date-Added-Last"] == last


def test_added_after_returns_only_later_objects(server: Running) -> None:
    cut = server.first_batch.added[-1].date_added
    envelope = _collection(server).get_objects(added_after=cut, version="all")
    names = [o["name"] for o in envelope["objects"]]
    assert names == ["C2 address 1 (confirmed)", "C2 address 8", "C2 address 2"]
    assert envelope["objects"][-1]["revoked"] is True
    later = server.second_batch.added[-1].date_added
    tail = _collection(server).get_objects(added_after=later)
    assert [o["id"] for o in tail["objects"]] == [server.revoked_id]
    assert tail["more"] is False


def test_match_filters(server: Running) -> None:
    coll = _collection(server)
    one = coll.get_objects(id=indicator(1).id, version="first")
    assert [o["name"] for o in one["objects"]] == ["C2 address 1"]
    every = coll.get_objects(id=indicator(1).id, version="all")
    assert len(every["objects"]) == 2
    at = coll.get_objects(version="2026-11-01T12:00:05Z")
    assert [o["id"] for o in at["objects"]] == [indicator(5).id]
    assert "objects" not in coll.get_objects(type="malware")


def test_manifest_lists_versions_with_date_added(server: Running) -> None:
    manifest = _collection(server).get_manifest(id=indicator(1).id, version="all")
    records = manifest["objects"]
    assert [r["version"] for r in records] == [
        "2026-11-01T12:00:01.000Z",
        "2026-11-05T00:00:00.000Z",
    ]
    assert records[0]["date_added"] == server.first_batch.added[0].date_added
    assert {r["media_type"] for r in records} == {"application/stix+json;version=2.1"}


def test_get_object_and_its_versions(server: Running) -> None:
    coll = _collection(server)
    latest = coll.get_object(indicator(1).id)
    assert [o["name"] for o in latest["objects"]] == ["C2 address 1 (confirmed)"]
    versions = coll.object_versions(indicator(1).id)
    assert versions["versions"] == ["2026-11-01T12:00:01.000Z", "2026-11-05T00:00:00.000Z"]
    assert versions["more"] is False
    revoked = coll.object_versions(server.revoked_id)
    assert len(revoked["versions"]) == 2
    with pytest.raises(requests.HTTPError) as exc:
        coll.get_object("indicator--00000000-0000-4000-8000-000000000000")
    assert _response(exc).status_code == 404
    assert _response(exc).json()["http_status"] == "404"


def test_wrong_password_is_401_with_basic_challenge(server: Running) -> None:
    coll = Collection(server.collection_url, user=OWNER, password="not the password")
    with pytest.raises(requests.HTTPError) as exc:
        coll.get_objects()
    resp = _response(exc)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert resp.headers["content-type"] == TAXII_MEDIA_TYPE
    assert resp.json()["title"] == "Authentication required"
    no_auth = requests.get(server.collection_url, headers={"Accept": TAXII_MEDIA_TYPE}, timeout=10)
    assert no_auth.status_code == 401


def test_another_participant_gets_403_on_the_owners_collections(server: Running) -> None:
    coll = Collection(server.collection_url, user=OTHER, password=OTHER_PW)
    with pytest.raises(requests.HTTPError) as exc:
        coll.get_objects()
    assert _response(exc).status_code == 403
    assert _response(exc).json()["http_status"] == "403"
    root = ApiRoot(f"{server.base}/{OWNER}/", user=OTHER, password=OTHER_PW)
    with pytest.raises(requests.HTTPError) as exc:
        root.refresh_collections()
    assert _response(exc).status_code == 403


def test_unsupported_media_type_is_406(server: Running) -> None:
    for accept in ("application/json", "application/taxii+json;version=2.0"):
        resp = requests.get(
            server.collection_url + "objects/",
            auth=(OWNER, OWNER_PW),
            headers={"Accept": accept},
            timeout=10,
        )
        assert resp.status_code == 406, accept
        assert resp.json()["http_status"] == "406"


def test_bad_filters_are_400_taxii_errors(server: Running) -> None:
    for params in ({"limit": "0"}, {"added_after": "yesterday"}, {"next": "abc"}):
        resp = requests.get(
            server.collection_url + "objects/",
            params=params,
            auth=(OWNER, OWNER_PW),
            headers={"Accept": TAXII_MEDIA_TYPE},
            timeout=10,
        )
        assert resp.status_code == 400, params
        assert resp.headers["content-type"] == TAXII_MEDIA_TYPE
        assert resp.json()["title"]


def test_unknown_collection_is_404(server: Running) -> None:
    url = f"{server.base}/{OWNER}/collections/{collection_id_for('jcu.defence.reports')}/objects/"
    resp = requests.get(
        url, auth=(OWNER, OWNER_PW), headers={"Accept": TAXII_MEDIA_TYPE}, timeout=10
    )
    assert resp.status_code == 404
    assert resp.json()["title"] == "Collection not found"


def _get(server: Running, params: dict[str, str]) -> requests.Response:
    return requests.get(
        server.collection_url + "objects/",
        params=params,
        auth=(OWNER, OWNER_PW),
        headers={"Accept": TAXII_MEDIA_TYPE},
        timeout=10,
    )


def test_next_is_opaque_signed_and_bound_to_its_query(server: Running) -> None:
    first = _get(server, {"limit": "2", "match[type]": "indicator"}).json()
    token = first["next"]
    assert not token.isdigit()  # no position a client could edit
    follow = _get(server, {"limit": "3", "match[type]": "indicator", "next": token})
    assert follow.status_code == 200  # the page size may change between pages
    seen = {o["id"] for o in first["objects"]}
    assert not seen & {o["id"] for o in follow.json()["objects"]}
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for params, why in (
        ({"match[type]": "indicator", "next": forged}, "this server returned"),
        ({"match[type]": "indicator", "next": token + "x"}, "this server returned"),
        ({"match[type]": "indicator", "next": "é€"}, "this server returned"),
        ({"match[type]": "malware", "next": token}, "for these filters"),
        ({"next": token}, "for these filters"),
    ):
        resp = _get(server, params)
        assert resp.status_code == 400, params
        assert resp.headers["content-type"] == TAXII_MEDIA_TYPE
        body = resp.json()
        assert body["http_status"] == "400" and body["title"] == "Bad next", params
        assert why in body["description"], params


def test_too_many_filter_combinations_is_a_400(server: Running) -> None:
    types = ",".join(f"x-type-{n}" for n in range(51))
    resp = _get(server, {"match[type]": types, "match[version]": "first,last"})
    assert resp.status_code == 400
    assert resp.json()["title"] == "Too many filter values"
    assert _get(server, {"match[type]": types, "match[version]": "all"}).status_code == 200
