"""Planning credential deliveries: a new version for a key's sink whenever its credentials
change (registration, rotation) or its sink is chosen. The writing itself is
``bot.services.custody.credential_delivery.deliver``, run by the job this plans."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.job_queue.kinds import credential_cleanup, credential_delivery
from bot.job_queue.queue import schedule_jobs
from bot.services.custody.sink_destinations import key_destination
from bot.sinks import SinkKind
from storage.models import ApiKey, CredentialDelivery, DeliveryState


def latest_delivery(session: Session, key_id: str) -> CredentialDelivery | None:
    return session.exec(
        select(CredentialDelivery)
        .where(CredentialDelivery.key_id == key_id)
        .order_by(col(CredentialDelivery.version).desc())
        .limit(1)
    ).first()


def delivery_confirmed(session: Session, key: ApiKey) -> bool:
    """True when the key is delivered nowhere, or its sink confirmed its newest version."""
    if key.delivery_sink is None:
        return True
    latest = latest_delivery(session, key.id)
    return latest is not None and latest.state == DeliveryState.DELIVERED.value


def plan_delivery(
    session: Session, key: ApiKey, *, settings: Settings, reason: str, now: datetime
) -> CredentialDelivery | None:
    """Plan writing the key's current credentials to its sink, as a new version (in the
    caller's transaction). Older versions not written yet are superseded: the newest carries
    everything the service needs. None when the key is delivered nowhere."""
    if key.delivery_sink is None:
        return None
    sink = SinkKind(key.delivery_sink)
    session.execute(
        sa.update(CredentialDelivery)
        .where(
            col(CredentialDelivery.key_id) == key.id,
            col(CredentialDelivery.state) == DeliveryState.PENDING.value,
        )
        .values(state=DeliveryState.SUPERSEDED.value)
    )
    newest = session.exec(
        select(sa.func.max(CredentialDelivery.version)).where(CredentialDelivery.key_id == key.id)
    ).one()
    delivery = CredentialDelivery(
        team_id=key.team_id,
        key_id=key.id,
        version=(newest or 0) + 1,
        sink=sink.value,
        destination=key_destination(session, settings, key, sink),
        reason=reason,
        api_key_masked=key.api_key_masked,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    schedule_jobs(
        session,
        [
            credential_delivery(
                team_id=key.team_id, key_id=key.id, delivery_id=delivery.id, due_at=now
            )
        ],
    )
    return delivery


def cancel_deliveries(session: Session, key_id: str) -> None:
    """The key is retired or delivered nowhere any more: nothing pending is written."""
    session.execute(
        sa.update(CredentialDelivery)
        .where(
            col(CredentialDelivery.key_id) == key_id,
            col(CredentialDelivery.state) == DeliveryState.PENDING.value,
        )
        .values(state=DeliveryState.CANCELLED.value)
    )


def plan_cleanup(session: Session, key: ApiKey, *, now: datetime) -> None:
    """The key is removed or revoked (in the caller's transaction): nothing pending is written
    any more, and what crashed writes left at its destinations is removed (a job, so that it
    happens even if this replica stops now). What was delivered stays where it is."""
    cancel_deliveries(session, key.id)
    delivered_somewhere = session.exec(
        select(CredentialDelivery.id).where(CredentialDelivery.key_id == key.id).limit(1)
    ).first()
    if delivered_somewhere is not None:
        schedule_jobs(session, [credential_cleanup(team_id=key.team_id, key_id=key.id, due_at=now)])
