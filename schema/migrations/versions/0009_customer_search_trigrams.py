"""A trigram index for the customer search (PostgreSQL)

Revision ID: 0009
Revises: 0008

``customer list --search``, ``GET /customers?search=`` and the panel's search
match a part of the username, name, phone or customer ID (ILIKE '%part%'),
which no B-tree index can answer: without this index every search reads the
whole customers table. pg_trgm ships with PostgreSQL (Debian's postgresql-15
package carries it) and is a trusted extension, so the database owner that
runs ``radbill db upgrade`` may create it. A server without it gets a warning
and searches by reading the table, as before. SQLite has no such index.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("radbill.migrations")

# The expression is schema.tables.customer_search_text, which the search's WHERE repeats.
SEARCH_TEXT = (
    "username || '\n' || name || '\n' || coalesce(phone, '') || '\n' || customer_code"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first()
    if available is None:
        log.warning(
            "PostgreSQL has no pg_trgm extension (install the server's contrib modules): "
            "customer searches will read the whole table"
        )
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX ix_customers_search_trgm ON customers USING gin (({SEARCH_TEXT}) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_customers_search_trgm")
