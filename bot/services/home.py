"""What the App Home shows: the viewer's keys, and for admins the whole team's picture.

Built from what the database already knows (the last observation of each key, rotation dates,
open incidents): opening the tab never waits on Binance. "Check my keys now" on the tab asks
Binance afresh through the status service.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.model.delivery import DeliveryView
from bot.model.findings import KIND_ORDER, FindingKind, Severity
from bot.model.home import UNKNOWN_TIER, HomeKey, HomePicture, OpenIncident, TeamPicture
from bot.model.key_pairs import PendingPair
from bot.model.rotation import RotationState
from bot.services.access import Actor
from bot.services.custody.delivery_view import delivery_finding, delivery_views
from bot.services.custody.key_pairs import pending_view
from bot.services.custody.keys import live_keys, summarise
from bot.services.oversight.findings import assess
from bot.services.response.incidents import steps_done
from bot.services.rotation.rotation_policy import rotation_row
from storage.models import (
    ApiKey,
    BinanceAccount,
    Incident,
    IncidentState,
    KeyPurpose,
    KeyStatus,
    KeyType,
    PendingKeyPair,
    PendingPairState,
)


def home_picture(session: Session, viewer: Actor, now: datetime) -> HomePicture:
    incidents = _open_incidents(session, viewer.team_id)
    open_by_key = {i.key_id: i.id for i in incidents}
    rows = live_keys(session, viewer.team_id)
    deliveries = delivery_views(session, [key for key, _account in rows])
    keys = [
        _home_key(key, account, now, open_by_key.get(key.id), deliveries.get(key.id))
        for key, account in rows
    ]
    owners = {k.summary.key_id: k.summary.owner_user_id for k in keys}
    done = steps_done(session, [i.id for i in incidents])
    open_incidents = [
        OpenIncident(
            incident_id=i.id,
            label=i.label,
            owner_user_id=owners.get(i.key_id) or _owner_of(session, i.key_id),
            raised_at=i.raised_at,
            key_rejected=i.key_dead_at is not None,
            steps_done=done.get(i.id, 0),
            last_probe_result=i.last_probe_result,
        )
        for i in incidents
    ]
    own = [k for k in keys if viewer.owns(k.summary.owner_user_id)]
    pairs = [
        pair
        for pair in _waiting_pairs(session, viewer.team_id, now)
        if viewer.user_id in (pair.created_by, pair.owner_user_id)
    ]
    own.sort(key=lambda k: (-k.worst, k.rotation.due_at, k.summary.label.lower()))
    return HomePicture(
        user_id=viewer.user_id,
        is_admin=viewer.is_admin,
        own_keys=own,
        own_incidents=[i for i in open_incidents if viewer.owns(i.owner_user_id)],
        team_key_count=len(keys),
        team=_team_picture(keys, open_incidents) if viewer.is_admin else None,
        waiting_pairs=pairs,
    )


def _waiting_pairs(session: Session, team_id: str, now: datetime) -> list[PendingPair]:
    rows = session.exec(
        select(PendingKeyPair)
        .where(
            PendingKeyPair.team_id == team_id,
            PendingKeyPair.state == PendingPairState.PENDING.value,
            PendingKeyPair.expires_at > now,
        )
        .order_by(col(PendingKeyPair.created_at))
    ).all()
    return [pending_view(row) for row in rows]


def picture_for(engine: Engine, viewer: Actor, now: datetime) -> HomePicture:
    """``home_picture`` in its own session (for listeners)."""
    with Session(engine) as session:
        return home_picture(session, viewer, now)


def _home_key(
    key: ApiKey,
    account: BinanceAccount,
    now: datetime,
    incident_id: str | None,
    delivery: DeliveryView | None = None,
) -> HomeKey:
    compromised = key.status == KeyStatus.COMPROMISED.value
    if key.last_check_result == "rejected":
        findings = assess(
            purpose=KeyPurpose(key.purpose),
            now=now,
            error=binance.KeyRejected(),
            compromised=compromised,
        )
    else:
        permissions = (
            binance.KeyPermissions.from_dict(key.permissions_json) if key.permissions_json else None
        )
        findings = assess(
            purpose=KeyPurpose(key.purpose),
            now=now,
            permissions=permissions,
            compromised=compromised,
            key_type=KeyType(key.key_type),
            withdraw_whitelist=account.withdraw_whitelist,
        )
    if (undelivered := delivery_finding(delivery)) is not None:
        findings = sorted([*findings, undelivered], key=lambda f: (-f.severity, KIND_ORDER[f.kind]))
    return HomeKey(
        summary=summarise(key, account),
        findings=findings,
        rotation=rotation_row(key, now),
        open_incident_id=incident_id,
    )


_LISTED_ELSEWHERE = (FindingKind.UNREACHABLE, FindingKind.COMPROMISED)


def _team_picture(keys: list[HomeKey], incidents: list[OpenIncident]) -> TeamPicture:
    tiers = Counter(
        k.summary.last_tier.name.title() if k.summary.last_tier is not None else UNKNOWN_TIER
        for k in keys
    )
    critical = [
        (k, found)
        for k in sorted(keys, key=lambda k: k.summary.label.lower())
        if (
            found := [
                f
                for f in k.findings
                # a compromised key is listed under the open incidents already
                if f.severity == Severity.CRITICAL and f.kind not in _LISTED_ELSEWHERE
            ]
        )
    ]
    overdue = sorted(
        (k.rotation for k in keys if k.rotation.state == RotationState.OVERDUE),
        key=lambda r: (r.due_at, r.label.lower()),
    )
    return TeamPicture(
        key_count=len(keys),
        by_tier=dict(tiers),
        critical=critical,
        overdue=overdue,
        open_incidents=incidents,
        with_new_permissions=sum(1 for k in keys if k.summary.new_permissions_on),
    )


def _open_incidents(session: Session, team_id: str) -> list[Incident]:
    return list(
        session.exec(
            select(Incident)
            .where(Incident.team_id == team_id, Incident.state == IncidentState.OPEN.value)
            .order_by(col(Incident.raised_at))
        ).all()
    )


def _owner_of(session: Session, key_id: str) -> str | None:
    key = session.get(ApiKey, key_id)
    return key.owner_user_id if key is not None else None
