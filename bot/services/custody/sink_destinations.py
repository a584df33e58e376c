"""Which destination a key's credentials are written to, and which key a destination is for.

Names are one-to-one (``bot.sinks.unique_name``): a file per label, a secret per account and
label, so a new key never gets the name of another. Keys delivered by a version before
issue 21 keep the name they were delivered to (a service reads it): that older scheme could
give two keys one name, so a destination belongs to the live key first delivered there, and
a delivery of any other key to it is refused, never written. A key that is removed or revoked
lets go of its destinations.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.sinks import SinkKind
from bot.sinks.aws import earlier_secret_name, secret_name
from bot.sinks.files import earlier_file_path, file_path
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    BinanceAccount,
    CredentialDelivery,
    DeliveryState,
)

HELD_BY_ANOTHER_KEY = (
    "that destination already holds the credentials of another key, so nothing was written "
    "there; it stays refused while that key is registered (an admin finds it in the audit "
    "trail)"
)


def destination_lock(sink: SinkKind | str, destination: str) -> str:
    """The name of the lock held while a destination is written or cleaned."""
    return f"sink-destination:{SinkKind(sink).value}:{destination}"


def key_destination(session: Session, settings: Settings, key: ApiKey, sink: SinkKind) -> str:
    """Where ``sink`` puts this key's credentials (a path, a secret name): safe to show.

    Its one-to-one name, unless the key was already delivered to the name an earlier version
    gave it: a service reads that one, so the key keeps it."""
    account = _account_alias(session, key)
    new = _destination(settings, sink, label=key.label, account=account)
    earlier = _earlier_destination(settings, sink, label=key.label, account=account)
    if earlier != new and _delivered_to(session, key.id, sink, earlier):
        return earlier
    return new


def destination_holder(
    session: Session, sink: SinkKind, destination: str, *, key_id: str
) -> str | None:
    """The id of the live key other than ``key_id`` that ``destination`` is for (the first
    live key delivered there), or None when ``key_id`` may write it."""
    firsts = session.exec(
        select(CredentialDelivery.key_id, sa.func.min(CredentialDelivery.delivered_at))
        .join(ApiKey, col(ApiKey.id) == col(CredentialDelivery.key_id))
        .where(
            CredentialDelivery.sink == SinkKind(sink).value,
            CredentialDelivery.destination == destination,
            CredentialDelivery.state == DeliveryState.DELIVERED.value,
            col(ApiKey.status).not_in(RETIRED_STATUSES),
        )
        .group_by(col(CredentialDelivery.key_id))
    ).all()
    if not firsts:
        return None
    _first_at, first_key = min((at, holder) for holder, at in firsts)
    return None if first_key == key_id else first_key


def _delivered_to(session: Session, key_id: str, sink: SinkKind, destination: str) -> bool:
    return (
        session.exec(
            select(CredentialDelivery.id).where(
                CredentialDelivery.key_id == key_id,
                CredentialDelivery.sink == SinkKind(sink).value,
                CredentialDelivery.destination == destination,
                CredentialDelivery.state == DeliveryState.DELIVERED.value,
            )
        ).first()
        is not None
    )


def _account_alias(session: Session, key: ApiKey) -> str:
    account = session.get(BinanceAccount, key.account_id)
    return account.alias if account is not None else ""


def _destination(settings: Settings, sink: SinkKind, *, label: str, account: str) -> str:
    if sink == SinkKind.FILE:
        return str(file_path(settings.sink_file_dir or Path("."), label))
    return secret_name(settings.sink_aws_secret_name, label=label, account=account)


def _earlier_destination(settings: Settings, sink: SinkKind, *, label: str, account: str) -> str:
    if sink == SinkKind.FILE:
        return str(earlier_file_path(settings.sink_file_dir or Path("."), label))
    return earlier_secret_name(settings.sink_aws_secret_name, label=label, account=account)
