"""``radbill notice broadcast MESSAGE`` and ``radbill operator contact LOGIN``."""

import click

from billingd import notices as domain
from cli.context import Context
from cli.operators import operator_group
from cli.output import emit_record


@click.group("notice")
def notice_group() -> None:
    """SMS notices (sent by billingd through the gateway in [notices])."""


@notice_group.command("broadcast")
@click.argument("message")
@click.pass_obj
def broadcast(obj: Context, message: str) -> None:
    """Send MESSAGE by SMS to every active reseller and sub-reseller below you."""
    with obj.engine.begin() as connection:
        result = domain.broadcast(connection, obj.actor(connection), message)
    click.echo(f"queued for {result.queued} resellers; billingd sends them")
    if result.without_phone:
        click.echo(f"no phone, not told: {', '.join(result.without_phone)}", err=True)


@operator_group.command("contact")
@click.argument("login")
@click.option("--phone", help="Mobile number notices go to ('' removes it).")
@click.option("--email", help="Email address ('' removes it).")
@click.pass_obj
def contact(obj: Context, login: str, phone: str | None, email: str | None) -> None:
    """Set an operator's phone and email (yourself, or an operator below you)."""
    with obj.engine.begin() as connection:
        record = domain.set_contact(connection, obj.actor(connection), login, phone, email)
    emit_record(record)


COMMANDS = [notice_group]
