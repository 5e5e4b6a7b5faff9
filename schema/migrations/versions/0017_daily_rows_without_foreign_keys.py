"""The daily run's per-customer rows (ledger_lines, customer_days) keep no foreign keys

Revision ID: 0017
Revises: 0016

PostgreSQL checks a foreign key with one row-level trigger per row and
reference (a SELECT ... FOR KEY SHARE of the referenced row): for the daily
run over 1,000,000 customers that was 17 of the 20 s of inserting the
ledger lines (four references) and 7 of the 10 s of the paid days (two),
while the rows themselves cost 3 s and 1 s. The rows these referenced are
never deleted (ledger entries and accounts are append-only, customers are
deleted softly), and every writer takes the ids from the rows it has just
read or written; ``radbill ledger verify`` reports a line or a paid day
whose entry, account, book or customer does not exist.

On SQLite a constraint is dropped by rebuilding the table, which drops the
table's triggers (the ledger's append-only guards, the day totals): they
are read from sqlite_master first and created again afterwards.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Each table's references: (columns, referenced table).
REFERENCES = {
    "ledger_lines": (
        ("entry_id", "ledger_entries"),
        ("book_operator_id", "operators"),
        ("debit_account_id", "ledger_accounts"),
        ("credit_account_id", "ledger_accounts"),
    ),
    "customer_days": (("customer_id", "customers"), ("entry_id", "ledger_entries")),
}


def _name(table: str, column: str, referenced: str) -> str:
    return f"fk_{table}_{column}_{referenced}"


def _rebuild(table: str, change) -> None:
    """Apply ``change`` to a batch of ``table``, keeping its triggers (SQLite rebuilds the table)."""
    bind = op.get_bind()
    triggers = []
    if bind.dialect.name == "sqlite":
        triggers = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
            {"table": table},
        ).scalars().all()
    with op.batch_alter_table(table) as batch_op:
        change(batch_op)
    for trigger in triggers:
        op.execute(trigger)


def upgrade() -> None:
    for table, references in REFERENCES.items():

        def drop(batch_op, table=table, references=references):
            for column, referenced in references:
                batch_op.drop_constraint(_name(table, column, referenced), type_="foreignkey")

        _rebuild(table, drop)


def downgrade() -> None:
    for table, references in REFERENCES.items():

        def create(batch_op, table=table, references=references):
            for column, referenced in references:
                batch_op.create_foreign_key(_name(table, column, referenced), referenced, [column], ["id"])

        _rebuild(table, create)
