"""Expiry of generated key pairs: shred the ones never completed, and tell the key's owner
and whoever asked for the pair."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient

from bot.blocks.custody.key_pairs import pair_expired_message
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.jobs.routing import SlackDirectory
from bot.services.context import Services
from bot.services.custody.key_pairs import expire_pending_pair


def make_pair_expiry_handler(services: Services, client: WebClient) -> Handler:
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        expired = expire_pending_pair(services.engine, job.payload["pending_id"], now)
        if expired is None:
            return JobOutcome()
        for user_id in expired.recipients:
            if not directory.user_is_gone(user_id):
                directory.direct_message(user_id, pair_expired_message(expired))
        return JobOutcome()

    return handle
