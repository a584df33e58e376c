"""Probing a rotated key's OLD credentials until Binance rejects them."""

from __future__ import annotations

from datetime import datetime

from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome
from bot.services.context import Services
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
