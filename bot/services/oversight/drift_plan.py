"""When the drift monitor runs: one pending check per team with keys, planned once.

Apart from ``bot.services.oversight.drift`` so that registering a key (``bot.services.custody.keys``) can plan
its team's first check without importing the checker.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.job_queue.kinds import JobKind, drift_check
from bot.job_queue.queue import schedule_jobs, teams_with_pending
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey


def plan_team_check(session: Session, team_id: str, *, interval: timedelta, now: datetime) -> None:
    """In the caller's transaction: the team's next check, unless one is pending already
    (a newly installed bot's first key starts the daily check without a restart)."""
    if team_id not in teams_with_pending(session, JobKind.DRIFT_CHECK):
        schedule_jobs(session, [drift_check(team_id=team_id, due_at=now + interval)])


def ensure_drift_checks(engine: Engine, *, interval: timedelta, now: datetime) -> None:
    """Every team with keys has its next drift check planned, once: a team that already has one
    pending keeps it (replicas starting at different times share one plan)."""
    with Session(engine) as session:
        teams = set(
            session.exec(
                select(ApiKey.team_id).where(col(ApiKey.status).not_in(RETIRED_STATUSES)).distinct()
            ).all()
        )
        planned = teams_with_pending(session, JobKind.DRIFT_CHECK)
    if teams - planned:
        with session_scope(engine) as session:
            schedule_jobs(
                session,
                [drift_check(team_id=team, due_at=now + interval) for team in teams - planned],
            )
