"""``radbill ledger``: prove the books, correct them with reversing entries."""

import sys

import click

from billingd import corrections, ledger
from cli.context import Context
from cli.params import ROW_ID
from schema.errors import RadbillError


@click.group("ledger")
def ledger_group() -> None:
    """The append-only ledger."""


@ledger_group.command("verify")
@click.pass_obj
def verify(obj: Context) -> None:
    """Recompute every balance from the lines; exit 1 on any mismatch."""
    with obj.engine.begin() as connection:
        actor = obj.actor(connection)
        actor.require("money", "verify the ledger")
        _require_admin_side(actor, "verify every book")
        problems = ledger.verify(connection)
    for problem in problems:
        click.echo(f"MISMATCH {problem}")
    if problems:
        click.echo(f"ledger verify: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo("ledger verify: every book balances and every cached balance matches")


def _require_admin_side(actor, what: str) -> None:
    if not actor.is_admin:
        raise RadbillError(f"{actor.login} may not {what}: only the admin side may")


@ledger_group.command("reverse")
@click.argument("entry", type=ROW_ID)
@click.option("--memo", default="", help="Why (kept in the entry).")
@click.pass_obj
def reverse(obj: Context, entry: int, memo: str) -> None:
    """Post the exact opposite of an entry (the admin's correction), its consequences carried."""
    with obj.engine.begin() as connection:
        actor = obj.actor(connection)
        actor.require("money", "reverse ledger entries")
        _require_admin_side(actor, "reverse ledger entries")
        reversal = corrections.reverse_entry(connection, actor.caller_id, entry, obj.calendar(), memo)
    click.echo(f"entry #{reversal} reverses entry #{entry}")


COMMANDS = [ledger_group]
