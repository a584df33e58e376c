"""The reminder plan: which rotation reminder goes to whom, and when.

A key is due ``rotation_period_days`` after its last rotation. Each due date (a "cycle")
has a fixed list of reminder steps; every step is one scheduled job whose dedupe key names
the key, the cycle and the step, so the database itself guarantees at most one reminder per
key per step. A step that finds a later step of its cycle already due is superseded (after
downtime only the latest reminder is sent, once, marked late).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.config import Settings
from bot.job_queue.kinds import JobKind, rotation_reminder
from bot.job_queue.queue import drop_unsent_jobs, schedule_jobs
from bot.model.rotation import Audience
from storage.models import RETIRED_STATUSES, ApiKey

# Jobs that die with their key (removal, revocation).


@dataclass(frozen=True)
class ReminderStep:
    name: str
    offset: timedelta  # from the due date (negative: before it)
    audience: Audience


def reminder_steps(settings: Settings) -> list[ReminderStep]:
    """The steps of one cycle, in time order."""
    steps = [
        ReminderStep(f"lead_{days}d", -timedelta(days=days), Audience.OWNER)
        for days in sorted(settings.rotation_reminder_lead_days, reverse=True)
    ]
    steps.append(ReminderStep("due", timedelta(0), Audience.CHANNEL_OWNER))
    admins_after = settings.rotation_escalate_admins_after_days
    channel_after = max(settings.rotation_escalate_channel_after_days, admins_after)
    steps.append(
        ReminderStep("overdue_admins", timedelta(days=admins_after), Audience.CHANNEL_ADMINS)
    )
    steps.append(
        ReminderStep("overdue_channel", timedelta(days=channel_after), Audience.CHANNEL_ALL)
    )
    return steps


def due_date(key: ApiKey) -> datetime:
    return (key.last_rotated_at or key.created_at) + timedelta(days=key.rotation_period_days)


def cycle_id(key: ApiKey) -> str:
    return due_date(key).strftime("%Y%m%dT%H%M%S")


def plan_reminders(session: Session, key: ApiKey, settings: Settings, *, now: datetime) -> None:
    """(Re)plan this key's reminders for its current due date; older unsent plans are dropped
    (steps already sent for this due date stay sent: they are not sent again).

    Steps whose time has already passed when the plan is made (a shorter rotation period, a
    short period at registration) are not "missed": only the latest of them is planned, for
    ``now``, so it is sent once and on time, never marked late. A key that the new policy
    makes overdue starts its escalation from ``now`` (the ``anchor``): the admins and then the
    whole channel hear of it only if it stays unrotated for the configured days from here.
    """
    drop_unsent_jobs(session, key_id=key.id, kinds=[JobKind.ROTATION_REMINDER], now=now)
    if key.status in RETIRED_STATUSES:
        return
    due = due_date(key)
    anchor = max(due, now)
    cycle = cycle_id(key)
    steps = reminder_steps(settings)
    passed = [step for step in steps if anchor + step.offset <= now]
    current = passed[-1] if passed else None
    schedule_jobs(
        session,
        [
            rotation_reminder(
                team_id=key.team_id,
                key_id=key.id,
                cycle=cycle,
                step=step.name,
                due_at=now if step is current else anchor + step.offset,
                anchor=anchor,
            )
            for step in steps
            if step is current or step not in passed
        ],
    )


def step_anchor(payload: dict[str, Any], key: ApiKey) -> datetime:
    """The time a planned step's offset counts from: its plan's anchor (older plans: the due
    date)."""
    anchor = payload.get("anchor")
    return datetime.fromisoformat(anchor) if anchor else due_date(key)
