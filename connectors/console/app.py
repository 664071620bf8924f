"""The console as a Starlette app: server-rendered pages, each with a JSON twin under /api.

Read-only: the only POSTs are log in (a password, or a token signed by the
auditor's own node: `broker.trust.sign_in`) and log out. Every page and endpoint
resolves the viewer first and filters with it on the server (see `access`);
an auditor asking for another organisation's data gets 403 on the page and
on the JSON twin alike. With `login=False` (loopback only, refused elsewhere
by the CLI) every request is the local operator.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
import anyio.to_thread
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from broker.logs import get_logger
from broker.trust.sign_in import Refused, SignInVerifier
from connectors.console import views
from connectors.console.access import Forbidden, Viewer
from connectors.console.data import ConsoleData
from connectors.console.session import COOKIE, Sessions
from connectors.console.users import ConsoleUsers
from connectors.sitrep import to_html_fragment
from connectors.taxii.throttle import LoginThrottle

_log = get_logger("connectors.console")
PAGES = ("flows", "messages", "audit", "health", "policy", "crisis", "sitrep")
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
LOCAL_OPERATOR = Viewer("local", "operator")


@cache
def _templates() -> Environment:
    env = Environment(
        loader=ChoiceLoader(
            [
                PackageLoader("connectors.console", "templates"),
                PackageLoader("connectors.sitrep", "templates"),
            ]
        ),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["qs"] = lambda d: urlencode(d or {}, doseq=True)
    return env


class _Unauthenticated(Exception):
    pass


class _Console:
    def __init__(
        self,
        data: ConsoleData,
        users: ConsoleUsers | None,
        *,
        login: bool,
        secure_cookies: bool,
        throttle: LoginThrottle,
        sign_in: SignInVerifier | None,
    ) -> None:
        self.data = data
        self.users = users
        self.sign_in = sign_in
        self.login = login
        self.secure = secure_cookies
        self.sessions = Sessions()
        self.throttle = throttle
        self.checks = anyio.CapacityLimiter(2)

    # -- who is asking ----------------------------------------------------------
    def viewer(self, request: Request) -> Viewer:
        if not self.login:
            return LOCAL_OPERATOR
        viewer = self.sessions.read(request.cookies.get(COOKIE))
        if viewer is None:
            raise _Unauthenticated()
        if viewer.via == "key":
            self._key_still_good(viewer)
        elif viewer.role == "auditor" and viewer.org != self.data.node:
            raise _Unauthenticated()  # a password account audits this node's organisation only
        return viewer

    def _key_still_good(self, viewer: Viewer) -> None:
        """A session signed in by key lasts while the key is current and its organisation
        active: a revocation, rotation or suspension the node learns of ends it."""
        ended: Refused | None = Refused("sign-in-off", "key sign-in is off on this console")
        if self.sign_in is not None and viewer.org and viewer.key_id:
            ended = self.sign_in.still_good(viewer.org, viewer.key_id)
        if ended is not None:
            _log.info("console.session_ended", org=viewer.org, reason=ended.reason)
            raise _Unauthenticated()

    # -- rendering --------------------------------------------------------------
    def html(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        page = (
            _templates()
            .get_template(template)
            .render(
                viewer=viewer,
                node=self.data.node,
                login=self.login,
                now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                path=request.url.path,
                **context,
            )
        )
        return HTMLResponse(page, status_code=status, headers=_HEADERS)

    @staticmethod
    def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={**_HEADERS, **(headers or {})})

    def error(self, request: Request, status: int, message: str, viewer: Viewer | None) -> Response:
        if request.url.path.startswith("/api/"):
            return self.json({"error": message, "status": status}, status)
        return self.html(request, "error.html", viewer, status, code=status, message=message)

    # -- pages ------------------------------------------------------------------
    def page(self, name: str, *, api: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            viewer: Viewer | None = None
            try:
                viewer = self.viewer(request)
                await self.data.fresh()
                body = await self.build(name, request, viewer)
            except _Unauthenticated:
                if api:
                    return self.json({"error": "log in first: POST /login", "status": 401}, 401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
            except Forbidden as exc:
                _log.info("console.forbidden", user=viewer and viewer.user, path=request.url.path)
                return self.error(request, 403, str(exc), viewer)
            except views.BadRequest as exc:
                return self.error(request, 400, str(exc), viewer)
            except LookupError as exc:
                return self.error(request, 404, str(exc.args[0] if exc.args else exc), viewer)
            if api:
                return self.json({k: v for k, v in body.items() if not k.startswith("_")})
            # charts are SVG made by connectors.charts, every label escaped there
            charts = {k: Markup(v) for k, v in body.get("_charts", {}).items()}  # noqa: S704
            template = "story.html" if name == "story" else f"{name}.html"
            return self.html(request, template, viewer, d=body, charts=charts, page=name)

        return endpoint

    async def build(self, name: str, request: Request, viewer: Viewer) -> dict[str, Any]:
        params = dict(request.query_params)
        multi = {k: request.query_params.getlist(k) for k in request.query_params}
        data = self.data
        if name == "flows":
            return views.flows(data, viewer, params)
        if name == "messages":
            return views.messages(data, viewer, params)
        if name == "story":
            return await views.story(data, viewer, request.path_params["message_id"])
        if name == "proof":
            return views.proof_of(data, viewer, request.path_params["decision_id"])
        if name == "audit":
            return views.audit(data, viewer, params)
        if name == "health":
            return views.health(data, viewer, params)
        if name == "policy":
            return views.policy(data, viewer, params, multi)
        if name == "crisis":
            return views.crisis(data, viewer, params)
        if name == "sitrep":
            return await self.sitrep(viewer, params)
        raise LookupError(f"no page {name}")

    async def sitrep(self, viewer: Viewer, params: dict[str, str]) -> dict[str, Any]:
        if not viewer.may_see_org(self.data.node):
            raise Forbidden(
                f"the situation report here is {self.data.node}'s, built from what "
                f"{self.data.node} may receive; {viewer.org}'s is made on its own node: "
                f"`jcu sitrep --since 24h` there"
            )
        now = datetime.now(UTC)
        w = views.window(params, now)
        if w.since is None:
            raise views.BadRequest("the situation report needs a period: since=24h, 7d, ...")
        report = await self.data.sitrep(max(w.until - w.since, timedelta(minutes=1)))
        return {
            **report.to_json(),
            "permalink": {"since": w.given},
            "_html": to_html_fragment(report),
        }

    async def proof_download(self, request: Request) -> Response:
        resp = await self.page("proof", api=True)(request)
        if resp.status_code == 200:
            resp.headers["Content-Disposition"] = (
                f'attachment; filename="proof-{request.path_params["decision_id"]}.json"'
            )
        return resp

    # -- logging in ---------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        if not self.login:
            return RedirectResponse("/", 303)
        nxt = _safe_next(request.query_params.get("next"))
        return self.login_page(request, nxt)

    def login_page(
        self,
        request: Request,
        nxt: str,
        status: int = 200,
        *,
        message: str | None = None,
        reason: str | None = None,
        form: str = "password",
    ) -> HTMLResponse:
        """The login page: the password form and, when on, a fresh sign-in challenge."""
        return self.html(
            request,
            "login.html",
            None,
            status,
            next=nxt,
            failed=message is not None,
            message=message,
            reason=reason,
            form=form,
            passwords=self.users is not None,
            challenge=self.sign_in.challenge() if self.sign_in is not None else None,
        )

    def _throttled(self, request: Request, nxt: str, form: str) -> tuple[str, Response | None]:
        client = request.client.host if request.client is not None else "unknown"
        wait = self.throttle.blocked_for(client, time.monotonic())
        if wait <= 0:
            return client, None
        return client, self.login_page(
            request,
            nxt,
            429,
            message=f"too many failed logins: try again in {math.ceil(wait)} s",
            reason="throttled",
            form=form,
        )

    def _session(self, viewer: Viewer, nxt: str) -> Response:
        resp = RedirectResponse(nxt, 303)
        resp.set_cookie(
            COOKIE,
            self.sessions.issue(viewer),
            max_age=self.sessions.lifetime,
            httponly=True,
            secure=self.secure,
            samesite="strict",
            path="/",
        )
        return resp

    async def sign_in_submit(self, request: Request) -> Response:
        """A token from `jcu console sign-in` on the auditor's own node."""
        if not self.login or self.sign_in is None:
            return RedirectResponse("/login", 303)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        nxt = _safe_next((form.get("next") or ["/"])[0])
        client, blocked = self._throttled(request, nxt, "key")
        if blocked is not None:
            return blocked
        verdict = self.sign_in.verify(token)
        if isinstance(verdict, Refused):
            self.throttle.failed(client, time.monotonic())
            _log.info(
                "console.sign_in_refused", claimed=verdict.claimed, reason=verdict.reason,
                client=client,
            )  # fmt: skip
            return self.login_page(
                request, nxt, 401, message=verdict.message, reason=verdict.reason, form="key"
            )
        self.throttle.succeeded(client)
        viewer = Viewer(
            f"{verdict.participant} key {verdict.key_id[:8]}",
            "auditor",
            verdict.participant,
            via="key",
            key_id=verdict.key_id,
        )
        _log.info("console.sign_in", org=verdict.participant, key_id=verdict.key_id, client=client)
        return self._session(viewer, nxt)

    async def login_submit(self, request: Request) -> Response:
        if not self.login or self.users is None:
            return RedirectResponse("/login" if self.login else "/", 303)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        user = (form.get("user") or [""])[0]
        password = (form.get("password") or [""])[0]
        nxt = _safe_next((form.get("next") or ["/"])[0])
        client, blocked = self._throttled(request, nxt, "password")
        if blocked is not None:
            return blocked
        viewer = await anyio.to_thread.run_sync(
            self.users.check, user, password, limiter=self.checks
        )
        if viewer is not None and viewer.role == "auditor" and viewer.org != self.data.node:
            viewer = None  # an auditor account of another node's organisation: not here
        if viewer is None:
            self.throttle.failed(client, time.monotonic())
            _log.info("console.login_failed", user=user, client=client)
            return self.login_page(
                request, nxt, 401, message="wrong account name or password", reason="password"
            )
        self.throttle.succeeded(client)
        _log.info("console.login", user=viewer.user, role=viewer.role, org=viewer.org)
        return self._session(viewer, nxt)

    async def logout(self, request: Request) -> Response:
        resp = RedirectResponse("/login" if self.login else "/", 303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/flows", 303)

    async def healthz(self, request: Request) -> Response:
        return self.json({"ok": True})


def _safe_next(value: str | None) -> str:
    """Only a path on this console (never another site) to go to after logging in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/flows"
    return value


def create_app(
    data: ConsoleData,
    users: ConsoleUsers | None = None,
    *,
    login: bool = True,
    secure_cookies: bool = False,
    throttle: LoginThrottle | None = None,
    manage_data: bool = True,
    sign_in: SignInVerifier | None = None,
) -> Starlette:
    """The console over `data` (started and stopped with the app unless `manage_data` is
    False). With `login`, `users` holds the password accounts and `sign_in`, if given,
    lets auditors of any active organisation sign in with their own node's key."""
    if login and users is None and sign_in is None:
        raise ValueError("a console with login needs its users or key sign-in")
    c = _Console(
        data,
        users,
        login=login,
        secure_cookies=secure_cookies,
        throttle=throttle or LoginThrottle(),
        sign_in=sign_in if login else None,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if manage_data:
            async with data:
                yield
        else:
            yield

    from importlib.resources import files

    static = StaticFiles(directory=str(files("connectors.console") / "static"))
    routes = [
        Route("/", c.home),
        Route("/healthz", c.healthz),
        Route("/login", c.login_form, methods=["GET"]),
        Route("/login", c.login_submit, methods=["POST"]),
        Route("/login/key", c.sign_in_submit, methods=["POST"]),
        Route("/logout", c.logout, methods=["POST"]),
        Route("/messages/{message_id}", c.page("story", api=False)),
        Route("/api/messages/{message_id}", c.page("story", api=True)),
        Route("/api/proofs/{decision_id}", c.proof_download),
        Mount("/static", static, name="static"),
    ]
    for name in PAGES:
        routes.append(Route(f"/{name}", c.page(name, api=False)))
        routes.append(Route(f"/api/{name}", c.page(name, api=True)))
    return Starlette(routes=routes, lifespan=lifespan)
