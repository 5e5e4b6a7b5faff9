"""Engines for the two supported databases, set up the same way everywhere.

SQLite is the embedded default: WAL so readers never block the writer,
foreign keys enforced, and a busy timeout so two processes (CLI and radiusd)
wait for each other instead of failing. PostgreSQL goes through psycopg 3.
"""

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import BigInteger, Engine, Text, any_, bindparam, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url

from schema.private_files import create_private_file, private_directory

SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(url: str) -> str:
    """Point plain ``postgresql://`` URLs at the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """Create an engine; for a SQLite file, create its directory too."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            url = _sqlite_file_url(Path(parsed.database), url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_file_url(path: Path, url: str) -> str:
    """Create a new database file owner-only; open one we may not write read-only.

    The file is created 0600 before SQLite opens it, and SQLite gives its -wal
    and -shm files the database file's mode. A database we may only read (a
    copy, another user's) is opened ``mode=ro``; when not even its -shm file
    can be made, nobody is writing it, so it is read as ``immutable``.
    """
    if not path.exists():
        private_directory(path.parent)
        create_private_file(path)
        return url
    if os.access(path, os.W_OK):
        return url
    shared_memory = path.with_name(path.name + "-shm")
    immutable = not shared_memory.exists() and not os.access(path.parent, os.W_OK)
    return f"sqlite:///file:{path.resolve()}?mode=ro{'&immutable=1' if immutable else ''}&uri=true"


def _configure_sqlite(dbapi_connection, _record) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(connection) -> None:
    """Take SQLite's write lock at BEGIN, so a read-then-write transaction
    never fails half-way with "database is locked" when another process wrote
    in between; the busy timeout then makes writers queue politely."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back the UTC instants radbill stores without their zone; give it back."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def bulk_insert(connection, table, rows: list[dict]) -> None:
    """Insert many rows at once: PostgreSQL's COPY, else one executemany.

    Every row names the same columns. COPY moves a hundred thousand rows in
    about a second where psycopg's pipelined executemany takes ten (an import,
    an entry of a hundred thousand ledger lines).
    """
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    names = ", ".join(f'"{name}"' for name in columns)
    json_columns = {column.name for column in table.columns if column.type.__class__.__name__ == "JSON"}
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([json.dumps(row[name]) if name in json_columns else row[name] for name in columns])


SQLITE_CHUNK = 5_000


def rows_among(connection, query, column, values: list):
    """The rows of ``query`` whose ``column`` is one of ``values``, however many there are.

    PostgreSQL gets one array parameter (a bound parameter per value costs
    more to send than the query takes, and stops at 65535); SQLite gets the
    values in chunks (it allows 32766 parameters).
    """
    if not values:
        return
    if connection.dialect.name == "postgresql":
        element = BigInteger if isinstance(values[0], int) else Text
        yield from connection.execute(
            query.where(column == any_(bindparam(None, list(values), type_=ARRAY(element))))
        )
        return
    for start in range(0, len(values), SQLITE_CHUNK):
        yield from connection.execute(query.where(column.in_(values[start : start + SQLITE_CHUNK])))
