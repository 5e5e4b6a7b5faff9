"""``radbill [--config FILE] [--as LOGIN] [--json] COMMAND``: the entry point."""

import os
import sys
from datetime import datetime, timezone
from functools import cached_property

import click
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from cli.config import load_settings
from schema.engine import make_engine
from schema.errors import RadbillError
from schema.settings import Settings


class Context:
    """What every command gets: settings, the engine, the caller's choices."""

    def __init__(self, config_file: str | None, act_as: str | None, as_json: bool):
        self.config_file = config_file
        self.act_as = act_as
        self.as_json = as_json

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_file)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database.url)

    @property
    def caller(self) -> str:
        """Who runs the command: $RADBILL_OPERATOR, else [cli] operator (default: the admin)."""
        return os.environ.get("RADBILL_OPERATOR") or self.settings.cli.operator

    def actor(self, connection):
        """The operator the command acts as, checked (and --as audited) by the domain layer."""
        from billingd.tenancy import resolve_actor

        return resolve_actor(connection, self.caller, self.act_as)

    def calendar(self):
        from billingd.customers import Calendar

        return Calendar(datetime.now(timezone.utc), self.settings.billingd.zone)


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
@click.option("--config", "config_file", metavar="FILE", help="Configuration file (default: $RADBILL_CONFIG, then /etc/radbill/radbill.toml).")
@click.option("--as", "act_as", metavar="LOGIN", help="Act as this operator (checked against your rights, audited).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output for list and show commands.")
@click.pass_context
def radbill(ctx: click.Context, config_file: str | None, act_as: str | None, as_json: bool) -> None:
    """radbill: RADIUS and billing for MikroTik ISPs."""
    ctx.obj = Context(config_file, act_as, as_json)


def _register() -> None:
    from cli import attempts, billing, cards, customers, daemons, db, demo, enforcement, ledger, nas, operators, packages

    for module in (db, demo, nas, enforcement, daemons, operators, packages, customers, cards, billing, ledger,
                   attempts):
        for command in module.COMMANDS:
            radbill.add_command(command)


_register()
