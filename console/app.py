"""The operator console and REST API: one FastAPI app, routers per area.

Operators' pages live in ``console.routers.operator``, the REST API in
``console.routers.api``; managers' pages (menus, knowledge base, figures) get their own
router modules and are included in :func:`create_app` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from console.login import LoginGuard, LoginThrottle, PasswordChecks, Policy
from console.security import SecurityHeaders
from hotline.metrics import METRICS
from hotline.metrics import asgi_app as metrics_asgi_app
from hotline.settings import Settings
from tickets.accounts import AccountStore
from tickets.deadlines import FILTERS
from tickets.dialer import Dialer, load_dialer
from tickets.service import TicketService

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
MAX_UPLOAD = 20_000_000  # a recorded prompt or a knowledge-base file (the forms say 20 MB)
# The upload forms: the file plus the form around it (CSRF token, field names, boundaries).
# and a department's 反馈 with its photos (console.routers.department.REPLY_PATH).
UPLOAD_PATHS = ("/manage/prompts/upload", "/manage/kb/import", "/dept/reply")
UPLOAD_FORM_ROOM = 64_000


@dataclass
class Console:
    """Everything a request handler needs, built once per app."""

    settings: Settings
    service: TicketService
    accounts: AccountStore
    templates: Jinja2Templates
    events: aioredis.Redis
    logins: LoginGuard
    # Set when the server stops: open event streams end instead of holding shutdown up.
    closing: threading.Event = field(default_factory=threading.Event)

    @property
    def prefix(self) -> str:
        return self.service.queue.prefix


def get_console(request: Request) -> Console:
    return request.app.state.console


Refusal = Callable[[Scope, int], Response]


def _json_refusal(scope: Scope, limit: int) -> Response:
    return JSONResponse({"detail": "请求体过大"}, status_code=413)


class BodyLimit:
    """Refuse request bodies over the limit with 413 before anything reads them.

    ``uploads`` gives paths a larger limit of their own (the upload forms); ``refusal``
    builds the 413 answer (a page for browsers, JSON for the API)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        uploads: Mapping[str, int] | None = None,
        refusal: Refusal = _json_refusal,
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.uploads, self.refusal = dict(uploads or {}), refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads.get(scope["path"], self.max_bytes)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self.refusal(scope, limit)(scope, receive, send)
            return
        received = 0

        async def limited() -> dict[str, object]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
            return message  # type: ignore[return-value]

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self.refusal(scope, limit)(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(
    settings: Settings,
    service: TicketService | None = None,
    dialer: Dialer | None = None,
    redis_url: str | None = None,
    reconcile_every_s: float = 30.0,
) -> FastAPI:
    if service is None:
        dialer = dialer or load_dialer(settings.console.dialer, settings)
        service = TicketService.from_settings(settings, redis_url=redis_url, dialer=dialer)
    else:
        if dialer is not None:
            service.dialer = dialer
        # What the console offers to dispatch to is what the service accepts.
        service.departments = list(settings.tickets.departments)
    accounts = AccountStore(service.store, timedelta(minutes=settings.console.session_lifetime_min))
    pool_kwargs = service.queue.redis.connection_pool.connection_kwargs
    events = aioredis.Redis(
        host=pool_kwargs.get("host", "127.0.0.1"),
        port=pool_kwargs.get("port", 6379),
        db=pool_kwargs.get("db", 0),
        password=pool_kwargs.get("password"),
        decode_responses=True,
    )
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    from console import views

    views.install_filters(templates, settings)
    # Countdowns and the 班长's overdue counts, by the store's clock (tickets.deadlines).
    templates.env.globals.update(
        deadline=service.store.deadline,
        deadline_counts=service.store.deadline_counts,
        DEADLINE_FILTERS=FILTERS,
    )
    templates.env.globals.update(MAX_UPLOAD_BYTES=MAX_UPLOAD, MAX_UPLOAD_MB=MAX_UPLOAD // 1_000_000)
    logins = LoginGuard(
        LoginThrottle.beside(
            service.queue.redis, service.queue.prefix, Policy.from_settings(settings.console)
        ),
        PasswordChecks(accounts, settings.console.password_hash_workers),
    )
    console = Console(settings, service, accounts, templates, events, logins)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_keep_reconciling(console, reconcile_every_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await events.aclose()
            logins.close()

    app = FastAPI(
        title="12345 热线工单 API",
        description="工单受理、转办、反馈、回访与办结；供城市既有办件系统对接。",
        version="1.0",
        lifespan=lifespan,
        # Served by console.routers.docs, to admins only and without a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.console = console
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from console.routers import api, department, docs, knowledge, manager, monitor, operator

    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    app.include_router(api.router)
    app.include_router(operator.router)
    app.include_router(manager.router)
    app.include_router(knowledge.router)
    app.include_router(department.router)
    app.include_router(monitor.router)
    app.include_router(docs.router)
    operator.install_handlers(app)
    _install_error_handlers(app)
    # The last added runs first: the proxy's headers are resolved before anything looks
    # at the scheme (HSTS, Secure cookies) or the client's address (login throttling).
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.console.max_body_bytes,
        uploads=dict.fromkeys(UPLOAD_PATHS, MAX_UPLOAD + UPLOAD_FORM_ROOM),
        refusal=lambda scope, limit: _too_large(console, scope, limit),
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.console.trusted_proxies)
    # Prometheus: process figures, tickets, and the seat queues' depth read per scrape.
    METRICS.watch_queue(service.queue)
    app.mount("/metrics", metrics_asgi_app(token=settings.observability.metrics_token))
    app.add_api_route("/healthz", _health, include_in_schema=False)
    return app


def _too_large(console: Console, scope: Scope, limit: int) -> Response:
    """413: JSON for the API; for a browser's form a page that says the limit."""
    if scope["path"].startswith("/api/"):
        return _json_refusal(scope, limit)
    size = f"{limit / 1_000_000:g} MB"
    if scope["path"] in UPLOAD_PATHS:
        size = f"{MAX_UPLOAD / 1_000_000:g} MB"  # the file's limit, as the form says it
        detail = f"上传的文件过大（上限 {size}），请压缩或拆分后重试"
    else:
        detail = f"请求内容过大（上限 {size}），请缩短内容后重试"
    from console.refusals import error_page

    return error_page(Request(scope), 413, detail)


def _select_one(engine: Any) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def _health(request: Request) -> JSONResponse:
    """For load balancers and container health checks: the database and Redis answer."""
    console: Console = request.app.state.console
    checks: dict[str, str] = {}
    try:
        await asyncio.to_thread(_select_one, console.service.store.engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await console.events.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(checks, status_code=200 if healthy else 503)


async def _keep_reconciling(console: Console, every_s: float) -> None:
    """Re-queue what Redis lost and return abandoned claims, for as long as the app runs."""
    while True:
        try:
            await asyncio.to_thread(console.service.reconcile)
            await asyncio.to_thread(console.accounts.purge_expired)
        except Exception:
            log.exception("reconcile failed; retrying")
        await asyncio.sleep(every_s)


def _install_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError

    from console.refusals import server_failed, validation_failed
    from tickets.accounts import AccountError
    from tickets.dialer import DialerError
    from tickets.queue import QueueError
    from tickets.ticket import InvalidTransition, TicketError, TicketForbidden, TicketNotFound

    status_of: list[tuple[type[Exception], int]] = [
        (TicketForbidden, 403),
        (TicketNotFound, 404),
        (InvalidTransition, 409),
        (TicketError, 422),
        (AccountError, 422),
        (QueueError, 422),
        (DialerError, 503),
        (redis.RedisError, 503),
    ]

    def handler_for(code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, exc: Exception) -> Response:
            message = (
                str(exc)
                if code != 503 or not isinstance(exc, redis.RedisError)
                else "队列服务暂时不可用，请稍后重试"
            )
            if not request.url.path.startswith("/api/"):
                console: Console = request.app.state.console
                return console.templates.TemplateResponse(
                    request,
                    "error.html",
                    {
                        "status": code,
                        "detail": message,
                        "account": None,
                        "login": None,
                        "csrf": "",
                        "msg": "",
                        "err": "",
                    },
                    status_code=code,
                )
            return JSONResponse({"detail": message}, status_code=code)

        return handle

    for exc_type, code in status_of:
        app.add_exception_handler(exc_type, handler_for(code))
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(Exception, server_failed)
