"""The register form with "Create it in Binance for me": the governor creates the key in a
sub-account (bot.services.governor.minting); nobody sees or pastes anything."""

from __future__ import annotations

import ipaddress
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.blocks.custody.register import registered_view, registration_summary
from bot.blocks.notices import error_message
from bot.ids import Action, Block
from bot.listeners import modal_values as modal
from bot.listeners.modal_work import answer_submission
from bot.services.context import Services
from bot.services.governor.minting import MintRequest, create_key
from bot.slack.access import Requester, actor_from
from bot.slack.messaging import send_private
from storage.models import KeyPurpose

MAX_SERVICE_IPS = 30  # Binance takes "max 500 chars" of IP list


def _addresses(text: str) -> tuple[tuple[str, ...], str | None]:
    """The service's IP addresses, or why they cannot be read."""
    parts = [p.strip() for p in text.replace("\n", ",").replace(" ", ",").split(",")]
    found = tuple(dict.fromkeys(p for p in parts if p))
    for part in found:
        try:
            ipaddress.ip_address(part)
        except ValueError:
            shown = part if len(part) <= 40 else part[:39] + "…"
            return (), f"“{shown}” is not an IP address (e.g. 203.0.113.7; separate with commas)."
    if len(found) > MAX_SERVICE_IPS:
        return (), f"At most {MAX_SERVICE_IPS} addresses."
    return found, None


def start_creation(
    ack: Ack, view: dict[str, Any], client: WebClient, services: Services, requester: Requester
) -> None:
    if (
        modal.text(view, Block.API_KEY, Action.API_KEY).strip()
        or modal.text(view, Block.SECRET, Action.SECRET).strip()
    ):
        ack(
            response_action="errors",
            errors={
                Block.SECRET: "The bot creates this key in Binance: leave the API key and secret "
                "empty (nothing secret is typed), or choose a “paste” type."
            },
        )
        return
    ips, problem = _addresses(modal.text(view, Block.CREATE_IPS, Action.CREATE_IPS))
    if problem is not None:
        ack(response_action="errors", errors={Block.CREATE_IPS: problem})
        return
    ticked = modal.chosen(view, Block.CREATE_EXTRAS, Action.CREATE_EXTRAS)
    actor = actor_from(services, requester)
    try:
        purpose = KeyPurpose(modal.choice(view, Block.PURPOSE, Action.PURPOSE) or "")
    except ValueError:
        ack(response_action="errors", errors={Block.PURPOSE: "Please choose from the list."})
        return
    request = MintRequest(
        team_id=actor.team_id,
        actor=actor.user_id,
        actor_is_admin=actor.is_admin,
        label=modal.text(view, Block.LABEL, Action.LABEL).strip(),
        sub_account=modal.text(view, Block.ACCOUNT, Action.ACCOUNT).strip(),
        owner_user_id=modal.user(view, Block.OWNER, Action.OWNER) or actor.user_id,
        purpose=purpose,
        extras=ticked - {"unrestricted"},
        ip_addresses=ips,
        unrestricted="unrestricted" in ticked,
        confirm_more=modal.ticked(view, Block.REGISTER_CONFIRM, Action.REGISTER_CONFIRM),
        delivery=modal.choice(view, Block.DELIVERY, Action.DELIVERY),
        source="slack:modal",
    )
    channel = modal.channel(view)
    answer_submission(
        ack,
        client,
        services,
        view_id=view["id"],
        work=lambda: create_key(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            governor=services.governor_gateway,
            settings=services.settings,
            request=request,
            now=services.clock(),
        ),
        success_view=registered_view,
        after=lambda key: send_private(
            client,
            channel=channel,
            user_id=actor.user_id,
            message=registration_summary(key, services.clock()),
        ),
        default_field=Block.ACCOUNT,
        on_late_failure=lambda text: send_private(
            client, channel=channel, user_id=actor.user_id, message=error_message(text)
        ),
    )
