"""The daily audit checkpoint: the chain's head posted to the alert channel, a witness the
database cannot rewrite (``audit verify`` reads them back)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from slack_sdk import WebClient

from bot.job_queue.kinds import audit_checkpoint
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.services.audit_trail import take_checkpoint
from bot.services.context import Services
from bot.slack.checkpoints import post_checkpoint

log = logging.getLogger(__name__)


def make_checkpoint_handler(services: Services, client: WebClient) -> Handler:
    interval = timedelta(hours=services.settings.audit_checkpoint_hours)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        channel = services.settings.alert_channel
        if channel:
            # A Slack error raises: the job is retried, and the next day is planned only then.
            post_checkpoint(
                client, channel, take_checkpoint(engine=services.engine, actor=None, now=now)
            )
        else:
            log.info("no ALERT_CHANNEL: no audit checkpoint posted (nothing witnesses the chain)")
        return JobOutcome(follow_up=(audit_checkpoint(team_id=job.team_id, due_at=now + interval),))

    return handle
