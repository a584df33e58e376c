"""The menu beside each key (status reports, App Home): each option does what its command
does, through the same services, and answers the person who chose it, beside the report
(never replacing it; from the App Home, in a direct message).

The option's value names the key ("rotate:<key id>"); who may do what is checked again here,
since a menu can be forged like any request: only the key's owner or an admin may rotate or
remove it, anyone may see its summary or report it compromised (after a confirmation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.custody.key_menu import report_confirmation
from bot.blocks.oversight.status_report import status_page
from bot.blocks.response.incidents import already_open_message
from bot.commands import StatusTarget, TargetKind
from bot.ids import KeyMenuChoice
from bot.listeners.actions import removal_confirmation
from bot.listeners.background import in_background
from bot.listeners.incidents import checklist_link
from bot.listeners.rotation import open_rotation
from bot.services.access import Actor
from bot.services.context import Services
from bot.services.custody.keys import key_to_report
from bot.services.errors import InvalidInput
from bot.services.oversight.status import run_status
from bot.services.response.incidents import open_incident_of
from bot.slack.access import Requester, actor_from
from bot.slack.messaging import respond_reliably, responder

OUT_OF_DATE = "That menu is out of date. Run `/apikey status` again."


def chosen(body: dict[str, Any]) -> tuple[KeyMenuChoice, str]:
    """The option chosen and the key it names; a value the bot did not write is refused."""
    action = body["actions"][0]  # an overflow menu's option, or the button of a single choice
    value = (action.get("selected_option") or {}).get("value") or action.get("value") or ""
    choice, _, key_id = value.partition(":")
    if choice not in set(KeyMenuChoice) or not key_id:
        raise InvalidInput(OUT_OF_DATE)
    return KeyMenuChoice(choice), key_id


def handle_key_menu(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    choice, key_id = chosen(body)
    actor = actor_from(services, requester)
    reply = _beside(responder(body, client, respond))
    match choice:
        case KeyMenuChoice.DETAILS:
            show_details(services, client, body, reply, actor, key_id=key_id)
        case KeyMenuChoice.ROTATE:
            open_rotation(services, client, body, requester, key_id=key_id)
        case KeyMenuChoice.REPORT:
            key = key_to_report(services.engine, actor, key_id=key_id)
            reply(**report_confirmation(key.key_id, key.label, key.owner_user_id).as_kwargs())
        case KeyMenuChoice.INCIDENT:
            view = open_incident_of(services.engine, team_id=actor.team_id, key_id=key_id)
            link = checklist_link(client, view.incident)
            message = already_open_message(view.incident.id, view.incident.label, link)
            reply(**message.as_kwargs())
        case KeyMenuChoice.REMOVE:
            reply(**removal_confirmation(services, actor, key_id=key_id).as_kwargs())


def show_details(
    services: Services,
    client: WebClient,
    body: dict[str, Any],
    reply: Callable[..., Any],
    viewer: Actor,
    *,
    key_id: str,
) -> None:
    """`/apikey status <label>` for the chosen key: Binance is asked after the ack, and the
    key is shown in full to its owner and admins, as a summary to anyone else."""

    def work() -> None:
        report = run_status(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            target=StatusTarget(TargetKind.KEY_ID, key_id),
            viewer=viewer,
            source=f"slack:{viewer.channel or 'app-home'}",
            now=services.clock(),
        )
        respond_reliably(
            reply,
            client,
            channel=viewer.channel,
            user_id=viewer.user_id,
            message=status_page(report, now=services.clock()),
        )

    in_background(services, reply, work)


def _beside(respond: Callable[..., Any]) -> Callable[..., Any]:
    """``respond`` that never replaces the message the menu was in (a report, the Home)."""

    def send(**kwargs: Any) -> Any:
        kwargs.update(response_type="ephemeral", replace_original=False)
        return respond(**kwargs)

    return send
