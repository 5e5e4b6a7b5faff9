"""``radbill radiusd``, ``radbill billingd`` and ``radbill api``: the composition root of each daemon."""

import click

from cli.context import Context, radius_answer


@click.command()
@click.pass_obj
def radiusd(obj: Context) -> None:
    """Run the RADIUS server in the foreground."""
    from radiusd.service import run

    run(obj.settings, obj.engine, obj.reload_settings)


@click.command()
@click.pass_obj
def billingd(obj: Context) -> None:
    """Run the billing daemon in the foreground."""
    from billingd.service import run

    run(obj.settings, obj.engine, obj.reload_settings)


@click.command()
@click.pass_obj
def api(obj: Context) -> None:
    """Run the HTTP API (operators and subscribers) in the foreground."""
    from billingd.api.service import run

    run(obj.settings, obj.engine, obj.reload_settings, decide=radius_answer(obj.settings))


COMMANDS = [radiusd, billingd, api]
