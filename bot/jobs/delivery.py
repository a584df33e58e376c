"""Where scheduled messages go: the alert channel, else direct messages."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.message import Message
from bot.config import Settings

log = logging.getLogger(__name__)


def user_is_gone(client: WebClient, user_id: str | None) -> bool:
    """True when the user left the workspace (deactivated or unknown)."""
    if not user_id:
        return True
    try:
        user = client.users_info(user=user_id)["user"]
    except SlackApiError as exc:
        if exc.response.get("error") in ("user_not_found", "account_inactive"):
            return True
        raise
    return bool(user.get("deleted"))


def direct_message(client: WebClient, user_id: str, message: Message) -> None:
    opened = client.conversations_open(users=user_id)
    client.chat_postMessage(channel=opened["channel"]["id"], **message.as_kwargs())


def to_channel(
    client: WebClient, settings: Settings, message: Message, *, fallback_users: list[str]
) -> None:
    """Post in the alert channel; without one, DM each fallback user (owner, admins)."""
    if settings.alert_channel:
        client.chat_postMessage(channel=settings.alert_channel, **message.as_kwargs())
        return
    recipients = list(dict.fromkeys(u for u in fallback_users if u))
    if not recipients:
        log.warning("no alert channel, owner or admin to tell: %s", message.text[:80])
    for user_id in recipients:
        direct_message(client, user_id, message)
