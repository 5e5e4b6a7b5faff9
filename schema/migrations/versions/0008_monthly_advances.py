"""Prepaid operators pay a monthly customer's cycle at its start

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monthly_advances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("settled_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_monthly_advances_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entries.id"], name=op.f("fk_monthly_advances_entry_id_ledger_entries")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_monthly_advances_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["settled_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_monthly_advances_settled_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_advances")),
    )
    with op.batch_alter_table("monthly_advances") as batch_op:
        batch_op.create_index("ix_monthly_advances_open", ["customer_id", "settled_entry_id"], unique=False)


def downgrade() -> None:
    op.drop_table("monthly_advances")
