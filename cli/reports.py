"""``radbill report online|expiring|revenue|btrc``: tables, ``--json`` or ``--csv``."""

import csv
import sys
from datetime import UTC, datetime

import click

from billingd import reports as domain
from billingd.money import format_amount
from cli.context import Context
from cli.online import read_online, session_rows
from cli.output import emit_table
from cli.params import LIMIT

CSV = click.option("--csv", "as_csv", is_flag=True, help="Comma-separated values with a header line.")


@click.group("report")
def report_group() -> None:
    """Reports: who is online, who expires, revenue, BTRC's subscriber list."""


def emit_report(
    obj: Context, rows: list[dict], columns: list[str], as_csv: bool, amounts: tuple[str, ...] = ()
) -> None:
    """A table for people, JSON with integer minor units (--json), CSV with decimal amounts (--csv)."""
    if obj.as_json:
        emit_table(rows, columns)
        return
    shown = [{**row, **{key: format_amount(row[key]) for key in amounts if key in row}} for row in rows]
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(shown)
        return
    emit_table(shown, columns)


@report_group.command("online")
@click.option("--nas", "nas_name", metavar="NAME", help="Only sessions on this router.")
@CSV
@click.pass_obj
def online(obj: Context, nas_name: str | None, as_csv: bool) -> None:
    """Open sessions of the customers you can see."""
    rows = session_rows(read_online(obj, nas_name))
    emit_report(obj, rows, ["user", "nas", "ip", "mac", "start", "duration", "upload", "download"], as_csv)


@report_group.command("expiring")
@click.option(
    "--days", type=LIMIT, default=7, show_default=True, help="Paid time ending within this many days."
)
@CSV
@click.pass_obj
def expiring(obj: Context, days: int, as_csv: bool) -> None:
    """Active subscribers whose paid time ends soon, soonest first."""
    with obj.engine.begin() as connection:
        rows = domain.expiring(connection, obj.actor(connection), datetime.now(UTC), days)
    columns = ["username", "name", "phone", "owner", "package", "expires_at", "wallet_balance"]
    columns = [column for column in columns if not rows or column in rows[0]]
    emit_report(obj, rows, columns, as_csv, ("wallet_balance",))


@report_group.command("revenue")
@click.option("--month", required=True, metavar="YYYY-MM")
@click.option("--by", type=click.Choice(domain.REVENUE_GROUPS), default="operator", show_default=True)
@CSV
@click.pass_obj
def revenue(obj: Context, month: str, by: str, as_csv: bool) -> None:
    """The month's sales from the ledger, per operator, zone or package."""
    first = domain.parse_month(month)
    with obj.engine.begin() as connection:
        rows = domain.revenue(connection, obj.actor(connection), first, obj.settings.billingd.zone, by)
    emit_report(obj, rows, [by, "revenue", "lines"], as_csv, ("revenue",))


@report_group.command("btrc")
@click.option("--month", required=True, metavar="YYYY-MM")
@CSV
@click.pass_obj
def btrc(obj: Context, month: str, as_csv: bool) -> None:
    """BTRC's monthly subscriber report: one row per subscriber (columns in the README)."""
    first = domain.parse_month(month)
    with obj.engine.begin() as connection:
        rows = domain.btrc(connection, obj.actor(connection), first, obj.settings.billingd.zone)
    emit_report(obj, rows, list(domain.BTRC_COLUMNS), as_csv)


COMMANDS = [report_group]
