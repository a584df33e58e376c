"""Leak detection: a message in a channel the bot is in that contains something shaped like
a Binance key, secret or private key gets a warning in its thread. Every shape that shows text
to people is read (bot.slack.message_text); only the bot's own messages are skipped. The text
itself is never logged or stored: it is only fingerprinted to recognise a registered key."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient

from bot.blocks.response.incidents import leak_warning
from bot.secret_shapes import find_secret_shape
from bot.services.context import Services
from bot.services.response.leaks import record_leak_in_channel
from bot.slack.access import Requester
from bot.slack.message_text import OwnBot, seen_message

log = logging.getLogger(__name__)


def handle_message(
    event: dict[str, Any],
    client: WebClient,
    services: Services,
    requester: Requester,
    context: BoltContext,
) -> None:
    # The bot's own identity, as Bolt's authorization read it from auth.test.
    seen = seen_message(event, OwnBot(bot_id=context.bot_id, user_id=context.bot_user_id))
    if seen is None:
        return
    kind = find_secret_shape(seen.text)
    if kind is None:
        return
    matched = record_leak_in_channel(
        engine=services.engine,
        ring=services.ring,
        team_id=requester.team_id,
        actor=seen.author,
        channel=seen.channel,
        text=seen.text,
    )
    warning = leak_warning(
        kind, matched_label=matched[0] if matched else None, key_id=matched[1] if matched else None
    )
    # In the message's thread: a reply's thread_ts names its parent, the thread it lives in
    # (docs.slack.dev/reference/events/message/message_replied).
    client.chat_postMessage(channel=seen.channel, thread_ts=seen.thread_ts, **warning.as_kwargs())
    log.info("leak warning posted in %s (registered key matched: %s)", seen.channel, bool(matched))
