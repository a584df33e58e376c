"""The emergency playbook in Slack: raise, tick, close, list."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.message import Message
from bot.blocks.notices import error_message
from bot.blocks.response.incidents import (
    already_open_message,
    close_modal,
    closed_summary,
    commander_modal,
    commander_note,
    false_alarm_checking_view,
    false_alarm_closed_view,
    false_alarm_refused_view,
    incident_message,
    incidents_list,
    premature_tick_warning,
    raised_message,
    thread_warning,
)
from bot.ids import Action, Block
from bot.listeners import modal_values as modal
from bot.listeners.home import refresh_home
from bot.listeners.modal_work import answer_submission
from bot.listeners.people import require_person
from bot.model.incidents import (
    KEY_DELETED_STEP,
    STEPS,
    ClosedIncident,
    IncidentFacts,
    IncidentOutcome,
    IncidentView,
)
from bot.services.context import Services
from bot.services.errors import DomainError
from bot.services.governor.containment import contain_with, is_governed
from bot.services.response.false_alarm import FalseAlarmRefused, close_as_false_alarm
from bot.services.response.incident_probes import key_still_accepted
from bot.services.response.incidents import (
    close_incident,
    hand_over_command,
    incident_overview,
    load_incident,
    post_checklist_later,
    raise_incident,
    remember_message,
    require_may_hand_over,
    tick_step,
)
from bot.slack.access import Requester, actor_from
from bot.slack.live_messages import refresh_messages
from bot.slack.messaging import passing_failure, responder, send_private

log = logging.getLogger(__name__)


def raise_and_announce(
    services: Services,
    client: WebClient,
    respond: Callable[..., Any],
    *,
    team_id: str,
    actor: str,
    channel: str | None,
    label: str | None = None,
    key_id: str | None = None,
    activity_since: datetime | None = None,
) -> None:
    """Open (or find) the incident, then post its live checklist where people will see it."""
    raised = raise_incident(
        engine=services.engine,
        team_id=team_id,
        label=label,
        key_id=key_id,
        actor=actor,
        channel=channel,
        now=services.clock(),
        activity_since=activity_since,
    )
    governed = raised.created and is_governed(services.engine, raised.incident_id)
    if governed:
        # A governed key: the governor deletes (or quarantines) it now, while the checklist
        # is posted; the checklist is redrawn once that is proven.
        services.urgent.submit(_contain_now, services, client, raised.incident_id, actor)
    view = load_incident(services.engine, raised.incident_id)
    if not raised.created:
        respond(
            **already_open_message(
                raised.incident_id, view.incident.label, _permalink(client, view)
            ).as_kwargs()
        )
        return
    message = incident_message(view, admins=services.settings.admin_user_ids, now=services.clock())
    # One canonical live checklist: in the alert channel, else where it was raised (issue 16:
    # two live copies split the ticks between them). Where it was raised gets a link to it.
    targets = [c for c in dict.fromkeys([services.settings.alert_channel, channel]) if c]
    posted_in: str | None = None
    later = []
    for target in targets:
        try:
            reply = client.chat_postMessage(channel=target, **message.as_kwargs())
        except SlackApiError as exc:
            log.info("could not post the checklist in %s (%s)", target, exc.response.get("error"))
            if passing_failure(exc):
                # Rate limited or a Slack outage: posted there later, and meanwhile where it
                # was raised (the one case with two copies: nobody waits for the checklist).
                later.append(target)
            continue  # the next place (not allowed here: the bot is not in that channel)
        remember_message(
            services.engine, raised.incident_id, channel=reply["channel"], ts=reply["ts"]
        )
        posted_in = reply["channel"]
        break
    if governed and posted_in is not None:
        # The governor may have contained the key while the checklist was being posted (its
        # redraw then found no message to update): draw it again from what is known now.
        services.background.submit(refresh_messages, services, client, raised.incident_id)
    if later:
        post_checklist_later(services.engine, raised.incident_id, later, now=services.clock())
    label = view.incident.label
    if posted_in is None and not later:  # the bot is in no channel: post where it was typed
        respond(**message.as_kwargs(), response_type="in_channel")
    elif posted_in is not None and channel and posted_in != channel:
        link = checklist_link(client, load_incident(services.engine, raised.incident_id).incident)
        respond(
            **raised_message(
                label, checklist_channel=posted_in, link=link, governed=governed
            ).as_kwargs(),
            response_type="in_channel",
        )
    else:
        respond(
            **raised_message(
                label, checklist_channel=posted_in or later[0], governed=governed
            ).as_kwargs()
        )


def _contain_now(services: Services, client: WebClient, incident_id: str, actor: str) -> None:
    try:
        contain_with(services, incident_id, actor=actor)
    except Exception:  # the job under it tries again; a person can still delete it by hand
        log.exception("containing the key of incident %s failed", incident_id)
    refresh_messages(services, client, incident_id)


def _permalink(client: WebClient, view: IncidentView) -> str | None:
    return checklist_link(client, view.incident)


def checklist_link(client: WebClient, incident: IncidentFacts) -> str | None:
    """The permalink of the incident's live checklist (its first message), or None."""
    if not incident.messages:
        return None
    first = incident.messages[0]
    try:
        permalink: str = client.chat_getPermalink(channel=first["channel"], message_ts=first["ts"])[
            "permalink"
        ]
    except SlackApiError:
        return None
    return permalink


def handle_raise_button(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    raise_and_announce(
        services,
        client,
        responder(body, client, respond),  # from the App Home: a direct message
        team_id=requester.team_id,
        actor=requester.user_id,
        channel=(body.get("channel") or {}).get("id"),
        key_id=body["actions"][0]["value"],
    )
    # Show the incident on the reporter's tab: clicked there, or in the direct message that a
    # Home menu's "Report compromised" sends.
    refresh_home(services, client, actor_from(services, requester))


def handle_tick(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    incident_id, _, step = body["actions"][0]["value"].partition(":")
    if not step.isdigit():
        raise DomainError("That button is out of date.")
    result = tick_step(
        engine=services.engine,
        team_id=requester.team_id,
        incident_id=incident_id,
        step=int(step),
        actor=requester.user_id,
        now=services.clock(),
    )
    if int(step) == KEY_DELETED_STEP and result.view.incident.key_dead_at is None:
        still = key_still_accepted(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            incident_id=incident_id,
        )
        if still:
            respond(
                **premature_tick_warning(result.view.incident.label).as_kwargs(),
                response_type="ephemeral",
                replace_original=False,
            )
    if result.changed:
        refresh_messages(services, client, incident_id)


def handle_close_button(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    incident_id = body["actions"][0]["value"]
    view = load_incident(services.engine, incident_id, team_id=requester.team_id)
    if view.incident.state != "open":
        raise DomainError("This incident is already closed; nothing was changed.")
    modal_view = close_modal(
        incident_id,
        view.incident.label,
        may_call_false_alarm=actor_from(services, requester).is_admin,
    )
    client.views_open(trigger_id=body["trigger_id"], view=modal_view)


def handle_close_submission(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    client: WebClient,
    services: Services,
    requester: Requester,
) -> None:
    incident_id = view.get("private_metadata") or ""
    note = modal.text(view, Block.CLOSE_NOTE, Action.CLOSE_NOTE)
    outcome = modal.choice(view, Block.CLOSE_OUTCOME, Action.CLOSE_OUTCOME)
    if outcome == IncidentOutcome.FALSE_ALARM:
        actor = actor_from(services, requester)

        def work() -> ClosedIncident:
            try:
                return close_as_false_alarm(
                    engine=services.engine,
                    ring=services.ring,
                    gateway=services.gateway,
                    settings=services.settings,
                    actor=actor,
                    incident_id=incident_id,
                    note=note,
                    now=services.clock(),
                    governor=services.governor,
                )
            except FalseAlarmRefused as refused:
                if refused.warning:  # a sign of a real breach: the team hears it too
                    _post_in_thread(services, client, incident_id, thread_warning(refused.warning))
                raise

        answer_submission(
            ack,
            client,
            services,
            view_id=body["view"]["id"],
            work=work,
            success_view=false_alarm_closed_view,
            after=lambda closed: _announce_closed(services, client, closed),
            default_field=Block.CLOSE_NOTE,
            checking=false_alarm_checking_view,
            failed=false_alarm_refused_view,
            # the person closed the "checking" window: the outcome reaches them directly
            on_late_failure=lambda text: send_private(
                client, channel=None, user_id=actor.user_id, message=error_message(text)
            ),
        )
        return
    try:
        closed = close_incident(
            engine=services.engine,
            actor=actor_from(services, requester),
            incident_id=incident_id,
            note=note,
            now=services.clock(),
        )
    except DomainError as exc:
        ack(response_action="errors", errors={Block.CLOSE_NOTE: exc.user_message})
        return
    ack()
    _announce_closed(services, client, closed)


def _announce_closed(services: Services, client: WebClient, closed: ClosedIncident) -> None:
    """Redraw the checklist as closed and post the summary under it, for everyone."""
    incident_id = closed.view.incident.id
    refresh_messages(services, client, incident_id)
    _post_in_thread(services, client, incident_id, closed_summary(closed), broadcast=True)


def _post_in_thread(
    services: Services,
    client: WebClient,
    incident_id: str,
    message: Message,
    *,
    broadcast: bool = False,
) -> None:
    """Post under the incident's live checklist (``broadcast``: shown in the channel too)."""
    for ref in load_incident(services.engine, incident_id).incident.messages:
        try:
            client.chat_postMessage(
                channel=ref["channel"],
                thread_ts=ref["ts"],
                reply_broadcast=broadcast,
                **message.as_kwargs(),
            )
        except SlackApiError as exc:
            log.info(
                "could not post in %s's thread (%s)", ref["channel"], exc.response.get("error")
            )


def handle_commander_button(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    ack()
    incident_id = body["actions"][0]["value"]
    incident = require_may_hand_over(services.engine, actor_from(services, requester), incident_id)
    client.views_open(
        trigger_id=body["trigger_id"],
        view=commander_modal(incident_id, incident.label, incident.commander),
    )


def handle_commander_submission(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    client: WebClient,
    services: Services,
    requester: Requester,
) -> None:
    incident_id = view.get("private_metadata") or ""
    commander = modal.user(view, Block.COMMANDER, Action.COMMANDER) or ""
    actor = actor_from(services, requester)
    try:
        require_may_hand_over(services.engine, actor, incident_id)  # before asking Slack
        require_person(client, commander, role="lead an incident")
        handed = hand_over_command(
            engine=services.engine,
            actor=actor,
            incident_id=incident_id,
            commander=commander,
            now=services.clock(),
        )
    except DomainError as exc:
        ack(response_action="errors", errors={Block.COMMANDER: exc.user_message})
        return
    ack()
    if not handed.changed:
        return
    incident = handed.view.incident
    refresh_messages(services, client, incident_id)
    note = commander_note(
        incident.label, commander=commander, previous=handed.previous, by=actor.user_id
    )
    _post_in_thread(services, client, incident_id, note)  # the new commander is mentioned


MAX_LINKS = 10  # checklist links looked up before the ack (a call to Slack each)


def incidents_overview(services: Services, team_id: str, client: WebClient) -> Message:
    incidents, done = incident_overview(services.engine, team_id, services.clock())
    links = {i.id: link for i in incidents[:MAX_LINKS] if (link := checklist_link(client, i))}
    return incidents_list(incidents, done, len(STEPS), links=links)


def polite(respond: Respond, exc: DomainError) -> None:
    respond(
        **error_message(exc.user_message).as_kwargs(),
        response_type="ephemeral",
        replace_original=False,
    )
