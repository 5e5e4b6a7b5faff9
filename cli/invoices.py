"""``radbill invoice show NUMBER [--pdf FILE]``: one invoice, and its printable page;
``radbill payment list|receipt``: payments received and their receipts."""

from pathlib import Path

import click

from billingd import invoices, reports
from billingd.invoice_pdf import invoice_pdf
from cli.context import Context
from cli.money import shown
from cli.output import emit_record, emit_table
from cli.params import ROW_ID
from schema.errors import RadbillError


@click.group("invoice")
def invoice_group() -> None:
    """Monthly invoices (radbill report invoices lists them)."""


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


@click.group("payment")
def payment_group() -> None:
    """Payments received, and their receipts."""


@payment_group.command("list")
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


@payment_group.command("receipt")
@click.argument("receipt", type=ROW_ID)
@click.pass_obj
def payment_receipt(obj: Context, receipt: int) -> None:
    """The receipt of one payment."""
    with obj.engine.begin() as connection:
        row = invoices.receipt(connection, obj.actor(connection), receipt)
    emit_record(shown(row, "amount"))


COMMANDS = [invoice_group, payment_group]
