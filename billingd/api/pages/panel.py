"""The operator panel: log in, dashboard, customers, operators, cards, statement, "login as".

Each handler reads the form, opens one transaction, gets the actor from the
session and calls one domain function; the domain decides who may do what.
"""

import csv
import io
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from billingd import credentials, dashboard, zones
from billingd import customers as customer_domain
from billingd.customer_views import STATES, find_customers, state_of
from billingd.packages import price_list
from billingd.prices import format_amount, parse_amount
from schema.errors import RadbillError, Throttled

from .chart import DayPoint, revenue_chart
from .web import Visit, load_visit, status_for

router = APIRouter(prefix="/panel", include_in_schema=False)


async def _visit(request: Request) -> Visit:
    return await load_visit(request, "/panel")


PanelVisit = Annotated[Visit, Depends(_visit)]


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


# --- log in and out ----------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(visit: PanelVisit) -> HTMLResponse:
    return visit.render("login.html", heading=visit._("Operator login"), login_label=visit._("Login"))


@router.post("/login", response_class=HTMLResponse)
def login(visit: PanelVisit) -> Response:
    login_name = str(visit.form.get("login", "")).strip()
    password = str(visit.form.get("password", ""))
    context = dict(heading=visit._("Operator login"), login_label=visit._("Login"), login=login_name)
    pages = visit.pages
    try:
        with pages.engine.begin() as connection:
            result = credentials.login_operator(
                connection, login_name, password, visit.client_address, pages.now(), pages.settings.api
            )
    except Throttled:
        visit.flash("error", visit._("Too many failed logins. Try again later."))
        return visit.render("login.html", status_code=429, **context)
    if result.session_id is None:
        visit.flash("error", visit._("Wrong login or password."))
        return visit.render("login.html", status_code=401, **context)
    visit.session = visit.session.signed_in("operator", result.session_id, login_name.lower())
    return visit.redirect("/panel/")


@router.post("/logout")
def logout(visit: PanelVisit) -> Response:
    with visit.pages.engine.begin() as connection:
        for session_id in (visit.session.acting_as, visit.session.subject):
            if session_id is not None:
                credentials.logout(connection, session_id, visit.pages.now())
    visit.session = visit.session.anonymous()
    return visit.redirect("/panel/login")


# --- dashboard ----------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def dashboard_page(visit: PanelVisit) -> HTMLResponse:
    pages = visit.pages
    calendar = pages.calendar()
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        counts = dashboard.customer_counts(connection, actor, calendar)
        expiring = dashboard.expiring_customers(connection, actor, calendar)
        money = fund = points = None
        collections = []
        if actor.may("money"):
            money = dashboard.money_today(connection, actor, calendar)
            collections = dashboard.collections_today(connection, actor, calendar)
            fund = dashboard.fund_position(connection, actor)
            points = dashboard.chart(connection, actor, calendar)
    chart = None
    if points is not None:
        chart = Markup(
            revenue_chart(
                [DayPoint(p.day, p.active, p.revenue) for p in points],
                title=visit._("Active customers and revenue, last 30 days"),
                format_money=format_amount,
                labels={"active": visit._("active customers"), "revenue": visit._("revenue")},
            )
        )
    return _page(
        visit,
        actor,
        "dashboard",
        "operator/dashboard.html",
        counts=counts,
        expiring=expiring,
        collections=collections,
        money=money,
        fund=fund,
        chart=chart,
        points=points,
    )


# --- customers ----------------------------------------------------------------------------


def _list_arguments(request: Request) -> dict:
    state = request.query_params.get("state") or None
    return dict(
        search=request.query_params.get("q") or None,
        state=state if state in STATES else None,
        after=request.query_params.get("after") or None,
    )


@router.get("/customers", response_class=HTMLResponse)
def customer_list(visit: PanelVisit, request: Request) -> HTMLResponse:
    arguments = _list_arguments(request)
    pages = visit.pages
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        rows = find_customers(connection, actor, pages.now(), **arguments)
    template = (
        "operator/customer_rows.html" if request.headers.get("hx-request") else "operator/customers.html"
    )
    return _page(visit, actor, "customers", template, rows=rows, states=STATES, **arguments)


@router.get("/customers.csv")
def customer_csv(visit: PanelVisit, request: Request) -> Response:
    """Every visible customer matching the filters, as CSV (fetched page by page from the domain)."""
    arguments = _list_arguments(request)
    arguments.pop("after")
    columns = ["username", "customer_code", "name", "phone", "owner", "package", "state", "expires_at"]
    pages = visit.pages
    out = io.StringIO()
    writer = csv.writer(out)
    with pages.engine.begin() as connection:
        actor = visit.operator(connection)
        if actor.may("money"):
            columns.append("wallet_balance")
        writer.writerow(columns)
        after = None
        while True:
            rows = find_customers(connection, actor, pages.now(), after=after, limit=1000, **arguments)
            for row in rows:
                if "wallet_balance" in row:
                    row = {**row, "wallet_balance": format_amount(row["wallet_balance"])}
                writer.writerow(
                    [row.get(column) if row.get(column) is not None else "" for column in columns]
                )
            if len(rows) < 1000:
                break
            after = rows[-1]["username"]
    return visit._with_cookie(
        Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="customers.csv"'},
        )
    )


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
            record = customer_domain.add_customer(
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
    try:
        with pages.engine.begin() as connection:
            actor = visit.operator(connection)
            record = customer_domain.show_customer(connection, actor, username)
            packages = price_list(connection, actor, record["owner"]) if actor.may("money") else []
    except RadbillError as error:
        return _refused_page(visit, error)
    return _page(
        visit,
        actor,
        "customers",
        "operator/customer.html",
        status_code,
        customer=record,
        state=state_of(record, pages.now()),
        packages=packages,
    )


def _refused_page(visit: Visit, error: RadbillError) -> HTMLResponse:
    """A refusal on a page of its own (a customer of someone else looks like no customer at all)."""
    status = status_for(error)
    heading = visit._("Not found") if status == 404 else visit._("Not allowed")
    with visit.pages.engine.begin() as connection:
        actor = visit.operator(connection)
    return _page(visit, actor, "", "error.html", status, heading=heading, message=str(error))


@router.get("/customers/{username}", response_class=HTMLResponse)
def customer_show(visit: PanelVisit, username: str) -> HTMLResponse:
    return _customer_page(visit, username)


def _amount(visit: Visit) -> int:
    return parse_amount(str(visit.form.get("amount", "")), allow_zero=False)


# What each button on a customer's page does: one domain call each.
_ACTIONS = {
    "renew": lambda c, a, u, v, cal: customer_domain.renew(c, a, u, cal, cash=v.form.get("cash") == "yes"),
    "suspend": lambda c, a, u, v, cal: customer_domain.suspend(c, a, u, cal),
    "resume": lambda c, a, u, v, cal: customer_domain.resume(c, a, u, cal),
    "delete": lambda c, a, u, v, cal: customer_domain.delete_customer(c, a, u, cal),
    "restore": lambda c, a, u, v, cal: customer_domain.restore_customer(c, a, u, cal),
    "change-package": lambda c, a, u, v, cal: customer_domain.change_package(
        c, a, u, str(v.form.get("package", "")), cal
    ),
    "reset-password": lambda c, a, u, v, cal: _set_password(c, a, u, v),
    "topup": lambda c, a, u, v, cal: customer_domain.receive_payment(
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
    "renew": "Renewed: one more period bought.",
    "suspend": "Suspended.",
    "resume": "Resumed.",
    "delete": "Deleted (it can be restored).",
    "restore": "Restored (suspended until resumed or renewed).",
    "change-package": "Package changed.",
    "topup": "Payment recorded.",
    "reset-password": "Password changed.",
}


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
    visit.session = replace(visit.session, acting_as=result.session_id)
    return visit.redirect("/panel/")


@router.post("/act-as/end")
def act_as_end(visit: PanelVisit) -> Response:
    if visit.session.acting_as is not None:
        with visit.pages.engine.begin() as connection:
            credentials.logout(connection, visit.session.acting_as, visit.pages.now())
    visit.session = replace(visit.session, acting_as=None)
    return visit.redirect("/panel/")
