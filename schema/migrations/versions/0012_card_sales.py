"""Card distributors' sales: which cards, to whom, the cash and the commission

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_sales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("distributor_id", sa.Integer(), nullable=True),
        sa.Column("buyer", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("commission", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("commission >= 0 AND commission <= amount", name=op.f("ck_card_sales_commission")),
        sa.CheckConstraint("count > 0", name=op.f("ck_card_sales_count")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["operators.id"], name=op.f("fk_card_sales_created_by_operators")
        ),
        sa.ForeignKeyConstraint(
            ["distributor_id"], ["operators.id"], name=op.f("fk_card_sales_distributor_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entries.id"], name=op.f("fk_card_sales_entry_id_ledger_entries")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_card_sales_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_sales")),
    )
    op.create_index(op.f("ix_card_sales_distributor_id"), "card_sales", ["distributor_id"], unique=False)
    op.create_index(op.f("ix_card_sales_operator_id"), "card_sales", ["operator_id"], unique=False)
    op.create_table(
        "card_sale_items",
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_id"], ["recharge_cards.id"], name=op.f("fk_card_sale_items_card_id_recharge_cards")
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["card_sales.id"], name=op.f("fk_card_sale_items_sale_id_card_sales")
        ),
        sa.PrimaryKeyConstraint("card_id", name=op.f("pk_card_sale_items")),
    )
    op.create_index(op.f("ix_card_sale_items_sale_id"), "card_sale_items", ["sale_id"], unique=False)


def downgrade() -> None:
    op.drop_table("card_sale_items")
    op.drop_table("card_sales")
