"""``radbill [--config FILE] [--as LOGIN] [--json] COMMAND``: the entry point."""

import sys

import click
from sqlalchemy.exc import DBAPIError, OperationalError

from cli.context import Context
from schema.errors import RadbillError


class RadbillGroup(click.Group):
    """Turns user mistakes into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RadbillError as error:
            _fail(str(error))
        except OperationalError as error:
            _fail(f"cannot use the database: {error.orig}")
        except DBAPIError as error:
            _fail(f"the database refused the change: {error.orig}")


def _fail(message: str) -> None:
    click.echo(f"radbill: error: {message}", err=True)
    sys.exit(1)


@click.group(cls=RadbillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Configuration file (default: $RADBILL_CONFIG, then /etc/radbill/radbill.toml).",
)
@click.option(
    "--as", "act_as", metavar="LOGIN", help="Act as this operator (checked against your rights, audited)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output for list and show commands.")
@click.pass_context
def radbill(ctx: click.Context, config_file: str | None, act_as: str | None, as_json: bool) -> None:
    """radbill: RADIUS and billing for MikroTik ISPs."""
    ctx.obj = Context(config_file, act_as, as_json)


def _register() -> None:
    from cli import (
        attempts,
        billing,
        cards,
        customers,
        daemons,
        db,
        demo,
        enforcement,
        ledger,
        nas,
        online,
        operators,
        packages,
    )

    for module in (
        db,
        demo,
        nas,
        enforcement,
        daemons,
        operators,
        packages,
        customers,
        cards,
        billing,
        ledger,
        attempts,
        online,
    ):
        for command in module.COMMANDS:
            radbill.add_command(command)


_register()
