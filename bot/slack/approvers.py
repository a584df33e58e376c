"""Who may approve a held change: APPROVER_USER_IDS and the members of
APPROVER_USERGROUP_ID when either is set, else the admins (ADMIN_USER_IDS and the members of
ADMIN_USERGROUP_ID). The requester is never one of them for their own request (the service
refuses that); too few of them for the quorum is said at start-up and in every request."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import Settings

log = logging.getLogger(__name__)


def approver_ids(settings: Settings, client: WebClient | None) -> frozenset[str]:
    """The eligible approvers now (a user group is asked each time: a member removed from it
    loses the right at once). A group Slack will not list counts as empty."""
    if settings.approver_user_ids or settings.approver_usergroup_id:
        ids, group = settings.approver_user_ids, settings.approver_usergroup_id
    else:
        ids, group = settings.admin_user_ids, settings.admin_usergroup_id
    members: frozenset[str] = frozenset()
    if group and client is not None:
        try:
            members = frozenset(client.usergroups_users_list(usergroup=group)["users"])
        except SlackApiError as exc:
            log.warning("approver user group unavailable (%s)", exc.response.get("error"))
    return frozenset(ids) | members


def approvers_shortfall(settings: Settings, approvers: frozenset[str]) -> str | None:
    """Why some requests cannot be approved (None: enough people). A requester who is an
    approver does not count for their own request, so the quorum needs one more than that."""
    if not settings.approval_required_for:
        return None
    if len(approvers) - 1 >= settings.approval_quorum:
        return None
    return (
        f"approvals need {settings.approval_quorum} approver(s) other than the requester, but "
        f"only {len(approvers)} approver(s) are configured: a request by one of them cannot "
        "be approved. Set APPROVER_USER_IDS or APPROVER_USERGROUP_ID (or more admins), or "
        "lower APPROVAL_QUORUM (README: Approvals)."
    )


def warn_if_too_few_approvers(settings: Settings) -> str | None:
    """At start-up: one log line when the configured approvers cannot reach the quorum (a
    user group is counted when a request is made: its members are not known yet)."""
    uses_group = (
        settings.approver_usergroup_id
        if settings.approver_user_ids or settings.approver_usergroup_id
        else settings.admin_usergroup_id
    )
    if uses_group:
        return None
    why = approvers_shortfall(settings, approver_ids(settings, None))
    if why is not None:
        log.warning("too few approvers: %s", why)
    return why
