"""Money as integer minor units, and the day-by-day split of a period's price.

Pure functions: no database, no clock. Amounts are typed by people as
decimals ("500", "499.50") and kept as integer minor units (poisha, cents).
"""

import re
from collections.abc import Iterable

from sqlalchemy import BigInteger, Integer, literal_column
from sqlalchemy.dialects import sqlite

from schema.errors import RadbillError

MINOR_DIGITS = 2
# The largest amount one command may move or set: 1,000,000,000.00. Far inside
# 64 bits, so no sum of such amounts a real ISP makes can overflow a balance
# (SQLite would silently turn an overflowing integer into a float).
MAX_AMOUNT = 10**9 * 10**MINOR_DIGITS
_AMOUNT = re.compile(r"(\d+)(?:\.(\d{1,%d}))?" % MINOR_DIGITS)


def parse_amount(text: str, *, allow_zero: bool = True) -> int:
    """ "499.50" -> 49950. Refuses negatives, thousands separators and more than two decimals."""
    match = _AMOUNT.fullmatch(str(text).strip())
    if match is None:
        raise RadbillError(
            f"invalid amount {text!r}: use digits with at most {MINOR_DIGITS} decimals, like 499.50"
        )
    whole, fraction = match.group(1), (match.group(2) or "").ljust(MINOR_DIGITS, "0")
    amount = int(whole) * 10**MINOR_DIGITS + int(fraction)
    if amount == 0 and not allow_zero:
        raise RadbillError(f"invalid amount {text!r}: must be more than zero")
    check_amount(amount, f"invalid amount {text!r}:")
    return amount


def check_amount(amount: int, what: str = "the amount") -> None:
    """Refuse an amount above the ceiling, :data:`MAX_AMOUNT`."""
    if amount > MAX_AMOUNT:
        raise RadbillError(f"{what} must be at most {format_amount(MAX_AMOUNT)}")


def format_amount(amount: int) -> str:
    """49950 -> "499.50"; -5 -> "-0.05"."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**MINOR_DIGITS)
    return f"{sign}{whole}.{fraction:0{MINOR_DIGITS}d}"


def day_share(price: int, period_days: int, index: int) -> int:
    """What day ``index`` (0-based, taken modulo the period) of a period costs.

    floor(price*(i+1)/n) - floor(price*i/n): the remainder is spread over the
    period so that any ``n`` consecutive days add up to exactly ``price``.
    """
    i = index % period_days
    return price * (i + 1) // period_days - price * i // period_days


def day_share_sql(price: str, period_days: str, index: str) -> str:
    """:func:`day_share` as SQL over the named integer columns, for the set-based daily run.

    Rendered from :func:`day_share` itself (SQLAlchemy integer expressions
    support ``*``, ``//`` and ``%``), so the formula is written once.
    Integer division is the same on SQLite and PostgreSQL for these
    non-negative operands.
    """
    expression = day_share(
        literal_column(price, BigInteger),
        literal_column(period_days, Integer),
        literal_column(index, Integer),
    )
    return str(expression.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def prorated(price: int, period_days: int, indices: Iterable[int]) -> int:
    """The price of the enabled days ``indices`` of a period of ``period_days`` days."""
    return sum(day_share(price, period_days, i) for i in indices)


def proportional(amount: int, part: int, whole: int) -> int:
    """floor(amount * part / whole): refunds never return more than was charged."""
    return amount * part // whole if whole else 0
