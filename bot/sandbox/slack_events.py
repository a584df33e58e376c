"""Events API bodies for messages, shaped as Slack sends them (the Slack stand-in delivers them).

Each shape follows Slack's own reference page (docs.slack.dev/reference/events/message/...,
formerly api.slack.com/events/message/...):

- a person's message (``message``): ``user``, ``text``, ``ts``, ``team``, the ``blocks`` their
  client made (one ``rich_text`` block), ``client_msg_id``; a thread reply carries
  ``thread_ts``, the parent's ts (api.slack.com/events/message, "threading");
- ``thread_broadcast``: a thread reply also sent to the channel, with ``thread_ts`` and the
  parent as ``root`` (docs.slack.dev/reference/events/message/thread_broadcast);
- ``message_changed``: ``hidden``, the edited message as ``message`` (its own ``edited``
  stamp) and the old one as ``previous_message``, the channel at the top
  (docs.slack.dev/reference/events/message/message_changed);
- ``file_share``: the message's ``text`` and ``files``, file objects with ``title``, ``name``
  and, for text files and snippets, a ``preview`` of their first lines
  (api.slack.com/events/message/file_share, api.slack.com/types/file);
- ``bot_message``: posted by an integration, no ``user``; ``bot_id``, ``username``,
  ``attachments`` and ``blocks`` (api.slack.com/events/message/bot_message);
- an app's message posted with ``chat.postMessage``: no subtype, ``user`` is the app's bot user,
  with ``bot_id`` and ``app_id`` (as chat.postMessage's answer shows the message).

``envelope`` wraps an event in the outer ``event_callback`` body
(docs.slack.dev/apis/events-api: ``team_id``, ``api_app_id``, ``event``, ``event_id``,
``event_time``, ``authorizations`` (one installation the event is visible to),
``is_ext_shared_channel``, ``context_team_id``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

Event = dict[str, Any]


def rich_text(text: str) -> list[dict[str, Any]]:
    """The ``blocks`` a Slack client sends with a typed message: one rich_text section."""
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": uuid.uuid4().hex[:4], "elements": [section]}]


def user_message(
    text: str,
    *,
    channel: str,
    user: str,
    ts: str,
    team: str | None = None,
    thread_ts: str | None = None,
) -> Event:
    """A person's message in ``channel`` (a thread reply when ``thread_ts`` names a parent)."""
    message: Event = {
        "type": "message",
        "channel": channel,
        "channel_type": "channel",
        "user": user,
        "text": text,
        "blocks": rich_text(text) if text else [],
        "client_msg_id": str(uuid.uuid4()),
        "ts": ts,
        "event_ts": ts,
    }
    if team:
        message["team"] = team
    if thread_ts:
        message["thread_ts"] = thread_ts
    return message


def thread_broadcast(
    text: str, *, channel: str, user: str, ts: str, thread_ts: str, root: Event, team: str
) -> Event:
    """A reply in the thread of ``root`` that was also sent to the channel."""
    parent = {k: v for k, v in root.items() if k not in ("channel", "channel_type", "event_ts")}
    parent.update(
        thread_ts=thread_ts, reply_count=1, reply_users_count=1, latest_reply=ts, reply_users=[user]
    )
    return {
        **user_message(text, channel=channel, user=user, ts=ts, team=team, thread_ts=thread_ts),
        "subtype": "thread_broadcast",
        "root": parent,
    }


def message_changed(
    message: Event, *, previous: Event, channel: str, edit_ts: str | None = None
) -> Event:
    """``message`` (the text after the edit) replacing ``previous`` in ``channel``."""
    edit_ts = edit_ts or f"{time.time():.6f}"
    inner = {k: v for k, v in message.items() if k not in ("channel", "channel_type", "event_ts")}
    inner["edited"] = {"user": message.get("user") or message.get("bot_id"), "ts": edit_ts}
    old = {k: v for k, v in previous.items() if k not in ("channel", "channel_type", "event_ts")}
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": channel,
        "channel_type": "channel",
        "message": inner,
        "previous_message": old,
        "ts": edit_ts,
        "event_ts": edit_ts,
    }


def file_object(
    title: str, *, user: str, name: str | None = None, preview: str | None = None
) -> dict[str, Any]:
    """A shared file as the event carries it; ``preview``: a text file's first lines."""
    file_id = "F0" + uuid.uuid4().hex[:9].upper()
    name = name or title
    file: dict[str, Any] = {
        "id": file_id,
        "created": int(time.time()),
        "timestamp": int(time.time()),
        "name": name,
        "title": title,
        "mimetype": "text/plain",
        "filetype": "text",
        "pretty_type": "Plain Text",
        "user": user,
        "mode": "snippet" if preview is not None else "hosted",
        "editable": preview is not None,
        "is_external": False,
        "is_public": True,
        "display_as_bot": False,
        "url_private": f"https://files.slack.com/files-pri/T0-{file_id}/{name}",
        "permalink": f"https://example.slack.com/files/{user}/{file_id}/{name}",
        "has_rich_preview": False,
    }
    if preview is not None:
        file.update(preview=preview, lines=preview.count("\n") + 1, lines_more=0)
    return file


def file_share(
    text: str, *, channel: str, user: str, ts: str, files: list[dict[str, Any]], team: str
) -> Event:
    """``user`` shared ``files`` in ``channel``, with ``text`` as the message."""
    message = user_message(text, channel=channel, user=user, ts=ts, team=team)
    return {
        **message,
        "subtype": "file_share",
        "files": files,
        "upload": True,
        "display_as_bot": False,
    }


def bot_message(
    text: str,
    *,
    channel: str,
    bot_id: str,
    ts: str,
    username: str,
    attachments: list[dict[str, Any]] | None = None,
    blocks: list[dict[str, Any]] | None = None,
) -> Event:
    """A message posted by an integration (no ``user``)."""
    message: Event = {
        "type": "message",
        "subtype": "bot_message",
        "channel": channel,
        "channel_type": "channel",
        "text": text,
        "bot_id": bot_id,
        "username": username,
        "icons": {},
        "ts": ts,
        "event_ts": ts,
    }
    if attachments:
        message["attachments"] = attachments
    if blocks:
        message["blocks"] = blocks
    return message


def app_message(
    text: str, *, channel: str, bot_id: str, bot_user: str, app_id: str, team: str, ts: str
) -> Event:
    """A message an app posted with ``chat.postMessage``, as its bot user."""
    return {
        "type": "message",
        "channel": channel,
        "channel_type": "channel",
        "user": bot_user,
        "bot_id": bot_id,
        "app_id": app_id,
        "team": team,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }


def envelope(
    event: Event,
    *,
    team_id: str,
    api_app_id: str,
    bot_user_id: str,
    enterprise_id: str | None = None,
    shared_from: str | None = None,
) -> dict[str, Any]:
    """The ``event_callback`` body that carries ``event`` to the app installed in ``team_id``.

    ``shared_from``: the event happened in an externally shared channel that belongs to that
    other workspace; the outer ``team_id`` then names it, and ``authorizations`` still names
    this installation (bolt-python reads the installation from there for that reason)."""
    now = time.time()
    outer_team = shared_from or team_id
    return {
        "token": "legacy-verification-token",
        "team_id": outer_team,
        "context_team_id": outer_team,
        "enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev0" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(now),
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": shared_from is not None,
    }
