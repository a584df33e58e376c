"""Governor jobs: each call told to the alert channel, and key creations whose answer never
came named to the admins."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk import WebClient

from bot.blocks.custody.governor import governor_call_message, lost_mint_message
from bot.job_queue.kinds import incident_contain, incident_refresh
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome, NewJob
from bot.jobs.routing import SlackDirectory
from bot.services.context import Services
from bot.services.governor.containment import (
    RETRY_DELAYS,
    contain_with,
    still_to_contain,
)
from bot.services.governor.minting import settle_lost_mint


def make_governor_announce_handler(services: Services, client: WebClient) -> Handler:
    """A governor call goes to the alert channel (without one, to the admins directly)."""
    settings = services.settings
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        message = governor_call_message(dict(job.payload))
        directory.to_channel(
            settings, message, fallback_users=list(settings.admin_user_ids), job=job
        )
        return JobOutcome()

    return handle


def make_mint_check_handler(services: Services, client: WebClient) -> Handler:
    """A creation still waiting for Binance's answer long after it must have come: the bot
    died or lost it. The key may exist in Binance: the admins are told its name to delete it."""
    settings = services.settings
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        lost = settle_lost_mint(services.engine, str(job.payload["mint_id"]), now=now)
        if lost is not None:
            directory.to_channel(
                settings,
                lost_mint_message(lost, admins=settings.admin_user_ids),
                fallback_users=list(settings.admin_user_ids),
                job=job,
            )
        return JobOutcome()

    return handle


def make_contain_handler(services: Services) -> Handler:
    """The safety net under the containment a report starts at once: contain the governed key
    if it is not yet, retry with backoff while Binance fails, then redraw the checklist."""

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        incident_id = str(job.payload["incident_id"])
        attempt = int(job.payload.get("attempt", 0))
        result = contain_with(services, incident_id, actor="bot")
        follow: list[NewJob] = [
            incident_refresh(
                team_id=job.team_id,
                key_id=job.key_id,
                incident_id=incident_id,
                reason="containment",
                cause=job.id,
                due_at=now,
            )
        ]
        if still_to_contain(services.engine, incident_id):
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            follow.append(
                incident_contain(
                    team_id=job.team_id,
                    key_id=job.key_id or "",
                    incident_id=incident_id,
                    attempt=attempt + 1,
                    due_at=now + timedelta(seconds=delay),
                )
            )
        if result is None and not follow[1:]:
            return JobOutcome()
        return JobOutcome(follow_up=tuple(follow))

    return handle
