"""Buttons: status report pages, remove confirm/cancel, open the register modal."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.custody.register import register_modal
from bot.blocks.custody.remove import remove_cancelled, remove_confirmation, removed_message
from bot.blocks.message import Message
from bot.blocks.oversight.status_report import status_page
from bot.listeners.background import in_background
from bot.listeners.home import refresh_home
from bot.services.access import Actor
from bot.services.context import Services
from bot.services.custody.credential_delivery import offered_sinks
from bot.services.custody.keys import key_to_manage, known_accounts, remove_key
from bot.services.errors import InvalidInput
from bot.services.governor.registration import governed_sub_accounts
from bot.services.governor.retirement import deletable_by_governor, delete_before_removal
from bot.services.oversight.status import load_report
from bot.slack.access import Requester, actor_from


def _action(body: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = body["actions"][0]
    return action


def _source(body: dict[str, Any]) -> str:
    return f"slack:{(body.get('channel') or {}).get('id', 'home')}"


def handle_status_page(
    ack: Ack, body: dict[str, Any], respond: Respond, services: Services, requester: Requester
) -> None:
    ack()
    report_id, _, page = _action(body)["value"].partition(":")
    if not page.isdigit():
        raise InvalidInput("That button is out of date. Run `/apikey status` again.")
    report = load_report(
        services.engine, actor=actor_from(services, requester), report_id=report_id
    )
    respond(
        **status_page(report, int(page), now=services.clock()).as_kwargs(), replace_original=True
    )


def removal_confirmation(
    services: Services, actor: Actor, *, label: str | None = None, key_id: str | None = None
) -> Message:
    """The Remove / Cancel question for a key (`/apikey remove`, a key's menu), if the actor
    may remove it: its owner or an admin (anyone else is refused, audited)."""
    key = key_to_manage(services.engine, actor, action="remove", label=label, key_id=key_id)
    return remove_confirmation(key, governed=deletable_by_governor(services.engine, key.key_id))


def handle_remove_confirm(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    actor = actor_from(services, requester)
    key_id = _action(body)["value"]

    def work() -> None:
        # A governed key is deleted in Binance first (a Binance call: after the ack).
        deleted = delete_before_removal(
            engine=services.engine,
            ring=services.ring,
            governor=services.governor_gateway,
            actor=actor,
            key_id=key_id,
        )
        removed = remove_key(
            engine=services.engine, actor=actor, key_id=key_id, source=_source(body)
        )
        message = removed_message(removed, actor.user_id, deleted_in_binance=deleted)
        respond(**message.as_kwargs(), replace_original=True)
        refresh_home(services, client, actor)  # a Home menu's Remove is confirmed in a message

    in_background(services, respond, work)


def handle_remove_cancel(
    ack: Ack, body: dict[str, Any], respond: Respond, services: Services, requester: Requester
) -> None:
    ack()
    key = key_to_manage(
        services.engine,
        actor_from(services, requester),
        action="cancel the removal of",
        key_id=_action(body)["value"],
    )
    respond(**remove_cancelled(key.label).as_kwargs(), replace_original=True)


def handle_register_open(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    user_id = requester.user_id
    accounts = known_accounts(services.engine, requester.team_id)
    channel = (body.get("channel") or {}).get("id")
    sinks, default_sink = offered_sinks(services.settings)
    view = register_modal(
        owner_user_id=user_id,
        known_accounts=accounts,
        private_metadata=json.dumps({"channel": channel}),
        sinks=sinks,
        default_sink=default_sink,
        governed_accounts=governed_sub_accounts(services.engine, requester.team_id),
    )
    client.views_open(trigger_id=body["trigger_id"], view=view)
