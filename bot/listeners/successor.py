"""The checklist's *Create a successor* button: the governor replaces a deleted key."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.custody.register import registration_summary
from bot.blocks.notices import working_message
from bot.listeners.background import in_background
from bot.services.context import Services
from bot.services.governor.successor import create_successor
from bot.slack.access import Requester, actor_from
from bot.slack.live_messages import refresh_messages


def handle_successor_button(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    incident_id = str(body["actions"][0].get("value") or "")
    actor = actor_from(services, requester)
    respond(
        **working_message("Creating the successor in Binance…").as_kwargs(),
        response_type="ephemeral",
        replace_original=False,
    )

    def work() -> None:
        key = create_successor(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            governor=services.governor_gateway,
            settings=services.settings,
            actor=actor,
            incident_id=incident_id,
            now=services.clock(),
        )
        respond(
            **registration_summary(key, services.clock()).as_kwargs(),
            response_type="ephemeral",
            replace_original=False,
        )
        refresh_messages(services, client, incident_id)

    in_background(services, respond, work)
