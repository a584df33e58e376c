"""bot.jobs (queue and scheduler) against SQLite and PostgreSQL: claims, leases, dedupe, retries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.job_queue.queue import JobOutcome, NewJob, claim_due_jobs, finish_job, schedule_jobs
from bot.job_queue.scheduler import FixedClock, Scheduler
from storage.db import session_scope
from storage.models import JobState, ScheduledJob

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _jobs(n: int, due: datetime, kind: str = "ping", prefix: str = "j") -> list[NewJob]:
    return [
        NewJob(team_id="T", kind=kind, dedupe_key=f"{prefix}:{i}", due_at=due) for i in range(n)
    ]


def _states(engine) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(select(ScheduledJob)).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts


def test_only_due_jobs_are_claimed_and_a_lease_keeps_others_off(engine):
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(3, T0))
        schedule_jobs(session, _jobs(2, T0 + timedelta(hours=1), prefix="later"))
    first = claim_due_jobs(engine, worker_id="a", now=T0, lease=timedelta(minutes=5))
    assert len(first) == 3
    assert claim_due_jobs(engine, worker_id="b", now=T0 + timedelta(minutes=1)) == []
    # the lease expires: another worker takes over (the first one died)
    taken_over = claim_due_jobs(engine, worker_id="b", now=T0 + timedelta(minutes=6))
    assert {j.id for j in taken_over} == {j.id for j in first}
    assert all(j.attempts == 2 for j in taken_over)
    # the first worker can no longer finish what it lost
    assert not finish_job(engine, first[0], JobOutcome(), worker_id="a", now=T0)
    assert finish_job(engine, taken_over[0], JobOutcome(), worker_id="b", now=T0)


def test_dedupe_key_means_at_most_one_job_per_step(engine):
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(3, T0))
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(3, T0))  # planned again: ignored
    assert _states(engine) == {JobState.PENDING.value: 3}


def test_retry_moves_the_job_and_follow_ups_are_scheduled_with_done(engine):
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(2, T0))
    a, b = claim_due_jobs(engine, worker_id="w", now=T0)
    finish_job(engine, a, JobOutcome.retry(T0 + timedelta(hours=1), "later"), worker_id="w", now=T0)
    follow = NewJob(team_id="T", kind="ping", dedupe_key="follow", due_at=T0 + timedelta(days=1))
    finish_job(engine, b, JobOutcome(follow_up=(follow,), late=True), worker_id="w", now=T0)
    with Session(engine) as session:
        rows = {r.dedupe_key: r for r in session.exec(select(ScheduledJob)).all()}
    assert rows[a.dedupe_key].state == "pending" and rows[a.dedupe_key].last_error == "later"
    assert rows[b.dedupe_key].state == "done" and rows[b.dedupe_key].late is True
    assert rows["follow"].state == "pending"
    assert claim_due_jobs(engine, worker_id="w", now=T0 + timedelta(minutes=59)) == []
    assert len(claim_due_jobs(engine, worker_id="w", now=T0 + timedelta(hours=1))) == 1


def test_concurrent_claimers_never_share_a_job(engine):
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(300, T0))
    claimed: dict[str, list[str]] = {}

    def worker(name: str) -> None:
        mine = claimed.setdefault(name, [])
        while True:
            jobs = claim_due_jobs(engine, worker_id=name, now=T0, limit=7)
            if not jobs:
                return
            mine.extend(j.id for j in jobs)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [job for jobs in claimed.values() for job in jobs]
    assert len(every) == len(set(every)) == 300


def test_scheduler_tick_runs_handlers_and_retries_failures(engine):
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(5, T0))
        schedule_jobs(session, _jobs(1, T0, kind="boom", prefix="boom"))
    ran = []

    def ping(job, now):
        ran.append(job.dedupe_key)
        return JobOutcome()

    def boom(job, now):
        raise RuntimeError("handler bug")

    clock = FixedClock(T0)
    scheduler = Scheduler(engine, {"ping": ping, "boom": boom}, clock=clock, worker_id="w")
    report = scheduler.tick()
    scheduler.close()
    assert (report.claimed, report.done, report.retried) == (6, 5, 1)
    assert sorted(ran) == [f"j:{i}" for i in range(5)]
    with Session(engine) as session:
        failed = session.exec(select(ScheduledJob).where(ScheduledJob.kind == "boom")).one()
    assert failed.state == "pending" and failed.due_at > T0 and failed.last_error == "RuntimeError"


def test_a_long_running_job_keeps_its_lease_and_is_not_taken_over(engine):
    """A job running longer than its lease (a paced drift check over many keys) has its lease
    renewed while it runs: another replica ticking meanwhile does not run it a second time."""
    from bot.job_queue.scheduler import DatabaseClock

    clock = DatabaseClock(engine)
    with session_scope(engine) as session:
        schedule_jobs(session, _jobs(1, clock.now() - timedelta(seconds=1), kind="slow"))
    started, release, runs = threading.Event(), threading.Event(), []

    def slow(job, now):
        runs.append(job.id)
        started.set()
        release.wait(10)
        return JobOutcome()

    # Renewed every lease / 3: 2 s leaves a renewal 1.3 s of slack on a loaded machine (0.6 s
    # left 0.2 s, and a busy CI box took the job over once).
    lease = timedelta(seconds=2)
    first = Scheduler(engine, {"slow": slow}, clock=clock, worker_id="first", lease=lease)
    second = Scheduler(engine, {"slow": slow}, clock=clock, worker_id="second", lease=lease)
    reports = []
    ticking = threading.Thread(target=lambda: reports.append(first.tick()))
    ticking.start()
    try:
        assert started.wait(10)
        for _ in range(7):  # well past the original lease, several renewals
            threading.Event().wait(0.5)
            assert second.tick().claimed == 0
    finally:
        release.set()
        ticking.join(10)
        first.close()
        second.close()
    (report,) = reports
    assert (report.done, report.lost) == (1, 0)
    assert len(runs) == 1
    assert _states(engine) == {JobState.DONE.value: 1}


def test_every_job_kind_has_a_handler_and_its_own_dedupe_key(stack):
    """A kind without a handler would sit in the table for ever; two kinds sharing a dedupe
    key format could swallow each other's jobs."""
    from bot.job_queue import kinds
    from bot.jobs.handlers import job_handlers

    assert set(job_handlers(stack.services, stack.app.client)) == set(kinds.JobKind)
    due = datetime(2026, 12, 1, tzinfo=UTC)
    built = [
        kinds.rotation_reminder(
            team_id="T", key_id="k", cycle="c", step="s", due_at=due, anchor=due
        ),
        kinds.rotation_probe(team_id="T", key_id="k", rotation_id="r", attempt=0, due_at=due),
        kinds.rotation_announce(team_id="T", key_id="k", rotation_id="r", what="w", due_at=due),
        kinds.incident_probe(team_id="T", key_id="k", incident_id="i", attempt=0, due_at=due),
        kinds.incident_activity(team_id="T", key_id="k", incident_id="i", due_at=due),
        kinds.incident_activity_post(
            team_id="T", key_id="k", incident_id="i", channel="C", ts="1", due_at=due
        ),
        kinds.incident_refresh(
            team_id="T", key_id="k", incident_id="i", reason="r", cause="j", due_at=due
        ),
        kinds.incident_checklist(team_id="T", key_id="k", incident_id="i", channel="C", due_at=due),
        kinds.drift_check(team_id="T", due_at=due),
        kinds.pending_pair_expiry(team_id="T", pending_id="p", due_at=due),
        kinds.key_announce(team_id="T", key_id="k", what="w", facts={}, due_at=due),
        kinds.credential_delivery(team_id="T", key_id="k", delivery_id="d", due_at=due),
        kinds.credential_cleanup(team_id="T", key_id="k", due_at=due),
        kinds.activity_review(team_id="T", due_at=due),
        kinds.page_event(
            team_id="T", key_id="k", dedup_key="d", action="trigger", occurrence=1, due_at=due
        ),
        kinds.audit_checkpoint(team_id="-", due_at=due),
        kinds.governor_announce(team_id="T", call_id="c", facts={}, due_at=due),
        kinds.mint_check(team_id="T", mint_id="m", due_at=due),
        kinds.incident_contain(team_id="T", key_id="k", incident_id="i", attempt=0, due_at=due),
        kinds.governed_rotation(team_id="T", key_id="k", generation="g", actor="U", due_at=due),
        kinds.rotation_retire(team_id="T", key_id="k", rotation_id="r", due_at=due),
        kinds.approval_notify(team_id="T", request_id="r", due_at=due),
        kinds.approval_expiry(team_id="T", request_id="r", due_at=due),
        kinds.approval_outcome(team_id="T", request_id="r", state="denied", due_at=due),
    ]
    assert {job.kind for job in built} == set(kinds.JobKind)
    prefixes = {job.dedupe_key.split(":")[0] for job in built}
    assert len(prefixes) == len(built)
