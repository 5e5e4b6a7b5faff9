"""A payment reference is recorded once per method and payer

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.create_index(
            "ix_payments_customer_reference", ["method", "reference", "customer_id"], unique=True
        )
        batch_op.create_index(
            "ix_payments_operator_reference", ["method", "reference", "payer_operator_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_index("ix_payments_operator_reference")
        batch_op.drop_index("ix_payments_customer_reference")
