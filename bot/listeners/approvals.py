"""Approve, Deny and Withdraw buttons of a held change, and `/apikey approvals`: thin
adapters over ``bot.services.approvals``. Answers go to the person who pressed (ephemeral):
the request's message in the alert channel stays for everyone."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.approvals import approvals_list, decision_message
from bot.blocks.notices import error_message
from bot.listeners.background import UNEXPECTED
from bot.listeners.governor_sync import after_governor_registered
from bot.listeners.home import refresh_home
from bot.model.approvals import ApprovalKind, ApprovalState
from bot.services.approvals.decisions import Decision, approve, deny, open_requests, withdraw
from bot.services.context import Services
from bot.services.errors import DomainError
from bot.slack.access import Requester, actor_from
from bot.slack.approvers import approver_ids
from bot.slack.messaging import responder

log = logging.getLogger(__name__)


def _request_id(body: dict[str, Any]) -> str:
    value = (body.get("actions") or [{}])[0].get("value")
    return str(value or "")[:64]


def _answer(
    services: Services,
    reply: Callable[..., Any],
    work: Callable[[], Decision],
) -> None:
    """Run ``work`` after the ack (approving asks Binance); tell only the person who pressed
    (``reply``: the response_url, or their direct messages for a click on the App Home)."""

    def run() -> None:
        try:
            decision = work()
            message = decision_message(decision.note, decision.view)
        except DomainError as exc:
            message = error_message(exc.user_message)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("approval decision failed (reference %s)", ref)
            message = error_message(UNEXPECTED.format(ref=ref))
        reply(**message.as_kwargs(), response_type="ephemeral", replace_original=False)

    services.background.submit(run)


def handle_approve(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    actor = actor_from(services, requester)

    def work() -> Decision:
        decision = approve(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            settings=services.settings,
            actor=actor,
            request_id=_request_id(body),
            eligible=approver_ids(services.settings, client),
            now=services.clock(),
            governor=services.governor,
        )
        refresh_home(services, client, actor)
        view = decision.view
        if view.state == ApprovalState.APPLIED and ApprovalKind.GOVERNOR in view.kinds:
            # as after a governor registered at once: learn its sub-accounts, tell its admin
            after_governor_registered(
                services, client, team_id=actor.team_id, user_id=view.requested_by
            )
        return decision

    _answer(services, responder(body, client, respond), work)


def handle_deny(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    actor = actor_from(services, requester)

    def work() -> Decision:
        decision = deny(
            engine=services.engine,
            actor=actor,
            request_id=_request_id(body),
            eligible=approver_ids(services.settings, client),
            now=services.clock(),
        )
        refresh_home(services, client, actor)
        return decision

    _answer(services, responder(body, client, respond), work)


def handle_withdraw(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    actor = actor_from(services, requester)
    _answer(
        services,
        responder(body, client, respond),
        lambda: withdraw(
            engine=services.engine,
            actor=actor,
            request_id=_request_id(body),
            now=services.clock(),
        ),
    )


def handle_list(requester: Requester, ack: Ack, client: WebClient, services: Services) -> None:
    """`/apikey approvals`: the team's open requests for admins and approvers; for anyone
    else, those they asked for or whose key they own (the details of other people's keys are
    for admins, as in `status`)."""
    actor = actor_from(services, requester)
    views = open_requests(services.engine, requester.team_id)
    if not actor.is_admin and actor.user_id not in approver_ids(services.settings, client):
        views = [v for v in views if actor.user_id in (v.requested_by, v.owner_user_id)]
    ack(**approvals_list(views, services.clock()).as_kwargs())
