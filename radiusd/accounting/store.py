"""Writing accounting records to the database: sessions, radacct, usage, quota jobs (the rule is the policy's).

Everything here runs inside one transaction that the caller opens (the
writer's group commit), and is idempotent: applying the same records again
leaves the same rows, so a replay after a crash cannot double anything.

On PostgreSQL a batch is copied into a temporary table and merged there by
set-based statements (merge_session's rule written in SQL), so the writer
spends no Python per record beyond one row of COPY. Several radiusd
instances may share one database: the session rows a batch touches are
claimed (the missing ones inserted with ON CONFLICT DO NOTHING, then all
locked with SELECT ... FOR UPDATE, both in acct_unique_id order so instances
do not deadlock) before their new state is computed; two instances never
both add the same bytes to a customer's usage. On SQLite merge_session
applies each record in Python, and the writer's BEGIN IMMEDIATE serialises
whole transactions.
"""

import dataclasses
import functools
import operator
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, any_, bindparam, func, select, text, update
from sqlalchemy.dialects import sqlite

from radiusd.accounting.record import (
    INTERIM,
    MAX_OCTETS,
    NAS_STATUSES,
    START,
    STOP,
    AccountingRecord,
    SessionState,
    merge_session,
)
from radiusd.auth.policy import OpenSession, over_quota_action, takeover_reason
from radiusd.view.queries import count_open_sessions
from schema.changes import record_change, record_change_ids
from schema.engine import as_utc
from schema.identity import canonical_mac, canonical_username
from schema.outbox import enqueue
from schema.ratelimit import RATE_COLUMNS, package_rate_limits
from schema.sessions import LOST_SERVICE, NAS_REBOOT, close_sessions, last_seen
from schema.tables import customer_usage, customers, master_packages, packages, radacct, sessions
from schema.usage import usage_period_start

MISSED_INTERIMS = 3


@dataclass
class BatchOutcome:
    """What one batch changed, for metrics and logs."""

    sessions: int = 0
    closed: int = 0
    quota_jobs: list[tuple[int, date]] = field(default_factory=list)
    # Customers whose session opened or closed (each also a "sessions" change for radiusd's views),
    # and their open sessions once the batch is written.
    opened: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    open_sessions: dict[int, int] = field(default_factory=dict)
    change_ids: list[int] = field(default_factory=list)  # of those "sessions" changes


def apply_records(
    connection: Connection, records: Sequence[AccountingRecord], zone: ZoneInfo
) -> BatchOutcome:
    """Apply records in arrival order; Accounting-On/Off closes what came before it."""
    outcome = BatchOutcome()
    segment: list[AccountingRecord] = []
    for record in records:
        if record.status in NAS_STATUSES:
            _apply_session_records(connection, segment, zone, outcome)
            segment = []
            cause = record.terminate_cause or NAS_REBOOT
            close_nas_sessions(connection, record.nas_ip_address, record.event_time, cause, outcome)
        else:
            segment.append(record)
    _apply_session_records(connection, segment, zone, outcome)
    outcome.open_sessions = open_session_counts(connection, outcome.opened + outcome.stopped)
    return outcome


def open_session_counts(connection: Connection, customer_ids: Iterable[int]) -> dict[int, int]:
    """The open sessions of these customers, 0 included: what this radiusd's view
    counts at once, before its follower hears of the change."""
    wanted = set(customer_ids)
    counts = count_open_sessions(connection, wanted) if wanted else {}
    return {customer: counts.get(customer, 0) for customer in wanted}


# --- sessions and radacct ------------------------------------------------------

# radacct columns copied from the records; a value the NAS left out keeps the stored one.
_RADACCT_FROM_RECORD = {
    "acctsessionid": "acct_session_id",
    "username": "username",
    "nasipaddress": "nas_ip_address",
    "nasportid": "nas_port_id",
    "nasporttype": "nas_port_type",
    "acctauthentic": "acct_authentic",
    "calledstationid": "called_station_id",
    "callingstationid": "calling_station_id",
    "servicetype": "service_type",
    "framedprotocol": "framed_protocol",
    "framedipv6address": "framed_ipv6_address",
    "framedipv6prefix": "framed_ipv6_prefix",
    "framedinterfaceid": "framed_interface_id",
    "delegatedipv6prefix": "delegated_ipv6_prefix",
    "class": "class_",
}

# Where each SessionState field is stored: (sessions column, radacct column).
_STATE_COLUMNS = {
    "started_at": ("started_at", "acctstarttime"),
    "updated_at": ("updated_at", "acctupdatetime"),
    "stopped_at": ("stopped_at", "acctstoptime"),
    "session_time": ("session_time", "acctsessiontime"),
    "interval": ("interim_interval", "acctinterval"),
    "upload_bytes": ("upload_bytes", "acctinputoctets"),
    "download_bytes": ("download_bytes", "acctoutputoctets"),
    "terminate_cause": ("terminate_cause", "acctterminatecause"),
    "framed_ip_address": ("framed_ip_address", "framedipaddress"),
    "connect_info_start": ("connect_info_start", "connectinfo_start"),
    "connect_info_stop": ("connect_info_stop", "connectinfo_stop"),
}


def _state_of(row) -> SessionState:
    return SessionState(
        started_at=as_utc(row.started_at),
        updated_at=as_utc(row.updated_at),
        stopped_at=as_utc(row.stopped_at),
        session_time=row.session_time,
        interval=row.interim_interval,
        upload_bytes=row.upload_bytes,
        download_bytes=row.download_bytes,
        terminate_cause=row.terminate_cause,
        framed_ip_address=row.framed_ip_address,
        connect_info_start=row.connect_info_start,
        connect_info_stop=row.connect_info_stop,
    )


@dataclass
class _Customer:
    id: int
    expires_at: datetime | None
    period_days: int
    quota_bytes: int | None
    fup_rate_limit: str | None


def _customers_by_username(connection: Connection, canonical_names: Iterable[str]) -> dict[str, _Customer]:
    """Customers, with their package's quota and fair-usage rate, by normalised user name (FIELD-NOTES 6)."""
    wanted = sorted(canonical_names)
    if not wanted:
        return {}
    # PostgreSQL: one array parameter, so the statement is the same for every batch
    # (a list of N parameters is a new statement for every N, parsed anew each time).
    names = (
        customers.c.username == any_(bindparam("names"))
        if connection.dialect.name == "postgresql"
        else customers.c.username.in_(bindparam("names", expanding=True))
    )
    query = (
        select(
            customers.c.id,
            customers.c.username,
            customers.c.expires_at,
            master_packages.c.id.label("master_package_id"),
            master_packages.c.period_days,
            master_packages.c.quota_bytes,
            *[master_packages.c[column] for column in RATE_COLUMNS],
        )
        .select_from(
            customers.join(packages, customers.c.package_id == packages.c.id).join(
                master_packages, packages.c.master_package_id == master_packages.c.id
            )
        )
        .where(names)
    )
    fair_usage: dict[int, str | None] = {}  # by master package: many customers share one
    found = {}
    for row in connection.execute(query, {"names": wanted}).mappings():
        package = row["master_package_id"]
        if package not in fair_usage:
            try:
                fair_usage[package] = package_rate_limits(row)[1]
            except ValueError:  # the view refuses its customers and says why (view/queries.py)
                fair_usage[package] = None
        found[row["username"]] = _Customer(
            row["id"], as_utc(row["expires_at"]), row["period_days"], row["quota_bytes"], fair_usage[package]
        )
    return found


_NEW_SESSION_COLUMNS = ("acct_unique_id", "acct_session_id", "nas_ip_address", "username")


def _claim_sessions(connection: Connection, firsts: list[AccountingRecord]) -> dict:
    """The session rows of these records (SQLite), created where missing; the writer's
    BEGIN IMMEDIATE serialises writers, so nothing races us to a new session."""
    values = [[getattr(record, column) for record in firsts] for column in _NEW_SESSION_COLUMNS]
    connection.execute(
        sqlite.insert(sessions).on_conflict_do_nothing(index_elements=["acct_unique_id"]),
        [dict(zip(_NEW_SESSION_COLUMNS, row)) for row in zip(*values)],
    )
    rows = connection.execute(select(sessions).where(sessions.c.acct_unique_id.in_(values[0])))
    return {row.acct_unique_id: row for row in rows}


def _apply_session_records(
    connection: Connection, records: list[AccountingRecord], zone: ZoneInfo, outcome: BatchOutcome
) -> None:
    if not records:
        return
    if connection.dialect.name == "postgresql":
        _apply_session_records_in_postgresql(connection, records, zone, outcome)
        return
    first: dict[str, AccountingRecord] = {}
    for record in records:
        first.setdefault(record.acct_unique_id, record)
    unique_ids = sorted(first)
    rows = _claim_sessions(connection, [first[uid] for uid in unique_ids])
    canonical = {name: canonical_username(name) for name in {record.username for record in records} if name}
    known = _customers_by_username(connection, set(canonical.values()))

    states = {uid: _state_of(rows[uid]) for uid in unique_ids}
    customer_ids = {uid: rows[uid].customer_id for uid in unique_ids}
    identity: dict[str, dict] = defaultdict(dict)  # the last value each radacct column got in this batch
    usage: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0, 0])
    last_record: dict[str, AccountingRecord] = {}
    for record in records:
        uid = record.acct_unique_id
        customer = known.get(canonical.get(record.username))
        if customer_ids[uid] is None and customer is not None:
            customer_ids[uid] = customer.id
        before = states[uid]
        states[uid] = after = merge_session(before, record)
        last_record[uid] = record
        values = identity[uid]
        for column, attribute in _RADACCT_FROM_RECORD.items():
            value = getattr(record, attribute)
            if value is not None and value != "":
                values[column] = value
        if customer is not None and customer.id == customer_ids[uid]:
            period = usage_period_start(customer.expires_at, customer.period_days, zone, record.event_time)
            totals = usage[(customer.id, period)]
            totals[0] += after.upload_bytes - before.upload_bytes
            totals[1] += after.download_bytes - before.download_bytes

    session_columns = {
        "customer_id": [customer_ids[uid] for uid in unique_ids],
        "nas_id": [rows[uid].nas_id or last_record[uid].nas_id for uid in unique_ids],
        "calling_station_id": [
            _station(identity[uid].get("callingstationid")) or rows[uid].calling_station_id
            for uid in unique_ids
        ],
        "nas_port_id": [identity[uid].get("nasportid") or rows[uid].nas_port_id for uid in unique_ids],
    }
    for name, (column, _) in _STATE_COLUMNS.items():
        session_columns[column] = [getattr(states[uid], name) for uid in unique_ids]
    identity_columns = {
        column: [identity[uid].get(column) for uid in unique_ids] for column in _RADACCT_FROM_RECORD
    }
    _write_sessions(connection, unique_ids, session_columns, identity_columns)
    outcome.sessions += len(unique_ids)
    counted = []  # customers whose number of open sessions changed
    for uid in unique_ids:
        was_open = rows[uid].started_at is not None and rows[uid].stopped_at is None
        if customer_ids[uid] is not None and was_open != states[uid].is_open:
            (outcome.opened if states[uid].is_open else outcome.stopped).append(customer_ids[uid])
            counted.append(customer_ids[uid])
    outcome.change_ids += record_change_ids(connection, "sessions", counted)
    usage = {key: totals for key, totals in usage.items() if any(totals)}
    if usage:
        _add_usage(connection, usage)
        by_customer = {c.id: c for c in known.values()}
        sessions_of = {customer_ids[uid]: (rows[uid], last_record[uid]) for uid in unique_ids}
        outcome.quota_jobs += _enforce_quotas(connection, usage, by_customer, sessions_of)


def _station(calling_station_id: str | None) -> str | None:
    """sessions holds MACs in one spelling, so a login can match its stale session (FIELD-NOTES 6, 9)."""
    if calling_station_id is None:
        return None
    return canonical_mac(calling_station_id) or calling_station_id[:50]


# A value the NAS left out keeps the stored one; the state is the merged state.
_RADACCT_CONFLICT = "ON CONFLICT (acctuniqueid) DO UPDATE SET " + ", ".join(
    [f'"{column}" = coalesce(excluded."{column}", radacct."{column}")' for column in _RADACCT_FROM_RECORD]
    + [f'"{column}" = excluded."{column}"' for _, column in _STATE_COLUMNS.values()]
)


def _write_sessions(
    connection: Connection,
    unique_ids: list[str],
    session_columns: dict[str, list],
    identity_columns: dict[str, list],
) -> None:
    """Write the new state of claimed session rows, and their radacct rows (SQLite)."""
    names = list(session_columns)
    radacct_state = {
        radacct_column: session_columns[column] for column, radacct_column in _STATE_COLUMNS.values()
    }
    statement = text(
        f"UPDATE sessions SET {', '.join(f'{name} = :{name}' for name in names)} "
        "WHERE acct_unique_id = :acct_unique_id"
    )
    _execute_many(connection, statement, sessions, {"acct_unique_id": unique_ids, **session_columns})
    _insert_rows(
        connection,
        radacct,
        {"acctuniqueid": unique_ids, **identity_columns, **radacct_state},
        _RADACCT_CONFLICT,
    )


def _insert_rows(connection: Connection, table, columns: dict[str, list], conflict: str) -> None:
    """INSERT rows given column by column (SQLite)."""
    names = ", ".join(f'"{name}"' for name in columns)
    statement = text(
        f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(f':{name}' for name in columns)}) {conflict}"
    )
    _execute_many(connection, statement, table, columns)


def _execute_many(connection: Connection, statement, table, columns: dict[str, list]) -> None:
    """SQLite: one execution per row, the values converted by their columns' types."""
    statement = statement.bindparams(*(bindparam(name, type_=table.c[name].type) for name in columns))
    connection.execute(statement, [dict(zip(columns, row)) for row in zip(*columns.values())])


# --- PostgreSQL: the batch merged by set-based statements ------------------------------------
#
# The records are copied (binary COPY) into a temporary table and merged there by one statement
# per round, so the writer's Python work per record is one row of COPY, not a merge of Python
# objects (issue 17). Round k holds the k-th record of each session in arrival order, and rounds
# are merged in turn: the records of one session apply one after another, each as merge_session
# applies it to the state the one before left.

_STAGED_FIELDS = tuple(field.name for field in dataclasses.fields(AccountingRecord))
_staged_values = operator.attrgetter(*_STAGED_FIELDS)
_STAGED_NOT_TEXT = {
    "event_time": "timestamptz",
    "nas_id": "int8",
    "session_time": "int8",
    "upload_bytes": "int8",
    "download_bytes": "int8",
}
# (name, type) of the staging table's columns: the round, the canonical user name and MAC, the record.
_STAGING = [("round", "int4"), ("customer_name", "text"), ("station", "text")] + [
    (name, _STAGED_NOT_TEXT.get(name, "text")) for name in _STAGED_FIELDS
]
_CREATE_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS accounting_batch "
    f"({', '.join(f'{name} {kind}' for name, kind in _STAGING)}) ON COMMIT DELETE ROWS; "
    "DELETE FROM accounting_batch"  # an earlier segment of this transaction (Accounting-On/Off between)
)
_COPY_STAGING = (
    f"COPY accounting_batch ({', '.join(name for name, _ in _STAGING)}) FROM STDIN (FORMAT BINARY)"
)

# Sessions first heard of in this batch, created in acct_unique_id order (instances do not deadlock).
_CREATE_SESSIONS = (
    f"INSERT INTO sessions ({', '.join(_NEW_SESSION_COLUMNS)}) "
    f"SELECT {', '.join(_NEW_SESSION_COLUMNS)} FROM accounting_batch WHERE round = 0 "
    "ORDER BY acct_unique_id ON CONFLICT (acct_unique_id) DO NOTHING"
)


def _merged_state() -> str:
    """merge_session in SQL, over ``step``: a record's columns beside its session's row ``o``."""
    is_open = "(o).stopped_at IS NULL"
    closes = f"(status = '{STOP}' AND {is_open})"
    previous = "coalesce((o).updated_at, (o).started_at)"
    return f"""
        greatest((o).upload_bytes, coalesce(upload_bytes, 0)) AS new_upload_bytes,
        greatest((o).download_bytes, coalesce(download_bytes, 0)) AS new_download_bytes,
        CASE WHEN session_time IS NULL THEN (o).session_time
             ELSE greatest(coalesce((o).session_time, 0), session_time) END AS merged_session_time,
        coalesce(nullif(framed_ip_address, ''), (o).framed_ip_address) AS new_framed_ip_address,
        CASE WHEN status = '{START}' THEN event_time
             ELSE coalesce((o).started_at, event_time - make_interval(secs => coalesce(session_time, 0)))
             END AS new_started_at,
        CASE WHEN status = '{START}' OR {is_open} THEN greatest((o).updated_at, event_time)
             ELSE (o).updated_at END AS new_updated_at,
        CASE WHEN {closes} THEN event_time ELSE (o).stopped_at END AS new_stopped_at,
        CASE WHEN status = '{INTERIM}' AND {is_open} AND event_time > {previous}
             THEN trunc(extract(epoch FROM event_time - {previous}))::bigint
             ELSE (o).interim_interval END AS new_interval,
        CASE WHEN {closes} THEN terminate_cause ELSE (o).terminate_cause END AS new_terminate_cause,
        CASE WHEN status = '{START}' THEN coalesce(nullif(connect_info, ''), (o).connect_info_start)
             ELSE (o).connect_info_start END AS new_connect_info_start,
        CASE WHEN {closes} THEN connect_info ELSE (o).connect_info_stop END AS new_connect_info_stop,
        {closes} AS closes"""


# The state columns by sessions column, as the merge names them (new_<column>).
_NEW_STATE = {
    column: "new_session_time" if column == "session_time" else f"new_{name}"
    for name, (column, _) in _STATE_COLUMNS.items()
}


@functools.cache
def _merge_statement(position: int, zone: str) -> str:
    """Round ``position``: lock its sessions (in acct_unique_id order), merge, write sessions, radacct and the
    usage per customer and period; return the sessions whose openness changed and the usage of
    customers with a quota.

    The round and the time zone are written into the text, so the statement has no parameters:
    PostgreSQL then plans it once per connection (psycopg prepares it after five runs), where the
    writer's plan_cache_mode = force_custom_plan plans a statement with parameters at every run
    (0.85 ms a batch)."""
    zone_literal = "'" + zone.replace("'", "''") + "'"
    session_set = ", ".join(
        [
            "customer_id = f.new_customer_id",
            "nas_id = coalesce(s.nas_id, f.nas_id)",
            "calling_station_id = coalesce(f.station, s.calling_station_id)",
            "nas_port_id = coalesce(nullif(f.nas_port_id, ''), s.nas_port_id)",
        ]
        + [
            f"{column} = f.{_NEW_STATE[column]}"
            for column in (column for column, _ in _STATE_COLUMNS.values())
        ]
    )
    identity = list(_RADACCT_FROM_RECORD)
    radacct_columns = ["acctuniqueid", *identity, *(column for _, column in _STATE_COLUMNS.values())]
    radacct_values = (
        ["acct_unique_id"]
        + [f"nullif({attribute}, '')" for attribute in _RADACCT_FROM_RECORD.values()]
        + [_NEW_STATE[column] for column, _ in _STATE_COLUMNS.values()]
    )
    upload = "new_upload_bytes - (o).upload_bytes"
    download = "new_download_bytes - (o).download_bytes"
    return f"""
WITH old AS MATERIALIZED (
    SELECT s AS o, b.* FROM accounting_batch b JOIN sessions s ON s.acct_unique_id = b.acct_unique_id
    WHERE b.round = {position:d} ORDER BY s.acct_unique_id FOR UPDATE OF s
),
step AS (
    SELECT old.*, c.id AS customer, c.expires_at, m.period_days, m.quota_bytes
    FROM old LEFT JOIN (
        customers c JOIN packages p ON p.id = c.package_id JOIN master_packages m ON m.id = p.master_package_id
    ) ON c.username = old.customer_name
),
merged AS (
    SELECT step.*, {_merged_state()},
        coalesce((o).customer_id, customer) AS new_customer_id,
        (o).started_at IS NOT NULL AND (o).stopped_at IS NULL AS was_open,
        CASE WHEN expires_at IS NULL THEN date_trunc('month', event_time AT TIME ZONE {zone_literal})::date
             ELSE ((expires_at - make_interval(hours => 24 * period_days)) AT TIME ZONE {zone_literal})::date
             END AS period
    FROM step
),
final AS (
    SELECT merged.*,
        CASE WHEN merged_session_time IS NULL AND closes
             THEN trunc(extract(epoch FROM event_time - new_started_at))::bigint
             ELSE merged_session_time END AS new_session_time,
        customer IS NOT NULL AND customer = new_customer_id AS counted
    FROM merged
),
written AS (
    UPDATE sessions s SET {session_set} FROM final f WHERE s.id = (f.o).id
),
accounted AS (
    INSERT INTO radacct ({", ".join(f'"{column}"' for column in radacct_columns)})
    SELECT {", ".join(radacct_values)} FROM final {_RADACCT_CONFLICT}
),
used AS (
    INSERT INTO customer_usage (customer_id, period_start, upload_bytes, download_bytes)
    SELECT customer, period, least(sum({upload}), {MAX_OCTETS}), least(sum({download}), {MAX_OCTETS})
    FROM final WHERE counted GROUP BY customer, period HAVING sum({upload}) > 0 OR sum({download}) > 0
    ORDER BY customer, period
    ON CONFLICT (customer_id, period_start) DO UPDATE SET
        upload_bytes = least(customer_usage.upload_bytes + excluded.upload_bytes, {MAX_OCTETS}),
        download_bytes = least(customer_usage.download_bytes + excluded.download_bytes, {MAX_OCTETS})
)
SELECT acct_unique_id, new_customer_id, was_open, new_stopped_at IS NULL AS is_open,
    counted AND quota_bytes > 0 AND ({upload} > 0 OR {download} > 0) AS over_quota_candidate, period,
    customer_name, (o).nas_id AS session_nas_id, (o).framed_ip_address AS session_framed_ip_address
FROM final
WHERE was_open <> (new_stopped_at IS NULL) OR (counted AND quota_bytes > 0 AND ({upload} > 0 OR {download} > 0))
"""


def _apply_session_records_in_postgresql(
    connection: Connection, records: list[AccountingRecord], zone: ZoneInfo, outcome: BatchOutcome
) -> None:
    rounds: dict[str, int] = {}
    canonical: dict[str, str | None] = {}
    rows = []
    for record in records:
        uid = record.acct_unique_id
        position = rounds[uid] = rounds.get(uid, -1) + 1
        name = record.username
        if name not in canonical:
            canonical[name] = canonical_username(name) if name else None
        rows.append(
            (position, canonical[name], _station(record.calling_station_id) or None, *_staged_values(record))
        )
    driver = connection.connection.driver_connection
    with driver.cursor() as cursor:
        cursor.execute(_CREATE_STAGING)
        with cursor.copy(_COPY_STAGING) as copy:
            copy.set_types([kind for _, kind in _STAGING])
            for row in rows:
                copy.write_row(row)
    connection.exec_driver_sql(_CREATE_SESSIONS)
    outcome.sessions += len(rounds)
    # Per session, its openness before the batch and after it, and its customer.
    first_open: dict[str, bool] = {}
    last_open: dict[str, tuple[bool, int | None]] = {}
    quota: dict[tuple[int, date], tuple] = {}
    for position in range(max(rounds.values()) + 1):
        for row in connection.exec_driver_sql(_merge_statement(position, zone.key)):
            first_open.setdefault(row.acct_unique_id, row.was_open)
            last_open[row.acct_unique_id] = (row.is_open, row.new_customer_id)
            if row.over_quota_candidate:
                quota[(row.new_customer_id, row.period)] = row
    counted = []  # customers whose number of open sessions changed
    for uid, (is_open, customer_id) in sorted(last_open.items()):
        if customer_id is not None and first_open[uid] != is_open:
            (outcome.opened if is_open else outcome.stopped).append(customer_id)
            counted.append(customer_id)
    outcome.change_ids += record_change_ids(connection, "sessions", counted)
    if quota:
        outcome.quota_jobs += _enforce_quotas_of_rows(connection, records, quota)


def _enforce_quotas_of_rows(connection: Connection, records: list[AccountingRecord], quota: dict) -> list:
    """_enforce_quotas for the customers the merge found using a quota up."""
    last_record = {record.acct_unique_id: record for record in records}
    known = _customers_by_username(connection, {row.customer_name for row in quota.values()})
    by_customer = {customer.id: customer for customer in known.values()}
    sessions_of = {
        row.new_customer_id: (
            _SessionBefore(row.session_nas_id, row.session_framed_ip_address),
            last_record[row.acct_unique_id],
        )
        for row in quota.values()
    }
    return _enforce_quotas(connection, quota, by_customer, sessions_of)


@dataclass
class _SessionBefore:
    """What _enforce_quotas reads of a session's row as it was before the batch."""

    nas_id: int | None
    framed_ip_address: str | None


# --- usage and quota -----------------------------------------------------------


def _add_usage(connection: Connection, usage: dict[tuple[int, date], list[int]]) -> None:
    """Add to the period's usage, saturating at MAX_OCTETS: counters are clamped to it, so
    two of them never overflow a 64-bit integer, and neither does their sum."""
    keys = sorted(usage)  # one order, so instances do not deadlock
    _insert_rows(
        connection,
        customer_usage,
        {
            "customer_id": [customer for customer, _ in keys],
            "period_start": [period for _, period in keys],
            "upload_bytes": [min(usage[key][0], MAX_OCTETS) for key in keys],
            "download_bytes": [min(usage[key][1], MAX_OCTETS) for key in keys],
        },
        "ON CONFLICT (customer_id, period_start) DO UPDATE SET "
        f"upload_bytes = min(customer_usage.upload_bytes + excluded.upload_bytes, {MAX_OCTETS}), "
        f"download_bytes = min(customer_usage.download_bytes + excluded.download_bytes, {MAX_OCTETS})",
    )


def _enforce_quotas(
    connection: Connection, usage, by_customer: dict[int, _Customer], sessions_of
) -> list[tuple[int, date]]:
    """Queue one enforcement job per customer and period that just went over quota."""
    candidates = [(customer, period) for customer, period in usage if by_customer[customer].quota_bytes]
    if not candidates:
        return []
    rows = connection.execute(
        select(customer_usage).where(
            customer_usage.c.customer_id.in_({c for c, _ in candidates}),
            customer_usage.c.quota_enforced_at.is_(None),
        )
    ).all()
    wanted = set(candidates)
    queued = []
    now = datetime.now(UTC)
    for row in rows:
        key = (row.customer_id, row.period_start)
        customer = by_customer[row.customer_id]
        used = row.upload_bytes + row.download_bytes
        action = over_quota_action(used, customer.quota_bytes, customer.fup_rate_limit)
        if key not in wanted or action is None:
            continue
        kind, rate_limit = action
        session, record = sessions_of[row.customer_id]
        payload = dict(
            username=record.username,
            acct_session_id=record.acct_session_id,
            framed_ip_address=session.framed_ip_address or record.framed_ip_address,
            nas_ip_address=record.nas_ip_address,
            used_bytes=used,
            quota_bytes=customer.quota_bytes,
            period_start=row.period_start.isoformat(),
        )
        if rate_limit:
            payload["rate_limit"] = rate_limit
        enqueue(
            connection,
            customer_id=row.customer_id,
            nas_id=session.nas_id or record.nas_id,
            action=kind,
            reason="quota",
            payload=payload,
            dedupe_key=f"quota:{row.customer_id}:{row.period_start.isoformat()}",
        )
        connection.execute(
            update(customer_usage)
            .where(
                customer_usage.c.customer_id == row.customer_id,
                customer_usage.c.period_start == row.period_start,
            )
            .values(quota_enforced_at=now)
        )
        # Over quota changes the next Access-Request's answer.
        record_change(connection, "customer", row.customer_id)
        queued.append(key)
    return queued


# --- closing sessions the NAS will never stop -------------------------------------


def _close(connection: Connection, open_rows, cause: str, stop_time_of, outcome: BatchOutcome) -> None:
    """Close the given open sessions (schema.sessions) and note it in the outcome."""
    customer_ids, change_ids = close_sessions(connection, open_rows, cause, stop_time_of)
    outcome.closed += len(open_rows)
    outcome.stopped += customer_ids
    outcome.change_ids += change_ids


def close_nas_sessions(
    connection: Connection, nas_ip_address: str, event_time: datetime, cause: str, outcome: BatchOutcome
) -> None:
    """Accounting-On/Off: the NAS (re)started, so none of its sessions is still up (RFC 2866 §5.1)."""
    open_rows = connection.execute(
        select(sessions.c.acct_unique_id, sessions.c.started_at, sessions.c.customer_id)
        .where(sessions.c.nas_ip_address == nas_ip_address, sessions.c.stopped_at.is_(None))
        .order_by(sessions.c.acct_unique_id)
        .with_for_update()
    ).all()
    open_rows = [row for row in open_rows if row.started_at is None or as_utc(row.started_at) <= event_time]
    _close(connection, open_rows, cause, lambda _row: event_time, outcome)


def close_stale_sessions(connection: Connection, now: datetime, interim_interval: int) -> BatchOutcome:
    """Close sessions silent for three interim intervals as Lost-Service, at their last sign of life (FIELD-NOTES 9)."""
    cutoff = now - timedelta(seconds=MISSED_INTERIMS * interim_interval)
    seen = func.coalesce(sessions.c.updated_at, sessions.c.started_at)
    open_rows = connection.execute(
        select(
            sessions.c.acct_unique_id, sessions.c.started_at, sessions.c.updated_at, sessions.c.customer_id
        )
        .where(sessions.c.stopped_at.is_(None), seen < cutoff)
        .order_by(sessions.c.acct_unique_id)
        .with_for_update()
    ).all()
    outcome = BatchOutcome()
    _close(connection, open_rows, LOST_SERVICE, last_seen, outcome)
    outcome.open_sessions = open_session_counts(connection, outcome.stopped)
    return outcome


# --- stale-session takeover ----------------------------------------------------------


@dataclass
class TakeoverOutcome:
    """Sessions a login took over, by reason, and the customer's open sessions after."""

    taken: dict[str, int] = field(default_factory=dict)
    open_sessions: dict[int, int] = field(default_factory=dict)
    change_ids: list[int] = field(default_factory=list)


def take_over_stale_sessions(
    connection: Connection,
    customer_id: int,
    nas_id: int,
    calling_station_id: str | None,
    now: datetime,
    interim_interval: int,
) -> TakeoverOutcome:
    """Close the customer's open sessions a new login shows to be stale (auth.policy.takeover_reason)
    as Lost-Service at their last sign of life; their last counters are already in the usage."""
    seen = func.coalesce(sessions.c.updated_at, sessions.c.started_at)
    rows = connection.execute(
        select(
            sessions.c.acct_unique_id,
            sessions.c.started_at,
            sessions.c.updated_at,
            sessions.c.customer_id,
            sessions.c.nas_id,
            sessions.c.nas_ip_address,
            sessions.c.calling_station_id,
        )
        .where(sessions.c.customer_id == customer_id, sessions.c.stopped_at.is_(None))
        .order_by(sessions.c.acct_unique_id)
        .with_for_update()
    ).all()
    heard = {}
    for address in {row.nas_ip_address for row in rows}:
        heard[address] = as_utc(
            connection.execute(select(func.max(seen)).where(sessions.c.nas_ip_address == address)).scalar()
        )
    station = _station(calling_station_id)
    outcome = TakeoverOutcome()
    stale = []
    for row in rows:
        reason = takeover_reason(
            OpenSession(row.nas_id, row.calling_station_id, heard[row.nas_ip_address]),
            nas_id,
            station,
            now,
            interim_interval,
        )
        if reason is not None:
            stale.append(row)
            outcome.taken[reason] = outcome.taken.get(reason, 0) + 1
    if stale:
        _, outcome.change_ids = close_sessions(connection, stale, LOST_SERVICE, last_seen)
        outcome.open_sessions = open_session_counts(connection, [customer_id])
    return outcome
