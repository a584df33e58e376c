"""credential deliveries: each key's chosen secret sink, and every version written to it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it): a batch copy of api_keys would trip its foreign keys.
    op.add_column("api_keys", sa.Column("delivery_sink", sa.String(length=16), nullable=True))
    op.add_column("pending_key_pairs", sa.Column("delivery", sa.String(length=16), nullable=True))
    op.create_table(
        "credential_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=600), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("api_key_masked", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sink_version", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id", "version", name="uq_credential_deliveries_key_version"),
    )
    with op.batch_alter_table("credential_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credential_deliveries_team_id"), ["team_id"])
        batch_op.create_index(batch_op.f("ix_credential_deliveries_key_id"), ["key_id"])
        batch_op.create_index(batch_op.f("ix_credential_deliveries_state"), ["state"])


def downgrade() -> None:
    op.drop_table("credential_deliveries")
    # Native DROP COLUMN (PostgreSQL; SQLite since 3.35): no batch copy of api_keys.
    op.execute("ALTER TABLE api_keys DROP COLUMN delivery_sink")
    op.execute("ALTER TABLE pending_key_pairs DROP COLUMN delivery")
