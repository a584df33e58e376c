"""one live row per API key (replicas registering the same key at once)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LIVE = sa.text("status NOT IN ('revoked', 'removed')")


def upgrade() -> None:
    op.create_index(
        "uq_api_keys_team_fingerprint_live",
        "api_keys",
        ["team_id", "api_key_fingerprint"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_api_keys_team_fingerprint_live", table_name="api_keys")
