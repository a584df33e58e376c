"""slack deliveries (one effect per request, whatever Slack retries)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 11:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_deliveries",
        sa.Column("delivery_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_key"),
    )
    op.create_index(
        op.f("ix_slack_deliveries_received_at"), "slack_deliveries", ["received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_slack_deliveries_received_at"), table_name="slack_deliveries")
    op.drop_table("slack_deliveries")
