"""Printing results: aligned columns for people, JSON for scripts (--json)."""

import dataclasses
import json
from datetime import date, datetime

import click


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _as_dict(record) -> dict:
    return dataclasses.asdict(record) if dataclasses.is_dataclass(record) else dict(record)


def emit_table(records, columns: list[str]) -> None:
    """Print records (dicts or dataclasses) as a table, or as a JSON list."""
    rows = [_as_dict(record) for record in records]
    if click.get_current_context().obj.as_json:
        click.echo(json.dumps(rows, default=_plain, indent=2))
        return
    cells = [[("" if row.get(col) is None else str(_plain(row.get(col)))) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(line[i]) for line in cells]) for i, col in enumerate(columns)]
    click.echo("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths)).rstrip())
    for line in cells:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def emit_record(record, hidden: tuple[str, ...] = ()) -> None:
    """Print one record as "key: value" lines, or as a JSON object."""
    row = {key: value for key, value in _as_dict(record).items() if key not in hidden}
    if click.get_current_context().obj.as_json:
        click.echo(json.dumps(row, default=_plain, indent=2))
        return
    width = max(len(key) for key in row)
    for key, value in row.items():
        click.echo(f"{key.ljust(width)}  {'' if value is None else _plain(value)}")
