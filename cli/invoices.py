"""``radbill invoice``: monthly invoices (list, show and the printable page) and the payments
received, with their receipts."""

from pathlib import Path

import click

from billingd import invoices, reports
from billingd.invoice_pdf import invoice_pdf
from cli.context import Context
from cli.money import shown
from cli.output import emit_record, emit_table
from cli.params import ROW_ID
from cli.reports import CSV, emit_report
from schema.errors import RadbillError


@click.group("invoice")
def invoice_group() -> None:
    """Monthly invoices, payments received and their receipts."""


@invoice_group.command("list")
@click.option(
    "--status", type=click.Choice(reports.INVOICE_STATUSES), help="Only open, paid or overdue ones."
)
@CSV
@click.pass_obj
def invoice_list(obj: Context, status: str | None, as_csv: bool) -> None:
    """Invoices of the subscribers you can see, newest first."""
    with obj.engine.begin() as connection:
        rows = reports.invoice_report(connection, obj.actor(connection), obj.calendar().today, status)
    columns = ["number", "username", "owner", "period_start", "period_end", "issued_on", "due_on", "amount"]
    emit_report(obj, rows, [*columns, "paid_amount", "status"], as_csv, ("amount", "paid_amount"))


@invoice_group.command("show")
@click.argument("number")
@click.option(
    "--pdf", type=click.Path(dir_okay=False, path_type=Path), help="Also write the printable invoice to FILE."
)
@click.pass_obj
def invoice_show(obj: Context, number: str, pdf: Path | None) -> None:
    """One invoice: customer, period, issued and due days, amount, paid, status."""
    with obj.engine.begin() as connection:
        row = reports.invoice(connection, obj.actor(connection), obj.calendar().today, number)
    if pdf is not None:
        try:
            pdf.write_bytes(invoice_pdf(row, issuer=row["owner_name"] or row["owner"]))
        except OSError as error:
            raise RadbillError(f"cannot write {pdf}: {error.strerror}") from None
    emit_record(shown(row, "amount", "paid_amount"))


@invoice_group.command("payments")
@click.option("--customer", "username", metavar="USERNAME", help="Only this customer's.")
@click.pass_obj
def payment_list(obj: Context, username) -> None:
    """Payments you (and the operators below you) received, newest first."""
    with obj.engine.begin() as connection:
        rows = invoices.list_payments(connection, obj.actor(connection), username=username)
    emit_table(
        [shown(row, "amount") for row in rows],
        ["receipt", "received_at", "payer", "payee", "amount", "method", "reference", "entry"],
    )


@invoice_group.command("receipt")
@click.argument("receipt", type=ROW_ID)
@click.pass_obj
def payment_receipt(obj: Context, receipt: int) -> None:
    """The receipt of one payment (its number is in invoice payments)."""
    with obj.engine.begin() as connection:
        row = invoices.receipt(connection, obj.actor(connection), receipt)
    emit_record(shown(row, "amount"))


COMMANDS = [invoice_group]
