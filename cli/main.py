"""``radbill [--config FILE] [--as LOGIN] [--json] COMMAND``: the entry point."""

import sys

import click
from sqlalchemy.exc import DBAPIError, OperationalError

from cli.context import Context
from schema.errors import RadbillError


class RadbillGroup(click.Group):
    """Turns every user mistake into one line on stderr and exit status 1.

    ``standalone_mode=False`` (tests) lets the exceptions through instead, so a
    refusal (:class:`schema.errors.Forbidden` or :class:`~schema.errors.NotFound`) can be told
    from other mistakes.

    That includes click's own usage errors (an unknown option such as ``-5``,
    a value of the wrong type, a bad choice), which click would otherwise
    print as a usage block of several lines with exit status 2.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.exceptions.NoArgsIsHelpError as error:
            _fail(f"missing command (see '{error.ctx.command_path} --help')")
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
            _fail(f"{error.format_message()}{hint}")
        except click.ClickException as error:
            _fail(error.format_message())
        except click.Abort:
            _fail("aborted")
        except RadbillError as error:
            _fail(str(error))
        except OperationalError as error:
            _fail(f"cannot use the database: {error.orig}")
        except DBAPIError as error:
            _fail(f"the database refused the change: {error.orig}")
        sys.exit(0)


def _fail(message: str) -> None:
    """Print ``radbill: error: MESSAGE`` on one line (a database's DETAIL lines are joined) and exit 1."""
    one_line = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    click.echo(f"radbill: error: {one_line}", err=True)
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
        audit,
        billing,
        cards,
        customer_files,
        customers,
        daemons,
        db,
        demo,
        enforcement,
        invoices,
        ledger,
        nas,
        notices,
        online,
        operators,
        packages,
        reports,
        sessions,
        why,
    )

    for module in (
        db,
        demo,
        nas,
        enforcement,
        invoices,
        daemons,
        operators,
        packages,
        customers,
        customer_files,
        cards,
        billing,
        ledger,
        attempts,
        online,
        notices,
        reports,
        why,
        audit,
        sessions,
    ):
        for command in module.COMMANDS:
            radbill.add_command(command)


_register()
