"""radiusd's SQL: every query it runs, as plain functions of a connection.

They return plain data for the view (radiusd.view.view) and run on a database
thread (schema.pool), never on the reactor.
"""

import logging
from datetime import date
from operator import itemgetter

from sqlalchemy import Connection, and_, func, insert, select, update

from radiusd.auth.policy import PackageState
from radiusd.view.model import CustomerRow, Customers, NasClient, OperatorRow, Snapshot
from schema.changes import record_change
from schema.engine import as_utc
from schema.identity import canonical_username
from schema.ratelimit import package_rate_limits
from schema.tables import (
    UNPAID_REASONS,
    change_log,
    customer_usage,
    customers,
    master_packages,
    nas,
    operators,
    packages,
    radpostauth,
    sessions,
)

log = logging.getLogger(__name__)

_CUSTOMER_COLUMNS = (
    customers.c.id,
    customers.c.username,
    customers.c.password,
    customers.c.status,
    customers.c.package_id,
    customers.c.operator_id,
    customers.c.expires_at,
    customers.c.wallet_balance,
    customers.c.mac_binding,
    customers.c.static_ip,
    customers.c.deleted_at.is_not(None),
    customers.c.status_reason,
)


CHANGE_BATCH = 10_000
ID_CHUNK = 1_000  # ids per IN (...): databases cap the number of parameters
STREAM_BATCH = 10_000


def _by_id_chunks(connection: Connection, query, id_column, ids: set[int] | None):
    """Rows of ``query``, all of them or those whose id is in ``ids``."""
    if ids is None:
        yield from connection.execute(query)
        return
    ordered = sorted(ids)
    for start in range(0, len(ordered), ID_CHUNK):
        yield from connection.execute(query.where(id_column.in_(ordered[start : start + ID_CHUNK])))


def read_customers(connection: Connection, ids: set[int] | None = None) -> list[CustomerRow]:
    query = select(*_CUSTOMER_COLUMNS)
    return [_customer_row(*row) for row in _by_id_chunks(connection, query, customers.c.id, ids)]


def read_all_customers(connection: Connection) -> Customers:
    """Every customer, for a full load, straight into the view's compact records."""
    held = Customers()
    for row in _streamed(connection, select(*_CUSTOMER_COLUMNS)):
        held.add(_customer_row(*row))
    return held


def _customer_row(
    id,
    username,
    password,
    status,
    package_id,
    operator_id,
    expires_at,
    wallet_balance,
    mac,
    ip,
    deleted,
    reason,
) -> CustomerRow:
    return CustomerRow(
        id,
        canonical_username(username),
        password,
        status,
        package_id,
        operator_id,
        as_utc(expires_at),
        wallet_balance,
        mac,
        ip,
        bool(deleted),
        status == "suspended" and reason in UNPAID_REASONS,
    )


def _streamed(connection: Connection, query):
    """Every row of a query too big to hold at once: on PostgreSQL through the
    driver's server-side cursor, a batch at a time (an SQLAlchemy row per
    customer cost 12 s at a million customers; the whole result at once
    700 MiB); elsewhere through SQLAlchemy (SQLite's driver hands back
    timestamps as text)."""
    if connection.dialect.name != "postgresql":
        yield from connection.execute(query)
        return
    with connection.connection.driver_connection.cursor("radiusd_full_load") as cursor:
        cursor.execute(str(query.compile(connection)))
        while batch := cursor.fetchmany(STREAM_BATCH):
            yield from batch


def read_nas(connection: Connection, ids: set[int] | None = None) -> list[NasClient]:
    query = select(
        nas.c.id,
        nas.c.name,
        nas.c.ip_address,
        nas.c.secret,
        nas.c.require_message_authenticator,
        nas.c.message_authenticator_seen,
    )
    return [
        NasClient(
            row.id,
            row.name,
            row.ip_address,
            row.secret.encode("utf-8"),
            row.require_message_authenticator,
            bool(row.message_authenticator_seen),
        )
        for row in _by_id_chunks(connection, query, nas.c.id, ids)
    ]


def read_operators(connection: Connection) -> dict[int, OperatorRow]:
    query = select(operators.c.id, operators.c.parent_id, operators.c.status)
    return {
        row.id: OperatorRow(row.id, row.parent_id, row.status == "blocked")
        for row in connection.execute(query)
    }


def read_packages(connection: Connection) -> dict[int, tuple[str, PackageState]]:
    """Sold packages by id -> (customer type, the master package's terms)."""
    query = select(packages.c.id.label("package_id"), master_packages).join(
        master_packages, packages.c.master_package_id == master_packages.c.id
    )
    result = {}
    for row in connection.execute(query).mappings():
        try:
            result[row["package_id"]] = (row["customer_type"], package_state(row))
        except ValueError as error:
            log.error(
                "master package %r has an invalid rate limit, its customers are refused: %s",
                row["name"],
                error,
            )
    return result


def package_state(row) -> PackageState:
    """Build the policy's view of a master package row; ValueError if its rates are invalid."""
    rate, fup = package_rate_limits(row)
    return PackageState(
        id=row["id"],
        billing_type=row["billing_type"],
        rate_limit=rate,
        quota_bytes=row["quota_bytes"],
        fup_rate_limit=fup,
        ip_pool=row["ip_pool"],
        profile=row["profile"],
        address_list=row["address_list"],
        simultaneous_use=row["simultaneous_use"],
    )


def read_snapshot(connection: Connection, today: date) -> Snapshot:
    """Everything, for the start, usage included: an over-quota subscriber
    gets the fair-usage rate from the first request on (issue 11)."""
    return Snapshot(
        all_customers=read_all_customers(connection),
        nas=read_nas(connection),
        packages=read_packages(connection),
        operators=read_operators(connection),
        open_sessions=count_open_sessions(connection),
        used_bytes=read_used_bytes(connection, today),
        full=True,
    )


def read_changed(connection: Connection, changes: list[tuple[int, str, int]]) -> Snapshot:
    """The rows named by change-log entries."""
    by_entity: dict[str, set[int]] = {}
    for _, entity, entity_id in changes:
        by_entity.setdefault(entity, set()).add(entity_id)
    snapshot = Snapshot()
    if "customer" in by_entity:
        snapshot.customer_ids = by_entity["customer"]
        snapshot.customers = read_customers(connection, snapshot.customer_ids)
    if "nas" in by_entity:
        snapshot.nas_ids = by_entity["nas"]
        snapshot.nas = read_nas(connection, snapshot.nas_ids)
    if "operator" in by_entity:
        snapshot.operators = read_operators(connection)
    if by_entity.keys() & {"package", "master_package", "package_price"}:
        snapshot.packages = read_packages(connection)
    if "sessions" in by_entity:
        snapshot.open_session_ids = by_entity["sessions"]
        snapshot.open_sessions = count_open_sessions(connection, snapshot.open_session_ids)
    return snapshot


def read_change_ids(
    connection: Connection, after_id: int, limit: int = CHANGE_BATCH
) -> list[tuple[int, str, int]]:
    """The oldest change-log rows above ``after_id``, at most ``limit`` (a
    billing run may change every customer at once; the rest come next poll)."""
    query = (
        select(change_log.c.id, change_log.c.entity, change_log.c.entity_id)
        .where(change_log.c.id > after_id)
        .order_by(change_log.c.id)
        .limit(limit)
    )
    return [tuple(row) for row in connection.execute(query)]


def last_change_id(connection: Connection) -> int:
    return connection.execute(select(func.coalesce(func.max(change_log.c.id), 0))).scalar_one()


_OPEN_SESSIONS = (
    select(sessions.c.customer_id, func.count())
    .where(sessions.c.stopped_at.is_(None), sessions.c.customer_id.is_not(None))
    .group_by(sessions.c.customer_id)
)


def count_open_sessions(connection: Connection, customer_ids: set[int] | None = None) -> dict[int, int]:
    """Open sessions per customer with any: of ``customer_ids``, or of everyone.

    Everyone's is read through the driver's own cursor: a row per online
    customer through SQLAlchemy cost three times the CPU (45 ms at 75,000
    online, beside the reactor).
    """
    if customer_ids is not None and connection.dialect.name == "postgresql":
        # One array parameter, one statement for every batch, and one index probe per
        # customer: as a filter on all open sessions the planner may scan them all
        # (14 ms at 100,000 open, with statistics older than a storm of Starts).
        rows = connection.exec_driver_sql(
            "SELECT wanted.customer, (SELECT count(*) FROM sessions "
            "WHERE sessions.customer_id = wanted.customer AND sessions.stopped_at IS NULL) "
            "FROM unnest(%s::bigint[]) AS wanted(customer)",
            (sorted(customer_ids),),
        )
        return {customer_id: count for customer_id, count in rows if count}
    if customer_ids is not None:
        return dict(
            tuple(row)
            for row in _by_id_chunks(connection, _OPEN_SESSIONS, sessions.c.customer_id, customer_ids)
        )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(_OPEN_SESSIONS.compile(connection)))
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def read_used_bytes(
    connection: Connection, today: date, customer_ids: set[int] | None = None
) -> dict[int, int]:
    """Bytes used in the current period by customers whose package has a quota (of ``customer_ids``, or all).

    The current period of a customer is its latest ``customer_usage`` row
    that has started by ``today``.
    """
    latest = (
        select(customer_usage.c.customer_id, func.max(customer_usage.c.period_start).label("period_start"))
        .where(customer_usage.c.period_start <= today)
        .group_by(customer_usage.c.customer_id)
    )
    if customer_ids is not None:
        latest = latest.where(customer_usage.c.customer_id.in_(sorted(customer_ids)))
    latest = latest.subquery()
    query = (
        select(customer_usage.c.customer_id, customer_usage.c.upload_bytes + customer_usage.c.download_bytes)
        .join(
            latest,
            and_(
                latest.c.customer_id == customer_usage.c.customer_id,
                latest.c.period_start == customer_usage.c.period_start,
            ),
        )
        .join(customers, customers.c.id == customer_usage.c.customer_id)
        .join(packages, packages.c.id == customers.c.package_id)
        .join(master_packages, master_packages.c.id == packages.c.master_package_id)
        .where(master_packages.c.quota_bytes.is_not(None))
    )
    return {customer_id: used for customer_id, used in connection.execute(query)}


def mark_message_authenticator_seen(connection: Connection, nas_id: int) -> None:
    """RFC 3579 "auto": from now on this NAS must sign its requests; stored
    so the rule survives a restart, announced so other instances learn it."""
    changed = connection.execute(
        update(nas)
        .where(
            nas.c.id == nas_id,
            nas.c.require_message_authenticator == "auto",
            nas.c.message_authenticator_seen.is_(False),
        )
        .values(message_authenticator_seen=True)
    ).rowcount
    if changed:
        record_change(connection, "nas", nas_id)


POSTAUTH_COLUMNS = ("username", "reply", "reason", "nasipaddress", "callingstationid", "authdate")
_postauth_values = itemgetter(*POSTAUTH_COLUMNS)  # one attempt's COPY row, without a Python loop per row


def insert_postauth(connection: Connection, rows: list[dict]) -> None:
    """Write a batch of attempts; on PostgreSQL with COPY, which costs a
    fraction of the CPU of an INSERT (this runs beside the reactor, in the
    same interpreter)."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(radpostauth), rows)
        return
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY radpostauth ({', '.join(POSTAUTH_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(_postauth_values(row))
