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
- ``lag_seconds`` says how far behind the loop is (metrics and readiness): the larger of how
  overdue its next tick is (a loop that hangs or died shows a growing lag) and how late the
  oldest job of its last tick was, counted from when this scheduler started (jobs missed while
  no replica ran are not this loop's lag).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.job_queue.queue import (
    DEFAULT_LEASE,
    FINISH_BATCH,
    ClaimedJob,
    Handler,
    JobOutcome,
    PartialProgress,
    backoff,
    claim_due_jobs,
    default_worker_id,
    finish_jobs,
    renew_leases,
)
from bot.observability.metrics import record_job, record_job_error

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...


class DatabaseClock:
    """The database server's time (PostgreSQL), so every replica agrees on "now"."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def now(self) -> datetime:
        if self._engine.dialect.name == "postgresql":
            with self._engine.connect() as connection:
                value: datetime = connection.execute(
                    sa.text("SELECT clock_timestamp()")
                ).scalar_one()
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
        self._started_at: datetime | None = None  # by the scheduler's clock
        # time.monotonic() of the last tick's end (before the first: of this scheduler's birth)
        self._last_tick_end = time.monotonic()
        self._last_tick_lateness = 0.0

    def lag_seconds(self) -> float:
        """How far behind the loop is, in seconds (see the module's doc)."""
        overdue = time.monotonic() - self._last_tick_end - self.interval_seconds
        return max(0.0, overdue, self._last_tick_lateness)

    def tick(self) -> TickReport:
        """Claim what is due now, run it, and record the outcomes in small batches."""
        now = self.clock.now()
        if self._started_at is None:
            self._started_at = now
        jobs = claim_due_jobs(
            self.engine,
            worker_id=self.worker_id,
            now=now,
            limit=self.batch_size,
            lease=self.lease,
            kinds=self.handlers.keys(),
        )
        report = TickReport(claimed=len(jobs))
        oldest = max(jobs[0].due_at, self._started_at) if jobs else now
        self._last_tick_lateness = max(0.0, (now - oldest).total_seconds())
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
        self._last_tick_end = time.monotonic()
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
            record_job_error(exc.cause)
            log.warning(
                "job %s (%s) failed part-way (%s); will retry the rest",
                job.id,
                job.kind,
                type(exc.cause).__name__,
            )
            retry_at = now + backoff(job.attempts)
            return job, JobOutcome.retry(retry_at, type(exc.cause).__name__, exc.progress)
        except Exception as exc:
            record_job_error(exc)
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
                record_job(job.kind, failed=True)
            else:
                report.done += 1
                record_job(job.kind, failed=False)

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
