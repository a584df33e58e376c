"""`/apikey edit <label> owner|purpose|account …` (admins): thin adapter over
``bot.services.custody.key_edit``; a new owner must be a member of the workspace and is told."""

from __future__ import annotations

import logging

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.approvals import held_message
from bot.blocks.custody.key_edit import key_edited_message, new_owner_note
from bot.blocks.notices import error_message
from bot.commands import EditField, EditKey
from bot.listeners.people import require_person
from bot.services.approvals.holding import HeldForApproval
from bot.services.context import Services
from bot.services.custody.key_edit import edit_key
from bot.services.errors import DomainError
from bot.slack.access import Requester, actor_from

log = logging.getLogger(__name__)


def handle_edit(
    parsed: EditKey,
    requester: Requester,
    ack: Ack,
    respond: Respond,
    client: WebClient,
    services: Services,
    *,
    source: str,
) -> None:
    ack()
    actor = actor_from(services, requester)
    try:
        if parsed.field == EditField.OWNER and actor.is_admin:
            require_person(client, parsed.value, role="own a key")
        edited = edit_key(
            engine=services.engine,
            settings=services.settings,
            actor=actor,
            label=parsed.label,
            field=parsed.field,
            value=parsed.value,
            now=services.clock(),
            source=source,
        )
    except HeldForApproval as held:  # a new owner or a wider purpose waits for approval
        respond(**held_message(held.user_message).as_kwargs())
        return
    except DomainError as exc:
        respond(**error_message(exc.user_message).as_kwargs())
        return
    respond(**key_edited_message(edited, services.clock()).as_kwargs())
    if parsed.field == EditField.OWNER:
        try:
            channel = client.conversations_open(users=edited.owner_user_id)["channel"]["id"]
            client.chat_postMessage(
                channel=channel, **new_owner_note(edited, actor.user_id).as_kwargs()
            )
        except SlackApiError as exc:  # the change stands; the reminders will reach them
            log.warning("could not tell the new owner: %s", exc.response.get("error"))
