"""The reseller panel (``/panel``) and the subscriber portal (``/portal``): server-rendered pages.

They run in the ``radbill api`` process, on the same domain functions and
the same login sessions as the JSON API; the browser holds a signed cookie
naming its session. Pages work without JavaScript; a vendored htmx only
makes the customer search live. Every response carries a content security
policy that allows no inline script and nothing from another origin.
"""

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import Scope

from billingd.api.answers import OnAnswer
from schema.errors import RadbillError

from . import panel, portal
from .i18n import LANGUAGE_COOKIE
from .web import STATIC_DIR, CsrfRefused, LoginNeeded, Pages, load_visit, status_for

ROUTERS = (panel.router, portal.router)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class CachedStatic(StaticFiles):
    """Static files are addressed by content hash (``?v=``), so they may be cached for a year."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def create_pages_app(pages: Pages) -> FastAPI:
    """The pages as an application of their own, for the API to mount at ``/``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pages = pages
    app.add_middleware(GZipMiddleware, minimum_size=1000)

    app.add_middleware(OnAnswer, start=_page_headers)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _error: CsrfRefused):
        visit = await load_visit(_as_get(request), _area(request))
        return visit.render(
            "error.html",
            status_code=403,
            heading=visit._("This form has expired"),
            message=visit._(
                "The form was refused because it came without its security token. Open the page again and resend it."
            ),
        )

    @app.exception_handler(RadbillError)
    async def refused(request: Request, error: RadbillError):
        """A page the caller may not see: someone else's customer looks like no customer at all."""
        visit = await load_visit(_as_get(request), _area(request))
        status = status_for(error)
        heading = visit._("Not found") if status == 404 else visit._("Not allowed")
        return visit.render("error.html", status_code=status, heading=heading, message=str(error))

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, error: LoginNeeded):
        return RedirectResponse(f"{error.base}/login", status_code=303)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/panel/", status_code=303)

    @app.post("/language", include_in_schema=False)
    async def choose_language(request: Request):
        visit = await load_visit(request, "/panel")
        language = visit.form.get("language")
        target = str(visit.form.get("next") or "/")
        response = visit.redirect(target if target.startswith("/") and not target.startswith("//") else "/")
        if language in visit.pages.catalogs.languages:
            response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, path="/", samesite="strict")
        return response

    @app.get("/healthz", include_in_schema=False, response_class=HTMLResponse)
    def healthz() -> str:
        return "ok"

    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    return app


def _page_headers(scope: Scope, headers: MutableHeaders, seconds: float) -> None:
    # How long the page took to make, for the browser's developer tools and the benchmark.
    headers["server-timing"] = f"app;dur={seconds * 1000:.1f}"
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if not scope["path"].startswith("/static/"):
        headers.setdefault("cache-control", "no-store")


def _area(request: Request) -> str:
    return "/portal" if request.url.path.startswith("/portal") else "/panel"


def _as_get(request: Request) -> Request:
    """The refused request, read again as a GET (its form is not trusted)."""
    scope = dict(request.scope, method="GET")
    return Request(scope)
