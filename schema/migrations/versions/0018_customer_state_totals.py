"""customer_state_totals: live customers counted per operator and standing, kept by triggers

Revision ID: 0018
Revises: 0017

The dashboard's state counts (active, expired, suspended) read every live
customer's index entry (100,000 at 100,000 customers) on every load. Triggers
on customers keep the counts instead, whoever writes (commands, the daily run,
imports): per operator, the live customers in service (status active), unpaid
(suspended for not paying) and suspended (by an operator, for an operator's
fund, or disabled). Whether one in service has lapsed depends on the time, so
the dashboard still reads those near their expiry from the index.

On PostgreSQL an INSERT or a DELETE is one statement-level trigger with
transition tables: an import of many customers is one grouped upsert. An
UPDATE cannot have both transition tables and a column list, and transition
tables would copy every updated row (seconds for the daily run's million-row
wallet and expiry updates), while upserting the totals per row walks, inside
one transaction, an ever longer chain of versions of the same few rows
(quadratic: 230 s for 100,000 suspensions). So a row-level trigger, only
when a column of the standing changed (``UPDATE OF ... WHEN``), notes the
change in customer_state_changes, and a statement-level trigger folds the
statement's notes into the totals (one grouped upsert) and deletes them: a
renewal or a wallet movement notes nothing (and a transaction setting says
so, so the fold does not even look), and nothing stays noted after a
statement. SQLite, which updates in place, upserts per row. The table starts
from the existing customers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# The standing of a customer row ({row} is NEW, OLD or a transition table's alias);
# billingd.customer_views reads the counts by these names.
STANDING = (
    "CASE WHEN {row}.status = 'active' THEN 'in_service' "
    "WHEN {row}.status = 'suspended' AND {row}.status_reason IN ('expired', 'overdue') THEN 'unpaid' "
    "ELSE 'suspended' END"
)
STANDING_COLUMNS = ("operator_id", "status", "status_reason", "deleted_at")
CHANGED = " OR ".join(
    [f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in STANDING_COLUMNS[:3]]
    + ["(OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)"]
)
# Set (for the transaction) when a row's change was noted: the statement trigger of an UPDATE that
# noted nothing (a renewal, a wallet movement) then does not even look at customer_state_changes.
NOTED = "radbill.customer_states_noted"
# PostgreSQL: the net change of a statement, one upsert per operator and standing that changed, in
# key order (two statements that both change an operator's standings lock its rows in one order).
PG_UPSERT = """
INSERT INTO customer_state_totals (operator_id, standing, customers)
SELECT changes.operator_id, changes.standing, sum(changes.sign) FROM ({changes}) AS changes
GROUP BY changes.operator_id, changes.standing HAVING sum(changes.sign) <> 0
ORDER BY changes.operator_id, changes.standing
ON CONFLICT (operator_id, standing) DO UPDATE
SET customers = customer_state_totals.customers + excluded.customers
"""


def _live_row(row: str, sign: int) -> str:
    """(operator, standing, ``sign``) of one row (NEW or OLD) if it is live, else nothing."""
    return f"SELECT {row}.operator_id, {STANDING.format(row=row)}, {sign} WHERE {row}.deleted_at IS NULL"


def _sqlite_upsert(row: str, sign: int) -> str:
    return (
        f"INSERT INTO customer_state_totals (operator_id, standing, customers) {_live_row(row, sign)} "
        "ON CONFLICT (operator_id, standing) DO UPDATE SET customers = customers + excluded.customers"
    )


def _signed(table: str, sign: int) -> str:
    """The live rows of a transition table as (operator, standing, sign)."""
    return (
        f"SELECT changed.operator_id, {STANDING.format(row='changed')} AS standing, {sign} AS sign "
        f"FROM {table} AS changed WHERE changed.deleted_at IS NULL"
    )


def upgrade() -> None:
    op.create_table(
        "customer_state_totals",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("standing", sa.String(length=10), nullable=False),
        sa.Column("customers", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "standing IN ('in_service', 'unpaid', 'suspended')", name=op.f("ck_customer_state_totals_standing")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_customer_state_totals_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("operator_id", "standing", name=op.f("pk_customer_state_totals")),
    )
    op.create_table(
        "customer_state_changes",
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("standing", sa.String(length=10), nullable=False),
        sa.Column("change", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO customer_state_totals (operator_id, standing, customers) "
        f"SELECT customers.operator_id, {STANDING.format(row='customers')}, count(*) FROM customers "
        "WHERE customers.deleted_at IS NULL GROUP BY 1, 2"
    )
    columns = ", ".join(STANDING_COLUMNS)
    if op.get_bind().dialect.name == "sqlite":
        for name, event, body in (
            ("insert", "INSERT", _sqlite_upsert("NEW", 1)),
            ("delete", "DELETE", _sqlite_upsert("OLD", -1)),
            ("update", f"UPDATE OF {columns}", _sqlite_upsert("OLD", -1) + ";" + _sqlite_upsert("NEW", 1)),
        ):
            when = f" WHEN {CHANGED}" if name == "update" else ""
            op.execute(
                f"CREATE TRIGGER customers_state_totals_{name} AFTER {event} ON customers FOR EACH ROW{when} "
                f"BEGIN {body}; END"
            )
        return
    for name, event, transition, changes in (
        ("insert", "INSERT", "NEW TABLE AS new_rows", _signed("new_rows", 1)),
        ("delete", "DELETE", "OLD TABLE AS old_rows", _signed("old_rows", -1)),
    ):
        _pg_trigger(
            f"customers_state_totals_{name}",
            f"{event} ON customers REFERENCING {transition} FOR EACH STATEMENT",
            PG_UPSERT.format(changes=changes),
        )
    noted = (
        f"PERFORM set_config('{NOTED}', 'yes', true); "
        "INSERT INTO customer_state_changes (operator_id, standing, change) "
        f"{_live_row('OLD', -1)} UNION ALL {_live_row('NEW', 1)}"
    )
    _pg_trigger(
        "customers_state_totals_note",
        f"UPDATE OF {columns} ON customers FOR EACH ROW WHEN ({CHANGED})",
        noted,
    )
    folded = (
        f"IF current_setting('{NOTED}', true) = 'yes' THEN "
        f"PERFORM set_config('{NOTED}', '', true); "
        "WITH noted AS (DELETE FROM customer_state_changes RETURNING operator_id, standing, change) "
        + PG_UPSERT.format(changes="SELECT operator_id, standing, change AS sign FROM noted")
        + "; END IF"
    )
    _pg_trigger("customers_state_totals_update", "UPDATE ON customers FOR EACH STATEMENT", folded)


def _pg_trigger(name: str, when: str, body: str) -> None:
    """A PostgreSQL trigger running ``body`` AFTER ``when``, and its function of the same name."""
    op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$")
    op.execute(f"CREATE TRIGGER {name} AFTER {when} EXECUTE FUNCTION {name}()")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name in ("insert", "delete", "update") if sqlite else ("insert", "delete", "note", "update"):
        if sqlite:
            op.execute(f"DROP TRIGGER customers_state_totals_{name}")
        else:
            op.execute(f"DROP TRIGGER customers_state_totals_{name} ON customers")
            op.execute(f"DROP FUNCTION customers_state_totals_{name}()")
    op.drop_table("customer_state_changes")
    op.drop_table("customer_state_totals")
