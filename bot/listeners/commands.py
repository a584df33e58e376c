"""`/apikey …`: one command, parsed into a typed subcommand, answered ephemerally."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time, timedelta

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.audit import audit_trail, chain_report, checkpoint_posted
from bot.blocks.delivery import delivery_message, sink_chosen_message
from bot.blocks.help import help_message
from bot.blocks.key_list import key_list
from bot.blocks.notices import error_message, secret_in_text_warning, working_message
from bot.blocks.register import register_modal
from bot.blocks.rotation import policy_set_message, rotate_modal, rotation_overview
from bot.blocks.status_report import status_page
from bot.commands import (
    AuditCheckpoint,
    AuditTrail,
    Compromised,
    Deliver,
    EditKey,
    Help,
    ListIncidents,
    ListKeys,
    Register,
    Remove,
    Rotate,
    RotationOverview,
    SecretInText,
    SetRotationPolicy,
    Status,
    parse_command,
)
from bot.listeners.actions import removal_confirmation
from bot.listeners.background import in_background
from bot.listeners.incidents import incidents_overview, raise_and_announce
from bot.listeners.key_edit import handle_edit
from bot.model.keys import KeySummary
from bot.services.audit_trail import (
    check_may_checkpoint,
    check_may_verify,
    read_trail,
    take_checkpoint,
)
from bot.services.audit_trail import verify as audit_verify
from bot.services.context import Services
from bot.services.credential_delivery import choose_sink, describe_delivery, offered_sinks
from bot.services.errors import DomainError
from bot.services.keys import key_to_manage, known_accounts, registered_keys
from bot.services.leaks import record_secret_in_command
from bot.services.rotation_policy import rotation_rows, set_policy
from bot.services.status import run_status
from bot.slack.access import Requester, actor_from
from bot.slack.checkpoints import post_checkpoint, read_witness
from bot.slack.delivery import respond_reliably

log = logging.getLogger(__name__)


def handle_apikey(
    ack: Ack,
    command: dict,
    respond: Respond,
    client: WebClient,
    services: Services,
    requester: Requester,
) -> None:
    parsed = parse_command(command.get("text", ""))
    team_id, user_id = requester.team_id, requester.user_id
    source = f"slack:{command.get('channel_id', '?')}"
    match parsed:
        case SecretInText(kind=kind):
            matched = record_secret_in_command(
                engine=services.engine,
                ring=services.ring,
                team_id=team_id,
                actor=user_id,
                text=command.get("text", ""),
                source=source,
            )
            ack(**secret_in_text_warning(kind, matched).as_kwargs())
        case Help(reason=reason, show_all=show_all):
            ack(**help_message(reason, show_all=show_all).as_kwargs())
        case Register():
            ack()
            accounts = known_accounts(services.engine, team_id)
            metadata = json.dumps({"channel": command.get("channel_id")})
            sinks, default_sink = offered_sinks(services.settings)
            view = register_modal(
                owner_user_id=user_id,
                known_accounts=accounts,
                private_metadata=metadata,
                sinks=sinks,
                default_sink=default_sink,
            )
            client.views_open(trigger_id=command["trigger_id"], view=view)
        case ListKeys():
            keys = registered_keys(services.engine, team_id)
            ack(**key_list(keys, services.clock()).as_kwargs())
        case Remove(label=label):
            try:
                question = removal_confirmation(
                    services, actor_from(services, requester), label=label
                )
            except DomainError as exc:
                ack(**error_message(exc.user_message).as_kwargs())
                return
            ack(**question.as_kwargs())
        case Compromised(label=label, since=since, since_days=since_days):
            ack()
            now = services.clock()
            activity_since = None
            if since is not None:
                activity_since = datetime.combine(since, time.min, tzinfo=UTC)
            elif since_days is not None:
                activity_since = now - timedelta(days=since_days)
            try:
                raise_and_announce(
                    services,
                    client,
                    respond,
                    team_id=team_id,
                    actor=user_id,
                    channel=command.get("channel_id"),
                    label=label,
                    activity_since=activity_since,
                )
            except DomainError as exc:
                respond(**error_message(exc.user_message).as_kwargs())
        case AuditTrail(verify=True):
            verify_trail(services, requester, command, ack, respond, client)
        case AuditCheckpoint():
            post_checkpoint_now(services, requester, command, ack, respond, client, source=source)
        case AuditTrail(label=label, days=days):
            try:
                events = read_trail(
                    engine=services.engine,
                    actor=actor_from(services, requester),
                    label=label,
                    days=days,
                    now=services.clock(),
                )
                message = audit_trail(events, label=label, days=days)
            except DomainError as exc:
                message = error_message(exc.user_message)
            ack(**message.as_kwargs())
        case Deliver(label=label, sink=sink):
            actor = actor_from(services, requester)
            try:
                if sink is None:
                    found = describe_delivery(
                        engine=services.engine,
                        settings=services.settings,
                        actor=actor,
                        label=label,
                    )
                    message = delivery_message(
                        found.label, found.view, tuple(k.value for k in found.configured)
                    )
                else:
                    choice = choose_sink(
                        engine=services.engine,
                        settings=services.settings,
                        actor=actor,
                        label=label,
                        sink_word=sink,
                        now=services.clock(),
                        source=source,
                    )
                    message = sink_chosen_message(
                        choice.label,
                        choice.sink.value if choice.sink else None,
                        choice.destination,
                        changed=choice.changed,
                    )
            except DomainError as exc:
                message = error_message(exc.user_message)
            ack(**message.as_kwargs())
        case EditKey():
            handle_edit(parsed, requester, ack, respond, client, services, source=source)
        case ListIncidents():
            ack(**incidents_overview(services, team_id, client).as_kwargs())
        case RotationOverview():
            rows = rotation_rows(services.engine, team_id, services.clock())
            ack(**rotation_overview(rows, services.clock()).as_kwargs())
        case SetRotationPolicy(label=label, period_days=days):
            try:
                row = set_policy(
                    engine=services.engine,
                    settings=services.settings,
                    actor=actor_from(services, requester),
                    label=label,
                    period_days=days,
                    now=services.clock(),
                    source=source,
                )
            except DomainError as exc:
                ack(**error_message(exc.user_message).as_kwargs())
                return
            ack(**policy_set_message(row, services.clock()).as_kwargs())
        case Rotate(label=label):
            try:
                key = key_to_manage(
                    services.engine, actor_from(services, requester), action="rotate", label=label
                )
            except DomainError as exc:
                ack(**error_message(exc.user_message).as_kwargs())
                return
            ack()
            open_rotate_modal(
                client, key, trigger_id=command["trigger_id"], channel=command.get("channel_id")
            )
        case Status(target=target):
            # An empty ack: Slack lets nothing replace a slash command's ack message, nor a
            # message posted through the command's response_url (bolt-python#1268,
            # bolt-js#2287), so a "working…" note would stay above the report for good. The
            # report comes as the one message, as soon as Binance has answered.
            ack()
            viewer = actor_from(services, requester)

            def work() -> None:
                report = run_status(
                    engine=services.engine,
                    ring=services.ring,
                    gateway=services.gateway,
                    target=target,
                    viewer=viewer,
                    source=source,
                    now=services.clock(),
                )
                page = status_page(report, 0, now=services.clock())
                respond_reliably(
                    respond,
                    client,
                    channel=command.get("channel_id"),
                    user_id=user_id,
                    message=page,
                    replace_original=False,
                )

            in_background(services, respond, work)


def open_rotate_modal(
    client: WebClient, key: KeySummary, *, trigger_id: str, channel: str | None
) -> None:
    metadata = json.dumps({"key_id": key.key_id, "channel": channel})
    view = rotate_modal(
        label=key.label,
        key_type=key.key_type.value,
        private_metadata=metadata,
    )
    client.views_open(trigger_id=trigger_id, view=view)


def verify_trail(
    services: Services,
    requester: Requester,
    command: dict,
    ack: Ack,
    respond: Respond,
    client: WebClient,
) -> None:
    """`/apikey audit verify`: refused at once to non-admins; otherwise acked at once, and the
    verdict (the whole chain, streamed, and the checkpoints read back from Slack) follows."""
    actor = actor_from(services, requester)
    try:
        check_may_verify(engine=services.engine, actor=actor)
    except DomainError as exc:
        ack(**error_message(exc.user_message).as_kwargs())
        return
    ack(**working_message("Verifying the audit trail…").as_kwargs())

    def work() -> None:
        witness = read_witness(client, services.settings.alert_channel)
        report = audit_verify(engine=services.engine, actor=actor, witness=witness)
        respond_reliably(
            respond,
            client,
            channel=command.get("channel_id"),
            user_id=command["user_id"],
            message=chain_report(report, witness),
            replace_original=False,  # a slash command's messages cannot be replaced
        )

    in_background(services, respond, work)


def post_checkpoint_now(
    services: Services,
    requester: Requester,
    command: dict,
    ack: Ack,
    respond: Respond,
    client: WebClient,
    *,
    source: str,
) -> None:
    """`/apikey audit checkpoint` (admins): the chain's head, posted to the alert channel."""
    channel = services.settings.alert_channel
    actor = actor_from(services, requester)
    try:
        check_may_checkpoint(engine=services.engine, actor=actor)
    except DomainError as exc:
        ack(**error_message(exc.user_message).as_kwargs())
        return
    if not channel:
        ack(
            **error_message(
                "No alert channel is set (`ALERT_CHANNEL`), so there is nowhere outside the "
                "database to keep a checkpoint. Nothing was posted."
            ).as_kwargs()
        )
        return
    ack(**working_message("Posting a checkpoint of the audit trail…").as_kwargs())

    def work() -> None:
        checkpoint = take_checkpoint(
            engine=services.engine, actor=actor, now=services.clock(), source=source
        )
        try:
            post_checkpoint(client, channel, checkpoint)
        except SlackApiError as exc:
            error = exc.response.get("error") or "error"
            respond(
                **error_message(
                    f"Slack refused the checkpoint in <#{channel}> ({error}): is the bot in "
                    "that channel? The audit trail is unchanged apart from this attempt."
                ).as_kwargs(),
                replace_original=True,
            )
            return
        respond(**checkpoint_posted(checkpoint, channel).as_kwargs(), replace_original=True)

    in_background(services, respond, work)
