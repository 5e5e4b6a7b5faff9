"""``radbill report``: revenue equals the ledger's sales, BTRC's rows, expiring, tenancy, --csv/--json; ``radbill invoice list|show``."""

import csv
import io
import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from billingd import ledger
from billingd.money import format_amount
from schema.tables import operators


def months_back(count: int) -> list[str]:
    """This month and the ``count`` before it, as YYYY-MM."""
    first = date.today().replace(day=1)
    months = []
    for _ in range(count + 1):
        months.append(first.strftime("%Y-%m"))
        first = (first - timedelta(days=1)).replace(day=1)
    return months


def report(cli, *args: str, as_: str | None = None) -> list[dict]:
    acting = ("--as", as_) if as_ else ()
    return json.loads(cli(*acting, "--json", "report", *args).output)


def invoice_list(cli, *args: str) -> list[dict]:
    return json.loads(cli("--json", "invoice", "list", *args).output)


def shop(cli):
    cli("demo")
    cli("zone", "add", "DHK")
    cli(
        "--as",
        "reseller1",
        "customer",
        "add",
        "rasel",
        "--password",
        "pw",
        "--package",
        "PPPoE 20M 100G",
        "--zone",
        "DHK",
    )
    cli("--as", "subreseller1", "customer", "add", "sumon", "--password", "pw", "--package", "Hotspot 5M")
    cli("billing", "run")


def test_revenue_is_the_ledgers_sales_per_operator_zone_and_package(cli, engine):
    shop(cli)
    totals: dict[str, int] = {}
    for month in months_back(2):
        for row in report(cli, "revenue", "--month", month):
            totals[row["operator"]] = totals.get(row["operator"], 0) + row["revenue"]
    with engine.connect() as connection:
        books = dict(connection.execute(select(operators.c.login, operators.c.id)).all())
        sales = {login: ledger.balances(connection, book).get("sales", 0) for login, book in books.items()}
    assert totals == {login: amount for login, amount in sales.items() if amount}
    assert set(totals) == {"admin", "reseller1", "subreseller1"}

    this_month = months_back(0)[0]
    by_package = {
        row["package"]: row["revenue"]
        for row in report(cli, "revenue", "--month", this_month, "--by", "package")
    }
    by_operator = {row["operator"]: row["revenue"] for row in report(cli, "revenue", "--month", this_month)}
    assert sum(by_package.values()) == sum(by_operator.values())
    assert by_package["Hotspot 5M"] > 0 and by_package["PPPoE 20M 100G"] > 0
    by_zone = {
        row["zone"]: row["revenue"] for row in report(cli, "revenue", "--month", this_month, "--by", "zone")
    }
    assert sum(by_zone.values()) == sum(by_operator.values()) and by_zone["DHK"] > 0

    # A reseller sees its own book and its sub-reseller's, never the admin's.
    mine = {row["operator"] for row in report(cli, "revenue", "--month", this_month, as_="reseller1")}
    assert mine == {"reseller1", "subreseller1"}
    text = cli("report", "revenue", "--month", this_month, "--csv").output
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["operator"] for row in rows] == sorted(by_operator)
    assert rows[0]["revenue"] == format_amount(by_operator[rows[0]["operator"]])
    assert "invalid month" in cli("report", "revenue", "--month", "2026-13", expect_exit=1).output
    cli("operator", "add", "noc1", "--role", "noc")
    assert (
        "no financial access"
        in cli("--as", "noc1", "report", "revenue", "--month", this_month, expect_exit=1).output
    )


def test_btrc_has_one_row_per_subscriber_with_its_sources(cli):
    shop(cli)
    rows = report(cli, "btrc", "--month", months_back(0)[0])
    by_name = {row["username"]: row for row in rows}
    assert set(by_name) == {"demo", "expired", "rasel", "sumon"}
    rasel = by_name["rasel"]
    assert (
        rasel["connection_type"],
        rasel["zone"],
        rasel["package"],
        rasel["download_mbps"],
        rasel["upload_mbps"],
    ) == (
        "Broadband (PPPoE)",
        "DHK",
        "PPPoE 20M 100G",
        "20",
        "20",
    )
    assert rasel["reseller"] == "reseller1" and rasel["status"] == "active"
    assert rasel["activation_date"] == datetime.now(ZoneInfo("Asia/Dhaka")).date().isoformat()
    assert by_name["sumon"]["connection_type"] == "Wi-Fi Hotspot"
    assert by_name["expired"]["status"] == "suspended"  # the first run found its wallet empty
    # A month before the ISP existed is empty; a sub-reseller sees its own subscribers only.
    assert report(cli, "btrc", "--month", "2020-01") == []
    assert [
        row["username"] for row in report(cli, "btrc", "--month", months_back(0)[0], as_="subreseller1")
    ] == ["sumon"]
    header = cli("report", "btrc", "--month", months_back(0)[0], "--csv").output.splitlines()[0]
    assert (
        header
        == "subscriber_id,username,name,phone,address,connection_type,zone,package,download_mbps,upload_mbps,activation_date,status,reseller"
    )


def test_expiring_and_online_and_invoices(cli):
    shop(cli)
    expiring = {row["username"] for row in report(cli, "expiring", "--days", "40")}
    assert {"demo", "rasel", "sumon"} <= expiring and "expired" not in expiring
    assert "rasel" not in {row["username"] for row in report(cli, "expiring", "--days", "1")}
    cli("operator", "add", "noc1", "--role", "noc")
    noc_rows = report(cli, "expiring", "--days", "40", as_="noc1")
    assert noc_rows and all("wallet_balance" not in row for row in noc_rows)
    assert report(cli, "online") == []
    assert cli("report", "online", "--csv").output == "user,nas,ip,mac,start,duration,upload,download\n"
    assert invoice_list(cli) == [] and invoice_list(cli, "--status", "overdue") == []
    assert "no financial access" in cli("--as", "noc1", "invoice", "list", expect_exit=1).output


def test_invoice_show_and_its_pdf(cli, engine, tmp_path):
    from sqlalchemy import insert

    from schema.tables import customers, invoices

    shop(cli)
    with engine.begin() as connection:
        rasel = connection.execute(select(customers).where(customers.c.username == "rasel")).mappings().one()
        connection.execute(
            insert(invoices).values(
                number="INV-0001",
                customer_id=rasel["id"],
                operator_id=rasel["operator_id"],
                period_start=date(2026, 11, 1),
                period_end=date(2026, 11, 30),
                amount=80_000,
                paid_amount=30_000,
                issued_on=date(2026, 12, 1),
                due_on=date(2020, 12, 8),
                status="open",
            )
        )
    pdf = tmp_path / "INV-0001.pdf"
    shown_text = cli("invoice", "show", "INV-0001", "--pdf", str(pdf)).output
    assert "amount        800.00" in shown_text and "status        overdue" in shown_text
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert [row["number"] for row in invoice_list(cli, "--status", "overdue")] == ["INV-0001"]
    assert invoice_list(cli, "--status", "paid") == []
    assert cli("invoice", "list", "--csv").output.splitlines()[1].startswith("INV-0001,rasel,")
    assert (
        "no invoice 'INV-0001'"
        in cli("--as", "subreseller1", "invoice", "show", "INV-0001", expect_exit=1).output
    )
    assert "no invoice 'INV-9'" in cli("invoice", "show", "INV-9", expect_exit=1).output
