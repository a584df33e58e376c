"""Rotation: the rotate modal's submission and the reminder buttons (Rotate now, Snooze).
A governed key is rotated by the governor instead of the form (bot.listeners.governed_rotation)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.notices import error_message
from bot.blocks.rotation.rotation import (
    rotation_started_message,
    rotation_started_view,
    snoozed_message,
)
from bot.ids import Action, Block
from bot.listeners import modal_values as modal
from bot.listeners.commands import open_rotate_modal
from bot.listeners.governed_rotation import rotate_if_governed
from bot.listeners.key_pairs import start_generated_rotation_pair
from bot.listeners.modal_work import answer_submission
from bot.listeners.views import chosen_key_type
from bot.model.key_pairs import KeyAlgorithm
from bot.services.context import Services
from bot.services.custody.keys import key_to_manage
from bot.services.errors import DomainError, InvalidInput
from bot.services.rotation.rotate import (
    RotationForm,
    check_new_key,
    normalise,
    require_may_rotate,
    start_rotation,
)
from bot.services.rotation.rotation_policy import snooze
from bot.slack.access import Requester, actor_from
from bot.slack.messaging import send_private
from storage.models import KeyType

OUT_OF_DATE = "This form is out of date: close it and press Rotate again."


def _key_id(view: dict[str, Any]) -> str:
    """The key the rotate form is for, as the bot noted it in the metadata."""
    key_id = modal.metadata(view).get("key_id")
    if not isinstance(key_id, str):
        raise InvalidInput(OUT_OF_DATE)
    return key_id


def _confirmed(view: dict[str, Any]) -> bool:
    return modal.ticked(view, Block.ROTATE_CONFIRM, Action.ROTATE_CONFIRM)


def rotation_form(view: dict[str, Any], requester: Requester) -> RotationForm:
    return RotationForm(
        team_id=requester.team_id,
        actor=requester.user_id,
        key_id=_key_id(view),
        key_type=KeyType(chosen_key_type(view)),
        api_key=modal.text(view, Block.API_KEY, Action.API_KEY),
        secret=modal.text(view, Block.SECRET, Action.SECRET),
        confirm_more_permissions=_confirmed(view),
        source="slack:modal",
    )


def _with_role(form: RotationForm, services: Services) -> RotationForm:
    return replace(form, actor_is_admin=services.directory.is_admin(form.actor))


def handle_rotate_submission(
    ack: Ack, view: dict[str, Any], client: WebClient, services: Services, requester: Requester
) -> None:
    channel = modal.channel(view)
    if chosen_key_type(view) in set(KeyAlgorithm):
        try:
            key_id = _key_id(view)
        except InvalidInput as exc:
            ack(response_action="errors", errors={Block.KEY_TYPE: exc.user_message})
            return
        start_generated_rotation_pair(
            ack, view, client, services, requester, key_id=key_id, confirm_more=_confirmed(view)
        )
        return
    try:
        form = _with_role(normalise(rotation_form(view, requester)), services)
        require_may_rotate(services.engine, form, channel=channel)
        check_new_key(services.engine, services.ring, form)
    except (ValueError, KeyError):
        ack(response_action="errors", errors={Block.KEY_TYPE: "Please choose from the list."})
        return
    except DomainError as exc:
        ack(response_action="errors", errors={exc.field or Block.API_KEY: exc.user_message})
        return
    answer_submission(
        ack,
        client,
        services,
        view_id=view["id"],
        work=lambda: start_rotation(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            settings=services.settings,
            form=form,
            now=services.clock(),
        ),
        success_view=rotation_started_view,
        after=lambda started: send_private(
            client,
            channel=channel,
            user_id=form.actor,
            message=rotation_started_message(started),
        ),
        default_field=Block.API_KEY,
        on_late_failure=lambda text: send_private(
            client, channel=channel, user_id=form.actor, message=error_message(text)
        ),
    )


def handle_rotate_now(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    open_rotation(services, client, body, requester, key_id=body["actions"][0]["value"])


def open_rotation(
    services: Services,
    client: WebClient,
    body: dict[str, Any],
    requester: Requester,
    *,
    key_id: str,
) -> None:
    """The rotate form for the key a button or a key's menu names, if the clicker may rotate
    it (its owner or an admin; anyone else is refused, audited)."""
    actor = actor_from(services, requester)
    key = key_to_manage(services.engine, actor, action="rotate", key_id=key_id)
    channel = (body.get("channel") or {}).get("id")
    if rotate_if_governed(
        services, client, actor, key_id=key.key_id, label=key.label, channel=channel
    ):
        return  # the governor makes the successor: no form
    open_rotate_modal(client, key, trigger_id=body["trigger_id"], channel=channel)


def handle_snooze(
    ack: Ack, body: dict[str, Any], respond: Respond, services: Services, requester: Requester
) -> None:
    ack()
    row = snooze(
        engine=services.engine,
        actor=actor_from(services, requester),
        key_id=body["actions"][0]["value"],
        now=services.clock(),
    )
    respond(**snoozed_message(row).as_kwargs(), replace_original=False)
