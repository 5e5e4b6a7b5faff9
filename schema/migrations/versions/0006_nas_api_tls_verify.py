"""The RouterOS API over TLS checks the router's certificate: a CA file or a fingerprint per NAS, or an opt-out

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nas", sa.Column("api_tls_ca_file", sa.String(length=255), nullable=True))
    op.add_column("nas", sa.Column("api_tls_fingerprint", sa.String(length=64), nullable=True))
    op.add_column(
        "nas", sa.Column("api_tls_verify", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("nas") as batch:
        batch.drop_column("api_tls_verify")
        batch.drop_column("api_tls_fingerprint")
        batch.drop_column("api_tls_ca_file")
