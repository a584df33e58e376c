"""The App Home tab: published when opened, and again after "Check … now" on the tab."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.home import home_view
from bot.blocks.notices import working_message
from bot.blocks.oversight.status_report import status_page
from bot.commands import StatusTarget, TargetKind
from bot.ids import Action
from bot.listeners.background import in_background
from bot.services.access import Actor
from bot.services.approvals.decisions import waiting_for
from bot.services.context import Services
from bot.services.home import picture_for
from bot.services.oversight.status import run_status
from bot.slack.access import Requester, actor_from
from bot.slack.approvers import approver_ids
from bot.slack.messaging import responder

log = logging.getLogger(__name__)


def handle_app_home_opened(
    event: dict[str, Any], client: WebClient, services: Services, requester: Requester
) -> None:
    if event.get("tab") not in (None, "home"):
        return
    viewer = services.directory.actor(
        user_id=event["user"], team_id=requester.team_id, channel=None
    )
    publish_home(services, client, viewer)


def publish_home(services: Services, client: WebClient, viewer: Actor) -> None:
    now = services.clock()
    picture = picture_for(services.engine, viewer, now)
    eligible = approver_ids(services.settings, client)
    waiting = waiting_for(services.engine, viewer.team_id, viewer.user_id, eligible, now)
    picture = replace(picture, waiting_approvals=tuple(waiting))
    client.views_publish(user_id=viewer.user_id, view=home_view(picture, now=services.clock()))


def refresh_home(services: Services, client: WebClient, viewer: Actor) -> None:
    """Redraw the viewer's App Home after they changed something from a message (a menu's
    confirmation arrives as a direct message, so the tab would otherwise keep offering what
    was just done); Slack refusing it changes nothing else."""
    try:
        publish_home(services, client, viewer)
    except SlackApiError as exc:
        log.info("could not refresh the App Home (%s)", exc.response.get("error"))


def handle_home_check(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    """Ask Binance now about the viewer's keys (or, for "all", every key the viewer may see
    in detail plus the others' summaries); the report goes to the viewer's direct messages,
    then the tab is refreshed with what Binance said."""
    ack()
    every_key = body["actions"][0]["action_id"] == Action.HOME_CHECK_ALL
    kind = TargetKind.ALL if every_key else TargetKind.MINE
    viewer = actor_from(services, requester)
    reply = responder(body, client, respond)
    reply(
        **working_message("Asking Binance about the keys… the report will appear here.").as_kwargs()
    )

    def work() -> None:
        report = run_status(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            target=StatusTarget(kind),
            viewer=viewer,
            source="slack:app-home",
            now=services.clock(),
        )
        reply(**status_page(report, 0, now=services.clock()).as_kwargs())
        try:
            publish_home(services, client, viewer)
        except SlackApiError as exc:
            log.info("could not refresh the home tab (%s)", exc.response.get("error"))

    in_background(services, reply, work)
