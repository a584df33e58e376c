"""Messages that stay live after they are posted: the incident checklist, re-rendered in every
channel it was posted to whenever the incident changes."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError

from bot.blocks.response.incidents import incident_message
from bot.services.context import Services
from bot.services.response.incidents import one_refresh_at_a_time

log = logging.getLogger(__name__)


class MessageUpdater(Protocol):
    """What a refresh needs of Slack's Web API: a WebClient, or a wrapper around one."""

    def chat_update(self, *, channel: str, ts: str, **kwargs: Any) -> Any: ...


def refresh_messages(services: Services, client: MessageUpdater, incident_id: str) -> None:
    """Re-render the checklist everywhere it was posted (one refresh at a time across replicas);
    a channel that refuses is logged and the others are still updated."""
    with one_refresh_at_a_time(services.engine, incident_id) as view:
        admins = services.settings.admin_user_ids
        message = incident_message(view, admins=admins, now=services.clock())
        for ref in view.incident.messages:
            try:
                client.chat_update(channel=ref["channel"], ts=ref["ts"], **message.as_kwargs())
            except SlackApiError as exc:
                log.info(
                    "could not update the checklist in %s (%s)",
                    ref["channel"],
                    exc.response.get("error"),
                )
