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


def responder(body: dict, client, respond):
    """``respond`` where Slack gave a ``response_url``; a click on the App Home has none, so
    the answer goes to the person's direct messages with the app instead."""
    if body.get("response_url") or getattr(respond, "response_url", None):
        return respond
    user_id = body.get("user_id") or (body.get("user") or {}).get("id")

    def direct_message(**kwargs) -> None:
        for ignored in ("response_type", "replace_original", "delete_original"):
            kwargs.pop(ignored, None)
        opened = client.conversations_open(users=user_id)
        client.chat_postMessage(channel=opened["channel"]["id"], **kwargs)

    return direct_message
