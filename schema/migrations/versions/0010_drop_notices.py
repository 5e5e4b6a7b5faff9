"""The notices table, never used: SMS notices go through notice_outbox (0005)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROLES = ("admin", "manager", "reseller", "sub_reseller", "noc", "card_distributor")


def upgrade() -> None:
    op.drop_table("notices")


def downgrade() -> None:
    audiences = ", ".join(f"'{audience}'" for audience in ("all",) + ROLES)
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_operator_id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(length=20), server_default="all", nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(f"audience IN ({audiences})", name=op.f("ck_notices_audience")),
        sa.ForeignKeyConstraint(
            ["sender_operator_id"], ["operators.id"], name=op.f("fk_notices_sender_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
