"""A local Slack Web API, and the ``response_url`` endpoint, that slack_sdk and Bolt talk to unchanged.

A real HTTP/1.1 server on 127.0.0.1 (port 0 by default, keep-alive, one daemon thread per
connection). ``WebClient(base_url=standin.url, token=...)`` posts to ``<url><method>`` exactly as it
would to https://slack.com/api/; the stand-in checks the bearer token, answers the methods the bot
uses with the fields slack_sdk and Bolt read (``ok``, ``ts``, ``channel``, ``view.id`` ...) and
records every call, decoded, in ``calls``. ``response_url()`` hands out URLs to put in signed
command and action payloads; what the bot posts there is recorded as method ``"response_url"``.

Like Slack it refuses what Slack refuses, so that end-to-end tests catch it: a missing or wrong
token, more than 50 blocks in a message (100 in a view), a modal title over 24 characters, an
unknown user in ``users.info``. Faults (429 with ``Retry-After``, 5xx, ``ok: false``) can be
injected per method, and ``latency`` slows every answer down.

It also plays Slack's side of the Events API: ``deliver_event`` signs a message event (shaped by
``bot.sandbox.slack_events``: thread broadcasts, edits, file shares, other apps' messages) in
the envelope Slack sends this workspace's app and posts it to the bot's Request URL;
``posted_message_event`` is the event Slack sends the app for a message the bot itself posted.
A workspace of an Enterprise Grid is made with ``enterprise_id`` (``auth.test`` then names it).

Used by the end-to-end tests, the benchmarks and the offline sandbox::

    with SlackStandIn(users={"U0ALICE": {"name": "alice"}}) as slack:
        client = WebClient(base_url=slack.url, token=slack.bot_token)
        client.chat_postMessage(channel="C0GENERAL", text="hi")
        (call,) = slack.wait_for("chat.postMessage")

Run it alone with ``python -m bot.sandbox.slack_standin --port 8901``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from bot.sandbox import slack_events
from bot.sandbox.local_server import LocalServer, LocalService, TrackedHandler
from bot.sandbox.requests import sign

RESPONSE_URL = "response_url"  # the method name under which response_url posts are recorded
API_PREFIX = "/api/"
RESPONSE_PREFIX = "/response/"
# Form-encoded Web API calls carry these as JSON strings; they are recorded decoded.
JSON_FIELDS = ("blocks", "attachments", "view", "metadata")
APP_ID = "A0APP"
DEFAULT_BOT_TOKEN = "xoxb-test"  # noqa: S105 - fake, accepted only by this stand-in
DEFAULT_APP_TOKEN = "xapp-1-A0STANDIN-1-standin"  # noqa: S105 - a stand-in, not a real token
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_VIEW_TITLE = 24
FIRST_TS_MICROS = 1_700_000_000_000_100
TS_STEP_MICROS = 100
DEFAULT_FAULT_ERRORS = {429: "ratelimited"}


@dataclass(frozen=True)
class SlackCall:
    """One request that reached the stand-in, and how it was answered."""

    method: str  # Web API method, e.g. "chat.postMessage"; "response_url" for response_url posts
    params: dict[str, Any]  # the decoded body (and query string); response_url posts: the JSON body
    token: str | None  # the bearer token (or ``token`` form field); never in params
    at: float  # time.time() on arrival
    status: int = 200  # the HTTP status answered
    error: str | None = None  # the ``error`` answered (None when Slack would say ok)
    # views.*: the view as Slack stored it (with its id, state and hash): what Slack sends back
    # in a block_actions payload when a button in that view is pressed
    # (https://api.slack.com/reference/interaction-payloads/block-actions, "view").
    answered_view: dict[str, Any] | None = None
    # chat.postMessage / chat.update: the ``ts`` answered, which names the message from then on
    # (https://api.slack.com/methods/chat.postMessage, "ts" in the response; chat.update takes it)
    answered_ts: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    def summary(self) -> str:
        """One line: the method, the parameters that identify the call, and the outcome."""
        parts = [self.method]
        for name in ("channel", "user", "users", "usergroup", "ts", "view_id", "user_id"):
            value = self.params.get(name)
            if value:
                parts.append(f"{name}={value}")
        view = self.params.get("view")
        if isinstance(view, dict) and view.get("callback_id"):
            parts.append(f"view={view['callback_id']}")
        if self.method == RESPONSE_URL:
            parts.append(str(self.params.get("_response_url", "")).rsplit("/", 1)[-1])
        text = self.params.get("text")
        if isinstance(text, str) and text:
            short = text if len(text) <= 60 else text[:59] + "…"
            parts.append(json.dumps(short, ensure_ascii=False))
        blocks = self.params.get("blocks")
        if isinstance(blocks, list):
            parts.append(f"blocks={len(blocks)}")
        outcome = "ok" if self.ok else f"{self.error or 'error'} ({self.status})"
        return " ".join(parts) + f" -> {outcome}"


@dataclass
class _Fault:
    method: str
    status: int
    remaining: int
    retry_after: int
    error: str | None
    where: dict[str, str]

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        return (
            self.method == method
            and self.remaining > 0
            and all(str(params.get(name)) == value for name, value in self.where.items())
        )


@dataclass
class _Answer:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        if isinstance(self.body, dict):
            return None if self.body.get("ok") else str(self.body.get("error", "error"))
        return None if self.status == 200 else self.body


def _fail(error: str, *messages: str) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error": error}
    if messages:
        body["response_metadata"] = {"messages": list(messages)}
    return body


def _tz_offset(tz: str) -> int:
    try:
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset else 0


def _blocks_error(blocks: Any, limit: int, pointer: str) -> dict[str, Any] | None:
    """Slack's answer to blocks it refuses, or None when they are acceptable."""
    if blocks is None:
        return None
    if not isinstance(blocks, list):
        return _fail("invalid_blocks_format", f"[ERROR] expected an array [json-pointer:{pointer}]")
    if len(blocks) > limit:
        return _fail(
            "invalid_blocks", f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]"
        )
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or not block.get("type"):
            return _fail(
                "invalid_blocks",
                f"[ERROR] missing required field: type [json-pointer:{pointer}/{i}]",
            )
        text = block.get("text")
        if (
            block["type"] == "section"
            and isinstance(text, dict)
            and len(text.get("text", "")) > 3000
        ):
            return _fail(
                "invalid_blocks",
                f"[ERROR] must be less than 3001 characters [json-pointer:{pointer}/{i}/text/text]",
            )
    return None


class SlackStandIn(LocalService):
    """See the module docstring. All public methods are thread-safe."""

    thread_name = "slack-standin"
    service_name = "the Slack stand-in"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        team_id: str = "T0TEST",
        bot_user_id: str = "U0BOT",
        users: Mapping[str, Mapping[str, Any]] | None = None,
        record_auth_test: bool = False,
        enterprise_id: str | None = None,
    ) -> None:
        super().__init__(host, port)
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        # The Enterprise Grid organisation of the workspace, if it belongs to one.
        self.enterprise_id = enterprise_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.team_domain = team_id.lower().removeprefix("t0") or "test"
        # auth.test is what every client calls once at start-up (Bolt's App does on construction);
        # it is answered but left out of `calls` by default, so `calls == []` means the bot
        # did nothing in Slack.
        self.record_auth_test = record_auth_test
        self.latency: float = 0.0  # seconds added before every answer
        self.on_call: Callable[[SlackCall], None] | None = None  # called as each call is recorded
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._calls: list[SlackCall] = []
        self._faults: list[_Fault] = []
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        # Top-level messages posted with chat.postMessage, per channel, oldest first: what
        # conversations.history reads back (chat.update edits them, chat.delete removes them).
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._ts_count = 0
        self._view_count = 0
        self._response_count = 0
        self._command_urls: set[str] = set()  # response_urls handed out for slash commands
        self.add_user(bot_user_id, name="apikey-bot", is_bot=True)
        for user_id, fields in (users or {}).items():
            extra = dict(fields)
            self.add_user(user_id, name=str(extra.pop("name", user_id.lower())), **extra)

    # ------------------------------------------------------------------ lifecycle
    # start() / stop() / with: LocalService; stop() also wakes requests sleeping in `latency`.
    @property
    def base(self) -> str:
        return self._base_url()

    @property
    def url(self) -> str:
        """The Web API base URL, for ``WebClient(base_url=...)`` and ``SLACK_API_URL``."""
        return self.base + API_PREFIX

    def response_url(self, key: str = "", *, command: bool = False) -> str:
        """A fresh ``response_url`` for a signed command (``command=True``) or action payload."""
        with self._lock:
            self._response_count += 1
            number = self._response_count
        label = quote(key, safe="") + "-" if key else ""
        url = f"{self.base}{RESPONSE_PREFIX}{label}{number}-{secrets.token_hex(3)}"
        if command:
            with self._lock:
                self._command_urls.add(url)
        return url

    def shown_at(
        self, response_url: str, *, ack: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The messages a person sees from one command or click, in order, as Slack draws them:
        ``ack`` (the body the bot acked with, if it held a message) then each post to the
        ``response_url``.

        Slack's rules differ by origin. For an action, ``replace_original`` replaces the
        message that held the button and ``delete_original`` removes it
        (api.slack.com/interactivity/handling#updating_message_response). For a slash
        command there is no original message to replace: neither the ack's message nor an
        earlier response_url message can be replaced or deleted through it, and every post
        shows as a new message (bolt-python#1268, bolt-js#2287: "Using a command's response
        replace_original does nothing")."""
        command = response_url in self._command_urls
        shown: list[dict[str, Any]] = []
        if ack and any(ack.get(k) for k in ("text", "blocks", "attachments")):
            shown.append(ack)
        for call in self.calls_to(RESPONSE_URL):
            if call.params.get("_response_url") != response_url:
                continue
            message = {k: v for k, v in call.params.items() if not k.startswith("_")}
            if command:
                if not message.get("delete_original"):
                    shown.append(message)
            elif message.get("delete_original"):
                shown = shown[:-1]
            elif message.get("replace_original") and shown:
                shown[-1] = message
            else:
                shown.append(message)
        return shown

    # ------------------------------------------------------------------ recorded calls
    @property
    def calls(self) -> list[SlackCall]:
        """A snapshot of every recorded call, oldest first."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        timeout: float = 5.0,
        predicate: Callable[[SlackCall], bool] | None = None,
    ) -> list[SlackCall]:
        """The first ``count`` calls to ``method`` (matching ``predicate``), waiting for them."""
        deadline = time.monotonic() + timeout

        def matching() -> list[SlackCall]:
            return [
                c for c in self._calls if c.method == method and (predicate is None or predicate(c))
            ]

        with self._arrived:
            found = matching()
            while len(found) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._wait_failure(method, count, timeout, found))
                self._arrived.wait(remaining)
                found = matching()
            return found[:count]

    def _wait_failure(self, method: str, count: int, timeout: float, found: list[SlackCall]) -> str:
        lines = [
            f"expected {count} call(s) to {method} within {timeout}s, got {len(found)} matching;"
            f" {len(self._calls)} call(s) arrived:"
        ]
        shown = self._calls[-30:]
        if len(self._calls) > len(shown):
            lines.append(f"  ... {len(self._calls) - len(shown)} earlier call(s)")
        lines += [f"  {call.summary()}" for call in shown] or ["  (none)"]
        return "\n".join(lines)

    def clear(self) -> None:
        """Forget the recorded calls (users, views and faults stay)."""
        with self._lock:
            self._calls.clear()

    def _record(self, call: SlackCall) -> None:
        with self._arrived:
            self._calls.append(call)
            self._arrived.notify_all()
        hook = self.on_call
        if hook is not None:
            hook(call)

    # ------------------------------------------------------------------ workspace
    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        deleted: bool = False,
        is_admin: bool = False,
        tz: str = "UTC",
        **fields: Any,
    ) -> None:
        """Add or replace a workspace member, as ``users.info`` returns it."""
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": _tz_offset(tz),
            "profile": {
                "real_name": name,
                "real_name_normalized": name,
                "display_name": name,
                "display_name_normalized": name,
                "team": self.team_id,
            },
            "is_admin": is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": int(time.time()),
        }
        user.update(fields)
        if user["is_bot"]:
            user["profile"]["bot_id"] = self.bot_id
        with self._lock:
            self._users[user_id] = user

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {uid: dict(user) for uid, user in self._users.items()}

    def add_usergroup(self, usergroup_id: str, user_ids: Sequence[str]) -> None:
        """A user group (``S...``), as ``usergroups.users.list`` returns it."""
        with self._lock:
            self._usergroups[usergroup_id] = list(user_ids)

    # ------------------------------------------------------------------ faults
    def inject_fault(
        self,
        method: str,
        *,
        status: int = 429,
        count: int = 1,
        retry_after: int = 1,
        error: str | None = None,
        where: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` calls to ``method`` (or ``"response_url"``) with a failure.

        429: ``Retry-After`` and ``ratelimited``; 5xx: that status; 200 with ``error``:
        ``{"ok": false, "error": error}`` (e.g. ``channel_not_found``). ``where`` limits the
        fault to calls with those parameters, e.g. ``{"channel": "D0BOB"}``.
        """
        if status == 200 and not error:
            raise ValueError("a fault with status 200 needs an error, e.g. 'channel_not_found'")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(
                _Fault(method, status, count, retry_after, error, dict(where or {}))
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, params: dict[str, Any]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, params):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------ answers
    def _next_ts(self) -> str:
        with self._lock:
            micros = FIRST_TS_MICROS + self._ts_count * TS_STEP_MICROS
            self._ts_count += 1
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_view_id(self) -> str:
        with self._lock:
            self._view_count += 1
            return f"V0{self._view_count:08d}"

    def _web_api(self, method: str, params: dict[str, Any], token: str | None) -> _Answer:
        fault = self._take_fault(method, params)
        if fault is not None:
            return self._fault_answer(fault)
        if not token:
            return _Answer(200, _fail("not_authed"))
        if method == "apps.connections.open":
            # api.slack.com/methods/apps.connections.open: app-level tokens (xapp-) only;
            # a bot token is "not_allowed_token_type". The URL is for Socket Mode's WebSocket,
            # which this stand-in does not serve (the tests drive the bot over HTTP).
            if token == self.bot_token:
                return _Answer(200, _fail("not_allowed_token_type"))
            if token != self.app_token:
                return _Answer(200, _fail("invalid_auth"))
            return _Answer(200, {"ok": True, "url": "wss://wss-primary.slack.invalid/link"})
        if token != self.bot_token:
            return _Answer(200, _fail("invalid_auth"))
        if "_raw" in params:
            return _Answer(200, _fail("invalid_json"))
        handler = _METHODS.get(method)
        if handler is None:
            return _Answer(200, {**_fail("unknown_method"), "req_method": method})
        return _Answer(200, handler(self, params))

    def _response_url_post(self, params: dict[str, Any]) -> _Answer:
        fault = self._take_fault(RESPONSE_URL, params)
        if fault is not None:
            answer = self._fault_answer(fault)
            return _Answer(answer.status, fault.error or answer.error or "error", answer.headers)
        if "_raw" in params:
            return _Answer(400, "invalid_payload")
        if _blocks_error(params.get("blocks"), MAX_MESSAGE_BLOCKS, "/blocks"):
            return _Answer(400, "invalid_blocks")
        if not any(params.get(k) for k in ("text", "blocks", "attachments")) and not params.get(
            "delete_original"
        ):
            return _Answer(400, "no_text")
        return _Answer(200, "ok")

    def _fault_answer(self, fault: _Fault) -> _Answer:
        error = fault.error or DEFAULT_FAULT_ERRORS.get(fault.status) or "internal_error"
        headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
        return _Answer(fault.status, _fail(error), headers)

    # auth / users -----------------------------------------------------------------------
    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": f"{self.team_domain.title()} Workspace",
            "user": "apikey-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }
        if self.enterprise_id:
            # api.slack.com/methods/auth.test: "When working against a team within an
            # Enterprise Grid, you'll also find their enterprise_id here."
            answer["enterprise_id"] = self.enterprise_id
        return answer

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            user = self._users.get(str(params.get("user", "")))
        if user is None:
            return _fail("user_not_found")
        return {"ok": True, "user": user}

    def _users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            members = list(self._users.values())
        return {
            "ok": True,
            "members": members,
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": ""},
        }

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            members = self._usergroups.get(str(params.get("usergroup", "")))
        if members is None:
            return _fail("no_such_subteam")
        return {"ok": True, "users": list(members)}

    # conversations -------------------------------------------------------------------------
    def _dm_channel(self, users: list[str]) -> str:
        if len(users) == 1:
            return "D" + users[0][1:]
        digest = hashlib.sha256(",".join(sorted(users)).encode()).hexdigest()
        return "G0" + digest[:9].upper()

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            return {
                "ok": True,
                "no_op": True,
                "already_open": True,
                "channel": {"id": params["channel"]},
            }
        users = [u for u in str(params.get("users", "")).split(",") if u]
        if not users:
            return _fail("users_list_not_supplied")
        channel: dict[str, Any] = {"id": self._dm_channel(users)}
        if params.get("return_im") in ("1", "true", True):
            channel.update(
                {"is_im": len(users) == 1, "user": users[0], "created": int(time.time())}
            )
        return {"ok": True, "no_op": False, "already_open": False, "channel": channel}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if not channel:
            return _fail("channel_not_found")
        info: dict[str, Any] = {
            "id": channel,
            "is_channel": channel.startswith("C"),
            "is_group": False,
            "is_im": channel.startswith("D"),
            "is_mpim": channel.startswith("G"),
            "is_private": not channel.startswith("C"),
            "is_archived": False,
            "is_member": True,
            "created": 1_600_000_000,
            "context_team_id": self.team_id,
        }
        if channel.startswith("C"):
            info["name"] = channel[2:].lower() if channel.startswith("C0") else channel.lower()
        if channel.startswith("D"):
            info["user"] = "U" + channel[1:]
        return {"ok": True, "channel": info}

    # chat -------------------------------------------------------------------------------------
    def _message(self, params: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "text": params.get("text", ""),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": APP_ID,
            "team": self.team_id,
            "ts": ts,
        }
        for name in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(name):
                message[name] = params[name]
        return message

    def _message_error(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if not params.get("channel"):
            return _fail("channel_not_found")
        if not any(params.get(k) for k in ("text", "blocks", "attachments")):
            return _fail("no_text")
        if len(str(params.get("text", ""))) > 40_000:
            return _fail("msg_too_long")
        return _blocks_error(params.get("blocks"), MAX_MESSAGE_BLOCKS, "/blocks")

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(params)
        if error:
            return error
        channel = str(params["channel"])
        if channel[:1] in ("U", "W"):  # posting to a user ID lands in the DM with them
            channel = self._dm_channel([channel])
        ts = self._next_ts()
        message = self._message(params, ts)
        if not params.get("thread_ts"):  # replies live in their thread, not in the history
            with self._lock:
                self._history.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(params)
        if error:
            return error
        with self._lock:
            user = self._users.get(str(params.get("user", "")))
        if not params.get("user") or (user is not None and user["deleted"]):
            return _fail("user_not_in_channel")
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(params)
        if error:
            return error
        if not params.get("ts"):
            return _fail("message_not_found")
        ts = str(params["ts"])
        message = self._message(params, ts)
        with self._lock:
            stored = self._history.get(str(params["channel"]), [])
            for index, old in enumerate(stored):
                if old["ts"] == ts:
                    stored[index] = {**message, "edited": {"user": self.bot_user_id, "ts": ts}}
        return {
            "ok": True,
            "channel": params["channel"],
            "ts": ts,
            "text": params.get("text", ""),
            "message": message,
        }

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return _fail("channel_not_found")
        if not params.get("ts"):
            return _fail("message_not_found")
        self.delete_message(str(params["channel"]), str(params["ts"]))
        return {"ok": True, "channel": params["channel"], "ts": params["ts"]}

    def delete_message(self, channel: str, ts: str) -> bool:
        """Remove a message from the channel's history (as chat.delete, or a person, would)."""
        with self._lock:
            stored = self._history.get(channel, [])
            kept = [m for m in stored if m["ts"] != ts]
            self._history[channel] = kept
            return len(kept) != len(stored)

    def history(self, channel: str) -> list[dict[str, Any]]:
        """The channel's top-level messages, oldest first (a copy)."""
        with self._lock:
            return [dict(m) for m in self._history.get(channel, [])]

    # ------------------------------------------------------------------ Events API
    # Slack posts events to the app's Request URL, signed like every request it sends
    # (docs.slack.dev/apis/events-api); the shapes are bot.sandbox.slack_events'.
    def event_body(self, event: dict[str, Any], *, shared_from: str | None = None) -> str:
        """The ``event_callback`` body Slack sends this workspace's app for ``event``
        (``shared_from``: the channel is externally shared and belongs to that workspace)."""
        return json.dumps(
            slack_events.envelope(
                event,
                team_id=self.team_id,
                api_app_id=APP_ID,
                bot_user_id=self.bot_user_id,
                enterprise_id=self.enterprise_id,
                shared_from=shared_from,
            )
        )

    def deliver_event(
        self,
        event: dict[str, Any],
        *,
        to: str,
        signing_secret: str,
        shared_from: str | None = None,
    ) -> requests.Response:
        """Post ``event`` to the app at ``to`` (its base URL), as Slack's Events API does."""
        body = self.event_body(event, shared_from=shared_from)
        headers = sign(body, secret=signing_secret, content_type="application/json")
        url = to.rstrip("/") + "/slack/events"
        return requests.post(url, data=body.encode(), headers=headers, timeout=10)

    def posted_message_event(self, channel: str, ts: str) -> dict[str, Any]:
        """The ``message`` event Slack sends for a message the bot posted in ``channel`` (the
        app receives its own messages too, with its ``bot_id`` and bot user)."""
        with self._lock:
            stored = [m for m in self._history.get(channel, []) if m["ts"] == ts]
        if not stored:
            raise KeyError(f"no message {ts} in {channel}")
        return {**stored[0], "channel": channel, "channel_type": "channel", "event_ts": ts}

    # conversations.history, as https://docs.slack.dev/reference/methods/conversations.history
    # (formerly api.slack.com/methods/conversations.history) documents it: messages newest first; `limit` (default 100, at most 999) per page; cursor
    # pagination (`has_more`, `response_metadata.next_cursor`, empty on the last page); `oldest`
    # (default 0) and `latest` (default now) bound the range, excluding the bounds unless
    # `inclusive`; message metadata is returned only with `include_all_metadata`.
    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return _fail("channel_not_found")
        try:
            limit = int(params.get("limit") or 100)
            oldest = _ts_micros(str(params.get("oldest") or "0"))
            latest = _ts_micros(str(params["latest"])) if params.get("latest") else None
            after = _decode_cursor(str(params["cursor"])) if params.get("cursor") else None
        except ValueError:
            return _fail("invalid_arguments")
        if after is False:
            return _fail("invalid_cursor")
        limit = max(1, min(limit, 999))
        inclusive = _truthy(params.get("inclusive"))
        metadata = _truthy(params.get("include_all_metadata"))
        with self._lock:
            stored = list(self._history.get(channel, []))
        newest_first = sorted(stored, key=lambda m: _ts_micros(m["ts"]), reverse=True)
        selected = []
        for message in newest_first:
            micros = _ts_micros(message["ts"])
            if micros < oldest or (micros == oldest and not inclusive):
                continue
            if latest is not None and (micros > latest or (micros == latest and not inclusive)):
                continue
            if after is not None and micros >= after:  # already on an earlier page
                continue
            selected.append(message)
        page, more = selected[:limit], len(selected) > limit
        messages = []
        for message in page:
            shown = dict(message)
            if not metadata:
                shown.pop("metadata", None)
            messages.append(shown)
        cursor = _encode_cursor(page[-1]["ts"]) if more else ""
        return {
            "ok": True,
            "messages": messages,
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("message_ts")
        if not channel:
            return _fail("channel_not_found")
        if not ts:
            return _fail("message_not_found")
        permalink = (
            f"https://{self.team_domain}.slack.com/archives/{channel}/p{str(ts).replace('.', '')}"
        )
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return _fail("channel_not_found")
        if not params.get("timestamp"):
            return _fail("message_not_found")
        if not params.get("name"):
            return _fail("invalid_name")
        return {"ok": True}

    # views --------------------------------------------------------------------------------------
    def _view_error(self, view: Any, *, home: bool = False) -> dict[str, Any] | None:
        if not isinstance(view, dict) or not view.get("type"):
            return _fail("invalid_arguments", "[ERROR] missing required field: view")
        title = (view.get("title") or {}).get("text", "")
        if not home and not title:
            return _fail(
                "invalid_arguments",
                "[ERROR] missing required field: title [json-pointer:/view/title]",
            )
        if len(title) > MAX_VIEW_TITLE:
            return _fail(
                "invalid_arguments",
                f"[ERROR] must be less than {MAX_VIEW_TITLE + 1} characters [json-pointer:/view/title/text]",
            )
        return _blocks_error(view.get("blocks", []), MAX_VIEW_BLOCKS, "/view/blocks")

    def _store_view(
        self, view: dict[str, Any], view_id: str, *, root_view_id: str, previous: str | None
    ) -> dict[str, Any]:
        stored = {
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "root_view_id": root_view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        with self._lock:
            self._views[view_id] = stored
        return {"ok": True, "view": stored}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return _fail("invalid_arguments", "[ERROR] missing required field: trigger_id")
        view = _view_in(params)
        error = self._view_error(view)
        if error:
            return error
        view_id = self._new_view_id()
        return self._store_view(view, view_id, root_view_id=view_id, previous=None)

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("trigger_id"):
            return _fail("invalid_arguments", "[ERROR] missing required field: trigger_id")
        view = _view_in(params)
        error = self._view_error(view)
        if error:
            return error
        view_id = self._new_view_id()
        return self._store_view(view, view_id, root_view_id=view_id, previous=None)

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view = _view_in(params)
        error = self._view_error(view)
        if error:
            return error
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        with self._lock:
            if not view_id and external_id:
                view_id = next(
                    (v["id"] for v in self._views.values() if v["external_id"] == external_id), None
                )
                if view_id is None:
                    return _fail("not_found")
            if not view_id:
                return _fail("invalid_arguments", "[ERROR] view_id or external_id is required")
            known = self._views.get(str(view_id))
        # Views opened by real Slack (ids from signed payloads) are unknown here: accept them.
        if known is not None and params.get("hash") and params["hash"] != known["hash"]:
            return _fail("hash_conflict")
        root = known["root_view_id"] if known else str(view_id)
        previous = known["previous_view_id"] if known else None
        return self._store_view(view, str(view_id), root_view_id=root, previous=previous)

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user_id")
        if not user_id:
            return _fail("invalid_arguments", "[ERROR] missing required field: user_id")
        view = _view_in(params)
        error = self._view_error(view, home=True)
        if error:
            return error
        view_id = "V0HOME" + str(user_id)[1:]
        return self._store_view(view, view_id, root_view_id=view_id, previous=None)


def _view_in(params: dict[str, Any]) -> dict[str, Any]:
    """The ``view`` argument if it is an object, else an empty one (which ``_view_error``
    refuses with the same "missing required field: view" as a missing one)."""
    view = params.get("view")
    return view if isinstance(view, dict) else {}


_METHODS: dict[str, Callable[[SlackStandIn, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": SlackStandIn._auth_test,
    "users.info": SlackStandIn._users_info,
    "users.list": SlackStandIn._users_list,
    "usergroups.users.list": SlackStandIn._usergroups_users_list,
    "conversations.open": SlackStandIn._conversations_open,
    "conversations.info": SlackStandIn._conversations_info,
    "conversations.history": SlackStandIn._conversations_history,
    "chat.postMessage": SlackStandIn._chat_post_message,
    "chat.postEphemeral": SlackStandIn._chat_post_ephemeral,
    "chat.update": SlackStandIn._chat_update,
    "chat.delete": SlackStandIn._chat_delete,
    "chat.getPermalink": SlackStandIn._chat_get_permalink,
    "reactions.add": SlackStandIn._reactions_add,
    "views.open": SlackStandIn._views_open,
    "views.push": SlackStandIn._views_push,
    "views.update": SlackStandIn._views_update,
    "views.publish": SlackStandIn._views_publish,
}


def _ts_micros(ts: str) -> int:
    """A message timestamp ("1700000000.000100") as an integer of microseconds."""
    seconds, _, fraction = ts.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(ts)
    return int(seconds) * 1_000_000 + int((fraction or "0")[:6].ljust(6, "0"))


def _encode_cursor(ts: str) -> str:
    # Slack's cursors are opaque base64 ("bmV4dF90czox..." decodes to "next_ts:1...").
    return base64.b64encode(f"next_ts:{_ts_micros(ts)}".encode()).decode()


def _decode_cursor(cursor: str) -> int | bool:
    """The position after which the next page starts; False for a cursor Slack would refuse."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    prefix, _, micros = text.partition(":")
    if prefix != "next_ts" or not micros.isdigit():
        return False
    return int(micros)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


# ---------------------------------------------------------------------- request decoding
def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    for name in JSON_FIELDS:
        value = params.get(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                params[name] = json.loads(value)
    return params


def _decode_form(text: str) -> dict[str, Any]:
    return _decode_json_fields(dict(parse_qsl(text, keep_blank_values=True)))


def _decode_web_api(query: str, content_type: str, raw: bytes) -> dict[str, Any]:
    params = _decode_form(query)
    text = raw.decode("utf-8", errors="replace")
    if "application/json" in content_type:
        try:
            body = json.loads(text) if text.strip() else {}
        except ValueError:
            body = {"_raw": text}
        params.update(_decode_json_fields(body) if isinstance(body, dict) else {"_raw": text})
    elif text and "multipart/" not in content_type:
        params.update(_decode_form(text))
    return params


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


# ---------------------------------------------------------------------- HTTP plumbing
class _Handler(TrackedHandler):
    server_version = "SlackStandIn/1.0"
    json_content_type = "application/json; charset=utf-8"
    server: LocalServer[SlackStandIn]

    def _handle(self) -> None:
        standin = self.server.owner
        arrived = time.time()
        raw = self.read_body()
        split = urlsplit(self.path)
        if split.path.startswith(API_PREFIX) and len(split.path) > len(API_PREFIX):
            method = split.path[len(API_PREFIX) :]
            params = _decode_web_api(split.query, self.headers.get("Content-Type", ""), raw)
            form_token = params.pop("token", None)  # a credential: kept out of params
            token = _bearer(self.headers.get("Authorization")) or form_token
            answer = standin._web_api(method, params, token)
            record = method != "auth.test" or standin.record_auth_test
        elif split.path.startswith(RESPONSE_PREFIX) and self.command == "POST":
            method, token, record = RESPONSE_URL, None, True
            text = raw.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            params = body if isinstance(body, dict) else {"_raw": text}
            params["_response_url"] = standin.base + split.path
            answer = standin._response_url_post(params)
        else:
            self._send(_Answer(404, _fail("not_found")))
            return
        if record:
            view = answer.body.get("view") if isinstance(answer.body, dict) else None
            ts = answer.body.get("ts") if isinstance(answer.body, dict) else None
            call = SlackCall(
                method,
                params,
                token,
                arrived,
                answer.status,
                answer.error,
                answered_view=view if isinstance(view, dict) else None,
                answered_ts=str(ts) if ts else None,
            )
            standin._record(call)
        if standin.latency > 0:
            standin._stopping.wait(standin.latency)
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        self.send_reply(answer.status, answer.body, answer.headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


SlackStandIn.handler_class = _Handler


# ---------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.slack_standin",
        description="Run a local Slack Web API stand-in until Ctrl-C, printing each call.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8901, help="0 picks a free port")
    parser.add_argument("--bot-token", default=DEFAULT_BOT_TOKEN)
    parser.add_argument("--team-id", default="T0TEST")
    args = parser.parse_args(argv)

    standin = SlackStandIn(
        host=args.host,
        port=args.port,
        bot_token=args.bot_token,
        team_id=args.team_id,
        record_auth_test=True,
    )

    def show(call: SlackCall) -> None:
        print(f"{time.strftime('%H:%M:%S', time.localtime(call.at))} {call.summary()}", flush=True)

    def announce() -> None:
        print(
            f"Slack stand-in listening on {standin.url}  (SLACK_API_URL={standin.url}, "
            f"SLACK_BOT_TOKEN={standin.bot_token}); response URLs under "
            f"{standin.base}{RESPONSE_PREFIX}",
            flush=True,
        )

    standin.on_call = show
    standin.run_until_interrupted(announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
