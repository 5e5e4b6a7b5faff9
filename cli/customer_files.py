"""``radbill customer import FILE`` and ``radbill customer export [FILE]``."""

import sys
from pathlib import Path

import click

from billingd import customer_files as domain
from billingd.money import format_amount
from cli.context import Context
from cli.customers import customer_group
from schema.errors import RadbillError
from schema.private_files import open_private


@customer_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "preset",
    type=click.Choice(domain.PRESETS),
    default="radbill",
    show_default=True,
    help="radbill's own CSV, MikroTik `/ppp secret export` (or its CSV), or a FreeRADIUS radcheck/radreply dump.",
)
@click.option(
    "--package", help="Package of rows that name none (a MikroTik profile or FreeRADIUS group otherwise)."
)
@click.option("--owner", metavar="LOGIN", help="Owner of rows that name none (default: you).")
@click.option("--dry-run", is_flag=True, help="Check everything and report, write nothing.")
@click.option(
    "--skip-bad",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Import the good rows and write the bad ones to FILE (radbill's format) instead of importing nothing.",
)
@click.pass_obj
def import_(
    obj: Context, file: Path, preset: str, package, owner, dry_run: bool, skip_bad: Path | None
) -> None:
    """Import subscribers from FILE: all or nothing, every problem reported as row, column, error."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RadbillError(f"cannot read {file}: {getattr(error, 'strerror', None) or error}") from None
    rows, problems = domain.read_rows(text, preset)
    if problems:
        _report(problems)
        raise RadbillError(f"{file} is not a {preset} file")
    with obj.engine.connect() as connection:
        with connection.begin() as transaction:
            with _progress(len(rows)) as advance:
                result = domain.import_customers(
                    connection,
                    obj.actor(connection),
                    rows,
                    calendar=obj.calendar(),
                    package=package,
                    owner=owner,
                    skip_bad=skip_bad is not None,
                    source=file.name,
                    progress=advance,
                )
            if result.problems and skip_bad is None:
                transaction.rollback()
                _report(result.problems)
                raise RadbillError(f"{len(result.problems)} problems in {file}: nothing imported")
            if dry_run:
                transaction.rollback()
    if result.problems:
        _report(result.problems)
        if not dry_run:
            _write_private(skip_bad, result.bad_rows)
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {result.imported} of {result.rows} customers, opening balance {format_amount(result.opening_balance)}"
        + (
            f"; {len(result.bad_rows)} bad rows written to {skip_bad}"
            if result.bad_rows and not dry_run
            else ""
        )
    )


def _report(problems) -> None:
    click.echo("ROW  COLUMN  ERROR", err=True)
    for problem in problems:
        click.echo(f"{problem.row}  {problem.column or '-'}  {problem.error}", err=True)


class _progress:
    """A progress bar on a terminal only; in a pipe or a log, nothing."""

    def __init__(self, total: int):
        self._bar = (
            click.progressbar(length=total, label="checking", file=sys.stderr)
            if sys.stderr.isatty()
            else None
        )

    def __enter__(self):
        if self._bar is None:
            return lambda rows: None
        self._bar.__enter__()
        return self._bar.update

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _write_private(path: Path, rows) -> None:
    """The rows hold passwords: the file is readable by its owner only."""
    with open_private(path, "w") as stream:
        domain.write_csv(rows, stream)


@customer_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def export(obj: Context, file: Path | None) -> None:
    """Write the customers you may change in radbill's import format (passwords included) to FILE or stdout."""
    with obj.engine.begin() as connection:
        rows = domain.export_customers(connection, obj.actor(connection))
    if file is None:
        domain.write_csv(rows, sys.stdout)
        return
    _write_private(file, rows)
    click.echo(f"exported {len(rows)} customers to {file}", err=True)


COMMANDS = []
