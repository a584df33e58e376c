"""Audit checkpoints in Slack: the chain's head posted to the alert channel, and read back.

Each checkpoint is a message of the bot with readable text (a person can compare it) and the
same figures in Slack's message metadata (https://docs.slack.dev/messaging/message-metadata:
``event_type`` and an ``event_payload`` of strings and numbers), which is what ``audit verify``
reads back through conversations.history with ``include_all_metadata``. Only messages posted by
this bot (its ``bot_id`` from auth.test) count: anyone else in the channel can post text, not
as the bot.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.audit import checkpoint_message
from bot.model.audit import Checkpoint, Witness, WitnessState

log = logging.getLogger(__name__)

CHECKPOINT_EVENT = "apikey_bot_audit_checkpoint"
# conversations.history allows up to 999 per page and is Tier 3 (50+ calls a minute) for an
# internal app; Slack's tighter limit (15 per page, 1 call a minute) applies only to apps
# distributed commercially outside the Marketplace, which this bot is not.
PAGE_SIZE = 200
MAX_PAGES = 500  # 100,000 messages of the alert channel, newest first
_HEAD = re.compile(r"[0-9a-f]{64}")


def post_checkpoint(client: WebClient, channel: str, checkpoint: Checkpoint) -> str:
    """Post ``checkpoint`` in ``channel``; returns the message's ts."""
    payload: dict[str, str | int] = {
        "events": checkpoint.events,
        "head": checkpoint.head,
        "at": checkpoint.at.isoformat(),
    }
    if checkpoint.head_id is not None:
        payload["head_id"] = checkpoint.head_id
    response = client.chat_postMessage(
        channel=channel,
        metadata={"event_type": CHECKPOINT_EVENT, "event_payload": payload},
        **checkpoint_message(checkpoint).as_kwargs(),
    )
    return str(response["ts"])


def read_witness(client: WebClient, channel: str | None) -> Witness:
    """The checkpoints this bot posted in ``channel`` (none configured: say so)."""
    if not channel:
        return Witness(WitnessState.NONE)
    try:
        bot_id = client.auth_test()["bot_id"]
        found: list[Checkpoint] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = client.conversations_history(
                channel=channel, limit=PAGE_SIZE, include_all_metadata=True, cursor=cursor
            )
            found += [
                checkpoint
                for message in page.get("messages") or []
                if message.get("bot_id") == bot_id
                and (checkpoint := _checkpoint_of(message)) is not None
            ]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return Witness(WitnessState.READ, channel, tuple(found))
        return Witness(WitnessState.READ, channel, tuple(found), incomplete=True)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "error")
        log.warning("could not read the audit checkpoints in %s: %s", channel, error)
        return Witness(WitnessState.UNREADABLE, channel, problem=error)
    except OSError as exc:  # Slack did not answer (after the client's retries)
        log.warning("could not read the audit checkpoints in %s: %s", channel, type(exc).__name__)
        return Witness(WitnessState.UNREADABLE, channel, problem="Slack did not answer")


def _checkpoint_of(message: dict[str, Any]) -> Checkpoint | None:
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != CHECKPOINT_EVENT:
        return None
    payload = metadata.get("event_payload") or {}
    try:
        events = int(payload["events"])
        head = str(payload["head"])
        at = datetime.fromisoformat(str(payload["at"]))
        head_id = int(payload["head_id"]) if payload.get("head_id") is not None else None
    except (KeyError, TypeError, ValueError):
        return None
    if events < 0 or not _HEAD.fullmatch(head):
        return None
    return Checkpoint(events=events, head=head, at=at, head_id=head_id)
