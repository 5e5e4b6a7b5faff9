"""The subscriber portal: log in with the PPPoE/Hotspot username, see the account, redeem a card,
buy a public package from the wallet, change the password."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from billingd import credentials
from billingd import portal as subscriber
from billingd.cards import CardRefused
from billingd.customer_views import state_of
from schema.errors import RadbillError, Throttled

from .i18n import N_
from .web import Visit, add_login_routes, area_visit, status_for

router = APIRouter(prefix="/portal", include_in_schema=False)


PortalVisit = area_visit("/portal")


add_login_routes(
    router, "subscriber", N_("Subscriber login"), N_("Username"), N_("Wrong username or password.")
)


def _home(visit: Visit, status_code: int = 200) -> HTMLResponse:
    pages = visit.pages
    with pages.engine.begin() as connection:
        me = visit.subscriber(connection)
        calendar = pages.calendar()
        account = subscriber.profile(connection, me, calendar.now)
        context = dict(
            account=account,
            state=state_of(account, calendar.now),
            usage=subscriber.usage(connection, me, calendar),
            speed=subscriber.speed(connection, me),
            offers=subscriber.public_packages(connection, me),
            invoices=subscriber.own_invoices(connection, me)[:12],
            payments=subscriber.own_payments(connection, me)[:12],
        )
    return visit.render("portal/home.html", status_code=status_code, **context)


@router.get("/", response_class=HTMLResponse)
def home(visit: PortalVisit) -> HTMLResponse:
    return _home(visit)


def _act(visit: Visit, action, done: str) -> Response:
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            action(connection, visit.subscriber(connection), pages.calendar())
    except RadbillError as error:
        visit.flash("error", str(error))
        return _home(visit, status_for(error))
    visit.flash("ok", done)
    return visit.redirect("/portal/")


@router.post("/redeem", response_class=HTMLResponse)
def redeem(visit: PortalVisit) -> Response:
    """Use a card; wrong PINs are counted and throttled with the API's counters (FIELD-NOTES 31)."""
    pin = str(visit.form.get("pin", ""))
    pages = visit.pages
    refused = None
    try:
        with pages.engine.begin() as connection:
            me = visit.subscriber(connection)
            now = pages.now()
            credentials.check_throttle(connection, "redeem", me.username, visit.client_address, now)
            try:
                subscriber.redeem(connection, me, pin, pages.calendar(), pages.card_pin_key)
            except CardRefused as error:  # nothing was written: the count commits with the refusal
                credentials.card_failed(connection, me, visit.client_address, now, pages.settings.api)
                refused = error
    except Throttled:
        visit.flash("error", visit._("Too many wrong PINs. Try again later."))
        return _home(visit, 429)
    except RadbillError as error:
        refused = error
    if refused is not None:
        visit.flash("error", str(refused))
        return _home(visit, status_for(refused))
    visit.flash("ok", visit._("Card accepted."))
    return visit.redirect("/portal/")


@router.post("/buy", response_class=HTMLResponse)
def buy(visit: PortalVisit) -> Response:
    package = str(visit.form.get("package", ""))
    return _act(
        visit,
        lambda connection, me, calendar: subscriber.buy(connection, me, package, calendar),
        visit._("Package bought."),
    )


@router.post("/password", response_class=HTMLResponse)
def password(visit: PortalVisit) -> Response:
    current = str(visit.form.get("current", ""))
    new = str(visit.form.get("new", ""))
    return _act(
        visit,
        lambda connection, me, _calendar: subscriber.change_password(connection, me, current, new),
        visit._("Password changed. Use the new one on your router too."),
    )
