"""``radbill db``: schema migrations."""

import click

from cli.context import Context
from schema import migrate


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.option(
    "--grant-to",
    "role",
    metavar="ROLE",
    help="PostgreSQL: let this role (which does not own the tables) run the daemons; see README.",
)
@click.pass_obj
def upgrade(obj: Context, role: str | None) -> None:
    """Create or migrate the database to the latest schema."""
    migrate.upgrade(obj.engine, grant_to=role, card_pin_key=obj.card_pin_key)
    click.echo(
        f"database at revision {migrate.current(obj.engine)}" + (f"; {role} may use it" if role else "")
    )


@db.command()
@click.pass_obj
def current(obj: Context) -> None:
    """Show the database's schema revision and the latest one."""
    revision = migrate.current(obj.engine)
    head = migrate.head()
    state = "up to date" if revision == head else f"behind: run 'radbill db upgrade' to reach {head}"
    click.echo(f"{revision or 'empty'} ({state})")


COMMANDS = [db]
