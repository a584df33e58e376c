"""bring audit events written before the hash chain into it

Revision 0005 added the hash chain but left the events written before it without a hash, and
`audit verify` skipped rows without one: an event inserted straight into the database was shown
by `/apikey audit` while verify said "intact". Verify now treats a row without a proper hash as
tampering. So that an install older than 0005 does not report its own history as tampered,
this chains those legacy rows, but only when every unhashed row comes before the first hashed
one (history from before the chain existed). An unhashed row after that point was not written
by the bot: it is left as it is, for verify to report.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:40:00
"""

import sqlalchemy as sa
from alembic import op

from storage.audit import rechain_all

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    first_hashed = connection.execute(
        sa.text("SELECT MIN(id) FROM audit_events WHERE hash IS NOT NULL")
    ).scalar()
    unhashed = sa.text("SELECT MAX(id) FROM audit_events WHERE hash IS NULL")
    last_unhashed = connection.execute(unhashed).scalar()
    if last_unhashed is None:
        return
    if first_hashed is None or last_unhashed < first_hashed:
        rechain_all(connection)


def downgrade() -> None:
    """Nothing to undo: the hashes describe the rows as they are."""
