"""`/apikey …`: one command, parsed into a typed subcommand, answered ephemerally."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.audit import audit_trail, chain_report, checkpoint_posted
from bot.blocks.custody.delivery import delivery_message, sink_chosen_message
from bot.blocks.custody.key_list import key_list
from bot.blocks.custody.register import register_modal
from bot.blocks.help import help_message
from bot.blocks.notices import error_message, secret_in_text_warning, working_message
from bot.blocks.oversight.status_report import status_page
from bot.blocks.rotation.rotation import policy_set_message, rotate_modal, rotation_overview
from bot.commands import (
    AuditCheckpoint,
    AuditTrail,
    Compromised,
    Deliver,
    EditKey,
    Governor,
    Help,
    ListApprovals,
    ListIncidents,
    ListKeys,
    Register,
    Remove,
    Rotate,
    RotationOverview,
    SecretInText,
    SetRotationPolicy,
    Status,
    TargetKind,
    parse_command,
)
from bot.listeners.actions import removal_confirmation
from bot.listeners.approvals import handle_list as handle_list_approvals
from bot.listeners.background import in_background
from bot.listeners.governed_rotation import rotate_if_governed
from bot.listeners.governor import handle_governor
from bot.listeners.governor_sync import sync_governed
from bot.listeners.incidents import incidents_overview, raise_and_announce
from bot.listeners.key_edit import handle_edit
from bot.model.keys import KeySummary
from bot.services.access import Actor
from bot.services.audit_trail import (
    check_may_checkpoint,
    check_may_verify,
    read_trail,
    take_checkpoint,
)
from bot.services.audit_trail import verify as audit_verify
from bot.services.context import Services
from bot.services.custody.credential_delivery import choose_sink, describe_delivery, offered_sinks
from bot.services.custody.keys import key_to_manage, known_accounts, registered_keys
from bot.services.errors import DomainError
from bot.services.governor.registration import governed_sub_accounts
from bot.services.oversight.status import run_status
from bot.services.response.leaks import record_secret_in_command
from bot.services.rotation.rotation_policy import rotation_rows, set_policy
from bot.slack.access import Requester, actor_from
from bot.slack.checkpoints import post_checkpoint, read_witness
from bot.slack.messaging import respond_reliably

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandRequest:
    """One `/apikey …` as Slack sent it, with what answering it needs."""

    command: dict[str, Any]
    ack: Ack
    respond: Respond
    client: WebClient
    services: Services
    requester: Requester

    @property
    def team_id(self) -> str:
        return self.requester.team_id

    @property
    def user_id(self) -> str:
        return self.requester.user_id

    @property
    def channel(self) -> str | None:
        return self.command.get("channel_id")

    @property
    def source(self) -> str:
        return f"slack:{self.command.get('channel_id', '?')}"

    def actor(self) -> Actor:
        return actor_from(self.services, self.requester)

    def ack_error(self, exc: DomainError) -> None:
        self.ack(**error_message(exc.user_message).as_kwargs())


def handle_apikey(
    ack: Ack,
    command: dict[str, Any],
    respond: Respond,
    client: WebClient,
    services: Services,
    requester: Requester,
) -> None:
    """Parse the text, then answer with the subcommand's handler (``SUBCOMMANDS``)."""
    parsed = parse_command(command.get("text", ""), today=services.clock().astimezone(UTC).date())
    request = CommandRequest(command, ack, respond, client, services, requester)
    SUBCOMMANDS[type(parsed)](parsed, request)


def _secret_in_text(parsed: SecretInText, r: CommandRequest) -> None:
    matched = record_secret_in_command(
        engine=r.services.engine,
        ring=r.services.ring,
        team_id=r.team_id,
        actor=r.user_id,
        text=r.command.get("text", ""),
        source=r.source,
    )
    r.ack(**secret_in_text_warning(parsed.kind, matched).as_kwargs())


def _help(parsed: Help, r: CommandRequest) -> None:
    r.ack(**help_message(parsed.reason, show_all=parsed.show_all).as_kwargs())


def _register(_parsed: Register, r: CommandRequest) -> None:
    r.ack()
    sinks, default_sink = offered_sinks(r.services.settings)
    view = register_modal(
        owner_user_id=r.user_id,
        known_accounts=known_accounts(r.services.engine, r.team_id),
        private_metadata=json.dumps({"channel": r.channel}),
        sinks=sinks,
        default_sink=default_sink,
        governed_accounts=governed_sub_accounts(r.services.engine, r.team_id),
    )
    r.client.views_open(trigger_id=r.command["trigger_id"], view=view)


def _list_keys(_parsed: ListKeys, r: CommandRequest) -> None:
    keys = registered_keys(r.services.engine, r.team_id)
    r.ack(**key_list(keys, r.services.clock()).as_kwargs())


def _remove(parsed: Remove, r: CommandRequest) -> None:
    try:
        question = removal_confirmation(r.services, r.actor(), label=parsed.label)
    except DomainError as exc:
        r.ack_error(exc)
        return
    r.ack(**question.as_kwargs())


def _compromised(parsed: Compromised, r: CommandRequest) -> None:
    r.ack()
    activity_since = None
    if parsed.since is not None:
        activity_since = datetime.combine(parsed.since, time.min, tzinfo=UTC)
    elif parsed.since_days is not None:
        activity_since = r.services.clock() - timedelta(days=parsed.since_days)
    try:
        raise_and_announce(
            r.services,
            r.client,
            r.respond,
            team_id=r.team_id,
            actor=r.user_id,
            channel=r.channel,
            label=parsed.label,
            activity_since=activity_since,
        )
    except DomainError as exc:
        r.respond(**error_message(exc.user_message).as_kwargs())


def _audit_trail(parsed: AuditTrail, r: CommandRequest) -> None:
    if parsed.verify:
        verify_trail(r.services, r.requester, r.command, r.ack, r.respond, r.client)
        return
    try:
        events = read_trail(
            engine=r.services.engine,
            actor=r.actor(),
            label=parsed.label,
            days=parsed.days,
            now=r.services.clock(),
        )
        message = audit_trail(events, label=parsed.label, days=parsed.days)
    except DomainError as exc:
        message = error_message(exc.user_message)
    r.ack(**message.as_kwargs())


def _audit_checkpoint(_parsed: AuditCheckpoint, r: CommandRequest) -> None:
    post_checkpoint_now(
        r.services, r.requester, r.command, r.ack, r.respond, r.client, source=r.source
    )


def _deliver(parsed: Deliver, r: CommandRequest) -> None:
    services, actor = r.services, r.actor()
    try:
        if parsed.sink is None:
            found = describe_delivery(
                engine=services.engine, settings=services.settings, actor=actor, label=parsed.label
            )
            message = delivery_message(
                found.label, found.view, tuple(k.value for k in found.configured)
            )
        else:
            choice = choose_sink(
                engine=services.engine,
                settings=services.settings,
                actor=actor,
                label=parsed.label,
                sink_word=parsed.sink,
                now=services.clock(),
                source=r.source,
            )
            message = sink_chosen_message(
                choice.label,
                choice.sink.value if choice.sink else None,
                choice.destination,
                changed=choice.changed,
            )
    except DomainError as exc:
        message = error_message(exc.user_message)
    r.ack(**message.as_kwargs())


def _edit(parsed: EditKey, r: CommandRequest) -> None:
    handle_edit(parsed, r.requester, r.ack, r.respond, r.client, r.services, source=r.source)


def _list_approvals(_parsed: ListApprovals, r: CommandRequest) -> None:
    handle_list_approvals(r.requester, r.ack, r.client, r.services)


def _list_incidents(_parsed: ListIncidents, r: CommandRequest) -> None:
    r.ack(**incidents_overview(r.services, r.team_id, r.client).as_kwargs())


def _rotation_overview(_parsed: RotationOverview, r: CommandRequest) -> None:
    rows = rotation_rows(r.services.engine, r.team_id, r.services.clock())
    r.ack(**rotation_overview(rows, r.services.clock()).as_kwargs())


def _set_rotation_policy(parsed: SetRotationPolicy, r: CommandRequest) -> None:
    try:
        row = set_policy(
            engine=r.services.engine,
            settings=r.services.settings,
            actor=r.actor(),
            label=parsed.label,
            period_days=parsed.period_days,
            now=r.services.clock(),
            source=r.source,
        )
    except DomainError as exc:
        r.ack_error(exc)
        return
    r.ack(**policy_set_message(row, r.services.clock()).as_kwargs())


def _rotate(parsed: Rotate, r: CommandRequest) -> None:
    try:
        key = key_to_manage(r.services.engine, r.actor(), action="rotate", label=parsed.label)
    except DomainError as exc:
        r.ack_error(exc)
        return
    r.ack()
    if rotate_if_governed(
        r.services, r.client, r.actor(), key_id=key.key_id, label=key.label, channel=r.channel
    ):
        return  # a governed key: the governor makes its successor, no form
    open_rotate_modal(r.client, key, trigger_id=r.command["trigger_id"], channel=r.channel)


def _status(parsed: Status, r: CommandRequest) -> None:
    # An empty ack: Slack lets nothing replace a slash command's ack message, nor a message
    # posted through the command's response_url (bolt-python#1268, bolt-js#2287), so a
    # "working…" note would stay above the report for good. The report comes as the one
    # message, as soon as Binance has answered.
    r.ack()
    services, viewer = r.services, r.actor()

    def work() -> None:
        if parsed.target.kind == TargetKind.ALL:
            sync_governed(services, r.team_id, r.user_id)  # sub-accounts, for "unmanaged"
        report = run_status(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            target=parsed.target,
            viewer=viewer,
            source=r.source,
            now=services.clock(),
        )
        page = status_page(report, 0, now=services.clock())
        respond_reliably(
            r.respond,
            r.client,
            channel=r.channel,
            user_id=r.user_id,
            message=page,
            replace_original=False,
        )

    in_background(services, r.respond, work)


# Every subcommand ``parse_command`` returns, and what answers it.
SUBCOMMANDS: Mapping[type, Callable[[Any, CommandRequest], None]] = MappingProxyType(
    {
        SecretInText: _secret_in_text,
        Help: _help,
        Register: _register,
        ListKeys: _list_keys,
        Remove: _remove,
        Compromised: _compromised,
        AuditTrail: _audit_trail,
        AuditCheckpoint: _audit_checkpoint,
        Deliver: _deliver,
        EditKey: _edit,
        ListIncidents: _list_incidents,
        ListApprovals: _list_approvals,
        RotationOverview: _rotation_overview,
        SetRotationPolicy: _set_rotation_policy,
        Rotate: _rotate,
        Status: _status,
        Governor: handle_governor,
    }
)


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
    command: dict[str, Any],
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
    command: dict[str, Any],
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
