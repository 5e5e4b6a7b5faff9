"""``radbill why USERNAME``: the latest attempts, open sessions, waiting router jobs, and the next answer."""

from datetime import UTC, datetime

import click

from billingd import reports
from cli.context import Context, radius_answer
from cli.online import SESSION_COLUMNS, session_rows
from cli.output import emit_json, emit_table
from cli.params import LIMIT


@click.command()
@click.argument("username")
@click.option(
    "--limit", type=LIMIT, default=10, show_default=True, help="How many of the latest attempts to show."
)
@click.pass_obj
def why(obj: Context, username: str, limit: int) -> None:
    """Why a subscriber can or cannot log in: what the next Access-Request would get, and the evidence."""
    with obj.engine.begin() as connection:
        found = reports.why(
            connection,
            obj.actor(connection),
            username,
            now=datetime.now(UTC),
            decide=radius_answer(obj.settings),
            limit=limit,
        )
    decision = found.decision
    answer = "Access-Accept" if decision.accept else "Access-Reject"
    attributes = [
        (name, value.hex() if isinstance(value, bytes) else value) for name, value in decision.attributes
    ]
    if obj.as_json:
        document = {
            "username": found.username,
            "next_request": {
                "answer": answer,
                "reason": decision.reason,
                "device": found.device,
                "attributes": [[name, value] for name, value in attributes],
            },
            "attempts": found.attempts,
            "sessions": found.sessions,
            "jobs": found.jobs,
        }
        emit_json(document)
        return
    click.echo(f"{found.username}: the next Access-Request gets {answer} ({decision.reason})")
    click.echo(f"  (PAP with the right password{f' from {found.device}' if found.device else ''})")
    for name, value in attributes:
        click.echo(f"  {name} = {value}")
    click.echo("")
    if found.attempts:
        click.echo(f"Latest attempts (newest first, at most {limit}):")
        emit_table(found.attempts, ["authdate", "reply", "reason", "nasipaddress", "callingstationid"])
    else:
        click.echo("No authentication attempts recorded.")
    click.echo("")
    if found.sessions:
        click.echo("Open sessions:")
        emit_table(session_rows(found.sessions), [column for column in SESSION_COLUMNS if column != "user"])
    else:
        click.echo("No open sessions.")
    click.echo("")
    if found.jobs:
        click.echo("Router jobs not done yet:")
        emit_table(found.jobs, ["id", "action", "reason", "status", "attempts", "last_error", "created_at"])
    else:
        click.echo("No router jobs waiting.")


COMMANDS = [why]
