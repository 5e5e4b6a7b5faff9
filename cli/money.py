"""Amounts on the command line: typed as decimals, shown as decimals.

People see "499.50"; ``--json`` keeps the exact integer minor units.
"""

import click

from billingd.money import format_amount, parse_amount
from schema.errors import RadbillError


class Amount(click.ParamType):
    """A click type: "500" or "499.50" -> integer minor units."""

    name = "AMOUNT"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_amount(value)
        except RadbillError as error:
            self.fail(str(error), param, ctx)


AMOUNT = Amount()


def shown(record: dict, *keys: str) -> dict:
    """The record with its money fields formatted for people (unchanged under --json)."""
    if click.get_current_context().obj.as_json:
        return record
    return {
        key: (format_amount(value) if key in keys and isinstance(value, int) else value)
        for key, value in record.items()
    }


def payment_options(command):
    """--method and --reference, for every command that records money received."""
    command = click.option("--reference", help="Receipt or transaction reference.")(command)
    return click.option("--method", default="cash", show_default=True, help="cash, bank, bkash, ...")(command)
