"""The register modal's submission: validate, ask Binance, store sealed, summarise."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.blocks.custody.register import (
    registered_view,
    registration_summary,
)
from bot.blocks.notices import error_message
from bot.ids import Action, Block
from bot.listeners import modal_values as modal
from bot.listeners.governor_create import start_creation
from bot.listeners.key_pairs import start_generated_pair
from bot.listeners.modal_work import answer_submission
from bot.model.governor import CREATE_IN_BINANCE
from bot.model.key_pairs import KeyAlgorithm
from bot.model.keys import RegisteredKey
from bot.services.context import Services
from bot.services.custody.keys import (
    RegistrationForm,
    check_owner_choice,
    check_unique,
    normalise_form,
    register_key,
    validate_registration,
)
from bot.services.errors import DomainError
from bot.slack.access import Requester
from bot.slack.messaging import send_private
from storage.models import KeyPurpose, KeyType

log = logging.getLogger(__name__)


def form_from_view(view: dict[str, Any], requester: Requester) -> RegistrationForm:
    user_id = requester.user_id
    return RegistrationForm(
        team_id=requester.team_id,
        actor=user_id,
        label=modal.text(view, Block.LABEL, Action.LABEL),
        account_alias=modal.text(view, Block.ACCOUNT, Action.ACCOUNT),
        owner_user_id=modal.user(view, Block.OWNER, Action.OWNER) or user_id,
        purpose=KeyPurpose(
            modal.choice(view, Block.PURPOSE, Action.PURPOSE) or KeyPurpose.READ_ONLY.value
        ),
        key_type=KeyType(chosen_key_type(view)),
        api_key=modal.text(view, Block.API_KEY, Action.API_KEY),
        secret=modal.text(view, Block.SECRET, Action.SECRET),
        source="slack:modal",
        delivery=modal.choice(view, Block.DELIVERY, Action.DELIVERY),
        confirm_beyond_purpose=modal.ticked(view, Block.REGISTER_CONFIRM, Action.REGISTER_CONFIRM),
    )


def chosen_key_type(view: dict[str, Any]) -> str:
    """The register or rotate form's key type: a KeyAlgorithm (the bot generates the pair) or
    a KeyType to paste (HMAC when the menu was left out)."""
    return modal.choice(view, Block.KEY_TYPE, Action.KEY_TYPE) or KeyType.HMAC.value


def handle_register_submission(
    ack: Ack, view: dict[str, Any], client: WebClient, services: Services, requester: Requester
) -> None:
    if chosen_key_type(view) in set(KeyAlgorithm):
        start_generated_pair(ack, view, client, services, requester)
        return
    if chosen_key_type(view) == CREATE_IN_BINANCE:
        start_creation(ack, view, client, services, requester)
        return
    try:
        form = normalise_form(form_from_view(view, requester))
        form = replace(form, actor_is_admin=services.directory.is_admin(form.actor))
        check_owner_choice(services.engine, form)
    except DomainError as exc:
        ack(response_action="errors", errors={exc.field or Block.OWNER: exc.user_message})
        return
    except ValueError:
        ack(response_action="errors", errors={Block.PURPOSE: "Please choose from the list."})
        return
    problems = validate_registration(form)
    if problems:
        ack(response_action="errors", errors=dict(problems))
        return
    try:
        check_unique(services.engine, services.ring, form)
    except DomainError as exc:
        ack(response_action="errors", errors={exc.field or Block.LABEL: exc.user_message})
        return

    channel = modal.channel(view)
    answer_submission(
        ack,
        client,
        services,
        view_id=view["id"],
        work=lambda: register_key(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            form=form,
            settings=services.settings,
            now=services.clock(),
        ),
        success_view=registered_view,
        after=lambda key: _summarise(client, services, key, user_id=form.actor, channel=channel),
        default_field=Block.API_KEY,
        on_late_failure=lambda text: send_private(
            client, channel=channel, user_id=form.actor, message=error_message(text)
        ),
    )


def _summarise(
    client: WebClient, services: Services, key: RegisteredKey, *, user_id: str, channel: str | None
) -> None:
    send_private(
        client,
        channel=channel,
        user_id=user_id,
        message=registration_summary(key, services.clock()),
    )
