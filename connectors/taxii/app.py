"""The TAXII 2.1 read-only server over one participant's store, as a Starlette app.

Endpoints (TAXII 2.1, section 4-5): discovery `/taxii2/`, one API root
`/<participant>/`, its collections (one per stream received), objects with
`added_after`, `limit`, `next`, `match[id|type|version|spec_version]`, one
object, its versions and the manifest. Every request needs HTTP Basic
credentials of a participant; only the store's owner may read below its API
root (another participant gets 403). Errors are TAXII error messages.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.logs import get_logger
from connectors.taxii import _cursor
from connectors.taxii.store import (
    MAX_FILTER_COMBINATIONS,
    MAX_IDS,
    STIX_MEDIA_TYPE,
    CollectionInfo,
    ObjectQuery,
    Page,
    TaxiiStore,
)
from connectors.taxii.throttle import LoginThrottle
from connectors.taxii.timestamps import parse_us

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
MAX_PAGE = 1000
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
#: Password checks (scrypt) running at once; more wait their turn.
PASSWORD_CHECKS_AT_ONCE = 2
_REALM = 'Basic realm="jcu TAXII", charset="UTF-8"'

_log = get_logger("connectors.taxii")


class PasswordVerifier(Protocol):
    """What the app needs from a user database (see `TaxiiUsers`). May block."""

    def verify(self, user: str, password: str) -> bool: ...


class TaxiiError(Exception):
    """A TAXII error message (section 3.6.1) with its HTTP status."""

    def __init__(
        self,
        status: int,
        title: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description
        self.headers = dict(headers or {})


def _taxii_json(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        dict(body), status_code=status, headers=headers, media_type=TAXII_MEDIA_TYPE
    )


def _error_response(exc: TaxiiError) -> JSONResponse:
    body: dict[str, Any] = {"title": exc.title, "http_status": str(exc.status)}
    if exc.description:
        body["description"] = exc.description
    return _taxii_json(body, exc.status, exc.headers)


def _accepts_taxii(header: str | None) -> bool:
    """Accept negotiation: TAXII 2.1 JSON, or a wildcard that covers it."""
    if not header:
        return True
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        params = dict(
            (k.strip().lower(), v.strip().strip('"'))
            for k, _, v in (p.partition("=") for p in parts[1:])
        )
        if params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json" and params.get("version", "2.1") == "2.1":
            return True
    return False


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _csv(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def _scope(request: Request) -> str:
    """What a `next` cursor is bound to: the path and every filter but `next` and `limit`."""
    filters = sorted(
        (k, v) for k, v in request.query_params.multi_items() if k not in ("next", "limit")
    )
    return request.url.path + "?" + urlencode(filters)


def _query(request: Request, key: bytes, *, allow_version: bool = True) -> ObjectQuery:
    params = request.query_params
    known = {"added_after", "limit", "next", "match[id]", "match[type]", "match[spec_version]"}
    if allow_version:
        known.add("match[version]")
    unknown = sorted(set(params) - known)
    if unknown:
        raise TaxiiError(400, "Unsupported filter", f"not supported here: {', '.join(unknown)}")
    try:
        added_after = parse_us(params["added_after"]) if "added_after" in params else None
        versions = _csv(params.getlist("match[version]")) or ("last",)
        for v in versions:
            if v not in ("first", "last", "all"):
                parse_us(v)
    except ValueError as exc:
        raise TaxiiError(400, "Bad timestamp", str(exc)) from None
    limit = MAX_PAGE
    if "limit" in params:
        raw = params["limit"]
        if not raw.isdigit() or int(raw) < 1:
            raise TaxiiError(400, "Bad limit", "limit must be a positive integer")
        limit = min(int(raw), MAX_PAGE)
    cursor = None
    if "next" in params:
        try:
            cursor = _cursor.decode(key, _scope(request), params["next"])
        except ValueError as exc:
            raise TaxiiError(400, "Bad next", str(exc)) from None
    ids = tuple(dict.fromkeys(_csv(params.getlist("match[id]"))))
    types = tuple(dict.fromkeys(_csv(params.getlist("match[type]"))))
    if len(ids) > MAX_IDS:
        raise TaxiiError(400, "Too many filter values", f"at most {MAX_IDS} match[id] values")
    combinations = max(len(types), 1) * (1 if "all" in versions else len(set(versions)))
    if not ids and combinations > MAX_FILTER_COMBINATIONS:
        raise TaxiiError(
            400,
            "Too many filter values",
            f"match[type] values times match[version] values must be at most "
            f"{MAX_FILTER_COMBINATIONS}; split the request",
        )
    return ObjectQuery(
        added_after_us=added_after,
        ids=ids,
        types=types,
        versions=versions if allow_version else ("all",),
        spec_versions=_csv(params.getlist("match[spec_version]")),
        after_cursor_us=cursor,
        limit=limit,
    )


def _page_headers(page: Page) -> dict[str, str]:
    if not page.items:
        return {}
    return {
        "X-TAXII-Date-Added-First": page.items[0].date_added,
        "X-TAXII-Date-Added-Last": page.items[-1].date_added,
    }


def _paged(
    page: Page, key: str, items: list[Any], request: Request, cursor_key: bytes
) -> dict[str, Any]:
    body: dict[str, Any] = {"more": page.more}
    if page.more and page.next_cursor is not None:
        body["next"] = _cursor.encode(cursor_key, _scope(request), page.next_cursor)
    if items:
        body[key] = items
    return body


def _collection_json(info: CollectionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "title": info.title,
        "description": info.description,
        "alias": info.topic,
        "can_read": True,
        "can_write": False,
        "media_types": [STIX_MEDIA_TYPE],
    }


Handler = Callable[[Request], Awaitable[Response]]


class _Api:
    def __init__(
        self,
        store: TaxiiStore,
        participant: str,
        auth: PasswordVerifier,
        throttle: LoginThrottle,
    ) -> None:
        self.store = store
        self.participant = participant
        self.auth = auth
        self.throttle = throttle
        # Password checks run in threads, each scrypt holding 32 MiB: a few at a time.
        self.checks = anyio.CapacityLimiter(PASSWORD_CHECKS_AT_ONCE)
        self.root = f"/{participant}/"

    async def _authenticate(self, request: Request) -> str:
        creds = _basic_credentials(request.headers.get("authorization"))
        if creds is not None:
            client = request.client.host if request.client is not None else "unknown"
            wait = self.throttle.blocked_for(client, time.monotonic())
            if wait > 0:
                _log.warning("taxii.throttled", client=client, path=request.url.path)
                raise TaxiiError(
                    429,
                    "Too many failed logins",
                    f"try again in {math.ceil(wait)} s",
                    {"Retry-After": str(math.ceil(wait))},
                )
            user, password = creds
            if await anyio.to_thread.run_sync(
                self.auth.verify, user, password, limiter=self.checks
            ):
                self.throttle.succeeded(client)
                return user
            self.throttle.failed(client, time.monotonic())
        _log.info("taxii.unauthenticated", path=request.url.path)
        raise TaxiiError(
            401,
            "Authentication required",
            "send HTTP Basic credentials of a participant",
            {"WWW-Authenticate": _REALM},
        )

    def guarded(self, handler: Handler, *, owner_only: bool = True) -> Handler:
        async def endpoint(request: Request) -> Response:
            user = await self._authenticate(request)
            if owner_only and user != self.participant:
                _log.info("taxii.forbidden", user=user, path=request.url.path)
                raise TaxiiError(403, "Forbidden", f"this API root serves {self.participant} only")
            if not _accepts_taxii(request.headers.get("accept")):
                raise TaxiiError(
                    406, "Not Acceptable", f"this server answers in {TAXII_MEDIA_TYPE} only"
                )
            return await handler(request)

        return endpoint

    async def _collection(self, request: Request) -> CollectionInfo:
        info = await self.store.collection(request.path_params["collection_id"])
        if info is None:
            raise TaxiiError(404, "Collection not found")
        return info

    async def discovery(self, request: Request) -> Response:
        return _taxii_json(
            {
                "title": "jcu-broker TAXII 2.1",
                "description": f"What {self.participant} has received through the JCU broker",
                "default": self.root,
                "api_roots": [self.root],
            }
        )

    async def api_root(self, request: Request) -> Response:
        return _taxii_json(
            {
                "title": f"{self.participant}: received streams",
                "description": "One collection per stream this participant receives",
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": MAX_CONTENT_LENGTH,
            }
        )

    async def collections(self, request: Request) -> Response:
        infos = await self.store.collections()
        body = {"collections": [_collection_json(i) for i in infos]} if infos else {}
        return _taxii_json(body)

    async def collection(self, request: Request) -> Response:
        return _taxii_json(_collection_json(await self._collection(request)))

    async def objects(self, request: Request) -> Response:
        info = await self._collection(request)
        page = await self.store.query(info.id, _query(request, self.store.cursor_key))
        body = _paged(
            page, "objects", [item.body for item in page.items], request, self.store.cursor_key
        )
        return _taxii_json(body, headers=_page_headers(page))

    async def _one_object(self, request: Request, *, allow_version: bool) -> tuple[Page, str]:
        info = await self._collection(request)
        object_id = request.path_params["object_id"]
        query = _query(request, self.store.cursor_key, allow_version=allow_version)
        if query.ids:
            raise TaxiiError(400, "Unsupported filter", "match[id] is implied by the URL here")
        if not await self.store.has_object(info.id, object_id):
            raise TaxiiError(404, "Object not found", f"{object_id} is not in this collection")
        page = await self.store.query(
            info.id,
            ObjectQuery(
                added_after_us=query.added_after_us,
                ids=(object_id,),
                versions=query.versions,
                spec_versions=query.spec_versions,
                after_cursor_us=query.after_cursor_us,
                limit=query.limit,
            ),
        )
        return page, object_id

    async def object(self, request: Request) -> Response:
        page, _ = await self._one_object(request, allow_version=True)
        body = _paged(
            page, "objects", [item.body for item in page.items], request, self.store.cursor_key
        )
        return _taxii_json(body, headers=_page_headers(page))

    async def versions(self, request: Request) -> Response:
        page, _ = await self._one_object(request, allow_version=False)
        # oldest first by the source's version, not by when each arrived (pages still
        # follow date_added, so `next` keeps its meaning)
        ordered = sorted(page.items, key=lambda item: (parse_us(item.version), item.date_added_us))
        body = _paged(
            page, "versions", [item.version for item in ordered], request, self.store.cursor_key
        )
        return _taxii_json(body, headers=_page_headers(page))

    async def manifest(self, request: Request) -> Response:
        info = await self._collection(request)
        page = await self.store.query(info.id, _query(request, self.store.cursor_key))
        records = [
            {
                "id": item.id,
                "date_added": item.date_added,
                "version": item.version,
                "media_type": item.media_type,
            }
            for item in page.items
        ]
        body = _paged(page, "objects", records, request, self.store.cursor_key)
        return _taxii_json(body, headers=_page_headers(page))


async def _on_taxii_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TaxiiError)  # noqa: S101 - narrows for mypy: registered for TaxiiError
    return _error_response(exc)


async def _on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - narrows for mypy: registered for HTTPException
    return _error_response(TaxiiError(exc.status_code, exc.detail, headers=exc.headers))


async def _on_crash(_request: Request, exc: Exception) -> Response:
    _log.error("taxii.internal_error", error=type(exc).__name__)
    return _error_response(TaxiiError(500, "Internal server error"))


def create_app(
    store: TaxiiStore,
    participant: str,
    auth: PasswordVerifier,
    *,
    throttle: LoginThrottle | None = None,
) -> Starlette:
    """The TAXII 2.1 app serving `participant`'s (already started) store."""
    if store.participant != participant:
        raise ValueError(f"the store belongs to {store.participant}, not {participant}")
    api = _Api(store, participant, auth, throttle or LoginThrottle())
    root = api.root.rstrip("/")
    collection = root + "/collections/{collection_id}"
    obj = collection + "/objects/{object_id}"
    routes = [
        Route("/taxii2/", api.guarded(api.discovery, owner_only=False), methods=["GET"]),
        Route(root + "/", api.guarded(api.api_root), methods=["GET"]),
        Route(root + "/collections/", api.guarded(api.collections), methods=["GET"]),
        Route(collection + "/", api.guarded(api.collection), methods=["GET"]),
        Route(collection + "/objects/", api.guarded(api.objects), methods=["GET"]),
        Route(obj + "/", api.guarded(api.object), methods=["GET"]),
        Route(obj + "/versions/", api.guarded(api.versions), methods=["GET"]),
        Route(collection + "/manifest/", api.guarded(api.manifest), methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            TaxiiError: _on_taxii_error,
            HTTPException: _on_http_error,
            Exception: _on_crash,
        },
    )


__all__ = ["MAX_PAGE", "TAXII_MEDIA_TYPE", "PasswordVerifier", "TaxiiError", "create_app"]
