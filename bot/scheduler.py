"""The scheduler loop every replica runs: claim due jobs from the database, run, mark done.

- Claims are leases: a replica killed mid-work loses nothing, its claims expire and another
  replica picks the jobs up. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; on SQLite a
  single UPDATE … RETURNING is atomic (one writer at a time).
- The database clock is the one clock (``DatabaseClock``); tests inject a fixed one.
- A handler returns a ``JobOutcome``: done (optionally scheduling follow-up jobs in the same
  transaction that marks it done), or retry at a later time.
- A handler that did part of its work before failing raises ``PartialProgress``: the job is
  retried with that progress saved in its payload, so the retry does not repeat the part that
  was done (a message already sent to two of three people is not sent to them again).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

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


class Clock(Protocol):
    def now(self) -> datetime: ...


class DatabaseClock:
    """The database server's time (PostgreSQL), so every replica agrees on "now"."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def now(self) -> datetime:
        if self._engine.dialect.name == "postgresql":
            with self._engine.connect() as connection:
                value = connection.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
            return value.astimezone(UTC)
        return datetime.now(UTC)  # SQLite is embedded: its clock is this machine's


@dataclass
class FixedClock:
    """A clock that moves only when told to (tests)."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    team_id: str
    kind: str
    key_id: str | None
    dedupe_key: str
    due_at: datetime
    attempts: int
    payload: dict


@dataclass(frozen=True)
class NewJob:
    team_id: str
    kind: str
    dedupe_key: str
    due_at: datetime
    key_id: str | None = None
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    """What a handler decided. ``retry_at`` set: not done, try again then."""

    late: bool = False
    follow_up: tuple[NewJob, ...] = ()
    retry_at: datetime | None = None
    error: str | None = None
    # Audit events (keyword arguments of storage.audit.record_event) written in the same
    # transaction that marks the job done.
    audit: tuple[dict, ...] = ()
    # With retry_at: entries merged into the job's payload for the next attempt.
    progress: dict | None = None

    @classmethod
    def retry(cls, at: datetime, error: str, progress: dict | None = None) -> JobOutcome:
        return cls(retry_at=at, error=error[:500], progress=progress)


class PartialProgress(Exception):
    """Raised by a handler that failed after doing part of its work; ``progress`` (JSON) is
    merged into the job's payload so the retry can skip what was done."""

    def __init__(self, progress: dict, cause: Exception) -> None:
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
            ScheduledJob.id,
            ScheduledJob.team_id,
            ScheduledJob.kind,
            ScheduledJob.key_id,
            ScheduledJob.dedupe_key,
            ScheduledJob.due_at,
            ScheduledJob.attempts,
            ScheduledJob.payload,
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
                    .returning(ScheduledJob.id)
                )
                finished.update(row[0] for row in done)
        for job, outcome in results:
            if outcome.retry_at is None:
                continue
            values = {"due_at": outcome.retry_at, "lease_until": None, "last_error": outcome.error}
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


def backoff(attempts: int) -> timedelta:
    """How long a failed job waits before its next attempt: 2, 4, 8 … minutes, at most an hour."""
    return timedelta(minutes=min(60, 2 ** min(attempts, 6)))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class TickReport:
    claimed: int = 0
    done: int = 0
    retried: int = 0
    lost: int = 0  # lease expired and someone else finished it


class Scheduler:
    """Claims due jobs and runs their handlers, a bounded number at a time."""

    def __init__(
        self,
        engine: Engine,
        handlers: dict[str, Handler],
        *,
        clock: Clock | None = None,
        worker_id: str | None = None,
        batch_size: int = 200,
        lease: timedelta = DEFAULT_LEASE,
        interval_seconds: float = 15.0,
        concurrency: int = 16,
    ) -> None:
        self.engine = engine
        self.handlers = handlers
        self.clock = clock or DatabaseClock(engine)
        self.worker_id = worker_id or default_worker_id()
        self.batch_size = batch_size
        self.lease = lease
        self.interval_seconds = interval_seconds
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="job")

    def tick(self) -> TickReport:
        """Claim what is due now, run it, and record the outcomes in small batches."""
        now = self.clock.now()
        jobs = claim_due_jobs(
            self.engine,
            worker_id=self.worker_id,
            now=now,
            limit=self.batch_size,
            lease=self.lease,
            kinds=self.handlers.keys(),
        )
        report = TickReport(claimed=len(jobs))
        self._prefetch(jobs)
        pending: list[tuple[ClaimedJob, JobOutcome]] = []
        futures = {self._pool.submit(self._run, job, now): job.id for job in jobs}
        with self._leases_kept(set(futures.values())) as running:
            for future in as_completed(futures):
                running.discard(futures[future])
                pending.append(future.result())
                if len(pending) >= FINISH_BATCH:
                    self._finish(pending, now, report)
                    pending = []
        self._finish(pending, now, report)
        return report

    @contextmanager
    def _leases_kept(self, running: set[str]) -> Iterator[set[str]]:
        """While the block runs, renew the leases of the job ids left in ``running`` every
        third of a lease: a long job (a drift check paced by Binance's weight limit) is not
        taken over by another replica while it is still running."""
        if not running:
            yield running
            return
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                ids = list(running.copy())  # copied in one step: the tick removes finished ids
                try:
                    renew_leases(
                        self.engine,
                        ids,
                        worker_id=self.worker_id,
                        until=self.clock.now() + self.lease,
                    )
                except Exception:
                    log.exception("could not renew the leases of %d running jobs", len(ids))

        keeper = threading.Thread(target=keep, name="lease-keeper", daemon=True)
        keeper.start()
        try:
            yield running
        finally:
            stop.set()
            keeper.join()

    def _prefetch(self, jobs: list[ClaimedJob]) -> None:
        """Let handlers load what a whole batch needs in one query (``handler.prefetch``)."""
        by_kind: dict[str, list[ClaimedJob]] = {}
        for job in jobs:
            by_kind.setdefault(job.kind, []).append(job)
        for kind, batch in by_kind.items():
            prefetch = getattr(self.handlers[kind], "prefetch", None)
            if prefetch is not None:
                try:
                    prefetch(batch)
                except Exception:
                    log.exception("prefetch for %s failed; handlers load one by one", kind)

    def _run(self, job: ClaimedJob, now: datetime) -> tuple[ClaimedJob, JobOutcome]:
        try:
            return job, self.handlers[job.kind](job, now)
        except PartialProgress as exc:
            log.warning(
                "job %s (%s) failed part-way (%s); will retry the rest",
                job.id,
                job.kind,
                type(exc.cause).__name__,
            )
            retry_at = now + backoff(job.attempts)
            return job, JobOutcome.retry(retry_at, type(exc.cause).__name__, exc.progress)
        except Exception as exc:
            log.exception("job %s (%s) failed; will retry", job.id, job.kind)
            return job, JobOutcome.retry(now + backoff(job.attempts), type(exc).__name__)

    def _finish(
        self, results: list[tuple[ClaimedJob, JobOutcome]], now: datetime, report: TickReport
    ) -> None:
        if not results:
            return
        flags = finish_jobs(self.engine, results, worker_id=self.worker_id, now=now)
        for (job, outcome), finished in zip(results, flags, strict=True):
            if not finished:
                log.warning("job %s: lease lost before it finished", job.id)
                report.lost += 1
            elif outcome.retry_at is not None:
                report.retried += 1
            else:
                report.done += 1

    def run_forever(self, stop: threading.Event) -> None:
        log.info("scheduler %s running every %.0fs", self.worker_id, self.interval_seconds)
        while not stop.is_set():
            backlog = False
            try:
                report = self.tick()
                backlog = report.claimed >= self.batch_size
                if report.claimed:
                    log.info("scheduler tick: %s", report)
            except Exception:
                log.exception("scheduler tick failed; trying again next interval")
            # Keep going at once while there is a backlog, else wait for the next interval.
            stop.wait(0 if backlog else self.interval_seconds)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
