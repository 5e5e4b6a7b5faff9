"""Dated spec changes of a master package (master-package set --from)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('master_package_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('master_package_id', sa.Integer(), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['operators.id'], name=op.f('fk_master_package_changes_created_by_operators')),
    sa.ForeignKeyConstraint(['master_package_id'], ['master_packages.id'], name=op.f('fk_master_package_changes_master_package_id_master_packages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_master_package_changes'))
    )
    op.create_index(op.f('ix_master_package_changes_master_package_id'), 'master_package_changes', ['master_package_id'], unique=False)


def downgrade() -> None:
    op.drop_table("master_package_changes")
