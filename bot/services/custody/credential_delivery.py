"""Delivering credentials to the service that uses them, through secret sinks (bot.sinks).

A key's owner or an admin chooses its sink (`/apikey deliver <label> to file|aws|nowhere`);
SINK_DEFAULT chooses it for new keys. Every change of credentials plans a new version
(bot.services.custody.delivery_plan); ``deliver`` writes it: the key's credentials are opened from
their sealed columns only for the write and handed to nobody else. A failed write is kept
pending, shown in status and App Home ("delivery failing since …"), audited once, and retried
with the job queue's backoff until it succeeds or a newer version replaces it. Writes of one
key are serialised across replicas, and each carries its delivery's id as idempotency token:
a retry never makes a second version, a newer version is never overwritten by an older one.
A destination that belongs to another live key (bot.services.custody.sink_destinations) is never
written: choosing the sink is refused with a message, a planned write is refused and kept
pending (shown, audited once) until that key is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.config import Settings
from bot.model.delivery import SINK_LABELS, DeliveryView
from bot.services.access import Actor, require_manage_key
from bot.services.custody.delivery_plan import cancel_deliveries, plan_delivery
from bot.services.custody.delivery_view import delivery_view
from bot.services.custody.keys import find_live_key, open_credentials
from bot.services.custody.sink_destinations import (
    HELD_BY_ANOTHER_KEY,
    destination_holder,
    destination_lock,
    key_destination,
)
from bot.services.errors import InvalidInput
from bot.services.rotation.rotate import complete_if_old_key_dead
from bot.sinks import DeliveredCredentials, SecretSink, SinkError, SinkKind
from bot.sinks.aws import AwsSecretsManagerSink
from bot.sinks.files import FileSink
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.locks import exclusive
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    BinanceAccount,
    CredentialDelivery,
    DeliveryState,
)

log = logging.getLogger(__name__)

SINK_WORDS = {"file": SinkKind.FILE, "aws": SinkKind.AWS_SECRETS_MANAGER, "nowhere": None}


def offered_sinks(settings: Settings) -> tuple[tuple[str, ...], str | None]:
    """The sinks the register form offers, and the one it preselects (SINK_DEFAULT)."""
    default = settings.sink_default.value if settings.sink_default else None
    return tuple(kind.value for kind in settings.sinks), default


def build_sinks(settings: Settings) -> dict[SinkKind, SecretSink]:
    """The sinks the settings configure, ready to write."""
    sinks: dict[SinkKind, SecretSink] = {}
    if settings.sink_file_dir is not None:
        sinks[SinkKind.FILE] = FileSink(settings.sink_file_dir)
    if settings.sink_aws_secrets_manager:
        sinks[SinkKind.AWS_SECRETS_MANAGER] = AwsSecretsManagerSink(
            name_pattern=settings.sink_aws_secret_name,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            kms_key_id=settings.sink_aws_kms_key_id,
        )
    return sinks


@dataclass(frozen=True)
class KeyDelivery:
    label: str
    view: DeliveryView | None
    configured: tuple[SinkKind, ...]


def describe_delivery(
    *, engine: Engine, settings: Settings, actor: Actor, label: str
) -> KeyDelivery:
    """Where a key's credentials go and how the newest version fared (owner or admin)."""
    with Session(engine) as session:
        key, _account = find_live_key(session, actor.team_id, label)
        view = delivery_view(session, key)
    require_manage_key(engine, actor, key, action="see where to deliver the credentials of")
    return KeyDelivery(label=key.label, view=view, configured=settings.sinks)


@dataclass(frozen=True)
class SinkChoice:
    label: str
    sink: SinkKind | None
    destination: str | None
    previous: SinkKind | None
    changed: bool


def choose_sink(
    *,
    engine: Engine,
    settings: Settings,
    actor: Actor,
    label: str,
    sink_word: str,
    now: datetime,
    source: str | None = None,
) -> SinkChoice:
    """Set where a key's credentials are delivered (its owner or an admin); writing the
    current credentials there is planned at once."""
    word = sink_word.strip().lower()
    if word not in SINK_WORDS:
        raise InvalidInput(
            f"“{sink_word}” is not a place I can deliver to. Choose file, aws or nowhere."
        )
    sink = SINK_WORDS[word]
    if sink is not None and sink not in settings.sinks:
        configured = ", ".join(k.value for k in settings.sinks) or "none"
        raise InvalidInput(
            f"The {SINK_LABELS[sink.value]} sink is not configured on this bot (configured: "
            f"{configured}). An operator sets it up (README: Delivering credentials)."
        )
    with Session(engine) as session:
        key, _account = find_live_key(session, actor.team_id, label)
    require_manage_key(engine, actor, key, action="choose where to deliver the credentials of")
    with session_scope(engine) as session:
        key, _account = find_live_key(session, actor.team_id, label)
        previous = SinkKind(key.delivery_sink) if key.delivery_sink else None
        destination = key_destination(session, settings, key, sink) if sink is not None else None
        holder = (
            destination_holder(session, sink, destination, key_id=key.id)
            if sink is not None and destination is not None
            else None
        )
        if holder is None and previous == sink:
            return SinkChoice(key.label, sink, destination, previous, changed=False)
        if holder is None:
            key.delivery_sink = sink.value if sink is not None else None
            key.updated_at = now
            if sink is None:
                cancel_deliveries(session, key.id)
            else:
                plan_delivery(session, key, settings=settings, reason="sink_chosen", now=now)
            record_event(
                session,
                team_id=key.team_id,
                actor=actor.user_id,
                action=AuditAction.CREDENTIALS_SINK_CHOSEN,
                target=key.label,
                target_key_id=key.id,
                source=source,
                detail={
                    "sink": sink.value if sink else None,
                    "previous": previous.value if previous else None,
                    "destination": destination,
                },
            )
            return SinkChoice(key.label, sink, destination, previous, changed=True)
        # Another key's service reads there: only the refusal is recorded (and committed).
        record_event(
            session,
            team_id=key.team_id,
            actor=actor.user_id,
            action=AuditAction.CREDENTIALS_DELIVERY_REFUSED,
            target=key.label,
            target_key_id=key.id,
            source=source,
            detail={
                "sink": sink.value if sink else None,
                "destination": destination,
                "held_by": holder,
            },
        )
        where = f"{SINK_LABELS[sink.value]} `{destination}`" if sink else "there"
    raise InvalidInput(
        f"I can't deliver “{key.label}” to {where}: it already holds the credentials of "
        "another key, whose service may read it. Nothing was changed. An admin "
        "can see which key in the audit trail."
    )


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    error: str | None = None  # the sink's reason (safe to show)
    retry: bool = False  # failed: try again later


def deliver(
    *,
    engine: Engine,
    ring: KeyRing,
    sinks: Mapping[SinkKind, SecretSink],
    settings: Settings,
    delivery_id: str,
    now: datetime,
) -> DeliveryOutcome:
    """Write one planned version to its sink, once; record and audit what happened."""
    with Session(engine) as session:
        delivery = session.get(CredentialDelivery, delivery_id)
        if delivery is None or delivery.state != DeliveryState.PENDING.value:
            return DeliveryOutcome(delivered=False)
        key_id = delivery.key_id
    # One writer per key at a time, in any replica: an older version never lands after a
    # newer one (the newer one's job waits here, then finds itself still the newest).
    with exclusive(engine, f"credential-delivery:{key_id}") as locks:
        with Session(engine) as session:
            delivery = session.get(CredentialDelivery, delivery_id)
            if delivery is None or delivery.state != DeliveryState.PENDING.value:
                return DeliveryOutcome(delivered=False)
            key = session.get(ApiKey, key_id)
            if key is None or key.status in RETIRED_STATUSES or key.delivery_sink != delivery.sink:
                _finish(engine, delivery_id, DeliveryState.CANCELLED)
                return DeliveryOutcome(delivered=False)
            kind = SinkKind(delivery.sink)
            sink = sinks.get(kind)
            if sink is None:
                return _failed(
                    engine,
                    delivery_id,
                    now,
                    f"the {SINK_LABELS.get(delivery.sink, delivery.sink)} sink is not configured any more",
                )
            # Named again now, from the settings of this moment (as it is written).
            destination = key_destination(session, settings, key, kind)
        # One writer (or cleaner) per destination, in any replica; then nobody else's key.
        locks.also(destination_lock(kind, destination))
        with Session(engine) as session:
            holder = destination_holder(session, kind, destination, key_id=key_id)
            if holder is not None:
                return _failed(
                    engine,
                    delivery_id,
                    now,
                    HELD_BY_ANOTHER_KEY,
                    destination=destination,
                    action=AuditAction.CREDENTIALS_DELIVERY_REFUSED,
                    detail={"held_by": holder},
                )
            key = session.get(ApiKey, key_id)
            if key is None:  # rows are never deleted; typed for the checker
                return DeliveryOutcome(delivered=False)
            account = session.get(BinanceAccount, key.account_id)
            opened = open_credentials(ring, key)
            credentials = DeliveredCredentials(
                label=key.label,
                account=account.alias if account else "",
                key_type=key.key_type,
                api_key=opened.api_key,
                secret=opened.secret,
                version=delivery.version,
                updated_at=delivery.created_at,
            )
            del opened
        try:
            written = sink.write(
                credentials, destination=destination, idempotency_token=delivery_id
            )
        except SinkError as exc:
            return _failed(engine, delivery_id, now, exc.reason, destination=destination)
        finally:
            del credentials
        with session_scope(engine) as session:
            delivery = session.get(CredentialDelivery, delivery_id, with_for_update=True)
            if delivery is None:  # rows are never deleted; typed for the checker
                return DeliveryOutcome(delivered=False)
            delivery.state = DeliveryState.DELIVERED.value
            delivery.destination = written.destination[:600]
            delivery.delivered_at = now
            delivery.attempts += 1
            delivery.sink_version = written.version_id[:100]
            delivery.last_error = None
            key = session.get(ApiKey, key_id, with_for_update=True)
            record_event(
                session,
                team_id=delivery.team_id,
                actor="bot",
                action=AuditAction.CREDENTIALS_DELIVERED,
                target=key.label if key else None,
                target_key_id=key_id,
                detail={
                    "sink": delivery.sink,
                    "destination": written.destination,
                    "version": delivery.version,
                    "sink_version": delivery.sink_version,
                    "masked": delivery.api_key_masked,
                    "attempts": delivery.attempts,
                    "reason": delivery.reason,
                },
            )
            if key is not None:
                complete_if_old_key_dead(session, key, settings, now)
    return DeliveryOutcome(delivered=True)


def _finish(engine: Engine, delivery_id: str, state: DeliveryState) -> None:
    with session_scope(engine) as session:
        delivery = session.get(CredentialDelivery, delivery_id, with_for_update=True)
        if delivery is not None and delivery.state == DeliveryState.PENDING.value:
            delivery.state = state.value


def _failed(
    engine: Engine,
    delivery_id: str,
    now: datetime,
    reason: str,
    *,
    destination: str | None = None,
    action: AuditAction = AuditAction.CREDENTIALS_DELIVERY_FAILED,
    detail: dict[str, object] | None = None,
) -> DeliveryOutcome:
    """Keep it pending with the reason (and where it was to go); the first failure of a
    version is audited, as ``action``."""
    log.warning("credential delivery %s failed: %s; will retry", delivery_id, reason)
    with session_scope(engine) as session:
        delivery = session.get(CredentialDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.state != DeliveryState.PENDING.value:
            return DeliveryOutcome(delivered=False)
        first = delivery.first_failed_at is None
        delivery.attempts += 1
        delivery.last_error = reason[:300]
        if destination is not None:
            delivery.destination = destination[:600]
        if first:
            delivery.first_failed_at = now
            key = session.get(ApiKey, delivery.key_id)
            record_event(
                session,
                team_id=delivery.team_id,
                actor="bot",
                action=action,
                target=key.label if key else None,
                target_key_id=delivery.key_id,
                detail={
                    "sink": delivery.sink,
                    "destination": delivery.destination,
                    "version": delivery.version,
                    "reason": reason[:300],
                    **(detail or {}),
                },
            )
    return DeliveryOutcome(delivered=False, error=reason, retry=True)


def sweep_leftovers(*, engine: Engine, sinks: Mapping[SinkKind, SecretSink]) -> int:
    """Remove what crashed writes left in the sinks (a replica starting to deliver does it
    first); how many things were removed. Each destination is cleaned under its lock, so a
    write running in another replica keeps its temporary file."""
    return sum(
        _clean(engine, sink, destination)
        for sink in sinks.values()
        for destination in sink.leftovers()
    )


def clean_key_destinations(
    *, engine: Engine, sinks: Mapping[SinkKind, SecretSink], key_id: str
) -> int:
    """Remove what crashed writes left at every destination a (removed) key was delivered
    to, or was to be; what was delivered there stays (README)."""
    with Session(engine) as session:
        places = session.exec(
            select(CredentialDelivery.sink, CredentialDelivery.destination)
            .where(CredentialDelivery.key_id == key_id)
            .distinct()
        ).all()
    return sum(
        _clean(engine, sink, destination)
        for kind, destination in places
        if (sink := sinks.get(SinkKind(kind))) is not None
    )


def _clean(engine: Engine, sink: SecretSink, destination: str) -> int:
    with exclusive(engine, destination_lock(sink.kind, destination)):
        try:
            removed = sink.clean(destination)
        except SinkError as exc:
            log.warning("cleaning a sink destination failed: %s", exc.reason)
            return 0
    if removed:
        log.info("removed %d temporary file(s) of %s left by a crashed write", removed, destination)
    return removed
