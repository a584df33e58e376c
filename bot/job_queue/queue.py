"""The job queue in the database: schedule, cancel, claim due jobs with a lease, finish.

Every replica claims from the same table. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; on
SQLite a single UPDATE … RETURNING is atomic (one writer at a time). Claims are leases: a
replica killed mid-work loses nothing, its claims expire and another replica picks them up.
A job's kind is a ``bot.job_queue.kinds.JobKind``; build new jobs with that module's constructors.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.audit import record_events
from storage.db import session_scope
from storage.models import JobState, ScheduledJob

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
# Outcomes are recorded in batches of this many: fewer commits, small duplicate window.
FINISH_BATCH = 250


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    team_id: str
    kind: str
    key_id: str | None
    dedupe_key: str
    due_at: datetime
    attempts: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class NewJob:
    team_id: str
    kind: str
    dedupe_key: str
    due_at: datetime
    key_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    """What a handler decided. ``retry_at`` set: not done, try again then."""

    late: bool = False
    follow_up: tuple[NewJob, ...] = ()
    retry_at: datetime | None = None
    error: str | None = None
    # Audit events (keyword arguments of storage.audit.record_event) written in the same
    # transaction that marks the job done.
    audit: tuple[dict[str, Any], ...] = ()
    # With retry_at: entries merged into the job's payload for the next attempt.
    progress: dict[str, Any] | None = None

    @classmethod
    def retry(cls, at: datetime, error: str, progress: dict[str, Any] | None = None) -> JobOutcome:
        return cls(retry_at=at, error=error[:500], progress=progress)


class PartialProgress(Exception):
    """Raised by a handler that failed after doing part of its work; ``progress`` (JSON) is
    merged into the job's payload so the retry can skip what was done."""

    def __init__(self, progress: dict[str, Any], cause: Exception) -> None:
        super().__init__(f"failed after partial progress: {type(cause).__name__}")
        self.progress = progress
        self.cause = cause


Handler = Callable[[ClaimedJob, datetime], JobOutcome]


def schedule_jobs(session: Session, jobs: Iterable[NewJob]) -> None:
    """Insert jobs, ignoring any whose dedupe_key already exists (at most one per step)."""
    rows = [
        {
            "id": uuid.uuid4().hex,
            "team_id": j.team_id,
            "kind": j.kind,
            "key_id": j.key_id,
            "dedupe_key": j.dedupe_key,
            "due_at": j.due_at,
            "state": JobState.PENDING.value,
            "attempts": 0,
            "late": False,
            "payload": j.payload,
        }
        for j in jobs
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ScheduledJob).on_conflict_do_nothing(index_elements=["dedupe_key"])
    session.exec(statement, params=rows)


def cancel_jobs(session: Session, *, key_id: str, kinds: Iterable[str]) -> int:
    result = session.exec(
        sa.update(ScheduledJob)
        .where(
            col(ScheduledJob.key_id) == key_id,
            col(ScheduledJob.kind).in_(list(kinds)),
            col(ScheduledJob.state) == JobState.PENDING.value,
        )
        .values(state=JobState.CANCELLED.value)
    )
    return result.rowcount


def drop_unsent_jobs(session: Session, *, key_id: str, kinds: Iterable[str], now: datetime) -> int:
    """Delete a key's cancelled jobs and the pending ones no worker holds, so that a new plan
    can reuse their dedupe keys (a plan for the same due date again). Jobs a worker is running
    now are cancelled instead: the step they send keeps its dedupe key, so it is not sent twice.
    """
    kinds = list(kinds)
    same = (col(ScheduledJob.key_id) == key_id, col(ScheduledJob.kind).in_(kinds))
    unheld = sa.or_(col(ScheduledJob.lease_until).is_(None), col(ScheduledJob.lease_until) <= now)
    result = session.exec(
        sa.delete(ScheduledJob).where(
            *same,
            sa.or_(
                col(ScheduledJob.state) == JobState.CANCELLED.value,
                sa.and_(col(ScheduledJob.state) == JobState.PENDING.value, unheld),
            ),
        )
    )
    return result.rowcount + cancel_jobs(session, key_id=key_id, kinds=kinds)


def claim_due_jobs(
    engine: Engine,
    *,
    worker_id: str,
    now: datetime,
    limit: int = 200,
    lease: timedelta = DEFAULT_LEASE,
    kinds: Iterable[str] | None = None,
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to this worker (skipping rows others hold)."""
    due = select(ScheduledJob.id).where(
        col(ScheduledJob.state) == JobState.PENDING.value,
        col(ScheduledJob.due_at) <= now,
        sa.or_(col(ScheduledJob.lease_until).is_(None), col(ScheduledJob.lease_until) < now),
    )
    if kinds is not None:
        due = due.where(col(ScheduledJob.kind).in_(list(kinds)))
    due = due.order_by(col(ScheduledJob.due_at)).limit(limit)
    if engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    statement = (
        sa.update(ScheduledJob)
        .where(col(ScheduledJob.id).in_(due.scalar_subquery()))
        .values(
            claimed_by=worker_id,
            lease_until=now + lease,
            attempts=ScheduledJob.attempts + 1,
        )
        .returning(
            col(ScheduledJob.id),
            col(ScheduledJob.team_id),
            col(ScheduledJob.kind),
            col(ScheduledJob.key_id),
            col(ScheduledJob.dedupe_key),
            col(ScheduledJob.due_at),
            col(ScheduledJob.attempts),
            col(ScheduledJob.payload),
        )
    )
    with session_scope(engine) as session:
        rows = session.exec(statement).all()
    jobs = [ClaimedJob(*row) for row in rows]
    jobs.sort(key=lambda j: j.due_at)
    return jobs


def finish_job(
    engine: Engine, job: ClaimedJob, outcome: JobOutcome, *, worker_id: str, now: datetime
) -> bool:
    """Record one outcome, if this worker still holds the lease. Returns False otherwise."""
    return finish_jobs(engine, [(job, outcome)], worker_id=worker_id, now=now)[0]


def finish_jobs(
    engine: Engine,
    results: list[tuple[ClaimedJob, JobOutcome]],
    *,
    worker_id: str,
    now: datetime,
) -> list[bool]:
    """Record several outcomes in one transaction (with their follow-ups and audit events),
    in bulk statements. A job whose lease this worker lost is left alone (False)."""
    finished: set[str] = set()
    mine = sa.and_(
        col(ScheduledJob.claimed_by) == worker_id,
        col(ScheduledJob.state) == JobState.PENDING.value,
    )
    with session_scope(engine) as session:
        for late in (False, True):
            ids = [j.id for j, o in results if o.retry_at is None and o.late is late]
            if ids:
                done = session.exec(
                    sa.update(ScheduledJob)
                    .where(col(ScheduledJob.id).in_(ids), mine)
                    .values(state=JobState.DONE.value, done_at=now, late=late)
                    .returning(col(ScheduledJob.id))
                )
                finished.update(row[0] for row in done)
        for job, outcome in results:
            if outcome.retry_at is None:
                continue
            values: dict[str, Any] = {
                "due_at": outcome.retry_at,
                "lease_until": None,
                "last_error": outcome.error,
            }
            if outcome.progress:
                values["payload"] = {**job.payload, **outcome.progress}
            updated = session.exec(
                sa.update(ScheduledJob).where(col(ScheduledJob.id) == job.id, mine).values(**values)
            ).rowcount
            if updated:
                finished.add(job.id)
        kept = [(j, o) for j, o in results if j.id in finished]
        schedule_jobs(session, [new for _, o in kept for new in o.follow_up])
        record_events(session, [event for _, o in kept for event in o.audit])
    return [job.id in finished for job, _ in results]


def renew_leases(engine: Engine, job_ids: list[str], *, worker_id: str, until: datetime) -> int:
    """Extend this worker's leases on jobs it is still running; returns how many it holds."""
    if not job_ids:
        return 0
    with session_scope(engine) as session:
        return session.exec(
            sa.update(ScheduledJob)
            .where(
                col(ScheduledJob.id).in_(job_ids),
                col(ScheduledJob.claimed_by) == worker_id,
                col(ScheduledJob.state) == JobState.PENDING.value,
            )
            .values(lease_until=until)
        ).rowcount


def teams_with_pending(session: Session, kind: str) -> set[str]:
    """The teams that have a job of ``kind`` still pending (the periodic plans ask this)."""
    return set(
        session.exec(
            select(ScheduledJob.team_id)
            .where(ScheduledJob.kind == kind, ScheduledJob.state == JobState.PENDING.value)
            .distinct()
        ).all()
    )


def backoff(attempts: int) -> timedelta:
    """How long a failed job waits before its next attempt: 2, 4, 8 … minutes, at most an hour."""
    return timedelta(minutes=min(60, 2 ** min(attempts, 6)))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
