"""Reading the audit trail (admins only) and verifying its hash chain."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.model.audit import AuditEntry
from bot.services.access import Actor, require_admin
from storage.audit import ChainReport, verify_chain
from storage.models import AuditEvent

MAX_EVENTS = 200


def read_trail(
    *, engine: Engine, actor: Actor, label: str | None, days: int, now: datetime
) -> list[AuditEntry]:
    """The newest events of the last ``days`` days (of one key's label, if given)."""
    require_admin(engine, actor, action="read the audit trail")
    with Session(engine) as session:
        query = select(AuditEvent).where(
            AuditEvent.team_id == actor.team_id, col(AuditEvent.at) >= now - timedelta(days=days)
        )
        if label:
            # the label as written or in another case, as commands match labels
            query = query.where(
                sa.or_(
                    AuditEvent.target == label, sa.func.lower(AuditEvent.target) == label.lower()
                )
            )
        rows = session.exec(query.order_by(col(AuditEvent.id).desc()).limit(MAX_EVENTS)).all()
        return [AuditEntry.of(row) for row in rows]


def verify(*, engine: Engine, actor: Actor) -> ChainReport:
    require_admin(engine, actor, action="verify the audit trail")
    return verify_chain(engine)
