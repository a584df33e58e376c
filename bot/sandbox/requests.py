"""Signed Slack requests for the sandbox, shaped like the ones Slack sends to the bot.

Slash commands are form-encoded; interactivity (buttons, modal submissions) is form-encoded with
one ``payload`` field holding JSON. Every request carries ``X-Slack-Request-Timestamp`` and
``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret).

A modal's submission carries what was typed and chosen as its ``state.values``; the
``*_form_values`` builders below make those for the bot's own modals (register, rotate, close an
incident), keyed by the ids in ``bot.ids``, so no caller copies their shape.

The defaults describe the sandbox's workspace. The tests (``tests/slack_requests.py``) build the
same shapes for their own workspace by passing a ``Workspace`` and fixed trigger ids.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier

from bot.ids import COMMAND, Action, Block

SANDBOX_USER = "U0SANDBOX"
SANDBOX_USER_NAME = "sandbox-user"
SANDBOX_CHANNEL = "C0SANDBOX"
SANDBOX_CHANNEL_NAME = "sandbox"
SANDBOX_APP_ID = "A0SANDBOX"
DEFAULT_TEAM = "T0SANDBOX"
VERIFICATION_TOKEN = "sandbox-verification-token"  # noqa: S105 - Slack's legacy token; Bolt ignores it
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class Workspace:
    """What Slack sends beside the team, user and channel ids: their names, the app's id, the
    legacy verification token and the bot's id. The defaults are the sandbox's."""

    team_domain: str = "sandbox"
    user_name: str = SANDBOX_USER_NAME
    channel_name: str = SANDBOX_CHANNEL_NAME
    api_app_id: str = SANDBOX_APP_ID
    token: str = VERIFICATION_TOKEN
    bot_id: str = "B0SANDBOX"


SANDBOX_WORKSPACE = Workspace()

FormValues = dict[str, dict[str, dict[str, Any]]]
"""A modal's ``view.state.values``: ``{block_id: {action_id: {"type": ..., ...}}}``."""


def sign(
    body: str, *, secret: str, timestamp: int | None = None, content_type: str | None = None
) -> dict[str, str]:
    """The headers Slack adds to a request with this body (content type guessed from the body:
    Events API bodies are JSON, the others form-encoded)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    is_json = body.lstrip().startswith("{")
    return {
        "Content-Type": content_type or (JSON if is_json else FORM),
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or "",
    }


def trigger_id() -> str:
    """A fresh ``trigger_id``, shaped like Slack's."""
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}"


_new_trigger_id = trigger_id  # the builders' ``trigger_id`` parameter hides the function


def slash_command(
    text: str,
    *,
    response_url: str,
    user_id: str = SANDBOX_USER,
    team_id: str = DEFAULT_TEAM,
    channel_id: str = SANDBOX_CHANNEL,
    command: str = COMMAND,
    workspace: Workspace = SANDBOX_WORKSPACE,
    trigger_id: str | None = None,
) -> str:
    """The form body of ``<command> <text>`` typed by ``user_id`` in ``channel_id``; a fresh
    ``trigger_id`` unless one is given."""
    return urlencode(
        {
            "token": workspace.token,
            "team_id": team_id,
            "team_domain": workspace.team_domain,
            "channel_id": channel_id,
            "channel_name": workspace.channel_name,
            "user_id": user_id,
            "user_name": workspace.user_name,
            "command": command,
            "text": text,
            "api_app_id": workspace.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or _new_trigger_id(),
        }
    )


def _interactive(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def _interaction(
    kind: str, user_id: str, team_id: str, workspace: Workspace, trigger_id: str | None
) -> dict[str, Any]:
    """The fields every interactivity payload starts with."""
    return {
        "type": kind,
        "team": {"id": team_id, "domain": workspace.team_domain},
        "user": {
            "id": user_id,
            "username": workspace.user_name,
            "name": workspace.user_name,
            "team_id": team_id,
        },
        "api_app_id": workspace.api_app_id,
        "token": workspace.token,
        "trigger_id": trigger_id or _new_trigger_id(),
        "is_enterprise_install": False,
        "enterprise": None,
    }


def block_action(
    action_id: str,
    value: str | None,
    *,
    response_url: str | None,
    text: str = "",
    block_id: str | None = None,
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    user_id: str = SANDBOX_USER,
    team_id: str = DEFAULT_TEAM,
    channel_id: str = SANDBOX_CHANNEL,
    container: dict[str, Any] | None = None,
    workspace: Workspace = SANDBOX_WORKSPACE,
    trigger_id: str | None = None,
    overflow: bool = False,
) -> str:
    """The ``block_actions`` payload of a button click: in a modal when ``view`` is given, else in
    a message: a regular one when ``message`` (its payload) is given, else an ephemeral one.
    ``container`` replaces the one built from those; a fresh ``trigger_id`` unless one is given.
    ``overflow``: an option chosen from an overflow menu instead (``value`` and ``text`` are the
    option's; Slack sends it as ``selected_option``)."""
    now = f"{time.time():.6f}"
    shown = {"type": "plain_text", "text": text or action_id, "emoji": True}
    action: dict[str, Any] = {
        "type": "overflow" if overflow else "button",
        "action_id": action_id,
        "block_id": block_id or "sandbox_block",
        "action_ts": now,
    }
    if overflow:
        action["selected_option"] = {"text": shown, "value": value}
    else:
        action["text"] = shown
        if value is not None:
            action["value"] = value
    payload = _interaction("block_actions", user_id, team_id, workspace, trigger_id)
    payload["state"] = {"values": {}}
    payload["actions"] = [action]
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "")}
        payload["view"] = view
    else:
        # Slack sends the message itself only for regular messages, not for ephemeral ones.
        ts = (message or {}).get("ts") or now
        payload["container"] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel_id,
            "is_ephemeral": message is None,
        }
        payload["channel"] = {"id": channel_id, "name": workspace.channel_name}
        if message is not None:
            payload["message"] = {"type": "message", **message, "ts": ts}
    if container is not None:
        payload["container"] = container
    if response_url:
        payload["response_url"] = response_url
    return _interactive(payload)


def view_submission(
    callback_id: str,
    values: FormValues,
    *,
    view_id: str | None = None,
    private_metadata: str = "",
    blocks: list[dict[str, Any]] | None = None,
    title: str = "Modal",
    view_hash: str | None = None,
    user_id: str = SANDBOX_USER,
    team_id: str = DEFAULT_TEAM,
    workspace: Workspace = SANDBOX_WORKSPACE,
    trigger_id: str | None = None,
) -> str:
    """The ``view_submission`` payload of a modal submitted with ``values`` as its state.

    ``values`` is keyed like Slack's: ``{block_id: {action_id: {"type": ..., "value": ...}}}``.
    A fresh view id, ``hash`` and ``trigger_id`` unless given.
    """
    view_id = view_id or "V0" + uuid.uuid4().hex[:10].upper()
    payload = _interaction("view_submission", user_id, team_id, workspace, trigger_id)
    payload["view"] = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": blocks or [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": values},
        "hash": view_hash or uuid.uuid4().hex[:16],
        "title": {"type": "plain_text", "text": title, "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": workspace.api_app_id,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": workspace.bot_id,
    }
    payload["response_urls"] = []
    return _interactive(payload)


def _typed(value: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def _chosen(value: str, element: str = "static_select") -> dict[str, Any]:
    return {"type": element, "selected_option": {"value": value}}


def register_form_values(
    *,
    label: str,
    account: str,
    owner: str,
    purpose: str,
    key_type: str,
    api_key: str,
    secret: str,
    confirm: bool = False,
    delivery: str | None = None,
    service_ips: str | None = None,
    extras: tuple[str, ...] = (),
) -> FormValues:
    """The state of the register modal filled in with these answers (``purpose`` and
    ``key_type`` are option values: ``read_only``, ``HMAC``...); ``confirm``: the owner ticked
    "I accept the extra permissions" (needed for a key beyond its declared purpose);
    ``delivery``, where the credentials go, only when the bot has secret sinks: ``file``,
    ``aws`` or ``nowhere``."""
    values: FormValues = {
        Block.LABEL: {Action.LABEL: _typed(label)},
        Block.ACCOUNT: {Action.ACCOUNT: _typed(account)},
        Block.OWNER: {Action.OWNER: {"type": "users_select", "selected_user": owner}},
        Block.PURPOSE: {Action.PURPOSE: _chosen(purpose, "radio_buttons")},
        Block.KEY_TYPE: {Action.KEY_TYPE: _chosen(key_type)},
        Block.API_KEY: {Action.API_KEY: _typed(api_key)},
        Block.SECRET: {Action.SECRET: _typed(secret)},
        Block.REGISTER_CONFIRM: {Action.REGISTER_CONFIRM: _ticked(confirm)},
    }
    if delivery is not None:
        values[Block.DELIVERY] = {Action.DELIVERY: _chosen(delivery)}
    if service_ips is not None or extras:  # "Create it in Binance for me" (governed accounts)
        values[Block.CREATE_IPS] = {Action.CREATE_IPS: _typed(service_ips or "")}
        values[Block.CREATE_EXTRAS] = {
            Action.CREATE_EXTRAS: {
                "type": "checkboxes",
                "selected_options": [{"value": extra} for extra in extras],
            }
        }
    return values


def _ticked(confirm: bool) -> dict[str, Any]:
    return {"type": "checkboxes", "selected_options": [{"value": "confirm"}] if confirm else []}


def rotate_form_values(
    *, key_type: str, api_key: str, secret: str, confirm: bool = False
) -> FormValues:
    """The state of the rotate modal: the new key, and whether its owner ticked "I accept the
    extra permissions" (needed when the new key can do more than the old one)."""
    return {
        Block.KEY_TYPE: {Action.KEY_TYPE: _chosen(key_type)},
        Block.API_KEY: {Action.API_KEY: _typed(api_key)},
        Block.SECRET: {Action.SECRET: _typed(secret)},
        Block.ROTATE_CONFIRM: {Action.ROTATE_CONFIRM: _ticked(confirm)},
    }


def close_note_values(*, note: str) -> FormValues:
    """The state of the close-incident modal: the closing note."""
    return {Block.CLOSE_NOTE: {Action.CLOSE_NOTE: _typed(note)}}


def close_outcome_values(*, note: str, outcome: str) -> FormValues:
    """The close-incident modal as an admin fills it: how it ended, and the note."""
    chosen = {"type": "radio_buttons", "selected_option": {"value": outcome}}
    return {**close_note_values(note=note), Block.CLOSE_OUTCOME: {Action.CLOSE_OUTCOME: chosen}}


def commander_values(*, user: str) -> FormValues:
    """The hand-over modal: the new commander picked."""
    return {Block.COMMANDER: {Action.COMMANDER: {"type": "users_select", "selected_user": user}}}


def app_home_opened(*, user_id: str = SANDBOX_USER, team_id: str = DEFAULT_TEAM) -> str:
    """The Events API callback Slack sends when a user opens the app's Home tab."""
    now = time.time()
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "api_app_id": SANDBOX_APP_ID,
            "type": "event_callback",
            "event_id": "Ev0" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(now),
            "event": {
                "type": "app_home_opened",
                "user": user_id,
                "channel": "D0SANDBOX",
                "tab": "home",
                "event_ts": f"{now:.6f}",
            },
            "authorizations": [
                {"team_id": team_id, "user_id": "U0BOT", "is_bot": True, "enterprise_id": None}
            ],
        }
    )


def message_event(
    text: str, *, channel_id: str, user_id: str = SANDBOX_USER, team_id: str = DEFAULT_TEAM
) -> str:
    """The Events API callback Slack sends when ``user_id`` posts ``text`` in ``channel_id``
    (https://docs.slack.dev/reference/events/message.channels: the event wrapper
    with type, channel, user, text, ts, event_ts and channel_type "channel")."""
    now = time.time()
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "context_team_id": team_id,
            "api_app_id": SANDBOX_APP_ID,
            "type": "event_callback",
            "event_id": "Ev0" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(now),
            "event": {
                "type": "message",
                "channel": channel_id,
                "channel_type": "channel",
                "user": user_id,
                "text": text,
                "ts": f"{now:.6f}",
                "event_ts": f"{now:.6f}",
            },
            "authorizations": [
                {"team_id": team_id, "user_id": "U0BOT", "is_bot": True, "enterprise_id": None}
            ],
        }
    )


@dataclass(frozen=True)
class BotReply:
    """What the bot answered over HTTP: the status and the ack body (JSON when there is one)."""

    status: int
    body: dict[str, Any] | None
    text: str


class SignedClient:
    """Posts signed bodies to the bot's ``/slack/events``."""

    def __init__(self, base_url: str, *, secret: str, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.timeout = timeout
        self._session = requests.Session()

    def post(self, body: str) -> BotReply:
        response = self._session.post(
            self.url,
            data=body.encode(),
            headers=sign(body, secret=self.secret),
            timeout=self.timeout,
        )
        parsed: dict[str, Any] | None = None
        if response.content:
            try:
                loaded = response.json()
            except ValueError:
                loaded = None
            parsed = loaded if isinstance(loaded, dict) else None
        return BotReply(status=response.status_code, body=parsed, text=response.text)

    def close(self) -> None:
        self._session.close()
