"""The scheduled drift check: one digest per team and run, nothing when nothing changed."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk import WebClient

from bot.blocks.oversight.drift import drift_digest
from bot.job_queue.kinds import drift_check
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.jobs.routing import SlackDirectory
from bot.services.context import Services
from bot.services.governor.sub_accounts import sync_sub_accounts
from bot.services.oversight.drift import check_team, remember_check


def make_drift_handler(services: Services, client: WebClient) -> Handler:
    directory = SlackDirectory(client)
    interval = timedelta(hours=services.settings.drift_check_hours)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        # The governed masters' sub-accounts, as Binance lists them today ("unmanaged" ones).
        sync_sub_accounts(
            engine=services.engine,
            ring=services.ring,
            governor=services.governor_gateway,
            team_id=job.team_id,
            actor="bot",
        )
        digest = check_team(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            team_id=job.team_id,
            now=now,
        )
        if not digest.empty:
            directory.to_channel(
                services.settings,
                drift_digest(digest),
                fallback_users=list(services.settings.admin_user_ids),
                job=job,
            )
        # Only once the digest is out: if Slack refused it, the retry finds the same changes.
        remember_check(services.engine, digest, now)
        return JobOutcome(follow_up=(drift_check(team_id=job.team_id, due_at=now + interval),))

    return handle
