"""``radbill attempts USERNAME``: why could this subscriber not log in?

Reads radiusd's radpostauth log (FIELD-NOTES 8): each attempt with its
answer, the reason label radiusd gave, the router and the calling device.
"""

import click
from sqlalchemy import select

from cli.context import Context
from cli.output import emit_table
from cli.params import LIMIT
from schema.identity import canonical_username
from schema.tables import radpostauth

COLUMNS = ["authdate", "reply", "reason", "nasipaddress", "callingstationid"]


@click.command()
@click.argument("username")
@click.option(
    "--limit", type=LIMIT, default=20, show_default=True, help="How many of the latest attempts to show."
)
@click.pass_obj
def attempts(obj: Context, username: str, limit: int) -> None:
    """Show a subscriber's latest authentication attempts, newest first."""
    name = canonical_username(username)
    query = (
        select(*(radpostauth.c[column] for column in COLUMNS))
        .where(radpostauth.c.username == name)
        .order_by(radpostauth.c.authdate.desc(), radpostauth.c.id.desc())
        .limit(limit)
    )
    with obj.engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    if not rows and not obj.as_json:
        click.echo(f"no authentication attempts recorded for {name}")
        return
    emit_table(rows, COLUMNS)


COMMANDS = [attempts]
