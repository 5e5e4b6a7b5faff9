"""Read models: what the operators look at, each decided for an :class:`Actor`.

Who is online, why a subscriber could not log in, which billing days ran,
and the reports an ISP files or reads: expiring subscribers, revenue, the
BTRC subscriber list, invoices. Every front end (the CLI, the API) calls
these and prints or serves what they return, so the same actor sees the
same rows everywhere. Every amount is an integer of minor units; revenue
comes from the ledger alone: the lines that credit (or, for refunds and
reversals, debit) a ``sales`` account, in the books the actor may see.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, func, literal, or_, select

from nas import outbox
from nas.registry import get_nas
from schema.engine import as_utc
from schema.errors import NotFound, RadbillError
from schema.identity import canonical_username
from schema.tables import (
    billing_runs,
    customer_days,
    customers,
    enforcement_jobs,
    invoices,
    ledger_accounts,
    ledger_entries,
    ledger_lines,
    master_packages,
    nas,
    operators,
    packages,
    radpostauth,
    sessions,
    zones,
)
from schema.tenancy import Actor, descendant_ids, require_changeable, require_visible, visible_operator_ids

ATTEMPT_COLUMNS = ("authdate", "reply", "reason", "nasipaddress", "callingstationid")


@dataclass(frozen=True)
class OnlineSession:
    id: int  # what `radbill session close` takes
    username: str
    nas: str
    ip: str | None
    mac: str | None
    started_at: datetime | None
    duration: int | None
    upload_bytes: int
    download_bytes: int
    acct_session_id: str


def online_sessions(
    connection: Connection,
    actor: Actor,
    now: datetime,
    nas_name: str | None = None,
    customer_id: int | None = None,
    *,
    username: str | None = None,
) -> list[OnlineSession]:
    """Open sessions of the customers the actor sees (or of one, by id or user name), oldest first; the
    NAS by name where radbill knows it, else by address. The admin also sees
    sessions of user names that are no customer."""
    actor.require("customers.view", "list online sessions")
    if nas_name is not None:
        get_nas(connection, nas_name)  # an unknown name is an error, not an empty list
    query = (
        select(sessions, nas.c.name.label("nas_name"))
        .select_from(sessions.outerjoin(nas, nas.c.id == sessions.c.nas_id))
        .where(sessions.c.stopped_at.is_(None))
        .order_by(sessions.c.started_at, sessions.c.id)
    )
    if nas_name is not None:
        query = query.where(nas.c.name == nas_name)
    if customer_id is not None:
        query = query.where(sessions.c.customer_id == customer_id)
    if username is not None:
        query = query.where(sessions.c.username == canonical_username(username))
    operator_ids = visible_operator_ids(connection, actor)
    if operator_ids is not None:
        query = query.join(customers, customers.c.id == sessions.c.customer_id).where(
            customers.c.operator_id.in_(sorted(operator_ids))
        )
    result = []
    for row in connection.execute(query):
        started = as_utc(row.started_at)
        result.append(
            OnlineSession(
                id=row.id,
                username=row.username,
                nas=row.nas_name or row.nas_ip_address,
                ip=row.framed_ip_address,
                mac=row.calling_station_id,
                started_at=started,
                duration=int((now - started).total_seconds()) if started else None,
                upload_bytes=row.upload_bytes,
                download_bytes=row.download_bytes,
                acct_session_id=row.acct_session_id,
            )
        )
    return result


def attempts(connection: Connection, actor: Actor, username: str, limit: int = 20) -> list[dict]:
    """A subscriber's latest authentication attempts (radpostauth), newest first.

    A customer's attempts are seen by whoever sees the customer; those of a
    user name that is no customer only by the admin.
    """
    if limit < 1:
        raise RadbillError(f"the limit must be at least 1, got {limit}")
    actor.require("customers.view", "see authentication attempts")
    name = canonical_username(username)
    owner = connection.execute(select(customers.c.operator_id).where(customers.c.username == name)).scalar()
    if owner is not None:
        require_visible(connection, actor, owner, f"customer {name!r}")
    elif not actor.is_admin:
        raise NotFound(f"no customer {name!r}")
    query = (
        select(*(radpostauth.c[column] for column in ATTEMPT_COLUMNS))
        .where(radpostauth.c.username == name)
        .order_by(radpostauth.c.authdate.desc(), radpostauth.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def recent_runs(connection: Connection, actor: Actor, limit: int = 30) -> list[dict]:
    """The last days run. The admin side sees the ISP's totals; a seller, its own
    subtree's customers charged and amount (what ``customer_days`` holds for them;
    suspensions are counted for the whole ISP only, so a seller's is None)."""
    actor.require("money", "see billing runs")
    runs = connection.execute(
        select(billing_runs).order_by(billing_runs.c.day.desc()).limit(limit)
    ).mappings()
    if actor.is_admin:
        return [dict(row) for row in runs]
    rows = [
        {key: row[key] for key in ("day", "started_at", "finished_at")}
        | {"customers_charged": 0, "amount_charged": 0, "customers_suspended": None}
        for row in runs
    ]
    if not rows:
        return rows
    by_day = {row["day"]: row for row in rows}
    charged = connection.execute(
        select(customer_days.c.day, func.count(), func.sum(customer_days.c.amount))
        .select_from(
            customer_days.join(customers, customers.c.id == customer_days.c.customer_id).join(
                ledger_entries, ledger_entries.c.id == customer_days.c.entry_id
            )
        )
        .where(
            customers.c.operator_id.in_(descendant_ids(connection, actor.home_id)),
            customer_days.c.day.in_(list(by_day)),
            ledger_entries.c.kind == "daily_charge",
        )
        .group_by(customer_days.c.day)
    )
    for day, count, amount in charged:
        by_day[day].update(customers_charged=count, amount_charged=amount)
    return rows


@dataclass(frozen=True)
class PendingJob:
    id: int
    action: str
    reason: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True)
class Why:
    """``radbill why``: the evidence, and what the next Access-Request would get (``decision``, from
    radiusd's policy, assumed to come from ``device``)."""

    username: str
    attempts: list[dict]
    sessions: list[OnlineSession]
    decision: object
    device: str | None
    jobs: list[PendingJob]


def why(
    connection: Connection,
    actor: Actor,
    username: str,
    *,
    now: datetime,
    decide: Callable[[Connection, int, str, str | None, datetime], object],
    limit: int = 10,
) -> Why:
    """Why a visible customer can or cannot log in. ``decide(connection, customer_id, username,
    device, now)`` is radiusd's answer (radiusd.auth.why.next_answer, given by the composition root:
    billingd does not import radiusd)."""
    found = attempts(connection, actor, username, limit)  # checks the actor and the tenancy
    name = canonical_username(username)
    row = connection.execute(
        select(customers.c.id, customers.c.mac_binding).where(customers.c.username == name)
    ).first()
    if row is None:
        raise RadbillError(f"no customer {name!r}")
    device = found[0]["callingstationid"] if found else None
    device = device or row.mac_binding
    jobs = [
        PendingJob(**job)
        for job in connection.execute(
            select(
                enforcement_jobs.c.id,
                enforcement_jobs.c.action,
                enforcement_jobs.c.reason,
                enforcement_jobs.c.status,
                enforcement_jobs.c.attempts,
                enforcement_jobs.c.last_error,
                enforcement_jobs.c.created_at,
            )
            .where(enforcement_jobs.c.customer_id == row.id, enforcement_jobs.c.status != "done")
            .order_by(enforcement_jobs.c.id)
        ).mappings()
    ]
    return Why(
        name,
        found,
        online_sessions(connection, actor, now, customer_id=row.id),
        decide(connection, row.id, name, device, now),
        device,
        jobs,
    )


REVENUE_GROUPS = ("operator", "zone", "package")
INVOICE_STATUSES = ("open", "paid", "overdue")
# BTRC's connection types for the master package types (the regulator's own words).
CONNECTION_TYPES = {
    "pppoe": "Broadband (PPPoE)",
    "hotspot": "Wi-Fi Hotspot",
    "static": "Broadband (Static IP)",
}
BTRC_COLUMNS = (
    "subscriber_id",
    "username",
    "name",
    "phone",
    "address",
    "connection_type",
    "zone",
    "package",
    "download_mbps",
    "upload_mbps",
    "activation_date",
    "status",
    "reseller",
)


def parse_month(text: str) -> date:
    """ "2026-11" -> date(2026, 11, 1), or a clear error."""
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise RadbillError(f"invalid month {text!r}: use YYYY-MM") from None


def _month_bounds(month: date, zone: ZoneInfo) -> tuple[date, date, datetime, datetime]:
    """The first and last day of the month, and the UTC instants its local days begin and end."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    start = datetime.combine(month, time(0), tzinfo=zone)
    end = datetime.combine(following, time(0), tzinfo=zone)
    return month, following - timedelta(days=1), start, end


def _visible(connection: Connection, actor: Actor, column):
    visible = visible_operator_ids(connection, actor)
    return literal(True) if visible is None else column.in_(sorted(visible))


def revenue(
    connection: Connection, actor: Actor, month: date, zone: ZoneInfo, by: str = "operator"
) -> list[dict]:
    """Sales of the month per operator, zone or package, from the ledger's ``sales`` lines.

    A line belongs to the month of its entry's business day (``effective_on``,
    the billing day of a run) or, without one, of the instant it was posted,
    in the billing time zone. Its subscriber is the wallet it moved from (a
    daily charge) or the entry's customer (a cash sale); zone and package are
    that subscriber's now.
    """
    actor.require("money", "see revenue")
    if by not in REVENUE_GROUPS:
        raise RadbillError(f"--by must be one of {', '.join(REVENUE_GROUPS)}, got {by!r}")
    first, last, start, end = _month_bounds(month, zone)
    credit = ledger_accounts.alias("credit")
    debit = ledger_accounts.alias("debit")
    signed = case((credit.c.code == "sales", ledger_lines.c.amount), else_=-ledger_lines.c.amount)
    customer_id = func.coalesce(debit.c.customer_id, credit.c.customer_id, ledger_entries.c.customer_id)
    lines = (
        select(
            ledger_lines.c.book_operator_id.label("book"),
            customer_id.label("customer_id"),
            signed.label("amount"),
        )
        .select_from(
            ledger_lines.join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
            .join(credit, credit.c.id == ledger_lines.c.credit_account_id)
            .join(debit, debit.c.id == ledger_lines.c.debit_account_id)
        )
        .where(
            or_(credit.c.code == "sales", debit.c.code == "sales"),
            or_(
                ledger_entries.c.effective_on.between(first, last),
                and_(
                    ledger_entries.c.effective_on.is_(None),
                    ledger_entries.c.created_at >= start,
                    ledger_entries.c.created_at < end,
                ),
            ),
            _visible(connection, actor, ledger_lines.c.book_operator_id),
        )
        .subquery()
    )
    if by == "operator":
        group = operators.c.login
        source = lines.join(operators, operators.c.id == lines.c.book)
    elif by == "zone":
        group = func.coalesce(zones.c.code, "(none)")
        source = lines.outerjoin(customers, customers.c.id == lines.c.customer_id).outerjoin(
            zones, zones.c.id == customers.c.zone_id
        )
    else:
        group = func.coalesce(packages.c.name, "(none)")
        source = lines.outerjoin(customers, customers.c.id == lines.c.customer_id).outerjoin(
            packages, packages.c.id == customers.c.package_id
        )
    query = (
        select(group.label(by), func.sum(lines.c.amount).label("revenue"), func.count().label("lines"))
        .select_from(source)
        .group_by(group)
        .order_by(group)
    )
    return [{**row, "revenue": int(row["revenue"])} for row in connection.execute(query).mappings()]


def expiring(connection: Connection, actor: Actor, now: datetime, days: int) -> list[dict]:
    """Active subscribers whose paid time ends within ``days``, soonest first."""
    actor.require("customers.view", "list expiring subscribers")
    query = (
        select(
            customers.c.username,
            customers.c.name,
            customers.c.phone,
            operators.c.login.label("owner"),
            packages.c.name.label("package"),
            customers.c.expires_at,
            customers.c.wallet_balance,
        )
        .join(operators, operators.c.id == customers.c.operator_id)
        .join(packages, packages.c.id == customers.c.package_id)
        .where(
            customers.c.deleted_at.is_(None),
            customers.c.status == "active",
            customers.c.expires_at > now,
            customers.c.expires_at <= now + timedelta(days=days),
            _visible(connection, actor, customers.c.operator_id),
        )
        .order_by(customers.c.expires_at, customers.c.username)
    )
    rows = []
    for row in connection.execute(query).mappings():
        row = {**row, "expires_at": as_utc(row["expires_at"])}
        if not actor.may("money"):
            row.pop("wallet_balance")
        rows.append(row)
    return rows


def btrc(connection: Connection, actor: Actor, month: date, zone: ZoneInfo) -> list[dict]:
    """BTRC's monthly subscriber list: everyone activated by the month's end and not deleted before it.

    The columns (README, Reports): the customer ID, user name, name, phone and
    address as recorded; the connection type from the master package's type;
    the zone code as the area; the package, and its bandwidth in Mbit/s
    (download is the package's tx rate, the router's towards the subscriber);
    the activation date (the day the customer was created, billing time
    zone); the status at the time of the report; the owning operator.
    """
    actor.require("customers.view", "file the BTRC subscriber report")
    _first, _last, start, end = _month_bounds(month, zone)
    query = (
        select(
            customers.c.customer_code,
            customers.c.username,
            customers.c.name,
            customers.c.phone,
            customers.c.address,
            customers.c.status,
            customers.c.created_at,
            customers.c.deleted_at,
            master_packages.c.customer_type,
            master_packages.c.rate_rx,
            master_packages.c.rate_tx,
            packages.c.name.label("package"),
            zones.c.code.label("zone"),
            operators.c.login.label("reseller"),
        )
        .join(packages, packages.c.id == customers.c.package_id)
        .join(master_packages, master_packages.c.id == packages.c.master_package_id)
        .join(operators, operators.c.id == customers.c.operator_id)
        .outerjoin(zones, zones.c.id == customers.c.zone_id)
        .where(
            customers.c.created_at < end,
            or_(customers.c.deleted_at.is_(None), customers.c.deleted_at >= start),
            _visible(connection, actor, customers.c.operator_id),
        )
        .order_by(customers.c.customer_code)
    )
    rows = []
    for row in connection.execute(query).mappings():
        rows.append(
            dict(
                subscriber_id=row["customer_code"],
                username=row["username"],
                name=row["name"],
                phone=row["phone"] or "",
                address=row["address"] or "",
                connection_type=CONNECTION_TYPES.get(row["customer_type"], "Other"),
                zone=row["zone"] or "",
                package=row["package"],
                download_mbps=_mbps(row["rate_tx"]),
                upload_mbps=_mbps(row["rate_rx"]),
                activation_date=as_utc(row["created_at"]).astimezone(zone).date(),
                status="deleted" if row["deleted_at"] is not None else row["status"],
                reseller=row["reseller"],
            )
        )
    return rows


def _mbps(bits_per_second: int) -> str:
    return f"{bits_per_second / 1_000_000:g}"


def invoice_report(
    connection: Connection,
    actor: Actor,
    today: date,
    status: str | None = None,
    number: str | None = None,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Invoices of the subscribers the actor sees (or the one numbered), newest first; ``overdue`` =
    open and past due. ``after`` (an invoice number) and ``limit`` page by keyset."""
    actor.require("money", "see invoices")
    if status is not None and status not in INVOICE_STATUSES:
        raise RadbillError(f"--status must be one of {', '.join(INVOICE_STATUSES)}, got {status!r}")
    overdue = and_(invoices.c.status == "open", invoices.c.due_on < today)
    shown_status = case((overdue, "overdue"), else_=invoices.c.status)
    query = (
        select(
            invoices.c.number,
            customers.c.username,
            operators.c.login.label("owner"),
            operators.c.name.label("owner_name"),
            invoices.c.period_start,
            invoices.c.period_end,
            invoices.c.issued_on,
            invoices.c.due_on,
            invoices.c.amount,
            invoices.c.paid_amount,
            shown_status.label("status"),
        )
        .join(customers, customers.c.id == invoices.c.customer_id)
        .join(operators, operators.c.id == invoices.c.operator_id)
        .where(invoices.c.status != "void", _visible(connection, actor, invoices.c.operator_id))
        .order_by(invoices.c.issued_on.desc(), invoices.c.number.desc())
    )
    if number is not None:
        query = query.where(invoices.c.number == number)
    if status == "overdue":
        query = query.where(overdue)
    elif status == "open":
        query = query.where(invoices.c.status == "open", invoices.c.due_on >= today)
    elif status == "paid":
        query = query.where(invoices.c.status == "paid")
    if after is not None:
        issued = connection.execute(select(invoices.c.issued_on).where(invoices.c.number == after)).scalar()
        if issued is None:
            raise RadbillError(f"no invoice {after!r} to page after")
        query = query.where(
            or_(
                invoices.c.issued_on < issued,
                and_(invoices.c.issued_on == issued, invoices.c.number < after),
            )
        )
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in connection.execute(query).mappings()]


def invoice(connection: Connection, actor: Actor, today: date, number: str) -> dict:
    """One invoice the actor may see (``radbill invoice show``); an invisible one is as unknown."""
    found = invoice_report(connection, actor, today, number=number)
    if not found:
        raise NotFound(f"no invoice {number!r}")  # the same words whether it exists or is not the actor's
    return found[0]


def enforcement_jobs_of(
    connection: Connection, actor: Actor, status: str | None = None, limit: int = 100
) -> list[outbox.JobRow]:
    """Router jobs of the customers the actor sees (jobs of no customer: the admin side's)."""
    actor.require("customers.view", "see router jobs")
    return outbox.list_jobs(connection, status, limit, operator_ids=visible_operator_ids(connection, actor))


def retry_enforcement(connection: Connection, actor: Actor, job_id: int) -> None:
    """Run a failed or waiting router job again now: network work (the NOC, the sellers, a manager
    with ``network``) on a customer the actor may change; a job of no customer is the admin side's."""
    actor.require("enforce", "retry router jobs")
    owner = outbox.job_customer_operator(connection, job_id)
    if owner is None and not actor.is_admin:
        raise NotFound(f"no enforcement job {job_id}")
    if owner is not None:
        require_changeable(connection, actor, owner, f"enforcement job {job_id}")
    outbox.retry_job(connection, job_id, actor_id=actor.caller_id, acting_as_id=actor.id)
