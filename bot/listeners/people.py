"""Who may be given a role in Slack: a person of this workspace, never a bot or a
deactivated account (Slack's user pickers offer both)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.errors import InvalidInput


def require_person(client: WebClient, user_id: str, *, role: str) -> None:
    """Refuse (politely, nothing changed) unless ``user_id`` is an active person here."""
    user = None
    if user_id:
        try:
            user = client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error not in ("user_not_found", "account_inactive"):
                raise InvalidInput(
                    f"Slack could not say who <@{user_id}> is just now ({error}); try again in "
                    "a minute. Nothing was changed."
                ) from None
    if not user or user.get("deleted") or user.get("is_bot"):
        who = f"<@{user_id}>" if user_id else "Nobody"
        raise InvalidInput(
            f"{who} is not a member of this workspace who can {role}; pick a person from "
            "Slack's list. Nothing was changed."
        )
