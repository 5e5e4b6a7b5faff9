"""Indexes for the dashboard's figures

Revision ID: 0015
Revises: 0014

The state counts, what a day of an operator's customers costs, the customers
expiring soon, who is online now and today's collections each read a whole
table without these (every customer, every session ever, every payment ever).
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

LIVE = "deleted_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.create_index(
            "ix_customers_states",
            ["operator_id", "status", "expires_at"],
            postgresql_include=["status_reason", "deleted_at", "id", "package_id"],
        )
        batch_op.create_index(
            "ix_customers_expiring",
            ["expires_at"],
            postgresql_where=sa.text(f"{LIVE} AND status = 'active'"),
            sqlite_where=sa.text(f"{LIVE} AND status = 'active'"),
        )
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.create_index(
            "ix_sessions_online",
            ["customer_id"],
            postgresql_where=sa.text("stopped_at IS NULL"),
            sqlite_where=sa.text("stopped_at IS NULL"),
        )
    with op.batch_alter_table("payments") as batch_op:
        batch_op.create_index("ix_payments_created_at", ["created_at"])


def downgrade() -> None:
    for table, index in (
        ("payments", "ix_payments_created_at"),
        ("sessions", "ix_sessions_online"),
        ("customers", "ix_customers_expiring"),
        ("customers", "ix_customers_states"),
    ):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(index)
