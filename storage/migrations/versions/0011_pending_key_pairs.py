"""pending key pairs: private keys the bot generated, waiting for Binance's API key

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_key_pairs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("account_alias", sa.String(length=80), nullable=False),
        sa.Column("owner_user_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("seal_key_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("completed_key_id", sa.String(length=32), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotate_key_id", sa.String(length=32), nullable=True),
        sa.Column("confirm_more", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_key_pairs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_key_pairs_team_id"), ["team_id"])
        batch_op.create_index(batch_op.f("ix_pending_key_pairs_state"), ["state"])
        batch_op.create_index(batch_op.f("ix_pending_key_pairs_seal_key_id"), ["seal_key_id"])


def downgrade() -> None:
    op.drop_table("pending_key_pairs")
