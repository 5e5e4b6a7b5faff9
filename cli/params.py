"""Bounded click types for numbers, so a number too large for the database is a
one-line usage error instead of an overflow deep in a driver."""

import click

# A row id: anything above a signed 64-bit integer names no row.
ROW_ID = click.IntRange(1, 2**63 - 1)
# How many rows a list shows.
LIMIT = click.IntRange(1, 100_000)
# A TCP or UDP port.
PORT = click.IntRange(1, 65535)
