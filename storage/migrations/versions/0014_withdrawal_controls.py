"""withdrawal whitelist and daily activity review per Binance account

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 14:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on every backend: nullable columns need no table copy.
    op.add_column("binance_accounts", sa.Column("withdraw_whitelist", sa.Boolean(), nullable=True))
    op.add_column(
        "binance_accounts",
        sa.Column("withdraw_whitelist_checked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "binance_accounts",
        sa.Column("activity_reviewed_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would drop and recreate binance_accounts,
    # which api_keys references.
    for column in (
        "activity_reviewed_until",
        "withdraw_whitelist_checked_at",
        "withdraw_whitelist",
    ):
        op.drop_column("binance_accounts", column)
