"""Nothing rewrites the ledger: not REPLACE on SQLite, not an UPDATE or DELETE of an
account, and on PostgreSQL not the daemons' own role (it does not own the tables)."""

import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from schema.engine import make_engine
from schema.tables import customers, ledger_accounts, ledger_lines
from tests.conftest import Cli


@pytest.fixture
def demo(cli):
    cli("demo")
    return cli


def test_sqlite_replace_cannot_rewrite_ledger_rows(demo, engine):
    """REPLACE deletes the old row without firing the DELETE trigger; a BEFORE INSERT trigger refuses it."""
    if engine.dialect.name != "sqlite":
        pytest.skip("REPLACE is SQLite's")
    with engine.connect() as connection:
        line = connection.execute(select(ledger_lines).order_by(ledger_lines.c.id)).mappings().first()
        wallet = connection.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.customer_id).where(
                ledger_accounts.c.customer_id.is_not(None)
            )
        ).first()
    statements = [
        (
            "INSERT OR REPLACE INTO ledger_lines (id, entry_id, book_operator_id, debit_account_id, "
            "credit_account_id, amount) VALUES (:id, :entry_id, :book_operator_id, :debit_account_id, "
            ":credit_account_id, 1)",
            dict(line),
        ),
        ("REPLACE INTO ledger_entries (id, kind, memo) SELECT id, kind, 'rewritten' FROM ledger_entries", {}),
        (
            "REPLACE INTO ledger_accounts (id, book_operator_id, code, kind, name) "
            "SELECT id, book_operator_id, code, 'asset', 'x' FROM ledger_accounts",
            {},
        ),
    ]
    for statement, values in statements:
        with pytest.raises(IntegrityError, match="ledger is append-only"), engine.begin() as connection:
            connection.execute(text(statement), values)
    # The attack's second half (a matching change to the cached wallet) is now caught on its own.
    with engine.begin() as connection:
        connection.execute(
            update(customers).where(customers.c.id == wallet.customer_id).values(wallet_balance=1)
        )
    assert "MISMATCH" in demo("ledger", "verify", expect_exit=1).output


@pytest.mark.parametrize(
    "statement", ["UPDATE ledger_accounts SET name = 'x'", "DELETE FROM ledger_accounts"]
)
def test_ledger_accounts_are_append_only(demo, engine, statement):
    with pytest.raises(DBAPIError, match="ledger is append-only"), engine.begin() as connection:
        connection.execute(text(statement))


@pytest.mark.postgresql
def test_daemons_run_as_a_role_that_cannot_disable_the_triggers(cli, engine, database_url):
    if engine.dialect.name != "postgresql":
        pytest.skip("roles are PostgreSQL's")
    role = f"radbill_app_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
    cli("db", "upgrade", "--grant-to", role)
    app = Cli(database_url.replace("postgresql+psycopg://postgres@", f"postgresql+psycopg://{role}@"))
    # Everything the CLI and the daily run do works as that role...
    app("demo")
    app("customer", "topup", "demo", "10")
    app("billing", "run")
    app("ledger", "verify")
    # ...but it cannot rewrite the ledger, nor switch its triggers off.
    app_engine = make_engine(app.env["RADBILL_DATABASE_URL"])
    try:
        for statement in (
            "UPDATE ledger_lines SET amount = 1",
            "DELETE FROM ledger_accounts",
            "TRUNCATE ledger_entries CASCADE",
            "ALTER TABLE ledger_lines DISABLE TRIGGER ALL",
            "DROP TRIGGER ledger_lines_append_only ON ledger_lines",
            "UPDATE alembic_version SET version_num = 'x'",
        ):
            with pytest.raises(DBAPIError, match="permission denied|must be owner"), app_engine.begin() as c:
                c.execute(text(statement))
    finally:
        app_engine.dispose()


def test_grant_to_is_refused_on_sqlite_and_for_an_unknown_role(cli, engine):
    message = (
        "--grant-to is for PostgreSQL" if engine.dialect.name == "sqlite" else "no PostgreSQL role 'ghost'"
    )
    result = cli("db", "upgrade", "--grant-to", "ghost", expect_exit=1)
    assert result.stderr.startswith(f"radbill: error: {message}")
