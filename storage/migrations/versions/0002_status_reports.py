"""status reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:06:01.006894
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("status_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_status_reports_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_status_reports_team_id"), ["team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("status_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_status_reports_team_id"))
        batch_op.drop_index(batch_op.f("ix_status_reports_created_at"))

    op.drop_table("status_reports")
