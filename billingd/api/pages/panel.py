"""The operator panel: log in, dashboard, customers, operators, cards, statement, "login as".

Each handler reads the form, opens one transaction, gets the actor from the
session and calls one domain function; the domain decides who may do what.
"""

import csv
import io
import secrets
from dataclasses import replace
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError

from billingd import cards as card_domain
from billingd import credentials, dashboard, lifecycle, operators, reports, wallets, zones
from billingd import customers as customer_domain
from billingd.api.deps import answer_once, request_fingerprint
from billingd.customer_views import state_of
from billingd.money import format_amount, parse_amount
from billingd.packages import assign_package, price_list
from billingd.statement import named_statement
from schema.errors import NotFound, RadbillError
from schema.tenancy import PERMISSIONS

from .chart import DayPoint, revenue_chart
from .i18n import N_
from .web import Visit, add_login_routes, area_visit, status_for

router = APIRouter(prefix="/panel", include_in_schema=False)


PanelVisit = area_visit("/panel")
# The hidden field that makes the "Issue cards" form one-time (see card_batch).
ISSUE_KEY = "issue_key"


def _nav(visit: Visit, actor, current: str) -> list[tuple[str, str, bool]]:
    """The menu: only what the actor's role can use (the domain still decides every request)."""
    items = [
        ("/panel/", visit._("Dashboard"), "dashboard"),
        ("/panel/customers", visit._("Customers"), "customers"),
    ]
    if actor.may("operators.change") or actor.role in ("admin", "reseller", "sub_reseller"):
        items.append(("/panel/operators", visit._("Operators"), "operators"))
    if actor.may("cards") or actor.role == "card_distributor":
        items.append(("/panel/cards", visit._("Cards"), "cards"))
    if actor.may("money"):
        items.append(("/panel/invoices", visit._("Invoices"), "invoices"))
        items.append(("/panel/statement", visit._("Statement"), "statement"))
    return [(url, label, key == current) for url, label, key in items]


def _page(
    visit: Visit, actor, current: str, template: str, status_code: int = 200, **context
) -> HTMLResponse:
    return visit.render(
        template,
        status_code=status_code,
        nav=_nav(visit, actor, current),
        actor=actor,
        may_money=actor.may("money"),
        **context,
    )


add_login_routes(router, "operator", N_("Operator login"), N_("Login"), N_("Wrong login or password."))


# --- dashboard ----------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard_page(visit: PanelVisit) -> Response:
    pages = visit.pages
    calendar = pages.calendar()
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        if actor.role == "card_distributor":  # its whole panel is the cards given to it
            return visit.redirect("/panel/cards")
        counts = dashboard.customer_counts(connection, actor, calendar)
        expiring = dashboard.expiring_customers(connection, actor, calendar)
        collected = fund = None
        collections = []
        if actor.may("money"):
            collected = dashboard.collected_today(connection, actor, calendar)
            collections = dashboard.collections_today(connection, actor, calendar)
            fund = dashboard.fund_position(connection, actor)
    return _page(
        visit,
        actor,
        "dashboard",
        "operator/dashboard.html",
        counts=counts,
        expiring=expiring,
        collections=collections,
        collected=collected,
        fund=fund,
    )


@router.get("/dashboard/chart", response_class=HTMLResponse)
def dashboard_chart(visit: PanelVisit, request: Request) -> HTMLResponse:
    """Today's charges and the 30-day chart: loaded into the dashboard by htmx, or a page of its own."""
    pages = visit.pages
    calendar = pages.calendar()
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        points = dashboard.chart(connection, actor, calendar)
    chart = Markup(
        revenue_chart(
            [DayPoint(p.day, p.active, p.revenue) for p in points],
            title=visit._("Active customers and revenue, last 30 days"),
            format_money=format_amount,
            labels={"active": visit._("active customers"), "revenue": visit._("revenue")},
        )
    )
    template = "operator/chart.html" if request.headers.get("hx-request") else "operator/chart_page.html"
    return _page(visit, actor, "dashboard", template, chart=chart, points=points)


# --- customers ----------------------------------------------------------------------------


LIST_STATUSES = ("active", "suspended", "disabled", "deleted")
PAGE_SIZE = 50


def _list_arguments(request: Request) -> dict:
    status = request.query_params.get("status") or None
    return dict(
        search=request.query_params.get("q") or None,
        status=status if status in LIST_STATUSES else None,
        after=request.query_params.get("after") or None,
    )


def _customers(connection, actor, now, *, search, status, after, limit=PAGE_SIZE) -> list[dict]:
    """A page of the customers list, each with the state a subscriber would name."""
    rows = customer_domain.list_customers(
        connection,
        actor,
        deleted=status == "deleted",
        status=None if status == "deleted" else status,
        search=search,
        after=after,
        limit=limit,
    )
    return [{**row, "state": state_of(row, now)} for row in rows]


@router.get("/customers", response_class=HTMLResponse)
def customer_list(visit: PanelVisit, request: Request) -> HTMLResponse:
    arguments = _list_arguments(request)
    pages = visit.pages
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = _customers(connection, actor, pages.now(), **arguments)
    template = (
        "operator/customer_rows.html" if request.headers.get("hx-request") else "operator/customers.html"
    )
    return _page(
        visit,
        actor,
        "customers",
        template,
        rows=rows,
        statuses=LIST_STATUSES,
        page_size=PAGE_SIZE,
        **arguments,
    )


@router.get("/customers.csv")
def customer_csv(visit: PanelVisit, request: Request) -> Response:
    """Every visible customer matching the filters, as CSV (fetched page by page from the domain)."""
    arguments = _list_arguments(request)
    arguments.pop("after")
    columns = ["username", "customer_code", "name", "phone", "owner", "package", "state", "expires_at"]
    pages = visit.pages
    rows = []
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        if actor.may("money"):
            columns.append("wallet_balance")
        while True:
            page = _customers(
                connection,
                actor,
                pages.now(),
                after=rows[-1]["username"] if rows else None,
                limit=1000,
                **arguments,
            )
            rows += page
            if len(page) < 1000:
                break
    if "wallet_balance" in columns:
        rows = [{**row, "wallet_balance": format_amount(row["wallet_balance"])} for row in rows]
    return _csv(visit, "customers.csv", columns, rows)


def _add_form_context(connection, actor) -> dict:
    return {
        "packages": price_list(connection, actor) if actor.may("money") else [],
        "zones": [zone for zone in zones.list_zones(connection, actor)],
    }


@router.get("/customers/new", response_class=HTMLResponse)
def customer_new(visit: PanelVisit) -> HTMLResponse:
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        context = _add_form_context(connection, actor)
    return _page(visit, actor, "customers", "operator/customer_new.html", values={}, **context)


_ADD_FIELDS = ("username", "password", "package", "zone", "mac", "static_ip", "name", "phone", "address")


@router.post("/customers/new", response_class=HTMLResponse)
def customer_add(visit: PanelVisit) -> Response:
    values = {key: str(visit.form.get(key, "")).strip() for key in _ADD_FIELDS}
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            record = lifecycle.add_customer(
                connection,
                actor,
                values["username"],
                password=values["password"],
                package=values["package"],
                calendar=pages.calendar(),
                zone=values["zone"] or None,
                mac=values["mac"] or None,
                static_ip=values["static_ip"] or None,
                name=values["name"],
                phone=values["phone"] or None,
                address=values["address"] or None,
            )
    except RadbillError as error:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            context = _add_form_context(connection, actor)
        visit.flash("error", str(error))
        values["password"] = ""
        return _page(visit, actor, "customers", "operator/customer_new.html", 400, values=values, **context)
    visit.flash("ok", visit._("Customer %(name)s added.", name=record["username"]))
    return visit.redirect(f"/panel/customers/{record['username']}")


def _customer_page(visit: Visit, username: str, status_code: int = 200) -> HTMLResponse:
    pages = visit.pages
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        record = customer_domain.show_customer(connection, actor, username)
        packages = price_list(connection, actor, record["owner"]) if actor.may("money") else []
        # What `radbill why` says: radiusd's answer to the next login, and the evidence.
        found = reports.why(connection, actor, username, now=pages.now(), decide=pages.decide, limit=10)
    return _page(
        visit,
        actor,
        "customers",
        "operator/customer.html",
        status_code,
        customer=record,
        state=state_of(record, pages.now()),
        packages=packages,
        attempts=found.attempts,
        sessions=found.sessions,
        verdict=found.decision,
        device=found.device,
        jobs=found.jobs,
    )


@router.get("/customers/{username}", response_class=HTMLResponse)
def customer_show(visit: PanelVisit, username: str) -> HTMLResponse:
    return _customer_page(visit, username)


def _amount(visit: Visit) -> int:
    return parse_amount(str(visit.form.get("amount", "")), allow_zero=False)


# What each button on a customer's page does: one domain call each.
_ACTIONS = {
    "renew": lambda c, a, u, v, cal: lifecycle.renew(c, a, u, cal, cash=v.form.get("cash") == "yes"),
    "suspend": lambda c, a, u, v, cal: lifecycle.suspend(c, a, u, cal),
    "resume": lambda c, a, u, v, cal: lifecycle.resume(c, a, u, cal),
    "delete": lambda c, a, u, v, cal: lifecycle.delete_customer(c, a, u, cal),
    "restore": lambda c, a, u, v, cal: lifecycle.restore_customer(c, a, u),
    "change-package": lambda c, a, u, v, cal: lifecycle.change_package(
        c, a, u, str(v.form.get("package", "")), cal
    ),
    "reset-password": lambda c, a, u, v, cal: _set_password(c, a, u, v),
    "disconnect": lambda c, a, u, v, cal: _disconnect(c, a, u, cal),
    "edit": lambda c, a, u, v, cal: customer_domain.set_customer(
        c, a, u, cal, **{key: str(v.form.get(key, "")).strip() for key in _EDITED}
    ),
    "topup": lambda c, a, u, v, cal: wallets.receive_payment(
        c,
        a,
        u,
        _amount(v),
        cal,
        method=str(v.form.get("method") or "cash"),
        reference=str(v.form.get("reference") or "") or None,
    ),
}
_DONE = {
    "renew": N_("Renewed: one more period bought."),
    "suspend": N_("Suspended."),
    "resume": N_("Resumed."),
    "delete": N_("Deleted (it can be restored)."),
    "restore": N_("Restored (suspended until resumed or renewed)."),
    "change-package": N_("Package changed."),
    "topup": N_("Payment recorded."),
    "reset-password": N_("Password changed."),
    "disconnect": N_("Disconnect queued: the router drops the session within seconds."),
    "edit": N_("Saved."),
}
_EDITED = ("name", "phone", "address", "zone", "mac", "static_ip")


def _disconnect(connection, actor, username: str, calendar) -> dict:
    """Queue a Disconnect of the customer's sessions (the outbox sends it to the router)."""
    lifecycle.disconnect_now(connection, actor, username, calendar)
    return customer_domain.show_customer(connection, actor, username)


def _set_password(connection, actor, username: str, visit: Visit) -> dict:
    """The operator types the new password: the pages never show one."""
    password = str(visit.form.get("password", ""))
    if not password:
        raise RadbillError("type the new password")
    customer_domain.reset_password(connection, actor, username, password)
    return customer_domain.show_customer(connection, actor, username)


@router.post("/customers/{username}/{action}", response_class=HTMLResponse)
def customer_action(visit: PanelVisit, username: str, action: str) -> Response:
    if action not in _ACTIONS:
        return _customer_page(visit, username, 404)
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            record = _ACTIONS[action](connection, actor, username, visit, pages.calendar())
    except RadbillError as error:
        visit.flash("error", str(error))
        return _customer_page(visit, username, status_for(error))
    visit.flash("ok", visit._(_DONE[action]))
    return visit.redirect(f"/panel/customers/{record['username']}")


# --- login as -------------------------------------------------------------------------------


@router.post("/act-as")
def act_as(visit: PanelVisit) -> Response:
    target = str(visit.form.get("login", "")).strip()
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            result = credentials.login_as(
                connection, actor, target, visit.client_address, pages.now(), pages.settings.api
            )
    except RadbillError as error:
        visit.flash("error", str(error))
        return visit.redirect("/panel/operators")
    if pages.logins is not None:
        pages.logins.labels("login_as", "ok").inc()
    visit.session = replace(visit.session, acting_as=result.session_id)
    return visit.redirect("/panel/")


@router.post("/act-as/end")
def act_as_end(visit: PanelVisit) -> Response:
    if visit.session.acting_as is not None:
        with visit.pages.engine.begin() as connection:
            credentials.logout(connection, visit.session.acting_as, visit.pages.now())
    visit.session = replace(visit.session, acting_as=None)
    return visit.redirect("/panel/")


# --- sub-resellers and staff --------------------------------------------------------------------


@router.get("/operators", response_class=HTMLResponse)
def operator_list(visit: PanelVisit) -> HTMLResponse:
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = [row for row in operators.list_operators(connection, actor) if row.id != actor.home_id]
    return _page(visit, actor, "operators", "operator/operators.html", rows=rows, roles=CHILD_ROLES)


@router.get("/operators.csv")
def operator_csv(visit: PanelVisit) -> Response:
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = [vars(row) for row in operators.list_operators(connection, actor)]
    columns = ["login", "name", "role", "parent", "billing_mode", "status"]
    if actor.may("money"):
        columns.append("fund_balance")
        rows = [{**row, "fund_balance": format_amount(row["fund_balance"])} for row in rows]
    return _csv(visit, "operators.csv", columns, rows)


CHILD_ROLES = ("reseller", "sub_reseller", "manager", "noc", "card_distributor")
_OPERATOR_FIELDS = ("login", "role", "name", "billing_mode", "credit_limit", "password")


@router.post("/operators", response_class=HTMLResponse)
def operator_add(visit: PanelVisit) -> Response:
    values = {key: str(visit.form.get(key, "")).strip() for key in _OPERATOR_FIELDS}
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            record = operators.add_operator(
                connection,
                actor,
                values["login"],
                values["role"],
                billing_mode=values["billing_mode"] or "prepaid",
                credit_limit=parse_amount(values["credit_limit"] or "0"),
                name=values["name"],
            )
            credentials.set_password(
                connection, actor, record.login, str(visit.form.get("password", "")), pages.now()
            )
    except RadbillError as error:
        visit.flash("error", str(error))
        return visit.redirect("/panel/operators")
    visit.flash("ok", visit._("Operator %(login)s added.", login=record.login))
    return visit.redirect(f"/panel/operators/{record.login}")


@router.get("/operators/{login}", response_class=HTMLResponse)
def operator_show(visit: PanelVisit, login: str) -> HTMLResponse:
    pages = visit.pages
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        record = operators.show_operator(connection, actor, login)
        balance = operators.balance(connection, actor, login) if actor.may("money") else None
        sells = own = []
        if actor.may("money") and record.role in ("reseller", "sub_reseller"):
            sells = price_list(connection, actor, login)
            own = price_list(connection, actor)
    return _page(
        visit,
        actor,
        "operators",
        "operator/operator.html",
        operator=record,
        balance=balance,
        permissions=PERMISSIONS,
        sells=sells,
        own_packages=own,
    )


_OPERATOR_ACTIONS = {
    "fund": lambda c, a, login, v, today: operators.settle(
        c, a, login, _amount(v), mode="prepaid", today=today, method=_method(v), reference=_reference(v)
    ),
    "pay": lambda c, a, login, v, today: operators.settle(
        c, a, login, _amount(v), mode="postpaid", today=today, method=_method(v), reference=_reference(v)
    ),
    "block": lambda c, a, login, v, today: operators.set_status(c, a, login, "blocked"),
    "unblock": lambda c, a, login, v, today: operators.set_status(c, a, login, "active"),
    "assign": lambda c, a, login, v, today: assign_package(
        c,
        a,
        str(v.form.get("package", "")),
        login,
        operator_price=parse_amount(str(v.form.get("operator_price", ""))),
        customer_price=parse_amount(str(v.form.get("customer_price")))
        if v.form.get("customer_price")
        else None,
        visibility=str(v.form.get("visibility") or "") or None,
    ),
    "permit": lambda c, a, login, v, today: operators.permit(c, a, login, str(v.form.get("permission", ""))),
    "revoke": lambda c, a, login, v, today: operators.revoke(c, a, login, str(v.form.get("permission", ""))),
}
_OPERATOR_DONE = {
    "fund": N_("Fund topped up."),
    "pay": N_("Payment recorded."),
    "block": N_("Blocked: the operator, its staff and its customers are stopped."),
    "unblock": N_("Unblocked."),
    "assign": N_("Price list changed."),
    "permit": N_("Permission granted."),
    "revoke": N_("Permission taken back."),
}


def _method(visit: Visit) -> str:
    return str(visit.form.get("method") or "cash")


def _reference(visit: Visit) -> str | None:
    return str(visit.form.get("reference") or "") or None


@router.post("/operators/{login}/{action}", response_class=HTMLResponse)
def operator_action(visit: PanelVisit, login: str, action: str) -> Response:
    if action not in _OPERATOR_ACTIONS:
        return visit.redirect(f"/panel/operators/{login}")
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            _OPERATOR_ACTIONS[action](connection, actor, login, visit, pages.calendar().today)
    except RadbillError as error:
        if isinstance(error, NotFound):
            raise
        visit.flash("error", str(error))
        return visit.redirect(f"/panel/operators/{login}")
    visit.flash("ok", visit._(_OPERATOR_DONE[action]))
    return visit.redirect(f"/panel/operators/{login}")


# --- recharge cards -------------------------------------------------------------------------


def _batches(cards: list[dict]) -> list[dict]:
    """One row per batch: what a card buys and how many are new, redeemed or void."""
    batches: dict[int, dict] = {}
    for card in cards:
        batch = batches.setdefault(
            card["batch"],
            {
                "batch": card["batch"],
                "value": card["value"],
                "package": card["package"],
                "operator": card["operator"],
                "new": 0,
                "redeemed": 0,
                "void": 0,
                "sold": 0,
            },
        )
        batch[card["status"]] += 1
        batch["sold"] += card["sale"] is not None
    return sorted(batches.values(), key=lambda batch: batch["batch"], reverse=True)


@router.get("/cards", response_class=HTMLResponse)
def card_list(visit: PanelVisit) -> HTMLResponse:
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        batches = _batches(card_domain.list_cards(connection, actor))
        sales = card_domain.list_sales(connection, actor)
        packages = price_list(connection, actor) if actor.may("money") else []
    return _page(
        visit,
        actor,
        "cards",
        "operator/cards.html",
        batches=batches,
        sales=sales,
        packages=packages,
        may_sell=card_domain.may_sell(actor),
        issue_key=secrets.token_urlsafe(16),
    )


@router.post("/cards/sell")
def card_sell(visit: PanelVisit) -> Response:
    form = visit.form
    try:
        commission = parse_amount(str(form.get("commission", "")).strip() or "0")
        with visit.pages.engine.begin() as connection:
            sale = card_domain.sell(
                connection,
                visit.operator(connection),
                str(form.get("first", "")),
                str(form.get("last", "")).strip() or None,
                str(form.get("buyer", "")),
                commission=commission,
            )
    except RadbillError as error:
        visit.flash("error", str(error))
        return visit.redirect("/panel/cards")
    visit.flash(
        "ok",
        visit._(
            "%(count)s cards sold to %(buyer)s: %(cash)s to hand in.",
            count=sale["count"],
            buyer=sale["buyer"],
            cash=format_amount(sale["cash_in"]),
        ),
    )
    return visit.redirect("/panel/cards")


@router.post("/cards", response_class=HTMLResponse)
def card_batch(visit: PanelVisit) -> Response:
    """Issue a batch and answer with its print view: the only page that shows the PINs (only their
    keyed hashes are stored), so it is not kept by the browser or a proxy.

    The form carries a one-time key (ISSUE_KEY), so a resent form (a refresh of the print view, a
    double click) issues nothing more: it is sent back to the cards page, told which batch it was.
    """
    pages = visit.pages
    form = visit.form
    package = str(form.get("package", "")) or None
    value = str(form.get("value", "")).strip()
    key = str(form.get(ISSUE_KEY, ""))
    if not key:
        visit.flash("error", visit._("This form is out of date: issue the batch from the cards page."))
        return visit.redirect("/panel/cards")
    fields = {name: str(form.get(name, "")) for name in ("count", "package", "value")}

    def issue_once():
        """(the actor, the batch's cards, whether this was a resend)"""
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            return actor, *answer_once(
                connection,
                f"session:{visit.session.acting_as or visit.session.subject}",
                key,
                request_fingerprint(visit.request, fields),
                lambda: card_domain.create_batch(
                    connection,
                    actor,
                    count,
                    pages.card_pin_key,
                    value=parse_amount(value, allow_zero=False) if value and not package else None,
                    package=package,
                ),
                kept=lambda cards: [{"batch_id": cards[0]["batch_id"]}] * len(cards),  # no PIN stored
            )

    try:
        count = int(str(form.get("count", "0")) or 0)
        try:
            actor, created, resent = issue_once()
        except IntegrityError:
            # The same form sent twice at once (a double click), on PostgreSQL: the other sending
            # stored the key first and this one's batch was rolled back; asked again, it is a resend.
            actor, created, resent = issue_once()
    except ValueError:
        visit.flash("error", visit._("Give the number of cards as a whole number."))
        return visit.redirect("/panel/cards")
    except RadbillError as error:
        visit.flash("error", str(error))
        return visit.redirect("/panel/cards")
    if resent:
        visit.flash(
            "error",
            visit._(
                "Batch %(batch)s (%(count)s cards) was issued by this form already: nothing more was "
                "issued. Its PINs were shown once; if the printout is lost, void the batch.",
                batch=created[0]["batch_id"],
                count=len(created),
            ),
        )
        return visit.redirect("/panel/cards")
    visit.flash("ok", visit._("%(count)s cards issued.", count=len(created)))
    page = _page(
        visit, actor, "cards", "operator/cards_print.html", batch=created[0]["batch_id"], cards=created
    )
    page.headers["cache-control"] = "no-store"
    return page


@router.post("/cards/{batch}/void")
def card_void(visit: PanelVisit, batch: int) -> Response:
    try:
        with visit.pages.engine.begin() as connection:
            voided = card_domain.void_batch(connection, visit.operator(connection), batch)
    except RadbillError as error:
        if isinstance(error, NotFound):
            raise
        visit.flash("error", str(error))
        return visit.redirect("/panel/cards")
    visit.flash("ok", visit._("%(count)s unused cards voided.", count=voided))
    return visit.redirect("/panel/cards")


@router.get("/cards.csv")
def card_csv(visit: PanelVisit) -> Response:
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = card_domain.list_cards(connection, actor)
    return _csv(
        visit, "cards.csv", ["batch", "serial", "status", "value", "package", "sale", "redeemed_at"], rows
    )


# --- invoices -------------------------------------------------------------------------------


INVOICE_ROWS = 500  # on the page; the CSV has them all


@router.get("/invoices", response_class=HTMLResponse)
def invoice_list(visit: PanelVisit, request: Request) -> HTMLResponse:
    status = request.query_params.get("status") or None
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = reports.invoice_report(connection, actor, visit.pages.calendar().today, status)
    return _page(
        visit,
        actor,
        "invoices",
        "operator/invoices.html",
        rows=rows[:INVOICE_ROWS],
        total=len(rows),
        status=status,
    )


@router.get("/invoices.csv")
def invoice_csv(visit: PanelVisit) -> Response:
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = reports.invoice_report(connection, actor, visit.pages.calendar().today)
    rows = [
        {**row, "amount": format_amount(row["amount"]), "paid_amount": format_amount(row["paid_amount"])}
        for row in rows
    ]
    columns = [
        "number",
        "username",
        "period_start",
        "period_end",
        "amount",
        "paid_amount",
        "issued_on",
        "due_on",
        "status",
    ]
    return _csv(visit, "invoices.csv", columns, rows)


# --- statement ------------------------------------------------------------------------------


def _day(text: str | None, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        return default


STATEMENT_LINES = 500  # on the page; the CSV has every line of the period


def _statement(visit: Visit, request: Request, latest: int | None = None):
    today = visit.pages.calendar().today
    first = _day(request.query_params.get("from"), today.replace(day=1))
    last = _day(request.query_params.get("to"), today)
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
        login = request.query_params.get("operator") or _home_login(connection, actor)
        rows = named_statement(connection, actor, login, first, last, latest=latest)
    return actor, rows, first, last


def _home_login(connection, actor) -> str:
    """Whose book the actor keeps: its own, or (staff) its home operator's."""
    if actor.home_id == actor.id:
        return actor.login
    return next(row.login for row in operators.list_operators(connection, actor) if row.id == actor.home_id)


@router.get("/statement", response_class=HTMLResponse)
def statement_page(visit: PanelVisit, request: Request) -> HTMLResponse:
    actor, rows, first, last = _statement(visit, request, STATEMENT_LINES)
    return _page(
        visit,
        actor,
        "statement",
        "operator/statement.html",
        rows=rows,
        first=first,
        last=last,
        operator=request.query_params.get("operator") or "",
        cut=len(rows) == STATEMENT_LINES,
    )


@router.get("/statement.csv")
def statement_csv(visit: PanelVisit, request: Request) -> Response:
    _actor, rows, _first, _last = _statement(visit, request)
    rows = [{**row, "amount": format_amount(row["amount"])} for row in rows]
    columns = ["day", "entry", "kind", "memo", "customer", "debit_name", "credit_name", "amount", "posted_by"]
    return _csv(visit, "statement.csv", columns, rows)


def _csv(visit: Visit, filename: str, columns: list[str], rows: list[dict]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(column) is None else row[column] for column in columns])
    return visit._with_cookie(
        Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )
    )
