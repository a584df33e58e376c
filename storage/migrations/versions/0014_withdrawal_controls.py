"""withdrawal whitelist and daily activity review per Binance account

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-04 14:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("binance_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdraw_whitelist", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("withdraw_whitelist_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("activity_reviewed_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("binance_accounts", schema=None) as batch_op:
        batch_op.drop_column("activity_reviewed_until")
        batch_op.drop_column("withdraw_whitelist_checked_at")
        batch_op.drop_column("withdraw_whitelist")
