"""The scheduled activity review: one digest per team and day, nothing when nothing is new."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient

from bot.blocks.response.activity import activity_digest
from bot.job_queue.kinds import activity_review
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.jobs.routing import SlackDirectory
from bot.services.context import Services
from bot.services.oversight.activity_plan import REVIEW_INTERVAL
from bot.services.oversight.activity_review import remember_review, review_team


def make_activity_review_handler(services: Services, client: WebClient) -> Handler:
    directory = SlackDirectory(client)
    thresholds = services.settings.large_withdrawal_thresholds

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        digest = review_team(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            team_id=job.team_id,
            now=now,
            thresholds=thresholds,
        )
        if not digest.empty:
            directory.to_channel(
                services.settings,
                activity_digest(digest),
                fallback_users=list(services.settings.admin_user_ids),
                job=job,
            )
        # Only once the digest is out: if Slack refused it, the retry reviews the same period.
        remember_review(services.engine, digest, posted=not digest.empty)
        return JobOutcome(
            follow_up=(activity_review(team_id=job.team_id, due_at=now + REVIEW_INTERVAL),)
        )

    return handle
