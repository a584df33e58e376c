"""Announcements decided in a transaction elsewhere (rotation complete, old key alive, a key
that can move funds registered or removed)."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient
from sqlmodel import Session

from bot.blocks.custody.remove import funds_key_announcement
from bot.blocks.rotation.rotation import old_key_alive_message, rotation_complete_message
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome, PartialProgress
from bot.jobs.routing import DELIVERED_TO, SlackDirectory
from bot.services.context import Services
from bot.services.custody.delivery_view import delivery_view
from bot.vocabulary import AuditAction
from storage.models import ApiKey, Rotation


def make_announce_handler(services: Services, client: WebClient) -> Handler:
    settings = services.settings
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        with Session(services.engine) as session:
            rotation = session.get(Rotation, job.payload["rotation_id"])
            key = session.get(ApiKey, job.key_id) if job.key_id else None
            delivery = delivery_view(session, key) if key is not None else None
        if rotation is None or key is None:
            return JobOutcome()
        owner = key.owner_user_id
        if job.payload["what"] == "complete":
            delivered_to = (
                f"{delivery.sink_label} `{delivery.destination}` (version {delivery.version})"
                if delivery is not None and delivery.state == "delivered"
                else None
            )
            message = rotation_complete_message(
                label=key.label,
                old_masked=rotation.old_masked,
                owner=owner,
                delivered_to=delivered_to,
            )
        else:
            message = old_key_alive_message(
                label=key.label,
                old_masked=rotation.old_masked,
                owner=owner,
                since=rotation.started_at,
                admins=settings.admin_user_ids,
            )
        directory.to_channel(
            settings, message, fallback_users=[owner, *settings.admin_user_ids], job=job
        )
        return JobOutcome()

    return handle


# Payload entry of a key announcement: the alert channel has it already (see PartialProgress).
CHANNEL_POSTED = "channel_posted"


def make_key_announce_handler(services: Services, client: WebClient) -> Handler:
    """A key that can move funds was registered or removed: the alert channel and its owner
    (by direct message) are told, each once even when a post fails and the job is retried.
    Without an alert channel, or when the owner left, the admins are told directly."""
    settings = services.settings
    directory = SlackDirectory(client)

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        what = str(job.payload.get("what"))
        message = funds_key_announcement(job.payload, what)
        owner = job.payload.get("owner")
        people = [] if directory.user_is_gone(owner) else [owner]
        if not settings.alert_channel or not people:
            people += list(settings.admin_user_ids)
        posted = bool(job.payload.get(CHANNEL_POSTED))
        if settings.alert_channel and not posted:
            client.chat_postMessage(channel=settings.alert_channel, **message.as_kwargs())
            posted = True
        try:
            directory.direct_message_each(people, message, job=job)
        except PartialProgress as partial:
            progress = {**partial.progress, CHANNEL_POSTED: posted}
            raise PartialProgress(progress, partial.cause) from partial.cause
        except Exception as exc:
            if not posted:
                raise
            raise PartialProgress(
                {CHANNEL_POSTED: True, DELIVERED_TO: job.payload.get(DELIVERED_TO, [])}, exc
            ) from exc
        audit = {
            "team_id": job.team_id,
            "actor": "bot",
            "action": AuditAction.KEY_ANNOUNCE,
            "target": job.payload.get("label"),
            "target_key_id": job.key_id,
            "detail": {
                "what": what,
                "tier": job.payload.get("tier"),
                "channel": settings.alert_channel if posted else None,
                "told": [p for p in dict.fromkeys(people) if p],
            },
        }
        return JobOutcome(audit=(audit,))

    return handle
