"""``radbill ledger``: prove the books, correct them with reversing entries."""

import sys

import click

from billingd import corrections, ledger
from cli.context import Context
from cli.params import ROW_ID


@click.group("ledger")
def ledger_group() -> None:
    """The append-only ledger."""


@ledger_group.command("verify")
@click.pass_obj
def verify(obj: Context) -> None:
    """Recompute every balance from the lines; exit 1 on any mismatch."""
    with obj.engine.begin() as connection:
        problems = ledger.verify_as(connection, obj.actor(connection))
    for problem in problems:
        click.echo(f"MISMATCH {problem}")
    if problems:
        click.echo(f"ledger verify: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("ledger verify: every book balances and every cached balance matches")


@ledger_group.command("reverse")
@click.argument("entry", type=ROW_ID)
@click.option("--memo", default="", help="Why (kept in the entry).")
@click.pass_obj
def reverse(obj: Context, entry: int, memo: str) -> None:
    """Post the exact opposite of an entry (the admin's correction), its consequences carried."""
    with obj.engine.begin() as connection:
        reversal = corrections.reverse_as(connection, obj.actor(connection), entry, obj.calendar(), memo)
    click.echo(f"entry #{reversal} reverses entry #{entry}")


COMMANDS = [ledger_group]
