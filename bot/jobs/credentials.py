"""Writing a key's credentials to its secret sink; a failure is retried with backoff."""

from __future__ import annotations

from datetime import datetime

from bot.jobs.queue import ClaimedJob, Handler, JobOutcome, backoff
from bot.services.context import Services
from bot.services.credential_delivery import build_sinks, deliver


def make_delivery_handler(services: Services) -> Handler:
    sinks = build_sinks(services.settings)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        outcome = deliver(
            engine=services.engine,
            ring=services.ring,
            sinks=sinks,
            settings=services.settings,
            delivery_id=job.payload["delivery_id"],
            now=now,
        )
        if outcome.retry:
            return JobOutcome.retry(now + backoff(job.attempts), outcome.error or "sink failed")
        return JobOutcome()

    return handle
