"""Leak detection: a message in a channel the bot is in that contains something shaped like
a Binance key, secret or private key gets a warning in its thread. The text itself is never
logged or stored: it is only fingerprinted to recognise a registered key."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.blocks.incidents import leak_warning
from bot.commands import find_secret_shape
from bot.services.context import Services
from bot.services.leaks import record_leak_in_channel
from bot.slack.access import Requester

log = logging.getLogger(__name__)


def handle_message(
    event: dict, client: WebClient, services: Services, requester: Requester
) -> None:
    if event.get("subtype") or event.get("bot_id"):
        return  # edits, joins, bot messages (including our own warnings)
    text = event.get("text") or ""
    kind = find_secret_shape(text)
    if kind is None:
        return
    channel, ts = event.get("channel"), event.get("ts")
    matched = record_leak_in_channel(
        engine=services.engine,
        ring=services.ring,
        team_id=requester.team_id,
        actor=event.get("user") or "unknown",
        channel=channel,
        text=text,
    )
    del text  # nothing below needs it
    warning = leak_warning(
        kind, matched_label=matched[0] if matched else None, key_id=matched[1] if matched else None
    )
    client.chat_postMessage(channel=channel, thread_ts=ts, **warning.as_kwargs())
    log.info("leak warning posted in %s (registered key matched: %s)", channel, bool(matched))
