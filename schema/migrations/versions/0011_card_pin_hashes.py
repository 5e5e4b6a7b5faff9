"""Recharge card PINs are stored as an HMAC under a key kept outside the database, not in clear

Revision ID: 0011
Revises: 0010
"""

import hashlib
import hmac

import sqlalchemy as sa
from alembic import context, op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# As billingd.cards computes them at this revision (a migration does not follow later code).
_KEY_ID_MESSAGE = b"radbill card PIN key id"


def _digest(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("card_batches") as batch_op:
        batch_op.add_column(sa.Column("pin_key_id", sa.String(length=16), nullable=True))
    with op.batch_alter_table("recharge_cards") as batch_op:
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=64), nullable=True))
    batches = sa.table("card_batches", sa.column("id", sa.Integer), sa.column("pin_key_id", sa.String))
    cards = sa.table(
        "recharge_cards", sa.column("id", sa.Integer), sa.column("pin", sa.String), sa.column("pin_hash", sa.String)
    )
    connection = op.get_bind()
    existing = connection.execute(sa.select(cards.c.id, cards.c.pin)).all()
    if existing:
        load_key = context.config.attributes.get("card_pin_key")
        if load_key is None:
            raise RuntimeError("recharge cards hold PINs in clear: run 'radbill db upgrade' to hash them")
        key = load_key()
        connection.execute(sa.update(batches).values(pin_key_id=_digest(key, _KEY_ID_MESSAGE)[:16]))
        for card_id, pin in existing:
            connection.execute(
                sa.update(cards).where(cards.c.id == card_id).values(pin_hash=_digest(key, pin.encode()))
            )
    with op.batch_alter_table("recharge_cards") as batch_op:
        batch_op.alter_column("pin_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_recharge_cards_pin_hash"), ["pin_hash"])
        batch_op.drop_constraint(op.f("uq_recharge_cards_pin"), type_="unique")
        batch_op.drop_column("pin")


def downgrade() -> None:
    raise NotImplementedError("PINs cannot be recovered from their hashes")
