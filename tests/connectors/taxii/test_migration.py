"""A store file written by earlier code opens with the current code, upgraded in place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from connectors.taxii import ObjectQuery, TaxiiStore, collection_id_for
from connectors.taxii.store import SCHEMA_VERSION
from tests.connectors.taxii.conftest import TOPIC, indicator

CID = collection_id_for(TOPIC)

#: The first file layout (commit 88543de), before withdrawal, owners and version flags.
FIRST_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    last_added_us INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE objects (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    object_type TEXT NOT NULL,
    version_key TEXT NOT NULL,
    version_us INTEGER NOT NULL,
    spec_version TEXT NOT NULL,
    date_added_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_id, version_key)
);
CREATE UNIQUE INDEX objects_by_date_added ON objects (collection_id, date_added_us);
CREATE TABLE message_objects (
    message_id TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    PRIMARY KEY (message_id, collection_id, object_id)
);
"""
#: What the code before issue 19 (commit 246b3d4) made of it: owners, withdrawal columns.
LAST_DDL = (
    FIRST_DDL
    + """
CREATE TABLE object_owners (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    object_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (collection_id, object_id)
);
ALTER TABLE objects ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE message_objects ADD COLUMN version_key TEXT;
ALTER TABLE message_objects ADD COLUMN withdraw INTEGER NOT NULL DEFAULT 0;
"""
)


def _old_store(path: Path, ddl: str, *, withdrawn: bool) -> None:
    """Rows as the old code wrote them: indicator 1 in three versions (the newest arriving
    first), indicator 2 in one; with `withdrawn`, indicator 1's newest version withdrawn."""
    v1 = indicator(1)
    v2 = v1.new_version(name="v2", modified="2026-11-02T00:00:00.000Z")
    v3 = v1.new_version(name="v3", modified="2026-11-03T00:00:00.000Z")
    rows = [(v3, 1_000), (v1, 1_001), (indicator(2), 1_002), (v2, 1_003)]
    with sqlite3.connect(path) as db:
        db.executescript(ddl)
        db.execute("INSERT INTO meta VALUES ('participant', 'cert-eu')")
        db.execute(
            "INSERT INTO collections VALUES (?, ?, 'Civilian community: indicators', 'x', 1003)",
            (CID, TOPIC),
        )
        for obj, added in rows:
            body = json.loads(obj.serialize())
            db.execute(
                "INSERT INTO objects (collection_id, object_id, object_type, version_key,"
                " version_us, spec_version, date_added_us, body) VALUES (?,?,?,?,?,?,?,?)",
                (
                    CID,
                    obj.id,
                    "indicator",
                    body["modified"],
                    int(obj.modified.timestamp() * 1_000_000),
                    "2.1",
                    added,
                    json.dumps(body, sort_keys=True),
                ),
            )
        if withdrawn:
            db.execute("UPDATE objects SET withdrawn=1 WHERE date_added_us=1000")


@pytest.mark.parametrize(
    ("ddl", "withdrawn"), [(FIRST_DDL, False), (LAST_DDL, False), (LAST_DDL, True)]
)
async def test_an_old_store_is_upgraded_in_place_and_answers_from_its_indexes(
    tmp_path: Path, ddl: str, withdrawn: bool
) -> None:
    path = tmp_path / "cert-eu.sqlite3"
    _old_store(path, ddl, withdrawn=withdrawn)
    async with TaxiiStore(path, "cert-eu") as store:

        async def names(*versions: str) -> list[str]:
            page = await store.query(CID, ObjectQuery(versions=versions))
            return [o.body["name"] for o in page.items]

        newest = "v2" if withdrawn else "v3"
        assert sorted(await names("last")) == sorted([newest, "C2 address 2"])
        assert sorted(await names("first")) == ["C2 address 1", "C2 address 2"]
        assert len(await names("all")) == (3 if withdrawn else 4)
        assert all(line.startswith("SEARCH") for line in store.explain(CID, ObjectQuery()))
        # and it keeps working: a new version becomes the last, the date order goes on
        v4 = indicator(1).new_version(name="v4", modified="2026-11-04T00:00:00.000Z")
        added = await store.deliver(TOPIC, [v4])
        assert added.added[0].date_added_us > 1_003
        assert sorted(await names("last")) == ["C2 address 2", "v4"]
    with sqlite3.connect(path) as db:
        (schema,) = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    assert int(schema) == SCHEMA_VERSION
    # reopening an upgraded file changes nothing
    async with TaxiiStore(path, "cert-eu") as store:
        page = await store.query(CID, ObjectQuery())
    assert sorted(o.body["name"] for o in page.items) == ["C2 address 2", "v4"]
