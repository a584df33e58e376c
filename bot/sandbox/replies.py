"""What the bot sends to "Slack", shown in the terminal as a Slack user would see it.

The bot answers each request over HTTP (the ack) and then, often later, through the Web API and
``response_url``, which the Slack stand-in records. ``SlackReplies`` prints each of those as text,
numbers the buttons in them so that the person can press one, and waits until the bot is done.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from bot.sandbox.render import Button, payload_buttons, payload_view, render_payload
from bot.sandbox.requests import BotReply
from bot.sandbox.terminal import Terminal, indent, loosely

MAX_WAIT_SECONDS = 15.0
QUIET_SECONDS = 1.0  # without activity tracking: the reply is complete after this much silence
SETTLE_SECONDS = 0.3  # with activity tracking: silence once the bot has no work in flight
USER_MENTION = re.compile(r"@([UW][A-Z0-9]{2,})\b")  # <@U…> as render.py writes it
CHANNEL_MENTION = re.compile(r"#([CG][A-Z0-9]{2,})\b")  # <#C…> as render.py writes it
# Slack Web API calls that are plumbing, not something a user sees.
SILENT_METHODS = {"conversations.open", "auth.test", "users.info", "chat.getPermalink"}


@dataclass
class Pressable:
    button: Button
    message: dict[str, Any] | None  # None for ephemeral messages (Slack sends no message then)
    view: dict[str, Any] | None = None


class BotActivity:
    """Knows whether the bot still has work in flight (listeners, background jobs).

    The sandbox runs the bot in this process, so it can watch the executors the bot submits its
    work to; that tells "the reply is complete" from "Binance is slow" without guessing.
    """

    def __init__(self) -> None:
        self._futures: list[Future[Any]] = []
        self._lock = threading.Lock()
        self.watching = False

    def watch(self, executor: Executor | None) -> None:
        if executor is None or not callable(getattr(executor, "submit", None)):
            return
        original = executor.submit

        def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            future = original(fn, *args, **kwargs)
            with self._lock:
                self._futures.append(future)
            return future

        executor.submit = submit  # type: ignore[method-assign]
        self.watching = True

    def busy(self) -> bool:
        with self._lock:
            self._futures = [f for f in self._futures if not f.done()]
            return bool(self._futures)


class SlackReplies:
    """Prints the replies to the current command and keeps their buttons and raw calls."""

    def __init__(
        self, slack: Any, term: Terminal, *, activity: BotActivity, width: int, style: bool
    ) -> None:
        self.slack = slack
        self.term = term
        self.activity = activity
        self.width = width
        self.style = style
        self.buttons: list[Pressable] = []
        self.last_calls: list[dict[str, Any]] = []  # the `calls` command shows these
        self._seen = 0  # Slack calls already shown (late ones show with the next command)
        self.channel_names: dict[str, str] = {}  # channel id -> name, for captions
        self.user_names: dict[str, str] = {}  # user id -> name, for mentions

    def start_command(self) -> None:
        self.buttons = []
        self.last_calls = []

    def record_answer(self, what: str, reply: BotReply) -> None:
        """Keep the bot's HTTP answer among the calls of this command."""
        self.last_calls.append({"method": what, "status": reply.status})
        if reply.body:
            self.last_calls[-1]["body"] = reply.body

    def show_ack(self, reply: BotReply) -> None:
        self.record_answer("(HTTP answer to the request)", reply)
        if reply.status != 200:
            self.term.say(f"(the bot answered HTTP {reply.status})")
            return
        if reply.body and (reply.body.get("blocks") or reply.body.get("text")):
            self.show("reply (only you can see it)", reply.body)

    def show(
        self,
        caption: str,
        params: dict[str, Any],
        *,
        view: dict[str, Any] | None = None,
        ephemeral: bool = True,
        channel: str | None = None,
    ) -> None:
        """Print a reply; a regular message (``ephemeral`` False) keeps its ``ts`` and
        ``channel`` so that a button pressed in it comes back as Slack sends it."""
        buttons = payload_buttons(params)
        text = render_payload(
            params, first_number=len(self.buttons) + 1, width=self.width - 2, style=self.style
        )
        if self.user_names:  # as Slack shows a mention: the person's name, not their id
            text = USER_MENTION.sub(lambda m: "@" + self.user_names.get(m[1], m[1]), text)
        if self.channel_names:  # and a channel by its name
            text = CHANNEL_MENTION.sub(lambda m: "#" + self.channel_names.get(m[1], m[1]), text)
        message = None if ephemeral or view else params
        if message is not None and channel:
            message = {**message, "_channel": channel}
        self.buttons.extend(Pressable(b, message, view) for b in buttons)
        self.term.say(f"↳ {caption}")
        if text:
            self.term.say(indent(text))

    def follow(self) -> list[dict[str, Any]]:
        """Print what the bot sends to Slack, until it is done (at most 15 s).

        Returns the views the bot opened (``views.open``, ``views.push``), in order."""
        start = last_change = time.monotonic()
        opened: list[dict[str, Any]] = []
        while True:
            calls = self.slack.calls
            for call in calls[self._seen :]:
                view = self._show_call(call)
                if view is not None:
                    opened.append(view)
            if len(calls) > self._seen:
                self._seen = len(calls)
                last_change = time.monotonic()
            now = time.monotonic()
            if self.activity.watching:
                if not self.activity.busy() and now - last_change >= SETTLE_SECONDS:
                    break
            elif now - last_change >= QUIET_SECONDS:
                break
            if now - start > MAX_WAIT_SECONDS:
                self.term.say("(stopped waiting for the bot after 15 seconds)")
                break
            time.sleep(0.05)
        return opened

    def has_unseen(self) -> bool:
        """Whether the bot made Slack calls not shown yet."""
        return len(self.slack.calls) > self._seen

    def flush(self) -> list[dict[str, Any]]:
        """Print the calls recorded so far and not yet shown, without waiting for more."""
        calls = self.slack.calls
        opened = [v for call in calls[self._seen :] if (v := self._show_call(call)) is not None]
        self._seen = len(calls)
        return opened

    def wait_quietly(self, mark: int) -> None:
        """Wait, printing nothing, until the bot is done (or has made a call after ``mark``)."""
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.activity.watching and not self.activity.busy():
                return
            if not self.activity.watching and len(self.slack.calls) > mark:
                return
            time.sleep(0.05)

    def _show_call(self, call: Any) -> dict[str, Any] | None:
        """Print one recorded Slack call; returns the view when it opened a modal."""
        method, params = call.method, dict(call.params or {})
        self.last_calls.append({"method": method, "params": params})
        if method in SILENT_METHODS:
            return None
        if method == "response_url":
            caption = "reply"
            if params.get("delete_original"):
                self.term.say("↳ (the bot deleted its previous message)")
                return None
            if params.get("replace_original"):
                caption = "reply (replaces the previous message)"
            if params.get("response_type") == "in_channel":
                caption += ", visible to the channel"
            self.show(caption, params)
            return None
        if method == "chat.postEphemeral":
            self.show("private message (only you can see it)", params)
            return None
        if method == "chat.postMessage":
            where = self.channel_name(str(params.get("channel", "?")))
            if params.get("thread_ts"):
                where += ", in a thread"
            message = {**params, "ts": getattr(call, "answered_ts", None) or params.get("ts")}
            self.show(
                f"message in {where}",
                message,
                ephemeral=False,
                channel=str(params.get("channel", "")),
            )
            return None
        if method == "chat.update":
            # Drawn in place of the message it updates (same channel and ts), with its buttons:
            # in Slack the old message changes; here the new one is printed as a whole.
            where = self.channel_name(str(params.get("channel", "?")))
            self.show(
                f"the message in {where} is updated; it now reads",
                params,
                ephemeral=False,
                channel=str(params.get("channel", "")),
            )
            return None
        if method in {"views.open", "views.push", "views.update", "views.publish"}:
            # A button pressed in a view comes back with the view as Slack stored it (its id
            # included), not as the bot sent it.
            view = getattr(call, "answered_view", None) or payload_view(params) or {}
            caption = {
                "views.open": "a form opens",
                "views.push": "another form opens",
                "views.update": "the form now shows",
                "views.publish": "your App Home now shows",
            }[method]
            self.show(caption, params, view=view)
            return view if method in {"views.open", "views.push"} else None
        self.term.say(f"↳ {method}: {json.dumps(params, ensure_ascii=False, default=str)[:300]}")
        return None

    def channel_name(self, channel: str) -> str:
        """How a person names ``channel``: #name for the workspace's channels."""
        if channel.startswith("D"):
            return "a direct message"
        name = self.channel_names.get(channel)
        return f"#{name}" if name else channel

    # --- buttons ------------------------------------------------------------------------------

    def show_buttons(self) -> None:
        if not self.buttons:
            self.term.say("The last reply has no buttons.")
            return
        for number, item in enumerate(self.buttons, 1):
            self.term.say(f"  [{number}] {item.button.text}")

    def find_button(self, which: str) -> Pressable | None:
        """The button ``which`` names: its number, its text or part of it; None, said why."""
        if not self.buttons:
            self.term.say("The last reply has no buttons to press.")
            return None
        if which.isdigit():
            number = int(which)
            if 1 <= number <= len(self.buttons):
                return self.buttons[number - 1]
            self.term.say(f"There is no button [{number}].")
            self.show_buttons()
            return None
        wanted = loosely(which)
        exact = [b for b in self.buttons if loosely(b.button.text) == wanted]
        partial = [b for b in self.buttons if wanted and wanted in loosely(b.button.text)]
        matches = exact or partial
        if len(matches) == 1:
            return matches[0]
        self.term.say(
            f"More than one button matches “{which}”:"
            if matches
            else f"No button matches “{which}”."
        )
        self.show_buttons()
        return None
