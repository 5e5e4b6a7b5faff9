"""The pages' pure parts: the SVG chart, the message catalogs, the language choice."""

import re
from datetime import date, timedelta
from xml.etree import ElementTree

from billingd.api.pages.chart import DayPoint, nice_ceiling, revenue_chart
from billingd.api.pages.i18n import available_languages, compiled, extract_messages, po_path, read_po
from billingd.money import format_amount

LABELS = {"active": "active customers", "revenue": "revenue"}


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 99, 101, 4999, 50001)] == [
        1,
        1,
        2,
        5,
        10,
        10,
        20,
        100,
        200,
        5000,
        100000,
    ]


def test_the_chart_is_valid_svg_with_a_bar_per_day_and_no_script():
    points = [DayPoint(date(2026, 11, 1) + timedelta(days=i), active=i, revenue=i * 1000) for i in range(30)]
    svg = revenue_chart(points, title="Active & revenue", format_money=format_amount, labels=LABELS)
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bars = root.findall(f"{ns}rect")
    assert len(bars) == 30 and root.find(f"{ns}title").text == "Active & revenue"
    heights = [float(bar.get("height")) for bar in bars]
    assert heights == sorted(heights) and heights[0] == 0  # bars grow with the active count
    assert len(root.find(f"{ns}polyline").get("points").split()) == 30
    assert "<script" not in svg and "style=" not in svg  # allowed by the content security policy
    assert "2026-11-30: 29 active customers, 290.00 revenue" in svg


def test_an_empty_month_still_draws():
    points = [DayPoint(date(2026, 11, 1) + timedelta(days=i), 0, 0) for i in range(30)]
    ElementTree.fromstring(revenue_chart(points, title="t", format_money=format_amount, labels=LABELS))


def test_every_message_is_translated_in_every_language():
    messages = {message.id for message in extract_messages() if message.id}
    assert "Dashboard" in messages and "Renewed: one more period bought." in messages  # N_() too
    for language in available_languages()[1:]:
        catalog = read_po(language)
        translated = {message.id: message.string for message in catalog if message.id}
        assert messages <= set(translated), f"{language}: run python -m billingd.api.pages.i18n"
        for message in messages:
            assert translated[message], f"{language}: {message!r} is not translated"
            placeholders = lambda text: sorted(re.findall(r"%\((\w+)\)s", text))  # noqa: E731
            assert placeholders(translated[message]) == placeholders(message), message


def test_the_compiled_catalogs_are_up_to_date():
    assert available_languages() == ["en", "bn"]
    for language in available_languages()[1:]:
        assert po_path(language).with_suffix(".mo").read_bytes() == compiled(language), (
            f"{language}: the .mo is stale: run python -m billingd.api.pages.i18n"
        )
