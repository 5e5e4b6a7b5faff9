"""``radbill audit list``: who did what, acting as whom (login-as shows both)."""

import click

from billingd import credentials
from cli.context import Context
from cli.output import emit_table
from cli.params import LIMIT, ROW_ID


@click.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("list")
@click.option("--limit", type=LIMIT, default=50, show_default=True)
@click.option("--before", type=ROW_ID, help="Only rows with a smaller id (the next page).")
@click.pass_obj
def list_(obj: Context, limit: int, before: int | None) -> None:
    """Audit rows of the operators you see, newest first."""
    with obj.engine.begin() as connection:
        rows = credentials.list_audit(connection, obj.actor(connection), limit=limit, before_id=before)
    emit_table(
        rows, ["id", "created_at", "actor", "acting_as", "action", "target_type", "target_id", "details"]
    )


COMMANDS = [audit_group]
