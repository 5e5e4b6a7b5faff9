"""Printing results: aligned columns for people, JSON for scripts (--json).

Both formats print the same fields: a table's columns are also the keys of
its JSON objects, so a record can carry more than a command means to show.
Secrets (a router's RADIUS secret and API password, any password) are never
printed, whatever a command passes in (the one-time display of a password
radbill generated is its own line, not a record).
"""

import dataclasses
import json
from datetime import date, datetime

import click

SECRET_FIELDS = frozenset({"secret", "api_password", "password", "password_hash", "token"})


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _as_dict(record) -> dict:
    return dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)


def emit_json(document) -> None:
    """Print one JSON document; dates, datetimes and dataclasses as emit_table prints them."""
    click.echo(json.dumps(document, default=_plain, indent=2))


def emit_table(records, columns: list[str]) -> None:
    """Print records (dicts or dataclasses) as a table, or as a JSON list of the same columns."""
    columns = [column for column in columns if column not in SECRET_FIELDS]
    rows = [_as_dict(record) for record in records]
    if click.get_current_context().obj.as_json:
        click.echo(
            json.dumps(
                [{col: row[col] for col in columns if col in row} for row in rows], default=_plain, indent=2
            )
        )
        return
    cells = [[("" if row.get(col) is None else str(_plain(row.get(col)))) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(line[i]) for line in cells]) for i, col in enumerate(columns)]
    click.echo("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths)).rstrip())
    for line in cells:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def emit_record(record) -> None:
    """Print one record as "key: value" lines, or as a JSON object (secrets left out, see module)."""
    row = {key: value for key, value in _as_dict(record).items() if key not in SECRET_FIELDS}
    if click.get_current_context().obj.as_json:
        click.echo(json.dumps(row, default=_plain, indent=2))
        return
    width = max(len(key) for key in row)
    for key, value in row.items():
        click.echo(f"{key.ljust(width)}  {'' if value is None else _plain(value)}")
