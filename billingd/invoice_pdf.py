"""A printable invoice: one A4 page with fpdf2, from the invoice read model.

The page uses PDF's built-in Helvetica, so it needs no font file; names are
printed in Latin-1 and an amount is written with the currency code (BDT),
because the taka sign and Bengali script need a shaping engine and an
embedded Bengali font (FIELD-NOTES 37).
"""

from datetime import date

from fpdf import FPDF

from billingd.money import format_amount

CURRENCY = "BDT"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value).encode("latin-1", "replace").decode("latin-1")


def invoice_pdf(invoice: dict, *, issuer: str, compress: bool = True) -> bytes:
    """The PDF of ``invoice`` (number, customer, period, issued and due days, amounts in minor units)."""
    pdf = FPDF(format="A4")
    pdf.set_compression(compress)
    pdf.set_title(f"Invoice {invoice['number']}")
    pdf.set_creator("radbill")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, _text(issuer), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 12)
    pdf.cell(0, 8, f"Invoice {_text(invoice['number'])}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    rows = [
        ("Customer", invoice.get("customer") or invoice.get("username")),
        ("Period", f"{_text(invoice.get('period_start'))} to {_text(invoice.get('period_end'))}"),
        ("Issued", invoice.get("issued_on")),
        ("Due", invoice.get("due_on")),
        ("Status", invoice.get("status")),
    ]
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(40, 8, label)
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(0, 8, _text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    amount, paid = invoice["amount"], invoice.get("paid_amount", 0)
    for label, value, bold in (
        ("Amount", amount, False),
        ("Paid", paid, False),
        ("Open", amount - paid, True),
    ):
        pdf.set_font("Helvetica", "B" if bold else "", 12)
        pdf.cell(120, 9, label, border="T")
        pdf.cell(
            0, 9, f"{CURRENCY} {format_amount(value)}", border="T", align="R", new_x="LMARGIN", new_y="NEXT"
        )
    return bytes(pdf.output())
