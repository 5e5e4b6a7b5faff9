"""The FastAPI application: routers, the one exception handler, security headers, limits, metrics."""

from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billingd.api.answers import OnAnswer
from billingd.api.pages import create_pages_app
from billingd.api.pages.web import Pages
from billingd.api.security import TokenSigner
from billingd.api.state import ApiMetrics, ApiState, Decide, utc_now
from billingd.cards import load_pin_key
from schema.errors import Forbidden, NotFound, RadbillError, Throttled, Unauthenticated
from schema.settings import Settings

PREFIX = "/api/v1"
_STATUS = (
    (NotFound, 404, "not_found"),
    (Forbidden, 403, "forbidden"),
    (Unauthenticated, 401, "unauthenticated"),
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# The interactive docs page loads Swagger UI's script and style from its CDN.
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _radbill_error(request: Request, error: RadbillError) -> JSONResponse:
    if isinstance(error, Throttled):
        return _error(429, "throttled", str(error), {"Retry-After": str(error.retry_after)})
    for kind, status, code in _STATUS:
        if isinstance(error, kind):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return _error(status, code, str(error), headers)
    return _error(400, "bad_request", str(error))


def _database_error(request: Request, error: DBAPIError) -> JSONResponse:
    if isinstance(error, OperationalError):
        return _error(503, "database_unavailable", "the database is unavailable: try again")
    if isinstance(error, IntegrityError):
        return _error(409, "conflict", "the change conflicts with another one: try again")
    return _error(400, "refused", "the database refused the change")


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes (413), whether announced or streamed."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _error(413, "too_large", f"request body over {self.limit} bytes")(
                scope, receive, send
            )
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _error(413, "too_large", f"request body over {self.limit} bytes")(scope, receive, send)


class _TooLarge(Exception):
    pass


class HeadAsGet:
    """HEAD is GET without the body (RFC 9110 9.3.2), on every page and endpoint that answers GET.

    FastAPI routes only the methods they declare, so HEAD would get 405: the
    request goes through as a GET, and the answer keeps its status and headers
    (Content-Length included) but sends no body.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def create_app(
    settings: Settings,
    engine: Engine,
    key: bytes,
    *,
    decide: Decide,
    clock=utc_now,
    registry=None,
) -> FastAPI:
    """The API and the pages; ``decide`` is radiusd's answer for ``why`` (cli.context.radius_answer)."""
    from billingd.api.routes import ROUTERS

    app = FastAPI(
        title="radbill API",
        version="1",
        summary="Operators of every level and subscribers: customers, money, cards, sessions.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    registry = registry if registry is not None else CollectorRegistry()
    app.state.api = ApiState(
        settings,
        engine,
        TokenSigner(key, timedelta(minutes=settings.api.access_token_minutes)),
        registry,
        ApiMetrics(registry),
        load_pin_key(settings.api.state_dir),
        decide,
        clock,
    )
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    app.add_exception_handler(RadbillError, _radbill_error)
    app.add_exception_handler(DBAPIError, _database_error)
    metrics = app.state.api.metrics

    def secure(scope: Scope, headers: MutableHeaders, _seconds: float) -> None:
        for name, value in _HEADERS.items():
            headers.setdefault(name, value)
        if scope["path"] == f"{PREFIX}/docs":
            headers["Content-Security-Policy"] = _DOCS_CSP
        if scope["scheme"] == "https":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")

    def count(scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        metrics.requests.labels(scope["method"], route, str(status)).inc()
        metrics.seconds.labels(route).observe(seconds)

    app.add_middleware(OnAnswer, start=secure, done=count)
    if settings.api.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        )
    app.add_middleware(BodyLimit, limit=settings.api.max_body_bytes)
    app.add_middleware(HeadAsGet)
    # The reseller panel and the subscriber portal answer every path the JSON API does not.
    secure_cookies = bool(settings.api.tls_certificate) or settings.api.public_url.startswith("https://")
    pages = create_pages_app(
        Pages(
            engine,
            settings,
            key,
            app.state.api.card_pin_key,
            secure_cookies=secure_cookies,
            clock=clock,
            logins=metrics.logins,
            decide=decide,
        )
    )
    app.mount("/", pages)
    return app
