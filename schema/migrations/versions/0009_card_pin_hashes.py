"""Recharge card PINs are stored as their SHA-256, not in clear

Revision ID: 0009
Revises: 0008
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recharge_cards") as batch_op:
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=64), nullable=True))
    cards = sa.table("recharge_cards", sa.column("id", sa.Integer), sa.column("pin", sa.String), sa.column("pin_hash", sa.String))
    connection = op.get_bind()
    for card_id, pin in connection.execute(sa.select(cards.c.id, cards.c.pin)).all():
        connection.execute(
            sa.update(cards).where(cards.c.id == card_id).values(pin_hash=hashlib.sha256(pin.encode()).hexdigest())
        )
    with op.batch_alter_table("recharge_cards") as batch_op:
        batch_op.alter_column("pin_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_recharge_cards_pin_hash"), ["pin_hash"])
        batch_op.drop_constraint(op.f("uq_recharge_cards_pin"), type_="unique")
        batch_op.drop_column("pin")


def downgrade() -> None:
    raise NotImplementedError("PINs cannot be recovered from their hashes")
