"""customer_day_totals: customer days summed per day and owning operator, kept by triggers

Revision ID: 0016
Revises: 0015

The dashboard's 30-day chart summed a month of customer_days (3 million rows
at 100,000 customers) on every computation. Triggers on customer_days keep
the sums instead, whoever writes the days (the daily run, renewals, refunds,
corrections, invoices): on PostgreSQL one statement-level trigger per verb
(with transition tables, so the daily run's bulk insert costs one grouped
upsert), on SQLite a row-level trigger. The day's owner is the customer's
operator when the day is written. The table starts from the existing days.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# (verb, the rows each sign applies to): a deletion subtracts the old rows, an update both.
PG_CHANGES = {
    "INSERT": ("REFERENCING NEW TABLE AS new_rows", "SELECT customer_id, day, amount, 1 AS sign FROM new_rows"),
    "DELETE": ("REFERENCING OLD TABLE AS old_rows", "SELECT customer_id, day, amount, -1 AS sign FROM old_rows"),
    "UPDATE": (
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "SELECT customer_id, day, amount, -1 AS sign FROM old_rows "
        "UNION ALL SELECT customer_id, day, amount, 1 AS sign FROM new_rows",
    ),
}
PG_UPSERT = """
INSERT INTO customer_day_totals (day, operator_id, customers, amount)
SELECT changed.day, customers.operator_id, sum(changed.sign), sum(changed.sign * changed.amount)
FROM ({changes}) AS changed JOIN customers ON customers.id = changed.customer_id
GROUP BY changed.day, customers.operator_id
HAVING sum(changed.sign) <> 0 OR sum(changed.sign * changed.amount) <> 0
ON CONFLICT (day, operator_id) DO UPDATE
SET customers = customer_day_totals.customers + excluded.customers,
    amount = customer_day_totals.amount + excluded.amount
"""
SQLITE_UPSERT = """
INSERT INTO customer_day_totals (day, operator_id, customers, amount)
SELECT {row}.day, operator_id, {sign}, {sign} * {row}.amount FROM customers WHERE id = {row}.customer_id
ON CONFLICT (day, operator_id) DO UPDATE
SET customers = customers + excluded.customers, amount = amount + excluded.amount;
"""
SQLITE_CHANGES = {
    "INSERT": SQLITE_UPSERT.format(row="NEW", sign=1),
    "DELETE": SQLITE_UPSERT.format(row="OLD", sign=-1),
    "UPDATE": SQLITE_UPSERT.format(row="OLD", sign=-1) + SQLITE_UPSERT.format(row="NEW", sign=1),
}


def upgrade() -> None:
    op.create_table(
        "customer_day_totals",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_customer_day_totals_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("day", "operator_id", name=op.f("pk_customer_day_totals")),
    )
    op.execute(
        "INSERT INTO customer_day_totals (day, operator_id, customers, amount) "
        "SELECT customer_days.day, customers.operator_id, count(*), sum(customer_days.amount) "
        "FROM customer_days JOIN customers ON customers.id = customer_days.customer_id "
        "GROUP BY customer_days.day, customers.operator_id"
    )
    if op.get_bind().dialect.name == "sqlite":
        for verb, body in SQLITE_CHANGES.items():
            op.execute(
                f"CREATE TRIGGER customer_days_totals_{verb.lower()} AFTER {verb} ON customer_days "
                f"BEGIN {body} END"
            )
        return
    for verb, (transition, changes) in PG_CHANGES.items():
        name = f"customer_days_totals_{verb.lower()}"
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"{PG_UPSERT.format(changes=changes)}; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {name} AFTER {verb} ON customer_days {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def downgrade() -> None:
    for verb in ("insert", "delete", "update"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER customer_days_totals_{verb}")
        else:
            op.execute(f"DROP TRIGGER customer_days_totals_{verb} ON customer_days")
            op.execute(f"DROP FUNCTION customer_days_totals_{verb}()")
    op.drop_table("customer_day_totals")
