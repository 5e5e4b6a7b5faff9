"""``radbill billing``: the day's work, by hand."""

from datetime import datetime

import click

from billingd import reports, runs
from cli.context import Context
from cli.money import shown
from cli.output import emit_table
from cli.params import LIMIT


@click.group("billing")
def billing_group() -> None:
    """Daily charges, monthly invoices, overdue suspensions."""


@billing_group.command("run")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Run up to this day (default: today).")
@click.pass_obj
def run(obj: Context, day: datetime | None) -> None:
    """Do the day's work, catching up missed days in order; a done day is never redone."""
    today = obj.calendar().today
    through = day.date() if day else today
    with obj.engine.begin() as connection:
        runs.check_run(connection, obj.actor(connection), through, today)
    results = runs.run_through(obj.engine, through, obj.settings.billingd)
    rows = [
        shown(
            {
                "day": r.day,
                "charged": r.customers_charged,
                "suspended": r.customers_suspended,
                "amount": r.amount_charged,
                "invoices": r.invoices,
                "state": "already done" if r.already_done else "done",
            },
            "amount",
        )
        for r in results
    ]
    emit_table(rows, ["day", "state", "charged", "amount", "suspended", "invoices"])


@billing_group.command("runs")
@click.option("--limit", type=LIMIT, default=30, show_default=True)
@click.pass_obj
def list_runs(obj: Context, limit: int) -> None:
    """The last days run (a seller sees its own customers' share of each day)."""
    with obj.engine.begin() as connection:
        rows = reports.recent_runs(connection, obj.actor(connection), limit)
    emit_table(
        [shown(row, "amount_charged") for row in rows],
        ["day", "started_at", "finished_at", "customers_charged", "amount_charged", "customers_suspended"],
    )


COMMANDS = [billing_group]
