"""shred the old credentials of rotations whose key already left the bot

Before this revision, removing or revoking a key in the middle of a rotation cancelled the
rotation's probes but left its old credentials sealed in `rotations`. Nothing would ever
probe or shred them again; this clears them and marks those rotations abandoned, the same
as the code now does in the transaction that removes or revokes the key.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE rotations SET state = 'abandoned', old_api_key_sealed = NULL, "
            "old_secret_sealed = NULL, seal_key_id = NULL "
            "WHERE state = 'probing' AND key_id IN "
            "(SELECT id FROM api_keys WHERE status IN ('revoked', 'removed'))"
        )
    )


def downgrade() -> None:
    """Nothing to undo: shredded material cannot come back."""
