"""Writing a key's credentials to its secret sink; a failure is retried with backoff. And
removing what crashed writes left behind: when a replica starts delivering, and for a key
that was removed or revoked."""

from __future__ import annotations

from datetime import datetime

from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome, backoff
from bot.services.context import Services
from bot.services.custody.credential_delivery import (
    build_sinks,
    clean_key_destinations,
    deliver,
    sweep_leftovers,
)


def make_delivery_handler(services: Services) -> Handler:
    sinks = build_sinks(services.settings)
    # Start-up: a crash between a write and its rename left a temporary file with the secret.
    sweep_leftovers(engine=services.engine, sinks=sinks)

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


def make_cleanup_handler(services: Services) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        sinks = build_sinks(services.settings)  # here: a key is seldom removed
        clean_key_destinations(engine=services.engine, sinks=sinks, key_id=job.payload["key_id"])
        return JobOutcome()

    return handle
