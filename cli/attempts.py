"""``radbill attempts USERNAME``: why could this subscriber not log in?

Reads radiusd's radpostauth log (FIELD-NOTES 8): each attempt with its
answer, the reason label radiusd gave, the router and the calling device.
"""

import click

from billingd import reports
from cli.context import Context
from cli.output import emit_table
from cli.params import LIMIT
from schema.identity import canonical_username


@click.command()
@click.argument("username")
@click.option(
    "--limit", type=LIMIT, default=20, show_default=True, help="How many of the latest attempts to show."
)
@click.pass_obj
def attempts(obj: Context, username: str, limit: int) -> None:
    """Show a subscriber's latest authentication attempts, newest first."""
    with obj.engine.begin() as connection:
        rows = reports.attempts(connection, obj.actor(connection), username, limit)
    if not rows and not obj.as_json:
        click.echo(f"no authentication attempts recorded for {canonical_username(username)}")
        return
    emit_table(rows, list(reports.ATTEMPT_COLUMNS))


COMMANDS = [attempts]
