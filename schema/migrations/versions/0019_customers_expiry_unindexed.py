"""No index on customers.expires_at, so that the daily run's update of every customer is HOT again

Revision ID: 0019
Revises: 0018

The daily run moves every daily customer's wallet and paid time (expires_at).
The customers table has fillfactor 50 (revision 0001) so that those updates
are heap-only (HOT): no index is written. Revision 0015's dashboard indexes
put expires_at in two indexes, and PostgreSQL makes an update that changes
an indexed column write a new entry in every index of the table: updating
1,000,000 customers' wallet and expiry took 35.9 s instead of 8.7 s (loaded,
``tests/bench/daily_run.py --floor``), most of the difference in the trigram
search index, whose text had not changed. ix_customers_states keeps its
other columns; ix_customers_expiring goes (the dashboard's expiring list and
its count of lapsed customers read the table instead: tens of milliseconds
at 100,000 customers).
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

LIVE = "deleted_at IS NULL"
STATES_INCLUDE = ["status_reason", "deleted_at", "id", "package_id"]


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("ix_customers_expiring")
        batch_op.drop_index("ix_customers_states")
        batch_op.create_index(
            "ix_customers_states", ["operator_id", "status"], postgresql_include=STATES_INCLUDE
        )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_index("ix_customers_states")
        batch_op.create_index(
            "ix_customers_states", ["operator_id", "status", "expires_at"], postgresql_include=STATES_INCLUDE
        )
        batch_op.create_index(
            "ix_customers_expiring",
            ["expires_at"],
            postgresql_where=sa.text(f"{LIVE} AND status = 'active'"),
            sqlite_where=sa.text(f"{LIVE} AND status = 'active'"),
        )
