"""Who is asking: the Slack side of access control (admins list, user group, channels)."""

from __future__ import annotations

import json
import logging
import threading
import time

from slack_bolt import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.notices import refused_view
from bot.config import Settings
from bot.observability.metrics import DENIED, OUTCOME_KEY
from bot.services.access import Actor, deny

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0


class AccessDirectory:
    """Resolves the admins (configured ids plus a user group, cached briefly)."""

    def __init__(self, settings: Settings, client: WebClient) -> None:
        self._settings = settings
        self._client = client
        self._group: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._lock = threading.Lock()

    def is_admin(self, user_id: str) -> bool:
        return user_id in self._settings.admin_user_ids or user_id in self._group_members()

    def _group_members(self) -> frozenset[str]:
        group = self._settings.admin_usergroup_id
        if not group:
            return frozenset()
        with self._lock:
            fetched_at, members = self._group
            if time.monotonic() - fetched_at < GROUP_CACHE_SECONDS:
                return members
        try:
            members = frozenset(self._client.usergroups_users_list(usergroup=group)["users"])
        except SlackApiError as exc:
            log.warning("admin user group unavailable (%s)", exc.response.get("error"))
            return members
        with self._lock:
            self._group = (time.monotonic(), members)
        return members

    def actor(self, *, user_id: str, team_id: str, channel: str | None) -> Actor:
        return Actor(
            user_id=user_id, team_id=team_id, is_admin=self.is_admin(user_id), channel=channel
        )

    def channel_allowed(self, channel: str | None) -> bool:
        allowed = self._settings.allowed_channel_ids
        return not allowed or channel in allowed or (channel or "").startswith("D")


OTHER_WORKSPACE = "This bot is installed in another Slack workspace and only answers there."


def make_guard(services):
    """Global middleware: refuse another workspace's requests, and commands outside the
    allowed channels, before any listener runs (audited, nothing else happens)."""

    def refuse(body: dict, text: str) -> BoltResponse:
        if body.get("type") == "view_submission":  # the modal says why instead of closing
            answer = {"response_action": "update", "view": refused_view(text).to_dict()}
        elif body.get("command") or body.get("type") == "block_actions":
            answer = {"response_type": "ephemeral", "text": text}
        else:  # events and the rest: acknowledged, nobody to tell
            return BoltResponse(status=200, body="")
        return BoltResponse(
            status=200, body=json.dumps(answer), headers={"content-type": "application/json"}
        )

    def guard(body: dict, context, next):
        installed = services.settings.slack_team_id or getattr(
            context.authorize_result, "team_id", None
        )
        team = context.team_id
        user = context.user_id or "unknown"
        if installed and team and team != installed:
            # Audited in the installed workspace (the one whose keys were aimed at), so that
            # its admins see the attempt; the foreign workspace is named in the event.
            actor = Actor(user_id=user, team_id=installed, channel=context.channel_id)
            deny(
                services.engine,
                actor,
                action=f"use the bot from another workspace ({_short(team)})",
                message="",
                target_key_id=_key_id_in(body),
            )
            context[OUTCOME_KEY] = DENIED
            return refuse(body, OTHER_WORKSPACE)
        if body.get("command") and not services.access.channel_allowed(context.channel_id):
            actor = Actor(user_id=user, team_id=team or "?", channel=context.channel_id)
            deny(services.engine, actor, action=f"use {body.get('command')} here", message="")
            context[OUTCOME_KEY] = DENIED
            allowed = ", ".join(f"<#{c}>" for c in services.settings.allowed_channel_ids)
            return refuse(
                body,
                f"`{body.get('command')}` can only be used in {allowed} or in a direct message.",
            )
        next()
        return None

    return guard


def _short(value: object) -> str:
    """A team id from a request, fit for an audit detail (never more than an id's length)."""
    text = str(value)
    return text[:32] if text.isalnum() else "an unknown workspace"


def _key_id_in(body: dict) -> str | None:
    """The key a button names (its value, or a key menu's option: "<choice>:<key id>"), when it
    looks like one of our key ids."""
    for action in body.get("actions") or []:
        if not isinstance(action, dict):
            continue
        value = action.get("value")
        option = action.get("selected_option")
        if value is None and isinstance(option, dict) and isinstance(option.get("value"), str):
            value = option["value"].rpartition(":")[2]
        if isinstance(value, str) and len(value) == 32 and value.isalnum():
            return value
    return None


def actor_from(services, body: dict) -> Actor:
    """The person behind a command, a button or a modal submission."""
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    team = (
        body.get("team_id")
        or (body.get("team") or {}).get("id")
        or (body.get("user") or {}).get("team_id")
    )
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    return services.access.actor(user_id=user, team_id=team, channel=channel)
