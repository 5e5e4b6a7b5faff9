"""The notice outbox (SMS broadcasts, expiry reminders, low-wallet warnings)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("operator_id", sa.Integer),
        sa.Column("customer_id", sa.Integer),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.String(160), nullable=False),
        sa.Column("status", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("not_before", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("kind IN ('broadcast', 'expiry', 'low_wallet')", name=op.f("ck_notice_outbox_kind")),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_notice_outbox_status")),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"], name=op.f("fk_notice_outbox_operator_id_operators")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_notice_outbox_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notice_outbox_dedupe_key")),
    )
    op.create_index("ix_notice_outbox_pending", "notice_outbox", ["status", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_notice_outbox_pending", "notice_outbox")
    op.drop_table("notice_outbox")
