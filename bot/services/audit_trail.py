"""Reading the audit trail (admins only), verifying its MAC chain against the checkpoints
read back from outside the database, and taking those checkpoints (daily and on demand)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.job_queue.kinds import JobKind, audit_checkpoint
from bot.job_queue.queue import schedule_jobs, teams_with_pending
from bot.model.audit import AuditEntry, Witness
from bot.services.access import Actor, require_admin
from bot.vocabulary import AuditAction
from storage.audit import ChainReport, Checkpoint, chain_head, record_event, verify_chain
from storage.db import session_scope
from storage.master_keys import SYSTEM_TEAM
from storage.models import AuditEvent

MAX_EVENTS = 200


def audit_entry(row: AuditEvent) -> AuditEntry:
    """An entry of the trail as people read it (never the row itself)."""
    return AuditEntry(
        id=row.id or 0,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        detail=dict(row.detail or {}),
    )


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
                    col(AuditEvent.target) == label,
                    sa.func.lower(AuditEvent.target) == label.lower(),
                )
            )
        rows = session.exec(query.order_by(col(AuditEvent.id).desc()).limit(MAX_EVENTS)).all()
        return [audit_entry(row) for row in rows]


def check_may_verify(*, engine: Engine, actor: Actor) -> None:
    """Before the slow part: only admins verify (a refusal is audited)."""
    require_admin(engine, actor, action="verify the audit trail")


def verify(*, engine: Engine, actor: Actor | None, witness: Witness) -> ChainReport:
    """The whole chain, streamed, compared with the checkpoints ``witness`` read back
    (``actor`` None: the command line, which has the database and the master key anyway)."""
    if actor is not None:
        check_may_verify(engine=engine, actor=actor)
    return verify_chain(engine, checkpoints=witness.checkpoints)


def check_may_checkpoint(*, engine: Engine, actor: Actor) -> None:
    require_admin(engine, actor, action="take an audit checkpoint")


def take_checkpoint(
    *, engine: Engine, actor: Actor | None, now: datetime, source: str | None = None
) -> Checkpoint:
    """The chain's head now, to be posted outside the database. Asked for by a person (an
    admin), it is an audit event itself, written before the head is read so that it counts."""
    if actor is not None:
        check_may_checkpoint(engine=engine, actor=actor)
        with session_scope(engine) as session:
            record_event(
                session,
                team_id=actor.team_id,
                actor=actor.user_id,
                action=AuditAction.AUDIT_CHECKPOINT,
                source=source,
            )
    return chain_head(engine, now=now)


def ensure_checkpoint_job(engine: Engine, *, interval: timedelta, now: datetime) -> None:
    """The daily checkpoint is planned, once (replicas starting at different times share it;
    each run plans the next)."""
    with Session(engine) as session:
        pending = teams_with_pending(session, JobKind.AUDIT_CHECKPOINT)
    if not pending:
        with session_scope(engine) as session:
            schedule_jobs(session, [audit_checkpoint(team_id=SYSTEM_TEAM, due_at=now + interval)])
