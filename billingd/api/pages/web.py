"""What every page handler shares: the visit (session, language, CSRF), rendering, the logged-in principal.

A handler parses the form, opens one transaction, asks :meth:`Visit.operator`
or :meth:`Visit.subscriber` who is calling (the API's session check), calls
one domain function with that actor and renders or redirects. Refusals are
the domain's :class:`RadbillError` words, shown on the page.
"""

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy import Connection, Engine

from billingd import credentials
from billingd.credentials import Subscriber
from billingd.customers import Calendar
from billingd.money import format_amount
from schema.engine import as_utc
from schema.errors import Forbidden, NotFound, RadbillError, Throttled, Unauthenticated
from schema.settings import Settings
from schema.tenancy import Actor

from .i18n import LANGUAGE_COOKIE, Catalogs, best_language, native_name
from .session import COOKIE, CSRF_FIELD, CSRF_HEADER, CookieSigner, WebSession

STATIC_DIR = Path(__file__).resolve().parent / "static"


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


class LoginNeeded(Exception):
    """No live session of the kind the page needs: go to that area's login page."""

    def __init__(self, base: str):
        self.base = base


def _static_versions() -> dict[str, str]:
    """File name -> a short content hash, so static files can be cached for a year."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }


class Pages:
    """The pages' shared state: database, settings, cookie signer, catalogs."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        key: bytes,
        card_pin_key: bytes,
        *,
        secure_cookies: bool,
        decide,
        clock=None,
        logins=None,
    ):
        self.engine = engine
        self.card_pin_key = card_pin_key
        self.decide = decide  # radiusd's next answer, for the why verdict (billingd.api.state.Decide)
        self.logins = logins  # the API's radbill_api_logins_total{kind,result}: the pages' logins count too
        self.clock = clock or (lambda: datetime.now(UTC))
        self.settings = settings
        self.secure_cookies = secure_cookies
        self.signer = CookieSigner(key, max_age_seconds=settings.api.refresh_token_days * 86400)
        versions = _static_versions()
        self.catalogs = Catalogs(
            globals_={"static": lambda name: f"/static/{name}?v={versions[name]}"},
            filters={
                "money": format_amount,
                "when": lambda value: _when(value, settings.billingd.zone),
                "bytes": _bytes,
                "rate": _rate,
            },
        )

    @cached_property
    def language_choices(self) -> list[tuple[str, str]]:
        return [(code, native_name(code)) for code in self.catalogs.languages]

    def now(self) -> datetime:
        return self.clock()

    def calendar(self) -> Calendar:
        return Calendar(self.now(), self.settings.billingd.zone)


def _when(value, zone) -> str:
    """An instant as a day and time in the billing time zone (naive values are UTC, as SQLite returns them)."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return as_utc(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _rate(bits_per_second: int) -> str:
    """10000000 -> "10 Mbit/s"."""
    for unit, size in (("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if bits_per_second >= size:
            return f"{bits_per_second / size:g} {unit}"
    return f"{bits_per_second} bit/s"


def _bytes(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)  # pragma: no cover


class Visit:
    """One request as the pages see it."""

    def __init__(self, pages: Pages, request: Request, session: WebSession, form, base: str):
        self.pages = pages
        self.request = request
        self.session = session
        self.original_session = session
        self.form = form or {}
        self.base = base  # "/panel" or "/portal"
        self.language = best_language(
            request.cookies.get(LANGUAGE_COOKIE),
            request.headers.get("accept-language"),
            pages.catalogs.languages,
        )
        self.acting_as_login: str | None = None
        self.caller_login: str | None = None

    # --- words -----------------------------------------------------------------

    def _(self, message: str, **values) -> str:
        text = self.pages.catalogs.gettext(self.language)(message)
        return text % values if values else text

    def flash(self, kind: str, text: str) -> None:
        self.session = self.session.with_flash(kind, text)

    # --- who is calling ----------------------------------------------------------

    @property
    def client_address(self) -> str:
        return self.request.client.host if self.request.client else "unknown"

    def _principal(self, connection: Connection):
        session_id = self.session.acting_as or self.session.subject
        if session_id is None:
            raise LoginNeeded(self.base)
        try:
            return credentials.session_principal(connection, int(session_id), self.pages.now())
        except Unauthenticated:
            self.session = WebSession.anonymous()
            raise LoginNeeded(self.base) from None

    def operator(self, connection: Connection) -> Actor:
        """The operator this session acts as; the login page if there is none (or it ended)."""
        if self.session.kind != "operator":
            raise LoginNeeded(self.base)
        principal = self._principal(connection)
        if not isinstance(principal, Actor):
            raise LoginNeeded(self.base)
        if principal.caller_id != principal.id:
            self.acting_as_login = principal.login
            self.caller_login = self.session.login
        return principal

    def subscriber(self, connection: Connection) -> Subscriber:
        if self.session.kind != "subscriber":
            raise LoginNeeded(self.base)
        principal = self._principal(connection)
        if not isinstance(principal, Subscriber):
            raise LoginNeeded(self.base)
        return principal

    # --- log in and out -----------------------------------------------------------------

    def log_in(self, kind: str, heading: str, login_label: str, wrong: str) -> Response:
        """Check the login form with the API's login function for ``kind`` (throttled and audited there)."""
        name = str(self.form.get("login", "")).strip()
        context = dict(heading=heading, login_label=login_label, login=name)
        check = credentials.login_operator if kind == "operator" else credentials.login_subscriber
        pages = self.pages
        try:
            with pages.engine.begin() as connection:
                result = check(
                    connection,
                    name,
                    str(self.form.get("password", "")),
                    self.client_address,
                    pages.now(),
                    pages.settings.api,
                )
        except Throttled:
            self.flash("error", self._("Too many failed logins. Try again later."))
            return self.render("login.html", status_code=429, **context)
        if pages.logins is not None:
            pages.logins.labels(kind, result.failure or "ok").inc()
        if result.session_id is None:
            self.flash("error", wrong)
            return self.render("login.html", status_code=401, **context)
        self.session = self.session.signed_in(kind, result.session_id, name.lower())
        return self.redirect(f"{self.base}/")

    def log_out(self) -> Response:
        """End the login session (and a "login as" session opened from it) and forget them."""
        with self.pages.engine.begin() as connection:
            for session_id in (self.session.acting_as, self.session.subject):
                if session_id is not None:
                    credentials.logout(connection, session_id, self.pages.now())
        self.session = WebSession.anonymous()
        return self.redirect(f"{self.base}/login")

    # --- answers -------------------------------------------------------------------

    def csrf_input(self) -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, self.session.csrf)

    def render(self, template: str, status_code: int = 200, **context) -> HTMLResponse:
        flash, self.session = self.session.flash, replace(self.session, flash=[])
        html = (
            self.pages.catalogs.environment(self.language)
            .get_template(template)
            .render(
                base=self.base,
                language=self.language,
                languages=self.pages.language_choices,
                request_path=self.request.url.path,
                csrf_input=self.csrf_input,
                flash=flash,
                acting_as=self.acting_as_login,
                caller=self.caller_login,
                **context,
            )
        )
        return self._with_cookie(HTMLResponse(html, status_code=status_code))

    def redirect(self, url: str) -> RedirectResponse:
        return self._with_cookie(RedirectResponse(url, status_code=303))

    def _with_cookie(self, response: Response) -> Response:
        if self.session != self.original_session or self.request.cookies.get(COOKIE) is None:
            response.set_cookie(
                COOKIE,
                self.pages.signer.dump(self.session),
                max_age=self.pages.signer.max_age_seconds,
                path="/",
                httponly=True,
                secure=self.pages.secure_cookies or self.request.url.scheme == "https",
                samesite="strict",
            )
        return response

    def refused(self, error: RadbillError, template: str, **context) -> HTMLResponse:
        """The form again with the domain's one-line refusal, and the fitting status code."""
        self.flash("error", str(error))
        return self.render(template, status_code=status_for(error), **context)


def status_for(error: RadbillError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, Throttled):
        return 429
    if isinstance(error, Unauthenticated):
        return 401
    return 400


async def load_visit(request: Request, base: str) -> Visit:
    """Read the cookie and, for a POST, the form; refuse a POST without the session's CSRF token."""
    pages: Pages = request.app.state.pages
    session = pages.signer.load(request.cookies.get(COOKIE)) or WebSession.anonymous()
    form = None
    if request.method not in ("GET", "HEAD"):
        form = await request.form()
        offered = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if not session.csrf_matches(offered if isinstance(offered, str) else None):
            raise CsrfRefused()
    return Visit(pages, request, session, form, base)


def area_visit(base: str):
    """The Visit a handler of an area ("/panel" or "/portal") declares: ``visit: PanelVisit``."""

    async def visit(request: Request) -> Visit:
        return await load_visit(request, base)

    return Annotated[Visit, Depends(visit)]


def add_login_routes(router: APIRouter, kind: str, heading: str, login_label: str, wrong: str) -> None:
    """The login form, the login and the logout of an area (``kind`` "operator": the panel,
    "subscriber": the portal), in the area's words (marked with N_, translated per visit)."""
    AreaVisit = area_visit(router.prefix)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(visit: AreaVisit) -> HTMLResponse:
        return visit.render("login.html", heading=visit._(heading), login_label=visit._(login_label))

    @router.post("/login", response_class=HTMLResponse)
    def login(visit: AreaVisit) -> Response:
        return visit.log_in(kind, visit._(heading), visit._(login_label), visit._(wrong))

    @router.post("/logout")
    def logout(visit: AreaVisit) -> Response:
        return visit.log_out()
