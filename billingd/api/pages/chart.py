"""The dashboard's 30-day chart, drawn on the server as SVG.

No script and no chart library reach the browser: the page carries a few
kilobytes of SVG that a slow phone shows at once, and the strict content
security policy holds (presentation attributes, no inline ``style``). Bars are
the active customers of each day (left axis), the line is the day's revenue
(right axis). A table with the same figures follows the chart in the page for
screen readers.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 64, 12, 28


@dataclass(frozen=True)
class DayPoint:
    day: date
    active: int
    revenue: int  # minor units


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _y(value: int, top_value: int) -> float:
    plot = HEIGHT - TOP - BOTTOM
    return TOP + plot - plot * value / top_value


def revenue_chart(points: Sequence[DayPoint], *, title: str, format_money, labels: dict[str, str]) -> str:
    """SVG markup: one bar per day (active customers) and a line (revenue)."""
    count = max(len(points), 1)
    plot_width = WIDTH - LEFT - RIGHT
    slot = plot_width / count
    top_active = nice_ceiling(max((p.active for p in points), default=0))
    top_revenue = nice_ceiling(max((p.revenue for p in points), default=0))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
    ]
    for fraction in (0, 0.5, 1):
        y = _y(round(top_active * fraction), top_active)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d4da" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#333">'
            f"{round(top_active * fraction)}</text>"
        )
        parts.append(
            f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}" font-size="11" fill="#8a3b00">'
            f"{escape(format_money(round(top_revenue * fraction)))}</text>"
        )
    line = []
    for index, point in enumerate(points):
        x = LEFT + index * slot
        y = _y(point.active, top_active)
        bar_height = HEIGHT - BOTTOM - y
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_height:.1f}" '
            f'fill="#2b6cb0"><title>{point.day.isoformat()}: {point.active} {escape(labels["active"])}, '
            f"{escape(format_money(point.revenue))} {escape(labels['revenue'])}</title></rect>"
        )
        line.append(f"{x + slot / 2:.1f},{_y(point.revenue, top_revenue):.1f}")
        last = len(points) - 1
        if index == last or (index % 7 == 0 and last - index >= 3):  # labels that do not overlap
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" '
                f'fill="#333">{point.day.strftime("%d/%m")}</text>'
            )
    if line:
        parts.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="#c05600" stroke-width="2.5" '
            f'stroke-linejoin="round"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
