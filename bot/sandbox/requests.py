"""Signed Slack requests for the sandbox, shaped like the ones Slack sends to the bot.

Slash commands are form-encoded; interactivity (buttons, modal submissions) is form-encoded with
one ``payload`` field holding JSON. Every request carries ``X-Slack-Request-Timestamp`` and
``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret).
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

from bot.ids import COMMAND

SANDBOX_USER = "U0SANDBOX"
SANDBOX_USER_NAME = "sandbox-user"
SANDBOX_CHANNEL = "C0SANDBOX"
SANDBOX_CHANNEL_NAME = "sandbox"
SANDBOX_APP_ID = "A0SANDBOX"
DEFAULT_TEAM = "T0SANDBOX"


def sign(body: str, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds to a request with this body (Events API bodies are JSON)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    is_json = body.lstrip().startswith("{")
    return {
        "Content-Type": "application/json" if is_json else "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or "",
    }


def trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:32]}"


def slash_command(
    text: str,
    *,
    response_url: str,
    user_id: str = SANDBOX_USER,
    team_id: str = DEFAULT_TEAM,
    channel_id: str = SANDBOX_CHANNEL,
    command: str = COMMAND,
) -> str:
    """The form body of ``/apikey <text>`` typed by ``user_id`` in ``channel_id``."""
    return urlencode(
        {
            "token": "sandbox-verification-token",
            "team_id": team_id,
            "team_domain": "sandbox",
            "channel_id": channel_id,
            "channel_name": SANDBOX_CHANNEL_NAME,
            "user_id": user_id,
            "user_name": SANDBOX_USER_NAME,
            "command": command,
            "text": text,
            "api_app_id": SANDBOX_APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id(),
        }
    )


def _interactive(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def _user(user_id: str, team_id: str) -> dict[str, str]:
    return {
        "id": user_id,
        "username": SANDBOX_USER_NAME,
        "name": SANDBOX_USER_NAME,
        "team_id": team_id,
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
) -> str:
    """The ``block_actions`` payload of a button click: in a modal when ``view`` is given, else in
    a message: a regular one when ``message`` (its payload) is given, else an ephemeral one."""
    now = f"{time.time():.6f}"
    action: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id or "sandbox_block",
        "text": {"type": "plain_text", "text": text or action_id, "emoji": True},
        "action_ts": now,
    }
    if value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": SANDBOX_APP_ID,
        "token": "sandbox-verification-token",
        "trigger_id": trigger_id(),
        "team": {"id": team_id, "domain": "sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
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
        payload["channel"] = {"id": channel_id, "name": SANDBOX_CHANNEL_NAME}
        if message is not None:
            payload["message"] = {"type": "message", **message, "ts": ts}
    if response_url:
        payload["response_url"] = response_url
    return _interactive(payload)


def view_submission(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    view_id: str | None = None,
    private_metadata: str = "",
    blocks: list[dict[str, Any]] | None = None,
    title: str = "Modal",
    user_id: str = SANDBOX_USER,
    team_id: str = DEFAULT_TEAM,
) -> str:
    """The ``view_submission`` payload of a modal submitted with ``values`` as its state."""
    view_id = view_id or "V0" + uuid.uuid4().hex[:10].upper()
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "sandbox"},
        "user": _user(user_id, team_id),
        "api_app_id": SANDBOX_APP_ID,
        "token": "sandbox-verification-token",
        "trigger_id": trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "title": {"type": "plain_text", "text": title},
            "blocks": blocks or [],
            "state": {"values": values},
            "hash": uuid.uuid4().hex[:16],
            "app_id": SANDBOX_APP_ID,
            "bot_id": "B0SANDBOX",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload)


def app_home_opened(*, user_id: str = SANDBOX_USER, team_id: str = DEFAULT_TEAM) -> str:
    """The Events API callback Slack sends when a user opens the app's Home tab."""
    now = time.time()
    return json.dumps(
        {
            "token": "sandbox-verification-token",
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
