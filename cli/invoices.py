"""``radbill invoice show NUMBER [--pdf FILE]``: one invoice, and its printable page."""

from pathlib import Path

import click

from billingd import reports
from billingd.invoice_pdf import invoice_pdf
from cli.context import Context
from cli.money import shown
from cli.output import emit_record
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


COMMANDS = [invoice_group]
