"""Announcements decided in a transaction elsewhere (rotation complete, old key alive)."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient
from sqlmodel import Session

from bot.blocks.rotation import old_key_alive_message, rotation_complete_message
from bot.jobs.delivery import SlackDirectory
from bot.jobs.queue import ClaimedJob, Handler, JobOutcome
from bot.services.context import Services
from bot.services.delivery_view import delivery_view
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
