"""What a person sees in a Slack ``message`` event: its text, wherever the shape puts it.

Read against Slack's reference pages (docs.slack.dev/reference/events/message and its subtype
pages, formerly api.slack.com/events/message/...):

- a plain message, or a thread reply (``thread_ts`` names the parent): ``text``, ``blocks``,
  ``attachments``;
- ``thread_broadcast``, a thread reply also sent to the channel: the same fields;
- ``message_changed``, an edit: the message after the edit is ``message`` (``text``, ``blocks``,
  ``attachments``), the one before is ``previous_message``; Slack also sends it when only an
  unfurl or a reply count changed, so only lines the edit added count as new;
- ``file_share``: the message's ``text`` plus each file's ``title``, ``name`` and, for text
  files and snippets, ``preview`` (api.slack.com/types/file), from ``files`` (or the older
  single ``file``);
- ``bot_message``, posted by an integration, and any message with a ``bot_id`` (an app posting
  as its bot user): the same text fields as a person's;
- ``me_message`` (``/me``): ``text``.

Other subtypes (joins, topic changes, deletions...) carry no text a person just wrote.

The bot skips its own messages only, recognised as Bolt's ``IgnoringSelfEvents`` does: the
event's ``bot_id`` is the bot id, or its user is the bot user, that ``auth.test`` gave.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

READ_SUBTYPES = frozenset({"thread_broadcast", "file_share", "bot_message", "me_message"})
EDITED = "message_changed"
# Keys whose string values a person sees in blocks and attachments (a text object's "text",
# an attachment's pretext, title, footer...); a button's "value" or an "action_id" is not.
_SHOWN_KEYS = frozenset({"text", "pretext", "title", "fallback", "footer", "author_name"})
_FILE_KEYS = ("title", "name", "preview")


@dataclass(frozen=True)
class OwnBot:
    """The bot's own identity in Slack (from ``auth.test``: ``bot_id`` and ``user_id``)."""

    bot_id: str | None
    user_id: str | None

    def wrote(self, message: Mapping[str, Any]) -> bool:
        bot_id, user = message.get("bot_id"), message.get("user")
        return bool((bot_id and bot_id == self.bot_id) or (user and user == self.user_id))


@dataclass(frozen=True)
class SeenMessage:
    """A message someone (or another app) posted, as the leak scan needs it."""

    channel: str
    ts: str  # the message's own ts
    thread_ts: str  # where a reply to it goes: its thread's parent, or itself
    author: str  # the user id, or "bot:<bot id>" for an integration without a user
    text: str = field(repr=False)  # new text a person sees (may hold a secret: never log it)


def seen_message(event: Mapping[str, Any], own: OwnBot) -> SeenMessage | None:
    """The message ``event`` shows to people, or None (own message, no text, another kind)."""
    subtype = event.get("subtype")
    channel = event.get("channel")
    if not isinstance(channel, str):
        return None
    if subtype == EDITED:
        message, previous = event.get("message"), event.get("previous_message")
        if not isinstance(message, Mapping) or own.wrote(message):
            return None
        before = shown_text(previous) if isinstance(previous, Mapping) else ""
        text = _added_lines(shown_text(message), before)
    elif subtype is None or subtype in READ_SUBTYPES:
        message = event
        if own.wrote(message):
            return None
        text = shown_text(message)
    else:
        return None
    ts = message.get("ts")
    if not text.strip() or not isinstance(ts, str):
        return None
    thread_ts = message.get("thread_ts")
    return SeenMessage(
        channel=channel,
        ts=ts,
        thread_ts=thread_ts if isinstance(thread_ts, str) and thread_ts else ts,
        author=_author(message),
        text=text,
    )


def shown_text(message: Mapping[str, Any]) -> str:
    """Every piece of text a person sees in ``message``, one per line."""
    return "\n".join(_pieces(message))


def _pieces(message: Mapping[str, Any]) -> Iterator[str]:
    if isinstance(message.get("text"), str):
        yield message["text"]
    for name in ("blocks", "attachments"):
        yield from _shown_strings(message.get(name))
    files = message.get("files")
    files = files if isinstance(files, list) else [message.get("file")]
    for file in files:
        if isinstance(file, Mapping):
            yield from (file[k] for k in _FILE_KEYS if isinstance(file.get(k), str))


def _shown_strings(node: Any) -> Iterator[str]:
    """The shown strings of blocks or attachments, at any depth (rich text, sections,
    fields, context elements, an attachment's own blocks)."""
    if isinstance(node, list):
        for item in node:
            yield from _shown_strings(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(value, str):
                if key in _SHOWN_KEYS:
                    yield value
            elif key == "fields" and isinstance(value, list):
                for item in value:  # an attachment's field shows its "value" too
                    if isinstance(item, Mapping) and isinstance(item.get("value"), str):
                        yield item["value"]
                    yield from _shown_strings(item)
            else:
                yield from _shown_strings(value)


def _added_lines(after: str, before: str) -> str:
    """The lines of ``after`` that ``before`` did not have (what an edit added)."""
    old = set(before.splitlines())
    return "\n".join(line for line in after.splitlines() if line not in old)


def _author(message: Mapping[str, Any]) -> str:
    edited = message.get("edited")
    editor = edited.get("user") if isinstance(edited, Mapping) else None
    for candidate in (editor, message.get("user")):
        if isinstance(candidate, str) and candidate:
            return candidate
    bot_id = message.get("bot_id")
    return f"bot:{bot_id}" if isinstance(bot_id, str) and bot_id else "unknown"
