"""A held change told to its approvers (the alert channel and a direct message each, with
Approve and Deny) and to its requester (with Withdraw); its expiry; and how it ended, told
to the requester and the alert channel. Each person once, even when a post fails and the
job is retried."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient

from bot.blocks.approvals import (
    approval_outcome_message,
    approval_request_message,
    approval_waiting_message,
)
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome, PartialProgress
from bot.jobs.routing import DELIVERED_TO, SlackDirectory
from bot.model.approvals import ApprovalState
from bot.services.approvals.decisions import expire_request, request_view
from bot.services.context import Services
from bot.slack.approvers import approver_ids

# Payload entry: the alert channel has the message already (see PartialProgress).
CHANNEL_POSTED = "channel_posted"


def make_approval_notify_handler(services: Services, client: WebClient) -> Handler:
    settings = services.settings
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        approvers = tuple(sorted(approver_ids(settings, client)))
        view = request_view(services.engine, job.payload["request_id"], approvers)
        if view.state != ApprovalState.OPEN:
            return JobOutcome()
        posted = bool(job.payload.get(CHANNEL_POSTED))
        if settings.alert_channel and not posted:
            message = approval_request_message(view)
            client.chat_postMessage(channel=settings.alert_channel, **message.as_kwargs())
            posted = True
        people: list[str | None] = [a for a in approvers if a != view.requested_by]
        try:
            directory.direct_message_each(people, approval_request_message(view), job=job)
            if view.requested_by not in job.payload.get(DELIVERED_TO, []):
                directory.direct_message(view.requested_by, approval_waiting_message(view))
        except PartialProgress as partial:
            progress = {**partial.progress, CHANNEL_POSTED: posted}
            raise PartialProgress(progress, partial.cause) from partial.cause
        except Exception as exc:
            if not posted:
                raise
            progress = {CHANNEL_POSTED: True, DELIVERED_TO: [*people]}
            raise PartialProgress(progress, exc) from exc
        return JobOutcome()

    return handle


def make_approval_expiry_handler(services: Services) -> Handler:
    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        expire_request(services.engine, job.payload["request_id"], now)  # tells, by a job
        return JobOutcome()

    return handle


def make_approval_outcome_handler(services: Services, client: WebClient) -> Handler:
    settings = services.settings
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        view = request_view(services.engine, job.payload["request_id"])
        message = approval_outcome_message(view)
        posted = bool(job.payload.get(CHANNEL_POSTED))
        if settings.alert_channel and not posted:
            client.chat_postMessage(channel=settings.alert_channel, **message.as_kwargs())
            posted = True
        if directory.user_is_gone(view.requested_by):
            return JobOutcome()
        try:
            directory.direct_message(view.requested_by, message)
        except Exception as exc:
            if not posted:
                raise
            raise PartialProgress({CHANNEL_POSTED: True}, exc) from exc
        return JobOutcome()

    return handle
