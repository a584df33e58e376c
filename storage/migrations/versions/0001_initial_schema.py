"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 07:59:20.802019
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("target_key_id", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_target_key_id"), ["target_key_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_events_team_id"), ["team_id"], unique=False)

    op.create_table(
        "binance_accounts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "alias", name="uq_binance_accounts_team_alias"),
    )
    with op.batch_alter_table("binance_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_binance_accounts_team_id"), ["team_id"], unique=False)

    op.create_table(
        "crypto_canaries",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("owner_user_id", sa.String(length=32), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("key_type", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("api_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("seal_key_id", sa.String(length=64), nullable=True),
        sa.Column("api_key_masked", sa.String(length=16), nullable=False),
        sa.Column("api_key_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("secret_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("permissions_json", sa.JSON(), nullable=True),
        sa.Column("permissions_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["binance_accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_api_keys_api_key_fingerprint"), ["api_key_fingerprint"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_api_keys_owner_user_id"), ["owner_user_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_api_keys_seal_key_id"), ["seal_key_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_api_keys_secret_fingerprint"), ["secret_fingerprint"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_api_keys_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_keys_team_id"), ["team_id"], unique=False)
        batch_op.create_index(
            "uq_api_keys_team_label_live",
            ["team_id", "label"],
            unique=True,
            sqlite_where=sa.text("status NOT IN ('revoked', 'removed')"),
            postgresql_where=sa.text("status NOT IN ('revoked', 'removed')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_api_keys_team_label_live",
            sqlite_where=sa.text("status NOT IN ('revoked', 'removed')"),
            postgresql_where=sa.text("status NOT IN ('revoked', 'removed')"),
        )
        batch_op.drop_index(batch_op.f("ix_api_keys_team_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_status"))
        batch_op.drop_index(batch_op.f("ix_api_keys_secret_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_api_keys_seal_key_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_owner_user_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_api_key_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_api_keys_account_id"))

    op.drop_table("api_keys")
    op.drop_table("crypto_canaries")
    with op.batch_alter_table("binance_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_binance_accounts_team_id"))

    op.drop_table("binance_accounts")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_team_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_target_key_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
