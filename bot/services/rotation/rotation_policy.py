"""Rotation policies: `/apikey rotate <label> every <N>d`, `/apikey rotation`, snooze."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.model.rotation import RotationRow, RotationState
from bot.services.access import Actor, require_manage_key
from bot.services.custody.keys import find_live_key
from bot.services.errors import InvalidInput
from bot.services.rotation.reminder_plan import due_date, plan_reminders
from bot.services.rows import key_row
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey, KeyStatus

DUE_SOON = timedelta(days=14)
MAX_PERIOD_DAYS = 3650


def rotation_row(key: ApiKey, now: datetime) -> RotationRow:
    due = due_date(key)
    if key.status == KeyStatus.ROTATING.value:
        state = RotationState.ROTATING
    elif due <= now:
        state = RotationState.OVERDUE
    elif due - now <= DUE_SOON:
        state = RotationState.DUE_SOON
    else:
        state = RotationState.OK
    return RotationRow(
        key_id=key.id,
        label=key.label,
        owner_user_id=key.owner_user_id,
        period_days=key.rotation_period_days,
        last_rotated_at=key.last_rotated_at or key.created_at,
        due_at=due,
        state=state,
        snoozed_until=key.snoozed_until,
    )


_URGENCY = {
    RotationState.OVERDUE: 0,
    RotationState.DUE_SOON: 1,
    RotationState.ROTATING: 2,
    RotationState.OK: 3,
}


def rotation_overview(session: Session, team_id: str, now: datetime) -> list[RotationRow]:
    """Every live key with its rotation state, most urgent first."""
    keys = session.exec(
        select(ApiKey).where(ApiKey.team_id == team_id, col(ApiKey.status).not_in(RETIRED_STATUSES))
    ).all()
    rows = [rotation_row(k, now) for k in keys]
    return sorted(rows, key=lambda r: (_URGENCY[r.state], r.due_at, r.label.lower()))


def rotation_rows(engine: Engine, team_id: str, now: datetime) -> list[RotationRow]:
    """``rotation_overview`` in its own session (for listeners)."""
    with Session(engine) as session:
        return rotation_overview(session, team_id, now)


def set_policy(
    *,
    engine: Engine,
    settings: Settings,
    actor: Actor,
    label: str,
    period_days: int,
    now: datetime,
    source: str | None = None,
) -> RotationRow:
    if not 1 <= period_days <= MAX_PERIOD_DAYS:
        raise InvalidInput(f"The rotation period must be from 1 to {MAX_PERIOD_DAYS} days.")
    team_id = actor.team_id
    with Session(engine) as session:
        key, _account = find_live_key(session, team_id, label)
    require_manage_key(engine, actor, key, action="change the rotation period of")
    with session_scope(engine) as session:
        key, _account = find_live_key(session, team_id, label)
        before = key.rotation_period_days
        key.rotation_period_days = period_days
        key.updated_at = now
        plan_reminders(session, key, settings, now=now)
        record_event(
            session,
            team_id=team_id,
            actor=actor.user_id,
            action=AuditAction.ROTATION_POLICY,
            target=key.label,
            target_key_id=key.id,
            source=source,
            detail={"period_days": period_days, "previous_period_days": before},
        )
        return rotation_row(key, now)


def snooze(
    *, engine: Engine, actor: Actor, key_id: str, now: datetime, days: int = 1
) -> RotationRow:
    """Pause a key's reminders: its owner or an admin only."""
    team_id = actor.team_id
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.team_id != team_id or key.status in RETIRED_STATUSES:
            raise InvalidInput("That key is no longer registered; nothing to snooze.")
    require_manage_key(engine, actor, key, action="snooze the reminders for")
    with session_scope(engine) as session:
        key = key_row(session, key_id)
        until = key.snoozed_until = now + timedelta(days=days)
        record_event(
            session,
            team_id=team_id,
            actor=actor.user_id,
            action=AuditAction.ROTATION_SNOOZE,
            target=key.label,
            target_key_id=key.id,
            detail={"until": until.isoformat()},
        )
        return rotation_row(key, now)
