"""incidents: a commander who leads the response, how a closed incident ended, and the key's
permissions when it was reported (what a false alarm is compared with)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on every backend: nullable columns need no table copy.
    op.add_column("incidents", sa.Column("commander", sa.String(length=32), nullable=True))
    op.add_column("incidents", sa.Column("outcome", sa.String(length=16), nullable=True))
    # Left empty for incidents raised before: what the key could do then is not known any more
    # (checks since may have overwritten it), so those cannot be closed as false alarms.
    op.add_column("incidents", sa.Column("permissions_at_raise", sa.JSON(), nullable=True))
    # Until now whoever raised an incident led it, and every closed incident was handled as
    # a real leak (a false alarm could not be closed as such).
    op.execute("UPDATE incidents SET commander = raised_by WHERE commander IS NULL")
    op.execute("UPDATE incidents SET outcome = 'handled' WHERE state = 'closed'")


def downgrade() -> None:
    for column in ("permissions_at_raise", "outcome", "commander"):
        op.drop_column("incidents", column)
