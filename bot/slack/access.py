"""Who is asking: the Slack side of access control (admins list, user group, channels)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.notices import refused_view
from bot.config import Settings
from bot.observability.metrics import DENIED, OUTCOME_KEY
from bot.services.access import Actor, deny
from bot.services.context import Services
from bot.slack.workspace import Installation, Refusal, WorkspaceCheck, check_workspace

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
REFUSALS = {
    Refusal.ANOTHER_WORKSPACE: OTHER_WORKSPACE,
    Refusal.DISAGREEING: (
        "This request names more than one Slack workspace, so the bot did nothing. It only "
        "answers requests from the workspace where it is installed."
    ),
    Refusal.NO_WORKSPACE: (
        "This request does not say which Slack workspace it comes from, so the bot did nothing."
    ),
}
REQUESTER = "requester"  # the context key (and listener argument) of the checked Requester


@dataclass(frozen=True)
class Requester:
    """Who sent a request, from which channel, and the workspace it acts in: the one the
    guard checked (bot.slack.workspace). Bolt hands it to every listener that names a
    ``requester`` argument; listeners never read the workspace from the body again."""

    user_id: str
    team_id: str
    channel: str | None


def make_guard(services: Services) -> Callable[..., BoltResponse | None]:
    """Global middleware: refuse a request whose workspace fields disagree or name another
    workspace, and commands outside the allowed channels, before any listener runs (audited,
    nothing else happens); hand the listeners the checked ``Requester``."""

    def refuse(body: dict[str, Any], text: str) -> BoltResponse:
        if body.get("type") == "view_submission":  # the modal says why instead of closing
            answer = {"response_action": "update", "view": refused_view(text).to_dict()}
        elif body.get("command") or body.get("type") == "block_actions":
            answer = {"response_type": "ephemeral", "text": text}
        else:  # events and the rest: acknowledged, nobody to tell
            return BoltResponse(status=200, body="")
        return BoltResponse(
            status=200, body=json.dumps(answer), headers={"content-type": "application/json"}
        )

    def guard(
        body: dict[str, Any], context: BoltContext, next: Callable[[], None]
    ) -> BoltResponse | None:
        check = check_workspace(body, _installation(services, context))
        user = _user_in(body) or context.user_id or "unknown"
        channel = _channel_in(body) or context.channel_id
        if check.refusal is not None:
            # Audited in the installed workspace (the one whose keys were aimed at), so that
            # its admins see the attempt; the fields that made it refused are named.
            actor = Actor(user_id=user, team_id=check.team_id or "unknown", channel=channel)
            deny(
                services.engine,
                actor,
                action=_attempt(check),
                message="",
                target_key_id=_key_id_in(body),
            )
            context[OUTCOME_KEY] = DENIED
            return refuse(body, REFUSALS[check.refusal])
        requester = Requester(user_id=user, team_id=str(check.team_id), channel=channel)
        if body.get("command") and not services.directory.channel_allowed(channel):
            actor = Actor(user_id=user, team_id=requester.team_id, channel=channel)
            deny(services.engine, actor, action=f"use {body.get('command')} here", message="")
            context[OUTCOME_KEY] = DENIED
            allowed = ", ".join(f"<#{c}>" for c in services.settings.allowed_channel_ids)
            return refuse(
                body,
                f"`{body.get('command')}` can only be used in {allowed} or in a direct message.",
            )
        context[REQUESTER] = requester
        next()
        return None

    return guard


def _installation(services: Services, context: BoltContext) -> Installation:
    authorized = context.authorize_result
    return Installation(
        team_id=services.settings.slack_team_id or getattr(authorized, "team_id", None),
        enterprise_id=getattr(authorized, "enterprise_id", None),
    )


def _attempt(check: WorkspaceCheck) -> str:
    """The audit's words for a refused workspace (ids only, each cut to an id's length)."""
    named = ", ".join(f"{c.field}={_short(c.value)}" for c in check.evidence)
    if check.refusal is Refusal.ANOTHER_WORKSPACE:
        return f"use the bot from another workspace ({named})"
    if check.refusal is Refusal.DISAGREEING:
        return f"use the bot with workspace fields that disagree ({named})"
    return "use the bot without naming a workspace"


def _user_in(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    return body.get("user_id") or (user.get("id") if isinstance(user, dict) else None)


def _channel_in(body: dict[str, Any]) -> str | None:
    channel = body.get("channel")
    return body.get("channel_id") or (channel.get("id") if isinstance(channel, dict) else None)


def _short(value: object) -> str:
    """A team id from a request, fit for an audit detail (never more than an id's length)."""
    text = str(value)
    return text[:32] if text.isalnum() else "an unknown workspace"


def _key_id_in(body: dict[str, Any]) -> str | None:
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


def actor_from(services: Services, requester: Requester) -> Actor:
    """The person behind a command, a button or a modal submission, in the checked workspace."""
    return services.directory.actor(
        user_id=requester.user_id, team_id=requester.team_id, channel=requester.channel
    )
