"""Probing a rotated key's OLD credentials until Binance rejects them, and a governed key's
rotation: its successor made, and its old key deleted, by the governor."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient

from bot.blocks.message import Message
from bot.blocks.rotation.rotation import (
    governed_rotation_failed_message,
    governed_rotation_started_message,
)
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.jobs.routing import SlackDirectory
from bot.services.context import Services
from bot.services.governor.rotation import SuccessorAttempt, attempt_successor, retire_old_key
from bot.services.rotation.rotate import probe_old_key


def make_probe_handler(services: Services) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        outcome = probe_old_key(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            settings=services.settings,
            rotation_id=job.payload["rotation_id"],
            attempt=int(job.payload.get("attempt", 0)),
            now=now,
        )
        follow_up = (outcome.next_probe,) if outcome.next_probe is not None else ()
        return JobOutcome(follow_up=follow_up)

    return handle


def make_governed_rotation_handler(services: Services, client: WebClient) -> Handler:
    """A governed key's successor (a due rotation, or a Rotate now whose first attempt failed
    or whose replica died): made through the governor; the owner is told either way."""
    directory = SlackDirectory(client)
    admins = list(services.settings.admin_user_ids)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        actor = str(job.payload.get("actor") or "bot")
        attempt = attempt_successor(services, job, actor=actor, source="scheduler", now=now)
        message = _successor_message(attempt)
        if message is not None:
            people = [attempt.owner] if attempt.owner else admins
            for person in dict.fromkeys(people):
                directory.direct_message(person, message)
        return attempt.outcome

    return handle


def _successor_message(attempt: SuccessorAttempt) -> Message | None:
    if attempt.started is not None and attempt.overlap_until is not None:
        return governed_rotation_started_message(
            attempt.started, key_id=attempt.key_id, overlap_until=attempt.overlap_until
        )
    if attempt.failure is not None:
        return governed_rotation_failed_message(
            label=attempt.label, why=attempt.failure, retry_at=attempt.outcome.retry_at
        )
    return None


# The failed attempt (counted from 1, as claimed) at which the alert channel is told too.
CHANNEL_AFTER_FAILURES = 3


def make_retire_handler(services: Services, client: WebClient) -> Handler:
    """The overlap of a governed rotation is over: the governor deletes the old key, a probe
    proves it, and the rotation completes (announced by the usual job). A failure is told to
    the owner and retried with backoff; the old key keeps working meanwhile."""
    directory = SlackDirectory(client)
    admins = list(services.settings.admin_user_ids)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        attempt = retire_old_key(services, job, actor="bot", early=False, now=now)
        if attempt.failure is not None:
            message = governed_rotation_failed_message(
                label=attempt.label,
                why=attempt.failure,
                retry_at=attempt.outcome.retry_at,
                step="delete old",
            )
            for person in dict.fromkeys([attempt.owner] if attempt.owner else admins):
                directory.direct_message(person, message)
            if job.attempts == CHANNEL_AFTER_FAILURES:
                # Still failing: two keys stay alive longer than planned; the team hears it
                # once (the owner keeps hearing of each retry).
                directory.to_channel(
                    services.settings, message, fallback_users=list[str | None](admins), job=job
                )
        return attempt.outcome

    return handle
