"""The ledger cannot be rewritten by REPLACE, and its accounts are append-only too

On SQLite, ``INSERT OR REPLACE`` / ``REPLACE INTO`` deletes a conflicting row
without firing its DELETE trigger (recursive_triggers is off by default), so
a ledger line could be rewritten in place. A BEFORE INSERT trigger on each
ledger table refuses a row whose key is already taken, whatever the conflict
clause. ``ledger_accounts`` gets the same protection as the entries and
lines on both databases: no UPDATE, DELETE (or TRUNCATE) of an account.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Each ledger table and the keys a REPLACE could collide on.
UNIQUE_KEYS = {
    "ledger_entries": ("id = NEW.id", "idempotency_key = NEW.idempotency_key"),
    "ledger_lines": ("id = NEW.id",),
    "ledger_accounts": ("id = NEW.id", "book_operator_id = NEW.book_operator_id AND code = NEW.code"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, keys in UNIQUE_KEYS.items():
            taken = " OR ".join(f"({key})" for key in keys)
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {taken}) "
                f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {table} rows cannot be replaced'); END"
            )
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_accounts_no_{verb.lower()} BEFORE {verb} ON ledger_accounts "
                "BEGIN SELECT RAISE(ABORT, 'ledger is append-only: ledger_accounts rows cannot be changed'); END"
            )
        return
    op.execute(
        "CREATE TRIGGER ledger_accounts_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_accounts "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in UNIQUE_KEYS:
            op.execute(f"DROP TRIGGER {table}_no_replace")
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER ledger_accounts_no_{verb}")
        return
    op.execute("DROP TRIGGER ledger_accounts_append_only ON ledger_accounts")
