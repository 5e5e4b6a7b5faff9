"""Moving subscribers in and out: ``radbill customer import`` and ``customer export``.

An ISP migrating to radbill brings its subscribers from the panel it used
before, most often MikroTik's own PPP secrets or a FreeRADIUS database.
``read_rows`` turns each source (a *preset*) into rows of radbill's own
columns; ``import_customers`` checks every row against the database and the
actor's rights, reports each problem as (row, column, error), and writes the
good rows in set-based statements: the customers, their wallets, one
opening-balance ledger entry for the balances brought along, the change log
radiusd follows and one audit row. Imported subscribers are not sold a
period: the paid time they had (``expires_at``) comes with them; a
daily-billed one without it is due now, and the next daily run charges its
wallet.
"""

import csv
import io
import re
import shlex
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Connection, select, update

from billingd import ledger
from billingd.calendar import end_of_day
from billingd.customers import Calendar, normalise_mac, normalise_username, zone_of
from billingd.money import format_amount, parse_amount
from billingd.packages import priced_package
from schema.audit import audit
from schema.changes import record_changes
from schema.engine import bulk_insert, rows_among
from schema.errors import RadbillError
from schema.identity import canonical_ip
from schema.tables import CUSTOMER_STATUSES, customers, ledger_accounts, operators, packages, zones
from schema.tenancy import Actor, require_changeable, visible_operator_ids

# radbill's own format, the columns of ``customer export`` and of a radbill import file.
COLUMNS = (
    "username",
    "password",
    "package",
    "owner",
    "zone",
    "mac",
    "static_ip",
    "expires_at",
    "balance",
    "status",
    "name",
    "phone",
    "address",
)
PRESETS = ("radbill", "mikrotik", "freeradius")
IMPORT_STATUSES = CUSTOMER_STATUSES
CHUNK = 5_000

# MikroTik `/ppp secret` fields (export `name=value` and Winbox CSV headers) -> radbill columns.
_MIKROTIK_FIELDS = {
    "name": "username",
    "password": "password",
    "profile": "package",
    "remote-address": "static_ip",
    "remote address": "static_ip",
    "caller-id": "mac",
    "caller id": "mac",
    "comment": "name",
    "disabled": "status",
}
# FreeRADIUS radcheck/radreply attributes -> radbill columns.
_FREERADIUS_ATTRIBUTES = {
    "cleartext-password": "password",
    "user-password": "password",
    "calling-station-id": "mac",
    "framed-ip-address": "static_ip",
    "expiration": "expires_at",
    "user-profile": "package",
    "mikrotik-group": "package",
}


@dataclass(frozen=True)
class Problem:
    row: int
    column: str
    error: str


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    opening_balance: int = 0
    problems: list[Problem] = field(default_factory=list)
    # The source rows that had a problem, in radbill's columns (``--skip-bad`` writes them out).
    bad_rows: list[dict] = field(default_factory=list)


# --- reading the sources ------------------------------------------------------------------


def read_rows(text: str, preset: str) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """Rows of radbill columns, each with the row number an operator finds it under in the file."""
    if preset == "radbill":
        return _read_csv(text, {column: column for column in COLUMNS}, strict=True)
    if preset == "mikrotik":
        if re.search(r"^\s*(/ppp\s+secret|add\s)", text, re.MULTILINE):
            return _read_mikrotik_export(text), []
        rows, problems = _read_csv(text, _MIKROTIK_FIELDS, strict=False)
        return [(number, _mikrotik_values(row)) for number, row in rows], problems
    if preset == "freeradius":
        return _read_freeradius(text)
    raise RadbillError(f"unknown format {preset!r}: use one of {', '.join(PRESETS)}")


def _read_csv(
    text: str, mapping: dict[str, str], *, strict: bool
) -> tuple[list[tuple[int, dict]], list[Problem]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    problems = []
    known = {name: mapping[name.strip().lower()] for name in header if name.strip().lower() in mapping}
    if strict:
        problems = [Problem(1, name, "unknown column") for name in header if name not in known]
    if "username" not in known.values():
        problems.append(Problem(1, "username", "missing column"))
    rows = []
    for row in reader:
        values = {known[name]: (value or "").strip() for name, value in row.items() if name in known}
        rows.append((reader.line_num, values))
    return rows, problems


def _mikrotik_values(values: dict) -> dict:
    """RouterOS spellings: ``disabled=yes``, a remote address that is a pool name, not an IP."""
    if "status" in values:
        values["status"] = "disabled" if values["status"].lower() in ("yes", "true", "x") else "active"
    if values.get("static_ip") and not re.fullmatch(r"[0-9a-fA-F.:]+", values["static_ip"]):
        values.pop("static_ip")
    return values


def _read_mikrotik_export(text: str) -> list[tuple[int, dict]]:
    """``/ppp secret export``: ``add name=... password=...`` lines, ``\\`` continuing a line."""
    rows = []
    logical, first_line = "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not logical:
            first_line = number
        if stripped.endswith("\\"):
            logical += stripped[:-1]
            continue
        logical += stripped
        command, logical = logical, ""
        if not command.startswith("add "):
            continue
        values = {}
        for token in shlex.split(command[4:]):
            key, _, value = token.partition("=")
            if key in _MIKROTIK_FIELDS:
                values[_MIKROTIK_FIELDS[key]] = value
        rows.append((first_line, _mikrotik_values(values)))
    return rows


def _read_freeradius(text: str) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """radcheck and radreply rows (``[id,]username,attribute,op,value``, header optional), one user per name."""
    users: dict[str, dict] = {}
    first_row: dict[str, int] = {}
    problems = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or fields[0].strip().lower() in ("id", "username"):
            continue
        if len(fields) == 5:
            fields = fields[1:]
        if len(fields) != 4:
            problems.append(Problem(number, "", "expected username,attribute,op,value"))
            continue
        username, attribute, _op, value = (part.strip() for part in fields)
        column = _FREERADIUS_ATTRIBUTES.get(attribute.lower())
        first_row.setdefault(username, number)
        values = users.setdefault(username, {"username": username})
        if column == "expires_at":
            value = _freeradius_expiration(value)
        if column is not None:
            values[column] = value
    return [(first_row[name], values) for name, values in users.items()], problems


def _freeradius_expiration(value: str) -> str:
    """FreeRADIUS's ``Expiration`` ("Jan 01 2027 00:00:00" or "01 Jan 2027") as ISO, else as given."""
    for pattern in ("%b %d %Y %H:%M:%S", "%b %d %Y", "%d %b %Y %H:%M:%S", "%d %b %Y"):
        try:
            return datetime.strptime(value, pattern).isoformat()
        except ValueError:
            continue
    return value


# --- importing ----------------------------------------------------------------------------


@dataclass
class _Lookups:
    """What the rows refer to, each looked up once."""

    connection: Connection
    owners: dict[str, int]
    packages: dict[tuple[int, str], object] = field(default_factory=dict)
    zones: dict[tuple[int, str], int | None] = field(default_factory=dict)

    def package(self, owner_id: int, name: str):
        key = (owner_id, name)
        if key not in self.packages:
            try:
                self.packages[key] = priced_package(self.connection, owner_id, name)
            except RadbillError as error:
                self.packages[key] = error
        return self.packages[key]

    def zone(self, owner_id: int, code: str):
        key = (owner_id, code)
        if key not in self.zones:
            try:
                self.zones[key] = zone_of(self.connection, owner_id, code)[0]
            except RadbillError as error:
                self.zones[key] = error
        return self.zones[key]


def import_customers(
    connection: Connection,
    actor: Actor,
    rows: list[tuple[int, dict]],
    *,
    calendar: Calendar,
    package: str | None = None,
    owner: str | None = None,
    skip_bad: bool = False,
    source: str = "",
    progress: Callable[[int], None] = lambda rows: None,
) -> ImportResult:
    """Check every row, then write the good ones; with a problem and not ``skip_bad``, write nothing."""
    actor.require("customers.change", "import customers")
    actor.require("money", "import customers (it writes their opening balances)")
    visible = visible_operator_ids(connection, actor)
    query = select(operators.c.login, operators.c.id).where(
        operators.c.role.in_(("admin", "reseller", "sub_reseller"))
    )
    owners = {login: id_ for login, id_ in connection.execute(query) if visible is None or id_ in visible}
    lookups = _Lookups(connection, owners)
    result = ImportResult(rows=len(rows))
    good: list[dict] = []
    seen_usernames: dict[str, int] = {}
    seen_ips: dict[str, int] = {}
    checked_owners: set[int] = set()
    for number, source_row in rows:
        values = {**source_row}
        if not values.get("package") and package:
            values["package"] = package
        if not values.get("owner") and owner:
            values["owner"] = owner
        problems = _check(values, number, lookups, calendar, actor, checked_owners)
        for key, index in (("username", seen_usernames), ("static_ip", seen_ips)):
            value = values.get("_" + key)
            if value and value in index:
                problems.append(Problem(number, key, f"{value} repeats row {index[value]}"))
            elif value:
                index[value] = number
        if problems:
            result.problems.extend(problems)
            result.bad_rows.append(source_row)
        else:
            good.append(values)
        if (len(good) + len(result.bad_rows)) % CHUNK == 0:
            progress(CHUNK)
    progress(len(rows) % CHUNK)
    taken = _taken_in_database(connection, good)
    for values in good:
        if values["_row"] in taken:
            result.problems.append(taken[values["_row"]])
            result.bad_rows.append({key: value for key, value in values.items() if not key.startswith("_")})
    result.problems.sort(key=lambda problem: problem.row)
    good = [values for values in good if values["_row"] not in taken]
    if result.problems and not skip_bad:
        return result
    result.imported = len(good)
    result.opening_balance = _write(connection, actor, good, calendar, source, progress)
    return result


def _check(
    values: dict, number: int, lookups: _Lookups, calendar: Calendar, actor: Actor, checked_owners: set
):
    """Problems of one row by itself; fills ``values['_...']`` with the checked values."""
    problems = []
    values["_row"] = number

    def problem(column: str, error: str) -> None:
        problems.append(Problem(number, column, error))

    try:
        values["_username"] = normalise_username(values.get("username", ""))
    except RadbillError as error:
        problem("username", str(error) if values.get("username") else "missing")
    if not values.get("password"):
        problem("password", "missing")
    owner_login = values.get("owner") or None
    owner_id = actor.home_id if owner_login is None else lookups.owners.get(owner_login)
    if owner_id is None:
        problem("owner", f"no operator {owner_login!r} that you can see sells to customers")
    else:
        values["_owner"] = owner_id
        if owner_id not in checked_owners:
            try:
                require_changeable(
                    lookups.connection, actor, owner_id, f"customers of {owner_login or actor.login}"
                )
                checked_owners.add(owner_id)
            except RadbillError as error:
                problem("owner", str(error))
        if not values.get("package"):
            problem("package", "missing (give one, or --package)")
        else:
            priced = lookups.package(owner_id, values["package"])
            if isinstance(priced, RadbillError):
                problem("package", str(priced))
            else:
                values["_package"] = priced
        if values.get("zone"):
            zone_id = lookups.zone(owner_id, values["zone"])
            if isinstance(zone_id, RadbillError):
                problem("zone", str(zone_id))
            else:
                values["_zone"] = zone_id
    if values.get("mac"):
        try:
            values["_mac"] = normalise_mac(values["mac"])
        except RadbillError as error:
            problem("mac", str(error))
    if values.get("static_ip"):
        try:
            values["_static_ip"] = canonical_ip(values["static_ip"])
        except RadbillError as error:
            problem("static_ip", str(error))
    if values.get("expires_at"):
        try:
            values["_expires_at"] = _instant(values["expires_at"], calendar)
        except ValueError:
            problem(
                "expires_at", f"invalid date {values['expires_at']!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
            )
    if values.get("balance"):
        text = values["balance"]
        try:
            values["_balance"] = -parse_amount(text[1:]) if text.startswith("-") else parse_amount(text)
        except RadbillError as error:
            problem("balance", str(error))
    status = values.get("status") or "active"
    if status not in IMPORT_STATUSES:
        problem("status", f"must be {' or '.join(IMPORT_STATUSES)}, got {status!r}")
    values["_status"] = status
    return problems


def _instant(text: str, calendar: Calendar) -> datetime:
    """A date is paid up to the end of that day (operator time zone); a time without a zone is UTC."""
    if len(text) == 10:
        return end_of_day(date.fromisoformat(text), calendar.zone)
    instant = datetime.fromisoformat(text)
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _taken_in_database(connection: Connection, good: list[dict]) -> dict[int, Problem]:
    """Rows whose user name or static IP a customer in the database already has, by row number."""
    problems: dict[int, Problem] = {}
    for key, column in (("_username", customers.c.username), ("_static_ip", customers.c.static_ip)):
        wanted = [values[key] for values in good if values.get(key)]
        taken = (
            set(connection.execute(select(column).where(column.is_not(None))).scalars()) if wanted else set()
        )
        for values in good:
            if values.get(key) in taken:
                problems.setdefault(
                    values["_row"], Problem(values["_row"], key[1:], f"{values[key]} is already taken")
                )
    return problems


def _write(
    connection: Connection, actor: Actor, good: list[dict], calendar: Calendar, source: str, progress
) -> int:
    """Insert the checked rows; returns the opening balance brought along (minor units)."""
    if not good:
        return 0
    today = calendar.today
    by_owner: dict[int, list[dict]] = defaultdict(list)
    for values in good:
        by_owner[values["_owner"]].append(values)
    zone_codes = dict(connection.execute(select(zones.c.id, zones.c.code)).all())
    for owner_id, owned in by_owner.items():
        owner_row = connection.execute(
            select(operators.c.id_format, operators.c.id_sequence)
            .where(operators.c.id == owner_id)
            .with_for_update()
        ).one()
        sequence = owner_row.id_sequence
        for values in owned:
            sequence += 1
            values["_code"] = owner_row.id_format.format(
                seq=sequence, zone=zone_codes.get(values.get("_zone"), "")
            )
        connection.execute(update(operators).where(operators.c.id == owner_id).values(id_sequence=sequence))
    codes = [values["_code"] for values in good]
    code_column = customers.c.customer_code
    for (clash,) in rows_among(connection, select(code_column), code_column, codes):
        raise RadbillError(f"customer ID {clash!r} already exists: change the owner's ID format")
    rows = []
    for values in good:
        priced = values["_package"]
        monthly = priced.billing_type == "monthly"
        expires_at = values.get("_expires_at")
        if expires_at is None and not monthly:
            expires_at = calendar.now  # paid time is over: the next daily run charges the wallet
        rows.append(
            dict(
                operator_id=values["_owner"],
                username=values["_username"],
                password=values["password"],
                customer_code=values["_code"],
                name=values.get("name", ""),
                phone=values.get("phone") or None,
                address=values.get("address") or None,
                zone_id=values.get("_zone"),
                package_id=priced.package_id,
                status=values["_status"],
                status_reason="imported" if values["_status"] != "active" else None,
                expires_at=expires_at,
                static_ip=values.get("_static_ip"),
                mac_binding=values.get("_mac"),
                custom_fields={},
                billing_anchor=today,
                cycle_day=min(today.day, 28) if monthly else None,
            )
        )
    bulk_insert(connection, customers, rows)
    usernames = [values["_username"] for values in good]
    ids = dict(
        rows_among(connection, select(customers.c.username, customers.c.id), customers.c.username, usernames)
    )
    accounts = [
        dict(
            book_operator_id=values["_owner"],
            code=ledger.wallet_code(ids[values["_username"]]),
            kind="liability",
            name="Customer wallet",
            customer_id=ids[values["_username"]],
        )
        for values in good
    ]
    bulk_insert(connection, ledger_accounts, accounts)
    opening = _post_opening_balances(connection, actor, good, ids, source)
    new_ids = sorted(ids.values())
    record_changes(
        connection, "customer", select(customers.c.id).where(customers.c.id.between(new_ids[0], new_ids[-1]))
    )
    audit(
        connection,
        "customer.import",
        actor_id=actor.caller_id,
        acting_as_id=actor.id if actor.id != actor.caller_id else None,
        source=source,
        customers=len(good),
        opening_balance=opening,
    )
    return opening


def _post_opening_balances(
    connection: Connection, actor: Actor, good: list[dict], ids: dict, source: str
) -> int:
    """One ledger entry: each brought-along balance moves between the owner's cash and the customer's wallet."""
    with_balance = [values for values in good if values.get("_balance")]
    if not with_balance:
        return 0
    owners = {values["_owner"] for values in with_balance}
    cash = {owner_id: ledger.account_id(connection, owner_id, "cash") for owner_id in owners}
    customer_ids = [ids[values["_username"]] for values in with_balance]
    wallets = select(ledger_accounts.c.customer_id, ledger_accounts.c.id)
    wallet_ids = dict(rows_among(connection, wallets, ledger_accounts.c.customer_id, customer_ids))
    lines = []
    for values in with_balance:
        wallet = wallet_ids[ids[values["_username"]]]
        owner_cash, amount = cash[values["_owner"]], values["_balance"]
        debit, credit = (owner_cash, wallet) if amount > 0 else (wallet, owner_cash)
        lines.append(ledger.Line(values["_owner"], debit, credit, abs(amount)))
    ledger.post(
        connection,
        "opening_balance",
        lines,
        actor_id=actor.caller_id,
        memo=f"opening balances imported from {source}" if source else "opening balances imported",
    )
    return sum(values["_balance"] for values in with_balance)


# --- exporting ----------------------------------------------------------------------------


def export_customers(connection: Connection, actor: Actor) -> list[dict]:
    """Every customer the actor may change, in radbill's import columns (passwords included).

    Revealing subscriber passwords is the admin side's, and audited (FIELD-NOTES 29).
    """
    actor.require("customers.change", "export customers with their passwords")
    actor.require("passwords", "export customers with their passwords")
    visible = visible_operator_ids(connection, actor)
    query = (
        select(
            customers,
            packages.c.name.label("package_name"),
            operators.c.login.label("owner_login"),
            zones.c.code.label("zone_code"),
        )
        .join(packages, packages.c.id == customers.c.package_id)
        .join(operators, operators.c.id == customers.c.operator_id)
        .outerjoin(zones, zones.c.id == customers.c.zone_id)
        .where(customers.c.deleted_at.is_(None))
        .order_by(customers.c.id)
    )
    if visible is not None:
        query = query.where(customers.c.operator_id.in_(sorted(visible)))
    exported = []
    for row in connection.execute(query).mappings():
        expires = row["expires_at"]
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        exported.append(
            dict(
                username=row["username"],
                password=row["password"],
                package=row["package_name"],
                owner=row["owner_login"],
                zone=row["zone_code"] or "",
                mac=row["mac_binding"] or "",
                static_ip=row["static_ip"] or "",
                expires_at=expires.astimezone(UTC).isoformat() if expires else "",
                balance=format_amount(row["wallet_balance"]),
                status=row["status"],
                name=row["name"],
                phone=row["phone"] or "",
                address=row["address"] or "",
            )
        )
    audit(
        connection,
        "customer.export",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="operator",
        target_id=actor.home_id,
        customers=len(exported),
    )
    return exported


def write_csv(rows: Iterable[dict], stream) -> int:
    """radbill's format: a header of COLUMNS, then one line per customer."""
    writer = csv.DictWriter(stream, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count
