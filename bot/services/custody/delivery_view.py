"""How a key's credential delivery looks to people: in `/apikey deliver`, status and App Home."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

from sqlmodel import Session, col, select

from bot.model.delivery import DeliveryView
from bot.model.findings import Finding, FindingKind, Severity
from bot.services.custody.delivery_plan import latest_delivery
from storage.models import ApiKey, CredentialDelivery


def view_of(delivery: CredentialDelivery | None, sink: str | None) -> DeliveryView | None:
    if sink is None:
        return None
    if delivery is None or delivery.sink != sink:
        return DeliveryView(sink=sink, destination=None, state="none")
    return DeliveryView(
        sink=delivery.sink,
        destination=delivery.destination,
        state=delivery.state,
        version=delivery.version,
        planned_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
        failing_since=delivery.first_failed_at,
        last_error=delivery.last_error,
        attempts=delivery.attempts,
    )


def delivery_view(session: Session, key: ApiKey) -> DeliveryView | None:
    """Where the key's credentials go and how the newest version fared (None: nowhere)."""
    if key.delivery_sink is None:
        return None
    return view_of(latest_delivery(session, key.id), key.delivery_sink)


def delivery_views(session: Session, keys: Iterable[ApiKey]) -> dict[str, DeliveryView]:
    """``delivery_view`` of many keys at once (one query), by key id; keys delivered nowhere
    are left out."""
    sinks = {key.id: key.delivery_sink for key in keys if key.delivery_sink is not None}
    if not sinks:
        return {}
    newest: dict[str, CredentialDelivery] = {}
    rows = session.exec(
        select(CredentialDelivery)
        .where(col(CredentialDelivery.key_id).in_(list(sinks)))
        .order_by(col(CredentialDelivery.version))
    )
    for row in rows:
        newest[row.key_id] = row
    return {
        key_id: view
        for key_id, sink in sinks.items()
        if (view := view_of(newest.get(key_id), sink)) is not None
    }


def delivery_finding(view: DeliveryView | None) -> Finding | None:
    """A finding while the newest credentials have not reached the key's sink."""
    if view is None or view.state == "delivered":
        return None
    where = view.sink_label + (f" `{view.destination}`" if view.destination else "")
    if view.failing and view.failing_since is not None:
        since = view.failing_since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return Finding(
            kind=FindingKind.DELIVERY_PENDING,
            severity=Severity.WARNING,
            text=(
                f"Delivery failed since {since} to {where}: {view.last_error or 'no answer'}. "
                "The bot keeps retrying; the service still has the previous credentials."
            ),
        )
    since = (
        f" since {view.planned_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if view.planned_at else ""
    )
    return Finding(
        kind=FindingKind.DELIVERY_PENDING,
        severity=Severity.INFO,
        text=f"Delivery pending{since} to {where}.",
    )
