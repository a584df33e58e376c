"""The register modal's submission: validate, ask Binance, store sealed, summarise.

Slack wants an answer to a submission within 3 s. A Binance check that answers in time is
reported inside the modal (field errors, or success); a slower one switches the modal to a
"checking" view and updates it when Binance answers.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import TimeoutError as FutureTimeout

from sqlmodel import Session

from bot.blocks.register import (
    checking_view,
    registered_view,
    registration_failed_view,
    registration_summary,
)
from bot.ids import Action, Block
from bot.listeners.background import unexpected_error_text
from bot.listeners.delivery import send_private
from bot.services.context import Services
from bot.services.errors import DomainError
from bot.services.keys import (
    RegisteredKey,
    RegistrationForm,
    ensure_unique,
    normalise_form,
    register_key,
    validate_registration,
)
from storage.models import KeyPurpose, KeyType

log = logging.getLogger(__name__)

# How long the submission may wait for Binance before switching to the "checking" view.
INLINE_CHECK_SECONDS = 2.0


def form_from_view(view: dict, body: dict) -> RegistrationForm:
    values = view["state"]["values"]

    def text(block: Block, action: Action) -> str:
        return (values.get(block, {}).get(action, {}) or {}).get("value") or ""

    def selected(block: Block, action: Action, default: str) -> str:
        option = (values.get(block, {}).get(action, {}) or {}).get("selected_option") or {}
        return option.get("value") or default

    owner = (values.get(Block.OWNER, {}).get(Action.OWNER, {}) or {}).get("selected_user")
    user_id = body["user"]["id"]
    return RegistrationForm(
        team_id=_team_id(body),
        actor=user_id,
        label=text(Block.LABEL, Action.LABEL),
        account_alias=text(Block.ACCOUNT, Action.ACCOUNT),
        owner_user_id=owner or user_id,
        purpose=KeyPurpose(selected(Block.PURPOSE, Action.PURPOSE, KeyPurpose.READ_ONLY.value)),
        key_type=KeyType(selected(Block.KEY_TYPE, Action.KEY_TYPE, KeyType.HMAC.value)),
        api_key=text(Block.API_KEY, Action.API_KEY),
        secret=text(Block.SECRET, Action.SECRET),
        source="slack:modal",
    )


def _team_id(body: dict) -> str:
    return (body.get("team") or {}).get("id") or body["user"].get("team_id")


def handle_register_submission(ack, body: dict, view: dict, client, services: Services) -> None:
    try:
        form = normalise_form(form_from_view(view, body))
    except ValueError:
        ack(response_action="errors", errors={Block.PURPOSE: "Please choose from the list."})
        return
    problems = validate_registration(form)
    if problems:
        ack(response_action="errors", errors=dict(problems))
        return
    try:
        with Session(services.engine) as session:
            ensure_unique(session, services.ring, form)
    except DomainError as exc:
        ack(response_action="errors", errors={exc.field or Block.LABEL: exc.user_message})
        return

    future = services.background.submit(
        register_key,
        engine=services.engine,
        ring=services.ring,
        gateway=services.gateway,
        form=form,
        now=services.clock(),
    )
    channel = _channel_from(view)
    try:
        registered = future.result(timeout=INLINE_CHECK_SECONDS)
    except FutureTimeout:
        ack(response_action="update", view=checking_view())
        _finish_slowly(
            future, client, services, view_id=view["id"], user_id=form.actor, channel=channel
        )
        return
    except DomainError as exc:
        ack(response_action="errors", errors={exc.field or Block.API_KEY: exc.user_message})
        return
    except Exception:
        ref, text = unexpected_error_text()
        log.exception("registration failed (reference %s)", ref)
        ack(response_action="errors", errors={Block.API_KEY: text})
        return
    ack(response_action="update", view=registered_view(registered))
    _summarise(client, services, registered, user_id=form.actor, channel=channel)


def _finish_slowly(future, client, services: Services, *, view_id: str, user_id: str, channel):
    try:
        registered = future.result()
    except DomainError as exc:
        client.views_update(view_id=view_id, view=registration_failed_view(exc.user_message))
        return
    except Exception:
        ref, text = unexpected_error_text()
        log.exception("registration failed (reference %s)", ref)
        client.views_update(view_id=view_id, view=registration_failed_view(text))
        return
    client.views_update(view_id=view_id, view=registered_view(registered))
    _summarise(client, services, registered, user_id=user_id, channel=channel)


def _summarise(client, services: Services, key: RegisteredKey, *, user_id: str, channel) -> None:
    send_private(
        client,
        channel=channel,
        user_id=user_id,
        message=registration_summary(key, services.clock()),
    )


def _channel_from(view: dict) -> str | None:
    try:
        return json.loads(view.get("private_metadata") or "{}").get("channel")
    except (ValueError, AttributeError):
        return None
