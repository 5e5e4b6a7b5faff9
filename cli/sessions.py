"""``radbill session close``: close a session a router lost, in the books (issue 15)."""

import click

from billingd.sessions import close_open_sessions
from cli.context import Context
from cli.output import emit_table
from cli.params import ROW_ID


@click.group()
def session() -> None:
    """Sessions radiusd counts as open (see `radbill online`)."""


@session.command("close")
@click.argument("session_id", metavar="ID", type=ROW_ID, required=False)
@click.option("--user", "username", metavar="USERNAME", help="Close every open session of this user.")
@click.pass_obj
def close(obj: Context, session_id: int | None, username: str | None) -> None:
    """Close SESSION_ID (or --user's open sessions) as Admin-Reset at its last update, counters kept.

    Only the books: simultaneous use stops counting it at once; nothing is sent to the router."""
    with obj.engine.begin() as connection:
        closed = close_open_sessions(
            connection, obj.actor(connection), session_id=session_id, username=username
        )
    rows = [
        dict(
            id=s.id,
            user=s.username,
            nas=s.nas_ip_address,
            session=s.acct_session_id,
            stopped=s.stopped_at.strftime("%Y-%m-%d %H:%M:%S") if s.stopped_at else None,
        )
        for s in closed
    ]
    emit_table(rows, ["id", "user", "nas", "session", "stopped"])


COMMANDS = [session]
