"""rotation and scheduler

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 08:22:04.761264
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key", name="uq_scheduled_jobs_dedupe_key"),
    )
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scheduled_jobs_key_id"), ["key_id"], unique=False)
        batch_op.create_index("ix_scheduled_jobs_state_due", ["state", "due_at"], unique=False)

    op.create_table(
        "rotations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("old_masked", sa.String(length=16), nullable=False),
        sa.Column("old_key_type", sa.String(length=8), nullable=False),
        sa.Column("old_api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("old_secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("seal_key_id", sa.String(length=64), nullable=True),
        sa.Column("last_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_probe_result", sa.String(length=200), nullable=True),
        sa.Column("stale_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rotations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rotations_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rotations_seal_key_id"), ["seal_key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rotations_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_rotations_team_id"), ["team_id"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rotation_period_days", sa.Integer(), nullable=False, server_default="90")
        )
        batch_op.add_column(sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("snoozed_until")
        batch_op.drop_column("rotation_period_days")

    with op.batch_alter_table("rotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rotations_team_id"))
        batch_op.drop_index(batch_op.f("ix_rotations_state"))
        batch_op.drop_index(batch_op.f("ix_rotations_seal_key_id"))
        batch_op.drop_index(batch_op.f("ix_rotations_key_id"))

    op.drop_table("rotations")
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_jobs_state_due")
        batch_op.drop_index(batch_op.f("ix_scheduled_jobs_key_id"))

    op.drop_table("scheduled_jobs")
