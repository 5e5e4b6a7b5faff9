"""Dated price changes of a price list row (package set --from)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('package_price_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('price_id', sa.Integer(), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('customer_price', sa.BigInteger(), nullable=True),
    sa.Column('operator_price', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['operators.id'], name=op.f('fk_package_price_changes_created_by_operators')),
    sa.ForeignKeyConstraint(['price_id'], ['package_prices.id'], name=op.f('fk_package_price_changes_price_id_package_prices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_package_price_changes'))
    )
    op.create_index(op.f('ix_package_price_changes_price_id'), 'package_price_changes', ['price_id'], unique=False)


def downgrade() -> None:
    op.drop_table("package_price_changes")
