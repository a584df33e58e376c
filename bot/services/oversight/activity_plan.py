"""When the daily activity review runs: one pending review per team that has a key able to
read its account's history, planned once (like the drift check, ``bot.services.oversight.drift_plan``).

Apart from ``bot.services.oversight.activity_review`` so that registering a key can plan its team's
first review without importing the reviewer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.job_queue.kinds import JobKind, activity_review
from bot.job_queue.queue import schedule_jobs, teams_with_pending
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey

REVIEW_INTERVAL = timedelta(days=1)


def _reading_teams(session: Session) -> set[str]:
    """Teams with a live key Binance said can read (``enableReading``)."""
    rows = session.exec(
        select(ApiKey.team_id, ApiKey.permissions_json).where(
            col(ApiKey.status).not_in(RETIRED_STATUSES),
            col(ApiKey.secret_sealed).is_not(None),
        )
    ).all()
    return {team for team, perms in rows if (perms or {}).get("enableReading") is True}


def plan_team_review(session: Session, team_id: str, *, now: datetime) -> None:
    """In the caller's transaction: the team's next review, unless one is pending already."""
    if team_id not in teams_with_pending(session, JobKind.ACTIVITY_REVIEW):
        schedule_jobs(session, [activity_review(team_id=team_id, due_at=now + REVIEW_INTERVAL)])


def ensure_activity_reviews(
    engine: Engine, *, now: datetime, delay: timedelta = REVIEW_INTERVAL
) -> None:
    """Every team with a key that can read has its next review planned, once (replicas
    starting at different times share one plan; the job's dedupe key is the day)."""
    with Session(engine) as session:
        teams = _reading_teams(session) - teams_with_pending(session, JobKind.ACTIVITY_REVIEW)
    if teams:
        with session_scope(engine) as session:
            schedule_jobs(
                session, [activity_review(team_id=team, due_at=now + delay) for team in teams]
            )
