"""Writing accounting records to the database: sessions, radacct, usage, quota enforcement.

Everything here runs inside one transaction that the caller opens (the
writer's group commit), and is idempotent: applying the same records again
leaves the same rows, so a replay after a crash cannot double anything.

Several radiusd instances may share one PostgreSQL database, so the session
rows a batch touches are created if missing (INSERT ... ON CONFLICT DO
NOTHING) and then locked (SELECT ... FOR UPDATE) before their new state is
computed; two instances never both add the same bytes to a customer's usage.
On SQLite the writer's BEGIN IMMEDIATE serialises whole transactions instead.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, String, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from radiusd.accounting import NAS_STATUSES, START, AccountingRecord, SessionState, merge_session
from radiusd.ratelimit import RateLimit
from schema.changes import record_change
from schema.engine import as_utc
from schema.identity import canonical_mac, canonical_username
from schema.outbox import enqueue
from schema.tables import customer_usage, customers, master_packages, nas, packages, radacct, sessions
from schema.usage import usage_period_start

NAS_REBOOT = "NAS-Reboot"
LOST_SERVICE = "Lost-Service"
MISSED_INTERIMS = 3


@dataclass
class BatchOutcome:
    """What one batch changed, for metrics and logs."""

    sessions: int = 0
    closed: int = 0
    quota_jobs: list[tuple[int, date]] = field(default_factory=list)
    # Customers whose session opened or closed, for the view's session counts.
    opened: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)


def _insert(connection: Connection, table):
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def apply_records(connection: Connection, records: Sequence[AccountingRecord], zone: ZoneInfo) -> BatchOutcome:
    """Apply records in arrival order; Accounting-On/Off closes what came before it."""
    outcome = BatchOutcome()
    if connection.dialect.name == "postgresql":
        # Batches look rows up by lists of ids of varying length; a cached generic
        # plan cannot hash such a list and scans linearly, so plan each with its values.
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    segment: list[AccountingRecord] = []
    for record in records:
        if record.status in NAS_STATUSES:
            _apply_session_records(connection, segment, zone, outcome)
            segment = []
            cause = record.terminate_cause or NAS_REBOOT
            closed = close_nas_sessions(connection, record.nas_ip_address, record.event_time, cause)
            outcome.closed += len(closed)
            outcome.stopped += [customer for customer in closed if customer is not None]
        else:
            segment.append(record)
    _apply_session_records(connection, segment, zone, outcome)
    return outcome


# --- sessions and radacct ------------------------------------------------------

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


def _state_of(session_row, radacct_row) -> SessionState:
    extra = radacct_row or {}
    return SessionState(
        started_at=as_utc(session_row.started_at),
        updated_at=as_utc(session_row.updated_at),
        stopped_at=as_utc(session_row.stopped_at),
        session_time=extra.get("acctsessiontime"),
        interval=extra.get("acctinterval"),
        upload_bytes=session_row.upload_bytes,
        download_bytes=session_row.download_bytes,
        terminate_cause=session_row.terminate_cause,
        framed_ip_address=session_row.framed_ip_address,
        connect_info_start=extra.get("connectinfo_start"),
        connect_info_stop=extra.get("connectinfo_stop"),
    )


@dataclass
class _Customer:
    id: int
    expires_at: datetime | None
    period_days: int
    quota_bytes: int | None
    fup_rx: int | None
    fup_tx: int | None


def _customers_by_username(connection: Connection, usernames: Iterable[str]) -> dict[str, _Customer]:
    """Customers (with their package's quota) keyed by normalised user name (FIELD-NOTES 6)."""
    wanted = sorted({canonical_username(name) for name in usernames if name})
    if not wanted:
        return {}
    query = (
        select(customers.c.id, customers.c.username, customers.c.expires_at, master_packages.c.period_days,
               master_packages.c.quota_bytes, master_packages.c.fup_rx, master_packages.c.fup_tx)
        .select_from(customers.join(packages, customers.c.package_id == packages.c.id)
                     .join(master_packages, packages.c.master_package_id == master_packages.c.id))
        .where(customers.c.username.in_(wanted))
    )
    return {row.username: _Customer(row.id, as_utc(row.expires_at), row.period_days, row.quota_bytes, row.fup_rx,
                                    row.fup_tx) for row in connection.execute(query)}


def _lock_sessions(connection: Connection, unique_ids: list[str]) -> list:
    """Lock the session rows (in one order, so instances do not deadlock) and read their radacct rows along."""
    radacct_columns = [column.label(f"radacct_{column.name}") for column in radacct.c]
    return connection.execute(
        select(sessions, *radacct_columns)
        .select_from(sessions.outerjoin(radacct, radacct.c.acctuniqueid == sessions.c.acct_unique_id))
        .where(sessions.c.acct_unique_id.in_(unique_ids)).order_by(sessions.c.acct_unique_id)
        .with_for_update(of=sessions)
    ).all()


def _apply_session_records(connection: Connection, records: list[AccountingRecord], zone: ZoneInfo,
                           outcome: BatchOutcome) -> None:
    if not records:
        return
    first: dict[str, AccountingRecord] = {}
    for record in records:
        first.setdefault(record.acct_unique_id, record)
    unique_ids = sorted(first)

    def create(ids: list[str]) -> None:
        """Rows for new sessions (another instance may race us to them: nothing is overwritten)."""
        rows = [dict(acct_unique_id=uid, acct_session_id=first[uid].acct_session_id,
                     nas_ip_address=first[uid].nas_ip_address, username=first[uid].username) for uid in ids]
        if connection.dialect.name == "postgresql":
            _insert_unnest(connection, sessions, rows, "ON CONFLICT (acct_unique_id) DO NOTHING")
            return
        connection.execute(_insert(connection, sessions).on_conflict_do_nothing(index_elements=["acct_unique_id"]), rows)

    # A Start is almost always a new session and an Interim-Update or Stop an
    # existing one: create the former's rows up front, then lock everything.
    starts = [uid for uid in unique_ids if first[uid].status == START]
    if starts:
        create(starts)
    locked = _lock_sessions(connection, unique_ids)
    missing = sorted(set(unique_ids) - {row.acct_unique_id for row in locked})
    if missing:  # an Interim-Update or Stop whose Start was lost
        create(missing)
        locked += _lock_sessions(connection, missing)
    radacct_rows = {row.acct_unique_id: {column.name: row._mapping[f"radacct_{column.name}"] for column in radacct.c}
                    for row in locked if row._mapping["radacct_radacctid"] is not None}
    known = _customers_by_username(connection, (record.username for record in records))

    rows = {row.acct_unique_id: row for row in locked}
    states = {uid: _state_of(rows[uid], radacct_rows.get(uid)) for uid in unique_ids}
    customer_ids = {uid: rows[uid].customer_id for uid in unique_ids}
    identity = {uid: dict(radacct_rows.get(uid) or {}) for uid in unique_ids}
    usage: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0, 0])
    last_record: dict[str, AccountingRecord] = {}
    for record in records:
        uid = record.acct_unique_id
        customer = known.get(canonical_username(record.username))
        if customer_ids[uid] is None and customer is not None:
            customer_ids[uid] = customer.id
        before, after = states[uid], merge_session(states[uid], record)
        states[uid] = after
        last_record[uid] = record
        for column, attribute in _RADACCT_FROM_RECORD.items():
            value = getattr(record, attribute)
            if value is not None and value != "":
                identity[uid][column] = value
        if customer is not None and customer.id == customer_ids[uid]:
            period = usage_period_start(customer.expires_at, customer.period_days, zone, record.event_time)
            totals = usage[(customer.id, period)]
            totals[0] += after.upload_bytes - before.upload_bytes
            totals[1] += after.download_bytes - before.download_bytes

    # The rows exist and are locked: one multi-row upsert writes them all in one statement.
    _upsert(connection, sessions, "acct_unique_id", [
        dict(acct_unique_id=uid, acct_session_id=rows[uid].acct_session_id, nas_ip_address=rows[uid].nas_ip_address,
             username=rows[uid].username, customer_id=customer_ids[uid],
             nas_id=rows[uid].nas_id or last_record[uid].nas_id,
             framed_ip_address=states[uid].framed_ip_address,
             calling_station_id=_station(identity[uid].get("callingstationid")) or rows[uid].calling_station_id,
             nas_port_id=identity[uid].get("nasportid") or rows[uid].nas_port_id,
             started_at=states[uid].started_at, updated_at=states[uid].updated_at, stopped_at=states[uid].stopped_at,
             upload_bytes=states[uid].upload_bytes, download_bytes=states[uid].download_bytes,
             terminate_cause=states[uid].terminate_cause)
        for uid in unique_ids])
    _upsert(connection, radacct, "acctuniqueid", [_radacct_row(uid, identity[uid], states[uid]) for uid in unique_ids])
    outcome.sessions += len(unique_ids)
    for uid in unique_ids:
        was_open = rows[uid].started_at is not None and rows[uid].stopped_at is None
        if customer_ids[uid] is not None and was_open != states[uid].is_open:
            (outcome.opened if states[uid].is_open else outcome.stopped).append(customer_ids[uid])
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


def _radacct_row(uid: str, identity: dict, state: SessionState) -> dict:
    row = {column: identity.get(column) for column in _RADACCT_FROM_RECORD}
    row.update(
        acctuniqueid=uid,
        acctstarttime=state.started_at,
        acctupdatetime=state.updated_at,
        acctstoptime=state.stopped_at,
        acctinterval=state.interval,
        acctsessiontime=state.session_time,
        connectinfo_start=state.connect_info_start,
        connectinfo_stop=state.connect_info_stop,
        acctinputoctets=state.upload_bytes,
        acctoutputoctets=state.download_bytes,
        acctterminatecause=state.terminate_cause,
        framedipaddress=state.framed_ip_address,
    )
    return row


def _upsert(connection: Connection, table, key: str, rows: list[dict]) -> None:
    """Write whole rows keyed on a unique column, inserting or replacing."""
    columns = [column for column in rows[0] if column != key]
    if connection.dialect.name == "postgresql":
        quote = connection.dialect.identifier_preparer.quote
        _insert_unnest(connection, table, rows, f"ON CONFLICT ({quote(key)}) DO UPDATE SET "
                       + ", ".join(f"{quote(column)} = EXCLUDED.{quote(column)}" for column in columns))
        return
    statement = _insert(connection, table)
    statement = statement.on_conflict_do_update(
        index_elements=[key], set_={column: statement.excluded[column] for column in columns})
    connection.execute(statement, rows)


def _insert_unnest(connection: Connection, table, rows: list[dict], conflict: str) -> None:
    """PostgreSQL: insert rows as one statement with one array per column.

    executemany() sends one statement per row and SQLAlchemy's multi-row
    VALUES costs more Python per row than it saves; arrays cost neither.
    """
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    columns = list(rows[0])
    # Strings as text[]: an explicit cast to varchar(n) would truncate, the insert's own cast refuses.
    arrays = ", ".join("%s::text[]" if isinstance(table.c[column].type, String)
                       else f"%s::{table.c[column].type.compile(dialect=dialect)}[]" for column in columns)
    connection.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(column) for column in columns)}) "
        f"SELECT * FROM unnest({arrays}) {conflict}",
        tuple([row[column] for row in rows] for column in columns))


# --- usage and quota -----------------------------------------------------------

def _add_usage(connection: Connection, usage: dict[tuple[int, date], list[int]]) -> None:
    rows = [dict(customer_id=customer, period_start=period, upload_bytes=up, download_bytes=down)
            for (customer, period), (up, down) in sorted(usage.items())]
    if connection.dialect.name == "postgresql":
        _insert_unnest(connection, customer_usage, rows, "ON CONFLICT (customer_id, period_start) DO UPDATE SET "
                       "upload_bytes = customer_usage.upload_bytes + EXCLUDED.upload_bytes, "
                       "download_bytes = customer_usage.download_bytes + EXCLUDED.download_bytes")
        return
    statement = _insert(connection, customer_usage)
    statement = statement.on_conflict_do_update(
        index_elements=["customer_id", "period_start"],
        set_={"upload_bytes": customer_usage.c.upload_bytes + statement.excluded.upload_bytes,
              "download_bytes": customer_usage.c.download_bytes + statement.excluded.download_bytes},
    )
    connection.execute(statement, rows)


def _enforce_quotas(connection: Connection, usage, by_customer: dict[int, _Customer], sessions_of) -> list[tuple[int, date]]:
    """Queue one enforcement job per customer and period that just went over quota."""
    candidates = [(customer, period) for customer, period in usage if by_customer[customer].quota_bytes]
    if not candidates:
        return []
    rows = connection.execute(
        select(customer_usage).where(customer_usage.c.customer_id.in_({c for c, _ in candidates}),
                                     customer_usage.c.quota_enforced_at.is_(None))
    ).all()
    wanted = set(candidates)
    queued = []
    now = datetime.now(timezone.utc)
    for row in rows:
        key = (row.customer_id, row.period_start)
        customer = by_customer[row.customer_id]
        used = row.upload_bytes + row.download_bytes
        if key not in wanted or used < customer.quota_bytes:
            continue
        session, record = sessions_of[row.customer_id]
        throttle = customer.fup_rx and customer.fup_tx
        payload = dict(username=record.username, acct_session_id=record.acct_session_id,
                       framed_ip_address=session.framed_ip_address or record.framed_ip_address,
                       nas_ip_address=record.nas_ip_address, used_bytes=used, quota_bytes=customer.quota_bytes,
                       period_start=row.period_start.isoformat())
        if throttle:
            payload["rate_limit"] = RateLimit(customer.fup_rx, customer.fup_tx).to_mikrotik()
        enqueue(connection, customer_id=row.customer_id, nas_id=session.nas_id or record.nas_id,
                action="coa" if throttle else "disconnect", reason="quota", payload=payload,
                dedupe_key=f"quota:{row.customer_id}:{row.period_start.isoformat()}")
        connection.execute(update(customer_usage).where(customer_usage.c.customer_id == row.customer_id,
                                                        customer_usage.c.period_start == row.period_start)
                           .values(quota_enforced_at=now))
        # Over quota changes the next Access-Request's answer.
        record_change(connection, "customer", row.customer_id)
        queued.append(key)
    return queued


# --- closing sessions the NAS will never stop -------------------------------------

def _close(connection: Connection, open_rows, cause: str, stop_time_of) -> list[int]:
    """Close the given open sessions; their customer ids (None where unknown), one per session."""
    params = []
    for row in open_rows:
        started = as_utc(row.started_at)
        stopped = stop_time_of(row)
        params.append(dict(_uid=row.acct_unique_id, _stopped=stopped, _cause=cause,
                           _session_time=int((stopped - started).total_seconds()) if started else None))
    if not params:
        return []
    connection.execute(
        update(sessions).where(sessions.c.acct_unique_id == bindparam("_uid"), sessions.c.stopped_at.is_(None))
        .values(stopped_at=bindparam("_stopped"), updated_at=bindparam("_stopped"), terminate_cause=bindparam("_cause")),
        params)
    connection.execute(
        update(radacct).where(radacct.c.acctuniqueid == bindparam("_uid"), radacct.c.acctstoptime.is_(None))
        .values(acctstoptime=bindparam("_stopped"), acctupdatetime=bindparam("_stopped"),
                acctterminatecause=bindparam("_cause"),
                acctsessiontime=func.coalesce(radacct.c.acctsessiontime, bindparam("_session_time"))),
        params)
    return [row.customer_id for row in open_rows]


def close_nas_sessions(connection: Connection, nas_ip_address: str, event_time: datetime,
                       cause: str = NAS_REBOOT) -> list[int]:
    """Accounting-On/Off: the NAS (re)started, so none of its sessions is still up (RFC 2866 §5.1)."""
    open_rows = connection.execute(
        select(sessions.c.acct_unique_id, sessions.c.started_at, sessions.c.customer_id)
        .where(sessions.c.nas_ip_address == nas_ip_address, sessions.c.stopped_at.is_(None))
        .order_by(sessions.c.acct_unique_id).with_for_update()
    ).all()
    open_rows = [row for row in open_rows if row.started_at is None or as_utc(row.started_at) <= event_time]
    return _close(connection, open_rows, cause, lambda _row: event_time)


def close_stale_sessions(connection: Connection, now: datetime, interim_interval: int) -> list[int]:
    """Close sessions silent for three interim intervals as Lost-Service, at their last sign of life (FIELD-NOTES 9)."""
    cutoff = now - timedelta(seconds=MISSED_INTERIMS * interim_interval)
    last_seen = func.coalesce(sessions.c.updated_at, sessions.c.started_at)
    open_rows = connection.execute(
        select(sessions.c.acct_unique_id, sessions.c.started_at, sessions.c.updated_at, sessions.c.customer_id)
        .where(sessions.c.stopped_at.is_(None), last_seen < cutoff)
        .order_by(sessions.c.acct_unique_id).with_for_update()
    ).all()
    return _close(connection, open_rows, LOST_SERVICE, lambda row: as_utc(row.updated_at or row.started_at))


# --- who is online ------------------------------------------------------------------

@dataclass(frozen=True)
class OnlineSession:
    username: str
    nas: str
    ip: str | None
    mac: str | None
    started_at: datetime | None
    duration: int | None
    upload_bytes: int
    download_bytes: int
    acct_session_id: str


def list_open_sessions(connection: Connection, now: datetime, nas_name: str | None = None,
                       operator_ids: set[int] | None = None) -> list[OnlineSession]:
    """Open sessions, oldest first; the NAS by name where radbill knows it, else by address.

    ``operator_ids`` limits them to the customers of those operators (None: all,
    also sessions of user names that are no customer).
    """
    query = (select(sessions, nas.c.name.label("nas_name")).select_from(sessions.outerjoin(nas, nas.c.id == sessions.c.nas_id))
             .where(sessions.c.stopped_at.is_(None)).order_by(sessions.c.started_at, sessions.c.id))
    if nas_name is not None:
        query = query.where(nas.c.name == nas_name)
    if operator_ids is not None:
        query = query.join(customers, customers.c.id == sessions.c.customer_id).where(
            customers.c.operator_id.in_(sorted(operator_ids)))
    result = []
    for row in connection.execute(query):
        started = as_utc(row.started_at)
        result.append(OnlineSession(
            username=row.username, nas=row.nas_name or row.nas_ip_address, ip=row.framed_ip_address,
            mac=row.calling_station_id, started_at=started,
            duration=int((now - started).total_seconds()) if started else None,
            upload_bytes=row.upload_bytes, download_bytes=row.download_bytes, acct_session_id=row.acct_session_id))
    return result
