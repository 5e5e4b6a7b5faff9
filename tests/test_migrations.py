"""The migrations build exactly the model, and the database guards the ledger."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from schema import migrate
from schema.engine import make_engine
from schema.tables import ledger_accounts, ledger_entries, ledger_lines, metadata, operators


def test_migrations_produce_exactly_the_metadata(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": False,
                "include_object": migrate.include_object(connection.dialect.name),
            },
        )
        assert compare_metadata(context, metadata) == []
    assert migrate.current(engine) == migrate.head()


def test_upgrade_is_idempotent(engine):
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()


def _post_one_line(connection) -> int:
    admin = connection.execute(insert(operators).values(login="admin", role="admin")).inserted_primary_key[0]
    cash, income = (
        connection.execute(
            insert(ledger_accounts).values(book_operator_id=admin, code=code, kind=kind)
        ).inserted_primary_key[0]
        for code, kind in (("cash", "asset"), ("sales", "income"))
    )
    entry = connection.execute(insert(ledger_entries).values(kind="test")).inserted_primary_key[0]
    connection.execute(
        insert(ledger_lines).values(
            entry_id=entry,
            book_operator_id=admin,
            debit_account_id=cash,
            credit_account_id=income,
            amount=100,
        )
    )
    return entry


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_lines SET amount = 1",
        "DELETE FROM ledger_lines",
        "UPDATE ledger_entries SET memo = 'x'",
        "DELETE FROM ledger_entries",
    ],
)
def test_ledger_rows_cannot_be_changed(engine, statement):
    with engine.begin() as connection:
        _post_one_line(connection)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT amount FROM ledger_lines")).scalar() == 100


def test_a_ledger_line_must_move_money(engine):
    with pytest.raises(DBAPIError):
        with engine.begin() as connection:
            entry = _post_one_line(connection)
            connection.execute(
                insert(ledger_lines).values(
                    entry_id=entry, book_operator_id=1, debit_account_id=1, credit_account_id=2, amount=0
                )
            )


def test_sqlite_runs_with_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/pragmas.sqlite")
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") >= 5000
