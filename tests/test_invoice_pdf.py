"""The printable invoice: a one-page PDF with the invoice's number, customer, days and amounts."""

from datetime import date

from billingd.invoice_pdf import invoice_pdf

INVOICE = dict(
    number="INV-2026-0001",
    customer="rasel",
    period_start=date(2026, 11, 1),
    period_end=date(2026, 11, 30),
    issued_on=date(2026, 12, 1),
    due_on=date(2026, 12, 8),
    amount=50_000,
    paid_amount=12_050,
    status="open",
)


def test_the_invoice_pdf_shows_what_the_invoice_says():
    pdf = invoice_pdf(INVOICE, issuer="Dhanmondi Net", compress=False)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf.count(b"/Type /Page\n") == 1  # one page
    for text in (b"Dhanmondi Net", b"INV-2026-0001", b"rasel", b"2026-11-01 to 2026-11-30", b"2026-12-08"):
        assert text in pdf, text
    for amount in (b"BDT 500.00", b"BDT 120.50", b"BDT 379.50"):
        assert amount in pdf, amount


def test_names_outside_latin_1_do_not_break_the_page():
    pdf = invoice_pdf({**INVOICE, "customer": "রাসেল"}, issuer="ঢাকা নেট", compress=False)
    assert pdf.startswith(b"%PDF-") and b"?????" in pdf
