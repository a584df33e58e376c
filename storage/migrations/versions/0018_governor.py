"""the governor: sub-accounts of a governed master account, keys the bot made through
Binance's sub-account API, the mints in flight, and how an incident's key was contained

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on every backend: nullable columns need no table copy.
    op.add_column(
        "binance_accounts", sa.Column("master_account_id", sa.String(length=32), nullable=True)
    )
    op.add_column(
        "binance_accounts", sa.Column("sub_account_email", sa.String(length=254), nullable=True)
    )
    op.create_index(
        "ix_binance_accounts_master_account_id", "binance_accounts", ["master_account_id"]
    )
    op.add_column("api_keys", sa.Column("created_via", sa.String(length=16), nullable=True))
    op.add_column("api_keys", sa.Column("ip_addresses", sa.JSON(), nullable=True))
    op.add_column("incidents", sa.Column("containment", sa.String(length=16), nullable=True))
    op.add_column(
        "incidents", sa.Column("containment_started_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("incidents", sa.Column("contained_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("incidents", sa.Column("containment_note", sa.String(length=300), nullable=True))
    op.add_column("incidents", sa.Column("quarantined_from", sa.JSON(), nullable=True))
    op.add_column("incidents", sa.Column("successor_key_id", sa.String(length=32), nullable=True))
    op.create_table(
        "governor_mints",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("sub_account_email", sa.String(length=254), nullable=False),
        sa.Column("api_name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("grant", sa.JSON(), nullable=True),
        sa.Column("ip_addresses", sa.JSON(), nullable=True),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("seal_key_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("replaces_key_id", sa.String(length=32), nullable=True),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_key_masked", sa.String(length=16), nullable=True),
        sa.Column("created_key_id", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=300), nullable=True),
    )
    op.create_index("ix_governor_mints_team_id", "governor_mints", ["team_id"])
    op.create_index("ix_governor_mints_state", "governor_mints", ["state"])
    op.create_index("ix_governor_mints_seal_key_id", "governor_mints", ["seal_key_id"])


def downgrade() -> None:
    op.drop_table("governor_mints")
    for column in (
        "successor_key_id",
        "quarantined_from",
        "containment_note",
        "contained_at",
        "containment_started_at",
        "containment",
    ):
        op.drop_column("incidents", column)
    for column in ("ip_addresses", "created_via"):
        op.drop_column("api_keys", column)
    op.drop_index("ix_binance_accounts_master_account_id", "binance_accounts")
    for column in ("sub_account_email", "master_account_id"):
        op.drop_column("binance_accounts", column)
