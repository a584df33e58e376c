"""Getting a private message to one person: ephemeral in the channel, else a direct message."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.blocks.message import Message

log = logging.getLogger(__name__)


def send_private(client, *, channel: str | None, user_id: str, message: Message) -> None:
    if channel:
        try:
            client.chat_postEphemeral(channel=channel, user=user_id, **message.as_kwargs())
            return
        except SlackApiError as exc:
            log.info("ephemeral message not possible (%s); sending a DM", exc.response.get("error"))
    opened = client.conversations_open(users=user_id)
    client.chat_postMessage(channel=opened["channel"]["id"], **message.as_kwargs())
