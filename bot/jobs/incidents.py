"""Incident jobs: probe the compromised key, review the account's activity, refresh messages."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.blocks.response.incidents import activity_message, incident_message
from bot.job_queue.kinds import incident_activity_post, incident_refresh
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome, NewJob, backoff
from bot.services.context import Services
from bot.services.response.incident_activity import review_activity
from bot.services.response.incident_probes import probe_compromised_key
from bot.services.response.incidents import checklist_on_its_way, load_incident, remember_message
from bot.slack.live_messages import refresh_messages
from bot.slack.messaging import passing_failure

log = logging.getLogger(__name__)

# The activity table goes under the checklist: wait for the checklist to be posted.
_SOON = timedelta(seconds=30)


def _refresh(job: ClaimedJob, now: datetime, reason: str) -> NewJob:
    return incident_refresh(
        team_id=job.team_id,
        key_id=job.key_id,
        incident_id=job.payload["incident_id"],
        reason=reason,
        cause=job.id,
        due_at=now,
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
        incident = load_incident(services.engine, incident_id).incident
        if not incident.messages and checklist_on_its_way(services.engine, incident, now):
            # The table goes under the checklist: ask Binance once the checklist is there.
            return JobOutcome.retry(now.replace(microsecond=0) + _SOON, "checklist not posted yet")
        review_activity(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            incident_id=incident_id,
            now=now,
        )
        view = load_incident(services.engine, incident_id)
        if not view.incident.messages:
            # Kept with the incident; a checklist posted later gets the table below it.
            log.info("incident %s: no checklist message to put the activity under", incident_id)
            return JobOutcome()
        message = activity_message(view.incident)
        later = []
        for ref in view.incident.messages:
            try:
                client.chat_postMessage(
                    channel=ref["channel"], thread_ts=ref["ts"], **message.as_kwargs()
                )
            except SlackApiError as exc:
                log.info("could not post the activity table (%s)", exc.response.get("error"))
                if passing_failure(exc):
                    # Retry this thread alone: the threads that got it must not get it twice.
                    later.append(_activity_post(job, ref, now + backoff(1)))
        return JobOutcome(follow_up=tuple(later))

    return handle


def _activity_post(job: ClaimedJob, ref: dict[str, Any], due: datetime) -> NewJob:
    """The activity table in one thread whose first post Slack refused for a passing reason."""
    return incident_activity_post(
        team_id=job.team_id,
        key_id=job.key_id,
        incident_id=job.payload["incident_id"],
        channel=ref["channel"],
        ts=ref["ts"],
        due_at=due,
    )


def make_checklist_handler(services: Services, client: WebClient) -> Handler:
    """Posts a checklist Slack refused when the incident was raised (once per channel)."""

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        channel = job.payload["channel"]
        view = load_incident(services.engine, job.payload["incident_id"])
        if any(ref.get("channel") == channel for ref in view.incident.messages):
            return JobOutcome()  # it is there already
        admins = services.settings.admin_user_ids
        message = incident_message(view, admins=admins, now=services.clock())
        try:
            reply = client.chat_postMessage(channel=channel, **message.as_kwargs())
        except SlackApiError as exc:
            error = f"Slack: {exc.response.get('error')}"
            if passing_failure(exc):
                return JobOutcome.retry(now + backoff(job.attempts), error)
            log.info("gave up posting the checklist in %s (%s)", channel, error)
            return JobOutcome()
        ref = {"channel": reply["channel"], "ts": reply["ts"]}
        remember_message(services.engine, view.incident.id, **ref)
        if view.incident.activity is not None:  # reviewed already: its table goes below too
            return JobOutcome(follow_up=(_activity_post(job, ref, now),))
        return JobOutcome()

    return handle


def make_activity_post_handler(services: Services, client: WebClient) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        view = load_incident(services.engine, job.payload["incident_id"])
        try:
            client.chat_postMessage(
                channel=job.payload["channel"],
                thread_ts=job.payload["ts"],
                **activity_message(view.incident).as_kwargs(),
            )
        except SlackApiError as exc:
            error = f"Slack: {exc.response.get('error')}"
            if passing_failure(exc):
                return JobOutcome.retry(now + backoff(job.attempts), error)
            log.info("gave up posting the activity table (%s)", error)
        return JobOutcome()

    return handle


class _NotingRefusals:
    """The Slack client, noting the checklist updates Slack refused for a passing reason
    (``refresh_messages`` logs failures and goes on with the other channels)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self.refused: list[SlackApiError] = []

    def chat_update(self, *, channel: str, ts: str, **kwargs: Any) -> SlackResponse:
        try:
            return self._client.chat_update(channel=channel, ts=ts, **kwargs)
        except SlackApiError as exc:
            if passing_failure(exc):
                self.refused.append(exc)
            raise


def make_refresh_handler(services: Services, client: WebClient) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        noting = _NotingRefusals(client)
        refresh_messages(services, noting, job.payload["incident_id"])
        if noting.refused:
            # Updating a message again is harmless: retry the whole refresh, later.
            error = f"Slack: {noting.refused[0].response.get('error')}"
            return JobOutcome.retry(now + backoff(job.attempts), error)
        return JobOutcome()

    return handle
