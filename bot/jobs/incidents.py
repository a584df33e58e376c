"""Incident jobs: probe the compromised key, review the account's activity, refresh messages."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.incidents import activity_message
from bot.listeners.incidents import refresh_messages
from bot.scheduler import ClaimedJob, Handler, JobOutcome, NewJob
from bot.services.context import Services
from bot.services.incidents import (
    REFRESH_JOB,
    load_incident,
    probe_compromised_key,
    review_activity,
)

log = logging.getLogger(__name__)

# The activity table goes under the checklist: wait for the checklist to be posted.
_SOON = timedelta(seconds=30)


def _refresh(job: ClaimedJob, now: datetime, reason: str) -> NewJob:
    return NewJob(
        team_id=job.team_id,
        kind=REFRESH_JOB,
        key_id=job.key_id,
        dedupe_key=f"incident_refresh:{job.payload['incident_id']}:{reason}:{job.id}",
        due_at=now,
        payload={"incident_id": job.payload["incident_id"]},
    )


def make_incident_probe_handler(services: Services) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        outcome = probe_compromised_key(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            incident_id=job.payload["incident_id"],
            attempt=int(job.payload.get("attempt", 0)),
            now=now,
        )
        # Refresh after every probe: the message shows when Binance was last asked.
        follow = [_refresh(job, now, "probe")]
        if outcome.next_probe is not None:
            follow.append(outcome.next_probe)
        return JobOutcome(follow_up=tuple(follow))

    return handle


def make_activity_handler(services: Services, client: WebClient) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        incident_id = job.payload["incident_id"]
        review_activity(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            incident_id=incident_id,
            now=now,
        )
        view = load_incident(services.engine, incident_id)
        message = activity_message(view.incident)
        for ref in view.incident.messages:
            try:
                client.chat_postMessage(
                    channel=ref["channel"], thread_ts=ref["ts"], **message.as_kwargs()
                )
            except SlackApiError as exc:
                log.info("could not post the activity table (%s)", exc.response.get("error"))
        if not view.incident.messages:
            return JobOutcome.retry(now.replace(microsecond=0) + _SOON, "checklist not posted yet")
        return JobOutcome()

    return handle


def make_refresh_handler(services: Services, client: WebClient) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        refresh_messages(services, client, job.payload["incident_id"])
        return JobOutcome()

    return handle
