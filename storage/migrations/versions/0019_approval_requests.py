"""approvals: changes held until a second person approves them, their material sealed

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("at_stake", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("account_alias", sa.String(length=80), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("api_key_masked", sa.String(length=16), nullable=True),
        sa.Column("owner_user_id", sa.String(length=32), nullable=True),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=32), nullable=True),
        sa.Column("approved_by", sa.JSON(), nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("form", sa.JSON(), nullable=True),
        sa.Column("permissions_json", sa.JSON(), nullable=True),
        sa.Column("api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("seal_key_id", sa.String(length=64), nullable=True),
        sa.Column("applied_key_id", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=300), nullable=True),
    )
    op.create_index("ix_approval_requests_team_id", "approval_requests", ["team_id"])
    op.create_index("ix_approval_requests_state", "approval_requests", ["state"])
    op.create_index("ix_approval_requests_key_id", "approval_requests", ["key_id"])
    op.create_index("ix_approval_requests_seal_key_id", "approval_requests", ["seal_key_id"])


def downgrade() -> None:
    op.drop_table("approval_requests")
