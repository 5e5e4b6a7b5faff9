"""The day's work: daily charges, enabled days, monthly invoices, overdue suspensions.

One day is one transaction and is recorded in ``billing_runs``; a day that
is there is never run again, so running a day twice changes nothing, and
:func:`days_to_run` catches up missed days in order.

The daily charge is set-based SQL (FIELD-NOTES 21): the candidates go into a
temporary table in one INSERT ... SELECT, each with the day's share of its
price (``floor(p*(i+1)/n) - floor(p*i/n)`` for day ``i`` of its period);
the operators' shares are summed per operator to see who cannot cover the
day; then one statement each writes the ledger lines, the ``customer_days``
rows, the wallets and expiries, the suspensions, the change log and the
enforcement jobs. The customers' lines go into one entry per day, the
operators' shares are one line per operator and book. The candidates are
kept in customer order, so every insert and update walks the tables and
their indexes in order instead of at random.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    bindparam,
    column,
    delete,
    func,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from billingd import cascade, invoices, ledger, price_changes
from billingd.calendar import end_of_day
from billingd.cascade import Level
from billingd.customers import EXPIRED, OPERATOR_FUND, OVERDUE
from billingd.enforcement import cut_off, restore
from billingd.money import day_share_sql
from schema.changes import prune_changes, record_change, record_changes
from schema.engine import as_utc
from schema.errors import RadbillError
from schema.outbox import enqueue_selected
from schema.settings import BillingdSettings
from schema.tables import (
    billing_runs,
    customer_usage,
    customers,
    master_packages,
    operators,
    package_prices,
    packages,
    radpostauth,
    sessions,
)
from schema.tables import invoices as invoice_rows
from schema.tenancy import Actor, ancestry, operator_parents
from schema.usage import usage_period_start

log = logging.getLogger(__name__)
_FAILED_WALLET, _FAILED_OPERATOR = 1, 2
# A paying level's share of a customer's day, over run_charges r and run_chain ch.
_LEVEL_SHARE = day_share_sql("ch.price", "r.n", "r.idx")


@dataclass(frozen=True)
class DayResult:
    day: date
    customers_charged: int
    customers_suspended: int
    amount_charged: int
    invoices: int
    already_done: bool = False
    seconds: float = 0.0


def days_to_run(connection: Connection, through: date) -> list[date]:
    """The days after the last completed one, up to ``through``, never before the earliest
    day that has anything to bill (the first customer's first day): a new system starts
    there, and an old date cannot queue decades of empty days."""
    last = connection.execute(
        select(func.max(billing_runs.c.day)).where(billing_runs.c.finished_at.is_not(None))
    ).scalar()
    following = last + timedelta(days=1) if last is not None else None
    # Usually a customer was billable by the day after the last run; finding one is cheaper than
    # the earliest of every customer's first day (a pass over a million customers).
    if (
        following is not None
        and connection.execute(
            select(customers.c.id).where(customers.c.billing_anchor <= following).limit(1)
        ).first()
    ):
        first = following
    else:
        earliest = connection.execute(select(func.min(customers.c.billing_anchor))).scalar()
        if earliest is None:
            return []
        first = max(earliest, following) if following is not None else earliest
    return [first + timedelta(days=i) for i in range((through - first).days + 1)]


def check_run(connection: Connection, actor: Actor, through: date, today: date) -> None:
    """Billing is run by the admin side with ``finance``, and never for a day that has not come."""
    actor.require("billing.run", "run billing")
    if through > today:
        raise RadbillError(
            f"cannot bill {through.isoformat()}: it is after today ({today.isoformat()} in the billing time zone)"
        )


def run_through(engine: Engine, through: date, settings: BillingdSettings) -> list[DayResult]:
    """Run every missed day up to ``through``, in order, one transaction each."""
    results = []
    with engine.begin() as connection:
        days = days_to_run(connection, through)
    for day in days:
        started = time.monotonic()
        with engine.begin() as connection:
            result = run_day(connection, day, settings, now=datetime.now(UTC))
        results.append(dataclasses.replace(result, seconds=time.monotonic() - started))
    # The daily housekeeping, also on a day with nothing to bill (no customers yet).
    with engine.begin() as connection:
        prune_changes(connection, datetime.now(UTC))
        prune_postauth(connection, datetime.now(UTC), settings.postauth_days)
    return results


def prune_postauth(connection: Connection, now: datetime, keep_days: int) -> int:
    """Forget authentication attempts older than ``keep_days``: radiusd logs every one, so radpostauth
    would otherwise grow without bound (``radbill why`` and ``attempts`` read the latest)."""
    return connection.execute(
        delete(radpostauth).where(radpostauth.c.authdate < now - timedelta(days=keep_days))
    ).rowcount


def run_day(connection: Connection, day: date, settings: BillingdSettings, *, now: datetime) -> DayResult:
    """Do one day's work, unless it is already done.

    Claiming the day is an INSERT that does nothing on conflict: a second run
    of the same day at the same moment waits (PostgreSQL) for the first to
    commit, then finds the day done instead of failing on the primary key.
    """
    claim = _insert_or_nothing(connection)(billing_runs).values(day=day, started_at=now)
    claimed = connection.execute(claim.on_conflict_do_nothing().returning(billing_runs.c.day)).first()
    done = connection.execute(select(billing_runs).where(billing_runs.c.day == day)).mappings().one()
    if not claimed and done["finished_at"] is not None:
        return DayResult(
            day, done["customers_charged"], done["customers_suspended"], done["amount_charged"], 0, True
        )
    cascade.lock_all_operators(connection)
    price_changes.apply_due(connection, day)  # the day is charged at the prices in force on it
    charged, suspended, amount = _daily_charges(connection, day, settings.zone)
    _record_enabled_days(connection, day)
    invoiced = _issue_invoices(connection, day, settings)
    suspended += _suspend_overdue(connection, day, settings)
    _restore_new_periods(connection, settings.zone, now)
    connection.execute(
        update(billing_runs)
        .where(billing_runs.c.day == day)
        .values(
            finished_at=datetime.now(UTC),
            customers_charged=charged,
            customers_suspended=suspended,
            amount_charged=amount,
        )
    )
    log.info(
        "billing day %s: %d customers charged %d, %d suspended, %d invoices",
        day,
        charged,
        amount,
        suspended,
        invoiced,
    )
    return DayResult(day, charged, suspended, amount, invoiced)


def _insert_or_nothing(connection: Connection):
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _day_index(connection: Connection) -> str:
    """SQL for whole days from a customer's billing anchor to :day."""
    if connection.dialect.name == "sqlite":
        return "CAST(julianday(:day) - julianday(c.billing_anchor) AS INTEGER)"
    return "(CAST(:day AS DATE) - c.billing_anchor)"


_TYPED_PARAMETERS = {"day": Date(), "end": DateTime(timezone=True)}


def _sql(statement: str):
    """text() with the date and instant parameters typed, so both drivers bind them alike."""
    typed = [
        bindparam(name, type_=type_) for name, type_ in _TYPED_PARAMETERS.items() if f":{name}" in statement
    ]
    return text(statement).bindparams(*typed)


def _chains(connection: Connection) -> dict[int, list[tuple[int, int]]]:
    """For each operator: the (level, parent) pairs that pay upwards for its customers, nearest first."""
    parents = operator_parents(connection)
    chains = {}
    for operator_id in parents:
        chain = ancestry(parents, operator_id)
        chains[operator_id] = list(zip(chain, chain[1:]))
    return chains


def _daily_charges(connection: Connection, day: date, zone: ZoneInfo) -> tuple[int, int, int]:
    """The pay-as-you-go day of every due daily customer: (charged, suspended, amount)."""
    _select_due(connection, day)
    rows = _fail_uncovered(connection, day)
    paid_until = end_of_day(day, zone)
    entry_id = _post_charges(connection, day, rows, paid_until)
    _apply_outcomes(connection, day, paid_until, entry_id)
    return _count_and_drop(connection)


def _select_due(connection: Connection, day: date) -> None:
    """The due customers with their day's share, into ``run_charges`` (failed when the wallet is short)."""
    connection.execute(text("DROP TABLE IF EXISTS run_charges"))
    connection.execute(text("DROP TABLE IF EXISTS run_chain"))
    connection.execute(
        _sql(f"""
        CREATE TEMPORARY TABLE run_charges AS
        SELECT id AS customer_id, owner_id, package_id, wallet_id, n, idx, was_active, share,
               CASE WHEN share > wallet_balance THEN {_FAILED_WALLET} ELSE 0 END AS failed
        FROM (SELECT id, owner_id, package_id, wallet_id, wallet_balance, n, idx, was_active,
                     {day_share_sql("price", "n", "idx")} AS share
        FROM (SELECT c.id, c.operator_id AS owner_id, c.package_id, c.wallet_balance, m.period_days AS n,
                     {_day_index(connection)} % m.period_days AS idx, pp.customer_price AS price,
                     CASE WHEN c.status = 'active' THEN 1 ELSE 0 END AS was_active, w.id AS wallet_id
              FROM customers c
              JOIN ledger_accounts w ON w.customer_id = c.id
              JOIN packages p ON p.id = c.package_id
              JOIN master_packages m ON m.id = p.master_package_id AND m.billing_type = 'daily'
              JOIN package_prices pp ON pp.package_id = c.package_id AND pp.operator_id = c.operator_id
              WHERE (c.status = 'active' OR c.status_reason = '{OPERATOR_FUND}')
                AND c.deleted_at IS NULL AND c.billing_anchor <= :day
                AND NOT EXISTS (SELECT 1 FROM customer_days d WHERE d.customer_id = c.id AND d.day = :day)) AS due
        ) AS priced
        ORDER BY id
    """),
        {"day": day},
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE run_charges"))  # temporary tables get no statistics otherwise


def _fail_uncovered(connection: Connection, day: date) -> dict:
    """Sum the operators' shares per paying level into ``run_chain``; fail the customers under a
    level that cannot cover its sum. Returns the levels' operator rows by id."""
    chains = _chains(connection)
    pairs = connection.execute(
        text("SELECT DISTINCT owner_id, package_id FROM run_charges WHERE failed = 0")
    ).all()
    prices = {
        (row.package_id, row.operator_id): row.operator_price
        for row in connection.execute(
            select(package_prices.c.package_id, package_prices.c.operator_id, package_prices.c.operator_price)
        )
    }
    chain_rows = [
        dict(
            owner_id=owner,
            package_id=package,
            level_id=level,
            parent_id=parent,
            price=prices[(package, level)],
        )
        for owner, package in pairs
        for level, parent in chains[owner]
    ]
    connection.execute(
        text(
            "CREATE TEMPORARY TABLE run_chain (owner_id INTEGER, package_id INTEGER, "
            "level_id INTEGER, parent_id INTEGER, price BIGINT)"
        )
    )
    if chain_rows:
        connection.execute(
            text("INSERT INTO run_chain VALUES (:owner_id, :package_id, :level_id, :parent_id, :price)"),
            chain_rows,
        )
    needs = dict(
        connection.execute(
            text(f"""
        SELECT ch.level_id, SUM({_LEVEL_SHARE}) FROM run_charges r
        JOIN run_chain ch ON ch.owner_id = r.owner_id AND ch.package_id = r.package_id
        WHERE r.failed = 0 GROUP BY ch.level_id""")
        ).all()
    )
    rows = {
        row["id"]: row
        for row in connection.execute(
            select(operators).where(operators.c.id.in_(needs)).order_by(operators.c.id).with_for_update()
        ).mappings()
    }
    short = {
        level
        for level, need in needs.items()
        if cascade.shortfall([_level(rows[level], 0)], [int(need)]) is not None
    }
    failing_owners = [owner for owner, chain in chains.items() if any(level in short for level, _ in chain)]
    if failing_owners:
        connection.execute(
            text(
                f"UPDATE run_charges SET failed = {_FAILED_OPERATOR} WHERE failed = 0 AND owner_id IN :owners"
            ).bindparams(bindparam("owners", expanding=True)),
            {"owners": failing_owners},
        )
        for level in sorted(short):
            log.warning(
                "billing day %s: operator %s cannot cover its customers' day; they are suspended",
                day,
                rows[level]["login"],
            )
    return rows


def _post_charges(connection: Connection, day: date, rows: dict, paid_until: datetime) -> int:
    """The day's one entry: operators' shares summed per level, a line per charged customer; the
    customers' paid time moves in the same update as their wallets."""
    operator_totals = connection.execute(
        text(f"""
        SELECT ch.level_id, ch.parent_id, SUM({_LEVEL_SHARE}) AS amount FROM run_charges r
        JOIN run_chain ch ON ch.owner_id = r.owner_id AND ch.package_id = r.package_id
        WHERE r.failed = 0 GROUP BY ch.level_id, ch.parent_id ORDER BY ch.level_id""")
    ).all()
    levels = [_level(rows[row.level_id], 0) for row in operator_totals]
    lines = cascade.operator_lines(connection, levels, [int(row.amount) for row in operator_totals])
    entry_id = ledger.post(
        connection,
        "daily_charge",
        lines,
        effective_on=day,
        idempotency_key=f"daily:{day.isoformat()}",
        memo=f"daily charges for {day.isoformat()}",
    )
    ledger.add_selected_lines(
        connection,
        entry_id,
        """SELECT r.owner_id, r.wallet_id, s.id, r.share FROM run_charges r
        JOIN ledger_accounts s ON s.book_operator_id = r.owner_id AND s.code = 'sales'
        WHERE r.failed = 0 AND r.share > 0""",
        {},
        customer_values={"expires_at": paid_until},
    )
    return entry_id


def _apply_outcomes(connection: Connection, day: date, paid_until: datetime, entry_id: int) -> None:
    """Paid days, the expiries of days that cost nothing (the others moved with the wallets),
    suspensions and reactivations, their router jobs and the change log."""
    connection.execute(
        _sql(
            "INSERT INTO customer_days (customer_id, day, amount, entry_id) "
            "SELECT customer_id, :day, share, :entry FROM run_charges WHERE failed = 0"
        ),
        {"day": day, "entry": entry_id},
    )
    connection.execute(
        _sql("""
        UPDATE customers SET expires_at = :end
        FROM run_charges r WHERE r.customer_id = customers.id AND r.failed = 0 AND r.share = 0"""),
        {"end": paid_until},
    )
    # Customers held back only by an operator's empty fund come back once it can pay.
    connection.execute(
        text("""
        UPDATE customers SET status = 'active', status_reason = NULL
        FROM run_charges r WHERE r.customer_id = customers.id AND r.failed = 0 AND r.was_active = 0""")
    )
    connection.execute(
        text(f"""
        UPDATE customers SET status = 'suspended',
               status_reason = CASE r.failed WHEN {_FAILED_WALLET} THEN '{EXPIRED}' ELSE '{OPERATOR_FUND}' END
        FROM run_charges r WHERE r.customer_id = customers.id AND r.failed > 0 AND r.was_active = 1""")
    )
    # What the routers are told (billingd/enforcement.py): the cut off are
    # disconnected and their static addresses blocked; the reactivated get
    # their package's rate by CoA and their static addresses unblocked.
    reason = f"CASE failed WHEN 0 THEN 'reactivated' WHEN {_FAILED_WALLET} THEN '{EXPIRED}' ELSE '{OPERATOR_FUND}' END"
    changed = "(failed > 0 AND was_active = 1) OR (failed = 0 AND was_active = 0)"
    key = f"{reason} || ':' || CAST(customer_id AS TEXT) || ':' || CAST(:day AS TEXT)"
    job_columns = (column("customer_id"), column("action"), column("reason"), column("dedupe_key"))
    enqueue_selected(
        connection,
        _sql(f"""
        SELECT customer_id, CASE failed WHEN 0 THEN 'coa' ELSE 'disconnect' END AS action, {reason} AS reason,
               {key} AS dedupe_key
        FROM run_charges WHERE {changed}""")
        .bindparams(day=day)
        .columns(*job_columns),
    )
    enqueue_selected(
        connection,
        _sql(f"""
        SELECT customer_id, CASE failed WHEN 0 THEN 'api_enable' ELSE 'api_disable' END AS action,
               {reason} AS reason, {key} || CASE failed WHEN 0 THEN '\\:unblock' ELSE '\\:block' END AS dedupe_key
        FROM run_charges WHERE ({changed})
          AND customer_id IN (SELECT id FROM customers WHERE static_ip IS NOT NULL)""")
        .bindparams(day=day)
        .columns(*job_columns),
    )
    # Charged customers' expiry moved too: radiusd must see every one of them.
    record_changes(
        connection,
        "customer",
        select(column("customer_id"))
        .select_from(table("run_charges"))
        .where(text("failed = 0 OR was_active = 1")),
    )


def _count_and_drop(connection: Connection) -> tuple[int, int, int]:
    charged, suspended, amount = connection.execute(
        text(
            "SELECT COALESCE(SUM(CASE WHEN failed = 0 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN failed > 0 AND was_active = 1 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN failed = 0 THEN share ELSE 0 END), 0) FROM run_charges"
        )
    ).one()
    connection.execute(text("DROP TABLE run_charges"))
    connection.execute(text("DROP TABLE run_chain"))
    return int(charged), int(suspended), int(amount)


def _level(row, price: int) -> Level:
    return Level(
        row["id"],
        row["login"],
        row["parent_id"],
        row["billing_mode"],
        row["credit_limit"],
        row["fund_balance"],
        price,
    )


def _record_enabled_days(connection: Connection, day: date) -> None:
    """Monthly customers: one row per enabled day, invoiced later (proration by enabled days)."""
    connection.execute(
        _sql("""
        INSERT INTO customer_days (customer_id, day, amount)
        SELECT c.id, :day, 0 FROM customers c
        JOIN packages p ON p.id = c.package_id
        JOIN master_packages m ON m.id = p.master_package_id AND m.billing_type = 'monthly'
        WHERE c.status = 'active' AND c.deleted_at IS NULL AND c.billing_anchor <= :day
          AND NOT EXISTS (SELECT 1 FROM customer_days d WHERE d.customer_id = c.id AND d.day = :day)"""),
        {"day": day},
    )


def _issue_invoices(connection: Connection, day: date, settings: BillingdSettings) -> int:
    """On its cycle day a monthly customer is invoiced for its enabled, not yet invoiced days
    and its prepaid levels pay the new month (see :mod:`billingd.invoices`); a level that
    cannot cover its share has it suspended."""
    due = connection.execute(
        select(customers)
        .select_from(
            customers.join(packages, packages.c.id == customers.c.package_id).join(
                master_packages, master_packages.c.id == packages.c.master_package_id
            )
        )
        .where(
            master_packages.c.billing_type == "monthly",
            customers.c.cycle_day == day.day,
            customers.c.deleted_at.is_(None),
        )
        .order_by(customers.c.id)
    ).all()
    issued = 0
    for customer in due:
        through = day - timedelta(days=1)
        days = invoices.unbilled_days(connection, customer.id, through)
        charged = invoices.bill(connection, customer, days, through)
        if days or any(charged.advanced):
            if cascade.shortfall(charged.levels, charged.due) is not None:
                _suspend(connection, customer.id, OPERATOR_FUND, day.isoformat())
                continue
            invoices.invoice_days(
                connection,
                customer,
                days,
                charged,
                through=through,
                issued_on=day,
                due_days=settings.invoice_due_days,
            )
            issued += bool(days)
        if customer.status == "active" and not invoices.advance_cycle(
            connection, customer.id, day, actor_id=None, refuse=False
        ):
            _suspend(connection, customer.id, OPERATOR_FUND, day.isoformat())
    return issued


def _suspend(connection: Connection, customer_id: int, reason: str, cause: str) -> None:
    connection.execute(
        update(customers)
        .where(customers.c.id == customer_id)
        .values(status="suspended", status_reason=reason)
    )
    record_change(connection, "customer", customer_id)
    cut_off(connection, customer_id, reason, cause)


def _suspend_overdue(connection: Connection, day: date, settings: BillingdSettings) -> int:
    """Active monthly customers with an invoice unpaid past its due date plus grace."""
    late = (
        connection.execute(
            select(customers.c.id)
            .distinct()
            .select_from(customers.join(invoice_rows, invoice_rows.c.customer_id == customers.c.id))
            .where(
                customers.c.status == "active",
                customers.c.deleted_at.is_(None),
                invoice_rows.c.status == "open",
                invoice_rows.c.due_on < day - timedelta(days=settings.grace_days),
            )
        )
        .scalars()
        .all()
    )
    for customer_id in late:
        _suspend(connection, customer_id, OVERDUE, day.isoformat())
    return len(late)


def _restore_new_periods(connection: Connection, zone: ZoneInfo, now: datetime) -> int:
    """Online customers throttled to the fair-usage rate in their last period get
    the package's rate back by CoA once a new period has begun (FIELD-NOTES 13).

    A customer counts while its latest usage row is the throttled one, i.e.
    until accounting opens the new period's row; the dedupe key (the new
    period) queues one CoA per customer and period."""
    latest = (
        select(customer_usage.c.customer_id, func.max(customer_usage.c.period_start).label("period_start"))
        .group_by(customer_usage.c.customer_id)
        .subquery()
    )
    online = select(sessions.c.id).where(
        sessions.c.customer_id == customers.c.id, sessions.c.stopped_at.is_(None)
    )
    throttled = connection.execute(
        select(customers.c.id, customers.c.expires_at, master_packages.c.period_days, latest.c.period_start)
        .select_from(
            customers.join(latest, latest.c.customer_id == customers.c.id)
            .join(
                customer_usage,
                (customer_usage.c.customer_id == latest.c.customer_id)
                & (customer_usage.c.period_start == latest.c.period_start),
            )
            .join(packages, packages.c.id == customers.c.package_id)
            .join(master_packages, master_packages.c.id == packages.c.master_package_id)
        )
        .where(
            customer_usage.c.quota_enforced_at.is_not(None),
            customers.c.status == "active",
            online.exists(),
        )
    ).all()
    restored = 0
    for row in throttled:
        start = usage_period_start(row.expires_at and as_utc(row.expires_at), row.period_days, zone, now)
        if row.period_start < start:
            restore(connection, row.id, "new_period", start.isoformat(), unblock=False)
            restored += 1
    return restored
