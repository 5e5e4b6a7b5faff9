"""Schema migrations: the one way a database gets its tables."""

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from schema.errors import RadbillError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection=None, card_pin_key: Callable[[], bytes] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["card_pin_key"] = card_pin_key
    return config


def upgrade(
    engine: Engine,
    revision: str = "head",
    *,
    grant_to: str | None = None,
    card_pin_key: Callable[[], bytes] | None = None,
) -> None:
    """Migrate, and (PostgreSQL) grant a daemon role its rights, in one transaction.

    ``card_pin_key`` loads the key that hashes recharge-card PINs, for a
    revision that hashes PINs an older one kept in clear (called only then).
    """
    if grant_to is not None and engine.dialect.name != "postgresql":
        raise RadbillError("--grant-to is for PostgreSQL: SQLite has no roles")
    with engine.begin() as connection:
        if grant_to is not None:
            _require_role(connection, grant_to)
        command.upgrade(_alembic_config(connection, card_pin_key), revision)
        if grant_to is not None:
            _grant(connection, grant_to)


# Tables a daemon may only read and append to: even a role that can run any
# statement the daemons run cannot rewrite the ledger.
APPEND_ONLY_TABLES = ("ledger_entries", "ledger_lines", "ledger_accounts")


def _require_role(connection: Connection, role: str) -> None:
    if (
        connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first()
        is None
    ):
        raise RadbillError(f"no PostgreSQL role {role!r}: CREATE ROLE it (with LOGIN) first")


def _grant(connection: Connection, role: str) -> None:
    """Let a PostgreSQL role that does not own the tables run radbill's daemons and CLI.

    Only the owner of a table may disable its triggers (ALTER TABLE ... DISABLE
    TRIGGER) or drop them, so daemons connected as such a role cannot switch
    off the ledger's append-only triggers. It gets read and write on every
    table except the ledger's, which it may only read and append to, and
    read-only access to the schema version.
    """
    grantee = connection.dialect.identifier_preparer.quote(role)
    ledger = ", ".join(APPEND_ONLY_TABLES)
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {grantee}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {grantee}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {ledger} FROM {grantee}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {grantee}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {grantee}",
    ):
        connection.execute(text(statement))


def include_object(dialect_name: str):
    """Alembic's ``include_object`` for one database: the metadata's objects that the database
    should have. An index made for one database only (``Index.ddl_if(dialect=...)``, such as
    PostgreSQL's trigram index) is not missing from the other."""

    def include(item, _name, _type, reflected: bool, _compare_to) -> bool:
        only_on = getattr(item, "_ddl_if", None)
        return reflected or only_on is None or only_on.dialect in (None, dialect_name)

    return include


def current(engine: Engine) -> str | None:
    """The database's revision, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
