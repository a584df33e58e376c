"""Rotation reminders: one step of one key's cycle, sent once to the right people. A governed
key that falls due is rotated by the governor instead (bot.services.governor.rotation)."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlmodel import Session, col, select

from bot.blocks.rotation.rotation import reminder_message
from bot.job_queue.kinds import governed_rotation
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.jobs.routing import SlackDirectory
from bot.model.rotation import Audience
from bot.services.context import Services
from bot.services.governor.rotation import is_governed_key
from bot.services.rotation.reminder_plan import cycle_id, reminder_steps, step_anchor
from bot.services.rotation.rotation_policy import rotation_row
from bot.vocabulary import AuditAction
from storage.models import RETIRED_STATUSES, ApiKey, KeyStatus

# A reminder delivered later than this after its time is marked late.
LATE_AFTER = timedelta(minutes=30)


def make_reminder_handler(services: Services, client: WebClient) -> Handler:
    return ReminderHandler(services, client)


class ReminderHandler:
    """Sends one reminder step; ``prefetch`` loads a tick's keys in one query."""

    def __init__(self, services: Services, client: WebClient) -> None:
        self.services = services
        self.settings = services.settings
        self.steps = {step.name: step for step in reminder_steps(self.settings)}
        self.directory = SlackDirectory(client)
        self._keys: dict[str, ApiKey] = {}

    def prefetch(self, jobs: list[ClaimedJob]) -> None:
        ids = [j.key_id for j in jobs if j.key_id]
        with Session(self.services.engine, expire_on_commit=False) as session:
            keys = session.exec(select(ApiKey).where(col(ApiKey.id).in_(ids))).all()
            session.expunge_all()
        self._keys = {key.id: key for key in keys}

    def _key(self, key_id: str | None) -> ApiKey | None:
        key = self._keys.pop(key_id, None) if key_id else None
        if key is not None or key_id is None:
            return key
        with Session(self.services.engine) as session:
            return session.get(ApiKey, key_id)

    def __call__(self, job: ClaimedJob, now: datetime) -> JobOutcome:
        settings, steps, directory = self.settings, self.steps, self.directory
        key = self._key(job.key_id)
        if key is None or key.status in RETIRED_STATUSES or key.status == KeyStatus.ROTATING:
            return JobOutcome()  # nothing to remind about any more
        step = steps.get(str(job.payload.get("step")))
        if step is None or job.payload.get("cycle") != cycle_id(key):
            return JobOutcome()  # planned for another policy or due date
        if key.snoozed_until is not None and key.snoozed_until > now:
            return JobOutcome.retry(key.snoozed_until, "snoozed")
        anchor = step_anchor(job.payload, key)
        if any(s.offset > step.offset and anchor + s.offset <= now for s in steps.values()):
            return JobOutcome()  # superseded: a later step is due and is sent instead
        if step.offset >= timedelta(0) and is_governed_key(self.services.engine, key.id):
            # Due, and the governor can make its successor: rotate instead of reminding.
            rotate = governed_rotation(
                team_id=key.team_id,
                key_id=key.id,
                generation=key.api_key_fingerprint or key.api_key_masked,
                actor="bot",
                due_at=now,
            )
            audit = {
                "team_id": key.team_id,
                "actor": "bot",
                "action": AuditAction.ROTATION_REMINDER,
                "target": key.label,
                "target_key_id": key.id,
                "detail": {"step": step.name, "rotating": "through the governor"},
            }
            return JobOutcome(follow_up=(rotate,), audit=(audit,))
        # Late only against the time the step was planned for (a step a policy change made
        # due is planned for the moment of the change, so it is on time).
        late = now - job.due_at > LATE_AFTER
        owner = key.owner_user_id
        owner_gone = owner is None or directory.user_is_gone(owner)
        message = reminder_message(
            row=rotation_row(key, now),
            audience=step.audience,
            now=now,
            late=late,
            admins=settings.admin_user_ids,
            owner_gone=owner_gone,
        )
        if step.audience == Audience.OWNER and owner is not None and not owner_gone:
            directory.direct_message(owner, message)
        elif step.audience == Audience.OWNER:
            directory.direct_message_each(list(settings.admin_user_ids), message, job=job)
        else:
            fallback = [] if owner_gone else [key.owner_user_id]
            directory.to_channel(
                settings, message, fallback_users=fallback + list(settings.admin_user_ids), job=job
            )
        audit = {
            "team_id": key.team_id,
            "actor": "bot",
            "action": AuditAction.ROTATION_REMINDER,
            "target": key.label,
            "target_key_id": key.id,
            "detail": {"step": step.name, "late": late, "owner_gone": owner_gone},
        }
        return JobOutcome(late=late, audit=(audit,))
