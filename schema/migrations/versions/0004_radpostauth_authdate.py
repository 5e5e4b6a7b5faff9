"""radpostauth is pruned by age: an index on authdate

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_radpostauth_authdate", "radpostauth", ["authdate"])


def downgrade() -> None:
    op.drop_index("ix_radpostauth_authdate", "radpostauth")
