"""``radbill enforcement``: the queued router actions (CoA, Disconnect, RouterOS API)."""

import click

from billingd import reports
from cli.context import Context
from cli.output import emit_table
from cli.params import LIMIT, ROW_ID
from schema.tables import JOB_STATUSES


@click.group("enforcement")
def enforcement_group() -> None:
    """Router actions queued by billing and accounting, carried out by billingd."""


@enforcement_group.command("list")
@click.option("--status", type=click.Choice(JOB_STATUSES), help="Only jobs with this status.")
@click.option(
    "--limit",
    type=LIMIT,
    default=100,
    show_default=True,
    help="At most this many, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (same as radbill --json).")
@click.pass_obj
def list_(obj: Context, status: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first, with the last error of each."""
    obj.as_json = obj.as_json or as_json
    with obj.engine.begin() as connection:
        jobs = reports.enforcement_jobs_of(connection, obj.actor(connection), status, limit)
    emit_table(
        jobs,
        [
            "id",
            "customer",
            "nas",
            "action",
            "reason",
            "status",
            "attempts",
            "created_at",
            "not_before",
            "last_error",
        ],
    )


@enforcement_group.command("retry")
@click.argument("job_id", metavar="ID", type=ROW_ID)
@click.pass_obj
def retry(obj: Context, job_id: int) -> None:
    """Run a failed (or waiting) job again now, with a fresh count of attempts."""
    with obj.engine.begin() as connection:
        reports.retry_enforcement(connection, obj.actor(connection), job_id)
    click.echo(f"enforcement job {job_id} is due now")


COMMANDS = [enforcement_group]
