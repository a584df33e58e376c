"""Signed Slack requests to the bot, built in one place and shaped like the ones Slack sends.

Slash commands are form-encoded; interactivity (button clicks, modal submissions) is form-encoded
with one ``payload`` field holding JSON; Events API callbacks are JSON. Every request carries
``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of
``v0:{timestamp}:{body}`` under the signing secret).

Slash commands, button clicks, modal submissions and the signing come from
``bot.sandbox.requests`` (the sandbox console sends the same shapes); the wrappers here fill in the
test workspace: team T0TEST, user U0ALICE, channel C0GENERAL, fixed trigger ids.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import requests

from bot.ids import Action
from bot.sandbox import requests as payloads

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"  # fake, tests only
VERIFICATION_TOKEN = "legacy-verification-token"  # Slack still sends it; Bolt ignores it
API_APP_ID = "A0APP"
TEAM_ID = "T0TEST"
USER_ID = "U0ALICE"
CHANNEL_ID = "C0GENERAL"
BOT_USER_ID = "U0BOT"
BOT_ID = "B" + BOT_USER_ID[1:]
FORM = payloads.FORM
JSON = payloads.JSON

_event_ids = itertools.count(1)


def sign(
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str | None = None,
) -> dict[str, str]:
    """The headers Slack sends with this body (content type guessed from the body)."""
    return payloads.sign(body, secret=secret, timestamp=timestamp, content_type=content_type)


def _name_of(user_id: str) -> str:
    """A readable user name from a test id: U0ALICE -> alice."""
    return user_id.removeprefix("U0").lower() or user_id


def _channel_name(channel_id: str) -> str:
    if channel_id.startswith("D"):
        return "directmessage"
    return channel_id.removeprefix("C0").lower() or channel_id


def _team_domain(team_id: str) -> str:
    return team_id.removeprefix("T0").lower() or team_id


def _workspace(
    user_id: str, team_id: str, channel_id: str, user_name: str | None = None
) -> payloads.Workspace:
    """The names and app that put a ``bot.sandbox.requests`` payload in the test workspace."""
    return payloads.Workspace(
        team_domain=_team_domain(team_id),
        user_name=user_name or _name_of(user_id),
        channel_name=_channel_name(channel_id),
        api_app_id=API_APP_ID,
        token=VERIFICATION_TOKEN,
        bot_id=BOT_ID,
    )


def slash_command(
    text: str,
    *,
    response_url: str,
    user_id: str = USER_ID,
    user_name: str | None = None,
    team_id: str = TEAM_ID,
    channel_id: str = CHANNEL_ID,
    command: str = "/apikey",
    trigger_id: str | None = None,
) -> str:
    """The form body of ``<command> <text>`` typed by ``user_id`` in ``channel_id``."""
    return payloads.slash_command(
        text,
        response_url=response_url,
        user_id=user_id,
        team_id=team_id,
        channel_id=channel_id,
        command=command,
        workspace=_workspace(user_id, team_id, channel_id, user_name),
        trigger_id=trigger_id,
    )


def block_action(
    action_id: str,
    value: str | None,
    *,
    response_url: str | None,
    user_id: str = USER_ID,
    team_id: str = TEAM_ID,
    channel_id: str = CHANNEL_ID,
    message_ts: str | None = None,
    block_id: str = "b",
    view: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    overflow: bool = False,
) -> str:
    """The ``block_actions`` payload of a button click (of an overflow menu's option, whose
    value is ``value``, when ``overflow``).

    In a modal when ``view`` is given; else in a channel message: a regular one (with its
    ``message``) when ``message_ts`` is given, else an ephemeral one (Slack sends no ``message``
    for those, only the ``container``). ``response_url`` is None for clicks in modals.
    """
    if view is not None:
        view = {"id": "V0VIEW", "type": "modal", "state": {"values": {}}, **view}
    message = None
    if message_ts is not None:
        message = {
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": API_APP_ID,
            "team": team_id,
            "ts": message_ts,
            "text": "",
            "blocks": [],
        }
    return payloads.block_action(
        action_id,
        value,
        response_url=response_url,
        block_id=block_id,
        message=message,
        view=view,
        user_id=user_id,
        team_id=team_id,
        channel_id=channel_id,
        container=container,
        workspace=_workspace(user_id, team_id, channel_id),
        trigger_id=trigger_id,
        overflow=overflow,
    )


def menu_choice(key_menu_value: str, **kw: Any) -> str:
    """The ``block_actions`` payload of a key menu's option ("rotate:<key id>") chosen."""
    return block_action(Action.KEY_MENU.value, key_menu_value, overflow=True, **kw)


def view_submission(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    *,
    user_id: str = USER_ID,
    team_id: str = TEAM_ID,
    private_metadata: str = "",
    view_id: str = "V0VIEW",
    trigger_id: str | None = None,
) -> str:
    """The ``view_submission`` payload of a modal submitted with ``values`` as its state.

    ``values`` is keyed like Slack's: ``{block_id: {action_id: {"type": ..., "value": ...}}}``.
    """
    return payloads.view_submission(
        callback_id,
        values,
        view_id=view_id,
        private_metadata=private_metadata,
        view_hash="1700000000.abcdef01",
        user_id=user_id,
        team_id=team_id,
        workspace=_workspace(user_id, team_id, CHANNEL_ID),
        trigger_id=trigger_id,
    )


def event_callback(
    event: dict[str, Any],
    *,
    team_id: str = TEAM_ID,
    event_id: str | None = None,
    api_app_id: str = API_APP_ID,
) -> str:
    """The JSON body of an Events API ``event_callback`` carrying ``event``."""
    now = time.time()
    event = {"event_ts": f"{now:.6f}", **event}
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "context_team_id": team_id,
            "api_app_id": api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev0{next(_event_ids):08d}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )


def url_verification(challenge: str) -> str:
    """The JSON body Slack sends once to check the Request URL."""
    return json.dumps(
        {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    )


class BotClient:
    """Posts signed requests to a running bot's ``POST /slack/events``.

    Give it ``slack`` (a ``SlackStandIn``) and ``command`` / ``action`` mint a fresh
    ``response_url`` when none is passed.
    """

    def __init__(
        self,
        base_url: str,
        *,
        secret: str = SIGNING_SECRET,
        slack: Any = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.slack = slack
        self.timeout = timeout

    def post(
        self,
        body: str,
        *,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> requests.Response:
        """Sign ``body`` and post it; ``signature`` replaces the real one (to forge a request)."""
        sent = sign(body, secret=self.secret, timestamp=timestamp, content_type=content_type)
        if signature is not None:
            sent["X-Slack-Signature"] = signature
        if retry_num is not None:
            sent["X-Slack-Retry-Num"] = str(retry_num)
            sent["X-Slack-Retry-Reason"] = retry_reason
        sent.update(headers or {})
        return requests.post(self.url, data=body.encode(), headers=sent, timeout=self.timeout)

    def _response_url(self, kw: dict[str, Any], *, command: bool = False) -> None:
        if "response_url" not in kw:
            if self.slack is None:
                raise TypeError("response_url is required when the BotClient has no slack stand-in")
            kw["response_url"] = self.slack.response_url(command=command)

    def command(self, text: str, **kw: Any) -> requests.Response:
        self._response_url(kw, command=True)
        return self.post(slash_command(text, **kw))

    def action(self, action_id: str, value: str | None, **kw: Any) -> requests.Response:
        if kw.get("view") is None:
            self._response_url(kw)
        kw.setdefault("response_url", None)
        return self.post(block_action(action_id, value, **kw))

    def submit(
        self, callback_id: str, values: dict[str, dict[str, Any]], **kw: Any
    ) -> requests.Response:
        return self.post(view_submission(callback_id, values, **kw))

    def event(self, event: dict[str, Any], **kw: Any) -> requests.Response:
        return self.post(event_callback(event, **kw))
