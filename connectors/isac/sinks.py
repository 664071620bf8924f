"""File sinks for the subscriber: `deliver` writes, `flush` makes a whole batch durable.

The subscriber hands over a consumer batch (`deliver` for each record), then
awaits `flush` and commits its Kafka offsets only after that: files are written
and renamed as they come, without a sync each, and `flush` makes them all
durable at once (`_atomic.sync_files`) before it commits the version index; JSON
lines are kept and appended with one write and one fsync per file. A crash
before `flush` returns re-delivers the batch (at least once); re-delivery must
not make a second copy.

What the source wrote (StixObject, MispEvent) is kept by the source's identity
and version: one file per STIX id (`<id>.stix.json`) and per MISP event
(`<uuid>.misp.json`, or the MISP feed layout), showing the newest version by
the source's `modified` / `timestamp`, never the last to arrive
(`_versions.VersionIndex`, in the directory). A retraction withdraws the
versions its message brought, and the file shows the newest one left (or goes).

Indicator and IncidentReport records get one file per message, named by the
message id only; a retraction rewrites it as its withdrawn version (STIX
`revoked: true` with a later `modified`; MISP `to_ids` false and the
`jcu:retracted` tag). The JSON lines sink remembers which message ids its
files already hold, and appends a retraction line.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from pymisp import MISPEvent

from broker.errors import ConfigError
from broker.heap import gc_paused
from broker.logs import get_logger
from connectors import _json
from connectors._atomic import Unsynced, append_lines, safe_name, write_atomic
from connectors._convert import misp_to_stix, parse_stix, stix_to_misp
from connectors._stix_object import canonical_json, version_of
from connectors._values import as_time, json_ready
from connectors.isac._jsonl import jsonl_bytes
from connectors.isac._misp import RETRACTED_TAG, misp_event_of, to_misp_event
from connectors.isac._misp_feed import feed_entry
from connectors.isac._stix import SOURCE_PAYLOADS, sender_orgc, source_objects, to_stix_bundle
from connectors.isac._versions import Version, VersionIndex
from connectors.isac.delivered import Delivered
from connectors.taxii.timestamps import parse_us

#: The version index of a sink directory.
INDEX_NAME = ".jcu-versions.sqlite"
#: A MISP event made of STIX objects is rewritten at most this often while they arrive (and
#: never more than a fifth of the time: a large event takes a while to convert).
REGROUP_EVERY = 5.0
_BUNDLES = uuid.uuid5(uuid.NAMESPACE_URL, "urn:jcu-broker:stix-file")
_log = get_logger("connectors.isac.sinks")

_RETRACTED_NOTE = "; retracted by the sender"


class Sink(Protocol):
    """What the subscriber calls for every record it may deliver."""

    async def deliver(self, item: Delivered) -> Path: ...


def _file_name(message_id: str, suffix: str) -> str:
    return f"{safe_name(message_id)}{suffix}"


def _read_json(path: Path) -> Any:
    try:
        return _json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def _revoked_version(obj: dict[str, Any], when: datetime) -> dict[str, Any]:
    """The next STIX version of `obj`: `revoked: true`, `modified` strictly later."""
    out = dict(obj)
    previous = as_time(datetime.fromisoformat(str(obj["modified"]).replace("Z", "+00:00")))
    modified = max(as_time(when), previous + timedelta(milliseconds=1))
    out["modified"] = json_ready(modified)
    out["revoked"] = True
    refs = []
    for ref in obj.get("external_references", ()):
        ref = dict(ref)
        note = str(ref.get("description", ""))
        if ref.get("source_name") == "jcu-broker" and _RETRACTED_NOTE not in note:
            ref["description"] = note + _RETRACTED_NOTE
        refs.append(ref)
    if refs:
        out["external_references"] = refs
    return out


class StixFileSink:
    """STIX 2.1 bundles in a directory.

    StixObject and MispEvent deliveries: one bundle per STIX id, `<id>.stix.json`,
    holding its newest version by `modified`. Indicator and IncidentReport
    records: one bundle per message, `<message id>.stix.json`.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._index: VersionIndex | None = None
        self._unsynced = Unsynced()

    def index(self) -> VersionIndex:
        if self._index is None:
            self._index = VersionIndex(self.directory / INDEX_NAME)
        return self._index

    def path_for(self, message_id: str) -> Path:
        return self.directory / _file_name(message_id, ".stix.json")

    def object_path(self, stix_id: str) -> Path:
        return self.directory / _file_name(stix_id, ".stix.json")

    def holds(self, message_id: str) -> bool:
        return self.path_for(message_id).exists() or self.index().holds(message_id)

    async def deliver(self, item: Delivered) -> Path:
        if item.payload_type in SOURCE_PAYLOADS:
            return await asyncio.to_thread(self._deliver_objects, item, source_objects(item))
        data = _json.pretty(to_stix_bundle([item]))
        return await asyncio.to_thread(self._write, self.path_for(item.message_id), data, item)

    def _deliver_objects(self, item: Delivered, objects: list[dict[str, Any]]) -> Path:
        index = self.index()
        group = str(item.record.get("uuid")) if item.payload_type == "MispEvent" else None
        last = self.directory
        for obj in objects:
            shown = index.add(_version_of(obj, item, group))
            last = self.object_path(str(obj["id"]))
            if shown:
                self._render(str(obj["id"]), obj)
        return last

    def _render(self, stix_id: str, obj: dict[str, Any] | None) -> None:
        path = self.object_path(stix_id)
        if obj is None:
            path.unlink(missing_ok=True)
            self._unsynced.add(path)  # its directory, made durable by flush
            return
        bundle_id = uuid.uuid5(_BUNDLES, f"{stix_id}|{version_of(obj)}")
        bundle = {"type": "bundle", "id": f"bundle--{bundle_id}", "objects": [obj]}
        self._unsynced.add(write_atomic(path, _json.pretty(bundle), durable=False))

    def _write(self, path: Path, data: bytes, item: Delivered) -> Path:
        old = _read_json(path)
        if not item.retracted and old and any(o.get("revoked") for o in old.get("objects", ())):
            return path  # a late re-delivery must not undo a retraction
        self._unsynced.add(write_atomic(path, data, durable=False))  # made durable by flush
        return path

    async def flush(self) -> None:
        """The batch's object files on disk, then the versions they show recorded."""
        await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        self._unsynced.sync()
        if self._index is not None:
            self._index.commit()

    async def close(self) -> None:
        await self.flush()
        if self._index is not None:
            self._index.close()
            self._index = None

    async def retract(self, message_id: str, when: datetime) -> Path | None:
        """Withdraw what the message brought: an object's file shows the newest version left
        (or goes); a record's bundle is rewritten as revoked. None if there is nothing."""
        return await asyncio.to_thread(self._retract_any, message_id, when)

    def _retract_any(self, message_id: str, when: datetime) -> Path | None:
        withdrawn = self.index().retract(message_id)
        for stix_id, _ in withdrawn:
            newest = self.index().newest(stix_id)
            self._render(stix_id, _json.loads(newest.body) if newest is not None else None)
        if withdrawn:
            return self.directory
        return self._retract(self.path_for(message_id), when)

    def _retract(self, path: Path, when: datetime) -> Path | None:
        bundle = _read_json(path)
        if bundle is None:
            return None
        objects = [
            o
            if o.get("type") == "marking-definition" or o.get("revoked")
            else _revoked_version(o, when)
            for o in bundle.get("objects", ())
        ]
        data = _json.pretty({**bundle, "objects": objects})
        self._unsynced.add(write_atomic(path, data, durable=False))
        return path


MispLayout = Literal["files", "feed"]


class MispFileSink:
    """MISP events in a directory, as files (`<uuid>.misp.json`) or as a MISP feed.

    A MispEvent is one event per uuid, its newest version by `timestamp` (a new
    version updates it in place), with the sender as Orgc. StixObjects become one
    event per bundle they came in (MISP's own converter; the event uuid is the
    bundle's), rewritten as objects arrive. Indicator and IncidentReport records
    get one event per message, `<message id>.misp.json`.

    The feed layout (`jcu subscribe --format misp-feed`) is what a MISP instance
    reads when the directory is added as a feed: `<uuid>.json` per event,
    `manifest.json`, `hashes.csv`; and `stix/<uuid>.json`, the same event as a
    STIX 2.1 bundle, for OpenCTI.
    """

    def __init__(self, directory: Path, layout: MispLayout = "files") -> None:
        self.directory = Path(directory)
        self.layout = layout
        self._index: VersionIndex | None = None
        self._dirty_groups: dict[str, float] = {}
        self._rendered: dict[str, float] = {}
        self._render_cost: dict[str, float] = {}
        self._feed_dirty = False
        self._manifest: dict[str, Any] | None = None
        self._hashes: dict[str, list[str]] | None = None
        self._unsynced = Unsynced()
        self._parsed: dict[str, dict[str, Any]] = {}  # group -> version body -> stix2 object

    def index(self) -> VersionIndex:
        if self._index is None:
            self._index = VersionIndex(self.directory / INDEX_NAME)
        return self._index

    def path_for(self, message_id: str) -> Path:
        return self.directory / _file_name(message_id, ".misp.json")

    def event_path(self, event_uuid: str) -> Path:
        suffix = ".json" if self.layout == "feed" else ".misp.json"
        return self.directory / _file_name(event_uuid, suffix)

    def holds(self, message_id: str) -> bool:
        return self.path_for(message_id).exists() or self.index().holds(message_id)

    async def deliver(self, item: Delivered) -> Path:
        if item.payload_type == "MispEvent":
            return await asyncio.to_thread(self._deliver_event, item)
        if item.payload_type == "StixObject":
            return await asyncio.to_thread(self._deliver_stix, item)
        info = f"jcu-broker: {item.payload_type} from {item.sender} ({item.message_id})"
        data = _json.pretty(to_misp_event([item], info))
        return await asyncio.to_thread(self._write, self.path_for(item.message_id), data, item)

    def _deliver_event(self, item: Delivered) -> Path:
        doc = misp_event_of(item)
        event_uuid = str(doc["Event"]["uuid"])
        shown = self.index().add(
            Version(
                event_uuid,
                int(as_time(item.record["timestamp"]).timestamp() * 1_000_000),
                str(int(as_time(item.record["timestamp"]).timestamp())),
                item.message_id,
                item.sender,
                None,
                item.redacted_fields,
                canonical_json(doc),
            )
        )
        if shown:
            self._render_event(event_uuid, doc)
        return self.event_path(event_uuid)

    def _deliver_stix(self, item: Delivered) -> Path:
        obj = source_objects(item)[0]
        group = str(item.record.get("bundle_id") or f"bundle--{uuid.uuid4()}")
        self.index().add(_version_of(obj, item, group))
        self._dirty_groups.setdefault(group, time.monotonic())
        return self.event_path(group.split("--", 1)[-1])

    def _render_event(
        self,
        event_uuid: str,
        doc: dict[str, Any] | None,
        stix_objects: list[dict[str, Any]] | None = None,
    ) -> None:
        path = self.event_path(event_uuid)
        stix_path = self.directory / "stix" / f"{safe_name(event_uuid)}.json"
        if doc is None:
            path.unlink(missing_ok=True)
            self._unsynced.add(path)  # its directory, made durable by flush
            if self.layout == "feed":
                stix_path.unlink(missing_ok=True)
                self._unsynced.add(stix_path)
                self._feed_entry(event_uuid, None)
            return
        data = _json.pretty(doc)
        self._unsynced.add(write_atomic(path, data, durable=False))
        if self.layout == "feed":
            # a copy: PyMISP changes what it loads
            self._feed_entry(event_uuid, feed_entry(_json.loads(data)["Event"]))
            bundle = {
                "type": "bundle",
                "id": f"bundle--{event_uuid}",
                "objects": stix_objects if stix_objects is not None else misp_to_stix(doc["Event"]),
            }
            self._unsynced.add(write_atomic(stix_path, _json.pretty(bundle), durable=False))

    def _render_group(self, group: str) -> None:
        """The MISP event of the newest versions of a bundle's STIX objects."""
        started = time.monotonic()
        event_uuid = group.split("--", 1)[-1]
        versions = self.index().group(group)
        if not versions:
            self._parsed.pop(group, None)
            self._render_event(event_uuid, None)
            return
        objects = [_json.loads(v.body) for v in versions]
        # stix2 objects parsed for the group's last rendering are used again: a group is
        # rewritten as its objects arrive, and parsing is most of misp-stix's time.
        # A large event: the collector would walk its objects again and again (`broker.heap`).
        known = self._parsed.get(group, {})
        try:
            with gc_paused():
                parsed: list[Any] = [
                    known[v.body] if v.body in known else parse_stix(o)
                    for v, o in zip(versions, objects, strict=True)
                ]
                event = stix_to_misp(parsed, event_uuid=event_uuid)
        except ConfigError as exc:
            # The objects stay in the index and the event as last rendered; a running
            # subscriber must not stop on one group stix2 or misp-stix cannot read.
            _log.error(
                "misp event not rendered",
                group=group,
                objects=len(versions),
                reason=str(exc),
                action="the objects are kept; the event is rendered again when the group changes",
            )
            return
        self._parsed[group] = {v.body: p for v, p in zip(versions, parsed, strict=True)}
        event["Orgc"] = sender_orgc(versions[0].sender)
        tags = [t for t in event.get("Tag") or [] if isinstance(t, dict)]
        if any(v.redacted for v in versions):
            tags.append({"name": "jcu:redacted"})
        if tags:
            event["Tag"] = tags
        self._render_event(event_uuid, {"Event": event}, objects)  # the feed's STIX: as sent
        self._rendered[group] = time.monotonic()
        self._render_cost[group] = self._rendered[group] - started

    def _feed_entry(self, event_uuid: str, entry: tuple[dict[str, Any], list[str]] | None) -> None:
        manifest, hashes = self._feed_state()
        manifest.pop(event_uuid, None)
        hashes.pop(event_uuid, None)
        if entry is not None:
            manifest.update(entry[0])
            hashes[event_uuid] = entry[1]
        self._feed_dirty = True

    def _feed_state(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        if self._manifest is None or self._hashes is None:
            self._manifest = _read_json(self.directory / "manifest.json") or {}
            self._hashes = {}
            path = self.directory / "hashes.csv"
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    digest, _, owner = line.partition(",")
                    if owner:
                        self._hashes.setdefault(owner, []).append(digest)
        return self._manifest, self._hashes

    def _write_feed_meta(self) -> None:
        manifest, hashes = self._feed_state()
        manifest_path = self.directory / "manifest.json"
        self._unsynced.add(write_atomic(manifest_path, _json.pretty(manifest), durable=False))
        lines = "".join(f"{h},{u}\n" for u in sorted(hashes) for h in hashes[u])
        hashes_path = self.directory / "hashes.csv"
        self._unsynced.add(write_atomic(hashes_path, lines.encode(), durable=False))
        self._feed_dirty = False

    def _write(self, path: Path, data: bytes, item: Delivered) -> Path:
        old = _read_json(path)
        tags = [t.get("name") for t in (old or {}).get("Event", {}).get("Tag", ())]
        if not item.retracted and RETRACTED_TAG in tags:
            return path  # a late re-delivery must not undo a retraction
        self._unsynced.add(write_atomic(path, data, durable=False))  # made durable by flush
        return path

    async def flush(self, *, final: bool = False) -> None:
        await asyncio.to_thread(self._flush, final)

    def _flush(self, final: bool) -> None:
        now = time.monotonic()
        for group in list(self._dirty_groups):
            wait = max(REGROUP_EVERY, 4 * self._render_cost.get(group, 0.0))
            if final or now - self._rendered.get(group, 0.0) >= wait:
                self._render_group(group)
                del self._dirty_groups[group]
        if self._feed_dirty:
            self._write_feed_meta()
        self._unsynced.sync()
        if self._index is not None:
            self._index.commit()

    async def close(self) -> None:
        await self.flush(final=True)
        if self._index is not None:
            self._index.close()
            self._index = None

    async def retract(self, message_id: str, when: datetime) -> Path | None:
        """Withdraw what the message brought (the event shows the newest version left, or
        goes); a record's event is rewritten: `to_ids` false, tagged jcu:retracted."""
        return await asyncio.to_thread(self._retract_any, message_id)

    def _retract_any(self, message_id: str) -> Path | None:
        withdrawn = self.index().retract(message_id)
        for object_id, group in withdrawn:
            if group is not None:
                self._dirty_groups.setdefault(group, 0.0)
                continue
            newest = self.index().newest(object_id)
            self._render_event(object_id, _json.loads(newest.body) if newest else None)
        if withdrawn:
            return self.directory
        return self._retract(self.path_for(message_id))

    def _retract(self, path: Path) -> Path | None:
        doc = _read_json(path)
        if doc is None:
            return None
        event = MISPEvent()
        event.load(doc)
        if RETRACTED_TAG not in [t.name for t in event.tags]:
            event.add_tag(RETRACTED_TAG)
        for attribute in event.attributes:
            attribute.to_ids = False
            if RETRACTED_TAG not in [t.name for t in attribute.tags]:
                attribute.add_tag(RETRACTED_TAG)
        for report in event.event_reports:
            if "RETRACTED by the sender" not in report.content:
                report.content = f"{report.content}\n- RETRACTED by the sender"
        data = _json.pretty({"Event": _json.loads(event.to_json())})
        self._unsynced.add(write_atomic(path, data, durable=False))
        return path


class JsonlFileSink:
    """Every payload type, one line each, appended to <dir>/<received UTC date>.jsonl.

    Idempotent per message id: the message ids (and retractions) already in the
    directory's files are read on first use, and a line is written once. Lines are
    kept until `flush`, which appends each file's with one write and one fsync.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._seen: set[tuple[str, bool]] | None = None
        self._pending: dict[Path, list[bytes]] = {}

    def _keys(self) -> set[tuple[str, bool]]:
        if self._seen is None:
            seen: set[tuple[str, bool]] = set()
            for path in sorted(self.directory.glob("*.jsonl")):
                for line in path.read_bytes().splitlines():
                    try:
                        obj = _json.loads(line)
                    except ValueError:
                        continue  # a line torn by a crash: its record comes again
                    if isinstance(obj, dict) and "message_id" in obj:
                        seen.add((str(obj["message_id"]), bool(obj.get("retracted"))))
            self._seen = seen
        return self._seen

    def holds(self, message_id: str) -> bool:
        """Whether a delivery of `message_id` is written here (or kept for the next flush)."""
        return (message_id, False) in self._keys()

    async def deliver(self, item: Delivered) -> Path:
        """Keep the delivery's line for `flush`; where it goes."""
        path = self.directory / f"{as_time(item.received):%Y-%m-%d}.jsonl"
        await self._keep((item.message_id, item.retracted), path, lambda: jsonl_bytes(item))
        return path

    async def retract(
        self, message_id: str, when: datetime, *, sender: str = "", reason: str = ""
    ) -> Path:
        """Keep one retraction line: `{"message_id", "retracted": true, "sender", ...}`."""
        path = self.directory / f"{as_time(when):%Y-%m-%d}.jsonl"
        doc = {
            "message_id": message_id,
            "retracted": True,
            "sender": sender,
            "reason": reason,
            "received": json_ready(when),
        }
        await self._keep((message_id, True), path, lambda: _json.line(doc))
        return path

    async def _keep(self, key: tuple[str, bool], path: Path, line: Callable[[], bytes]) -> None:
        keys = self._keys() if self._seen is not None else await asyncio.to_thread(self._keys)
        if key in keys:
            return
        self._pending.setdefault(path, []).append(line() + b"\n")
        keys.add(key)

    async def flush(self) -> None:
        """Append the kept lines, one write and one fsync per file; kept again if that fails."""
        if self._pending:
            await asyncio.to_thread(self._append_pending)

    def _append_pending(self) -> None:
        for path in list(self._pending):
            append_lines({path: self._pending[path]})
            del self._pending[path]  # written: a retried flush must not write it again

    async def close(self) -> None:
        await self.flush()


def _version_of(obj: dict[str, Any], item: Delivered, group: str | None) -> Version:
    """One delivered object as a version the sink's index keeps (it decides what is shown)."""
    version = version_of(obj)
    return Version(
        str(obj["id"]),
        parse_us(version) if version else 0,
        version,
        item.message_id,
        item.sender,
        group,
        item.redacted_fields,
        canonical_json(obj),
    )
