"""Which changes wait for a second person, and holding one as a request.

The held material (an API key and its secret or private key) is sealed in the request row
under its own associated data (``approval:<id>:…``), so nothing reaches ``api_keys`` until
the request is approved; every way a request ends without being applied shreds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot import binance
from bot.config import Settings
from bot.job_queue.kinds import approval_expiry, approval_notify
from bot.job_queue.queue import schedule_jobs
from bot.model.approvals import KIND_WORDS, ApprovalView
from bot.model.findings import PURPOSE_NAMES, permission_name
from bot.services.errors import DomainError, InvalidInput
from bot.vocabulary import ApprovalKind, ApprovalState, AuditAction, KeyPurpose
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.models import ApprovalRequest

# How far each declared purpose lets a key go: a move up this list widens it.
PURPOSE_RANK = {
    KeyPurpose.READ_ONLY: 0,
    KeyPurpose.TRADING: 1,
    KeyPurpose.WITHDRAWALS: 2,
    KeyPurpose.GOVERNOR: 3,
}


class HeldForApproval(DomainError):
    """Not an error: the change waits for approval (the request is stored and announced)."""

    def __init__(self, view: ApprovalView) -> None:
        super().__init__(held_text(view))
        self.view = view


class ChangedSinceRequest(DomainError):
    """Binance's answer about the key is not the one the approvers saw."""


@dataclass(frozen=True)
class ApprovedChange:
    """An approved request being carried out: what Binance must still say about the key."""

    request_id: str
    permissions: dict[str, Any] | None


def held_text(view: ApprovalView) -> str:
    until = view.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    needed = "another person" if view.quorum == 1 else f"{view.quorum} other people"
    return (
        f"⏳ “{view.label}” waits for approval by {needed} (request `{view.request_id}`): "
        + "; ".join(KIND_WORDS[k] for k in view.kinds)
        + f". Nothing is stored until then; the request expires at {until}. The approvers were "
        "told; `/apikey approvals` shows it."
    )


def fund_powers(permissions: binance.KeyPermissions) -> list[str]:
    """The permissions that move funds, by name."""
    powers = ["enableWithdrawals"] if permissions.flag("enableWithdrawals") else []
    return [permission_name(n) for n in [*powers, *permissions.transfer_rights]]


def registration_kinds(
    settings: Settings,
    *,
    permissions: binance.KeyPermissions,
    purpose: KeyPurpose,
    beyond: list[str],
) -> list[ApprovalKind]:
    """What a registration needs approval for, under APPROVAL_REQUIRED_FOR."""
    kinds: list[ApprovalKind] = []
    if permissions.tier >= binance.Tier.WITHDRAW or permissions.transfer_rights:
        kinds.append(ApprovalKind.MOVES_FUNDS)
    if beyond:
        kinds.append(ApprovalKind.BEYOND_PURPOSE)
    if purpose == KeyPurpose.GOVERNOR:
        kinds.append(ApprovalKind.GOVERNOR)
    return [k for k in kinds if k in settings.approval_required_for]


def permissions_at_stake(permissions: binance.KeyPermissions, beyond: list[str]) -> list[str]:
    """Exactly which permissions the approvers are asked to accept, in words."""
    granted = [permission_name(n) for n in permissions.granted]
    stake = [
        f"Binance says the key has the {permissions.tier.name.title()} tier: "
        + (", ".join(granted) if granted else "reading only"),
        "IP whitelist: " + {True: "yes", False: "none", None: "unknown"}[permissions.ip_restrict],
    ]
    if powers := fund_powers(permissions):
        stake.append("It can move funds: " + ", ".join(powers))
    stake += [f"Beyond its purpose: {reason}" for reason in beyond]
    return stake


def edit_stake(field: str, before: str | None, after: str) -> list[str]:
    if field == "owner":
        return [f"Owner: <@{before}> → <@{after}>" if before else f"Owner: none → <@{after}>"]
    names = {p.value: PURPOSE_NAMES[p] for p in KeyPurpose}
    return [f"Declared purpose: {names.get(before or '', before)} → {names.get(after, after)}"]


def widens_purpose(before: str, after: str) -> bool:
    return PURPOSE_RANK[KeyPurpose(after)] > PURPOSE_RANK[KeyPurpose(before)]


def hold_change(
    session: Session,
    ring: KeyRing | None,
    settings: Settings,
    *,
    team_id: str,
    change: str,
    kinds: list[ApprovalKind],
    at_stake: list[str],
    label: str,
    requested_by: str,
    now: datetime,
    form: dict[str, Any],
    permissions: binance.KeyPermissions | None,
    account_alias: str | None = None,
    key_id: str | None = None,
    masked: str | None = None,
    owner_user_id: str | None = None,
    api_key: str | None = None,
    secret: str | None = None,
    source: str | None = None,
) -> ApprovalView:
    """Store the change as an open request (sealed), audited, with its announcement and its
    expiry scheduled in the same transaction."""
    row = ApprovalRequest(
        team_id=team_id,
        change=change,
        kinds=[k.value for k in kinds],
        at_stake=at_stake,
        label=label,
        account_alias=account_alias,
        key_id=key_id,
        api_key_masked=masked,
        owner_user_id=owner_user_id,
        requested_by=requested_by,
        created_at=now,
        expires_at=now + timedelta(hours=settings.approval_ttl_hours),
        quorum=settings.approval_quorum,
        form=form,
        permissions_json=permissions.to_dict() if permissions is not None else None,
    )
    session.add(row)
    session.flush()
    if ring is not None and api_key is not None and secret is not None:
        row.api_key_sealed = ring.seal(api_key, context=row.api_key_context()).blob
        row.secret_sealed = ring.seal(secret, context=row.secret_context()).blob
        row.seal_key_id = ring.active.key_id
    schedule_jobs(
        session,
        [
            approval_notify(team_id=team_id, request_id=row.id, due_at=now),
            approval_expiry(team_id=team_id, request_id=row.id, due_at=row.expires_at),
        ],
    )
    record_event(
        session,
        team_id=team_id,
        actor=requested_by,
        action=AuditAction.APPROVAL_REQUEST,
        target=label,
        target_key_id=key_id,
        source=source,
        detail={
            "request": row.id,
            "change": change,
            "kinds": row.kinds,
            "at_stake": at_stake,
            "masked": masked,
            "quorum": row.quorum,
            "expires_at": row.expires_at.isoformat(),
        },
    )
    return view_of(row)


def shred_request(row: ApprovalRequest) -> None:
    row.api_key_sealed = None
    row.secret_sealed = None
    row.seal_key_id = None


def finish_applied(
    session: Session, approved: ApprovedChange, *, key_id: str, now: datetime
) -> ApprovalRequest:
    """In the transaction that carries the change out: the request becomes applied and its
    material is shredded (it now lives in ``api_keys``); a request another replica applied a
    moment ago refuses, so the change happens once."""
    row = session.get(ApprovalRequest, approved.request_id, with_for_update=True)
    if row is None or row.state != ApprovalState.OPEN.value:
        raise InvalidInput("That request was decided a moment ago; nothing was changed.")
    if len(row.approved_by) < row.quorum:
        raise InvalidInput("That request is not approved yet; nothing was changed.")
    shred_request(row)
    row.state = ApprovalState.APPLIED.value
    row.ended_at = now
    row.applied_key_id = key_id
    record_event(
        session,
        team_id=row.team_id,
        actor=row.requested_by,
        action=AuditAction.APPROVAL_APPLIED,
        target=row.label,
        target_key_id=key_id,
        detail={"request": row.id, "change": row.change, "approved_by": row.approved_by},
    )
    return row


def open_registration_labels(session: Session, team_id: str) -> list[tuple[str, str]]:
    """(request id, label) of registrations waiting for approval: those labels are not free
    for another key meanwhile."""
    return list(
        session.exec(
            select(ApprovalRequest.id, ApprovalRequest.label).where(
                ApprovalRequest.team_id == team_id,
                ApprovalRequest.state == ApprovalState.OPEN.value,
                col(ApprovalRequest.change).in_(("register", "create")),
            )
        ).all()
    )


def view_of(row: ApprovalRequest, approvers: tuple[str, ...] = ()) -> ApprovalView:
    return ApprovalView(
        request_id=row.id,
        change=row.change,
        kinds=tuple(ApprovalKind(k) for k in row.kinds),
        at_stake=tuple(row.at_stake),
        label=row.label,
        account_alias=row.account_alias,
        masked=row.api_key_masked,
        owner_user_id=row.owner_user_id,
        requested_by=row.requested_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=ApprovalState(row.state),
        approved_by=tuple(row.approved_by),
        quorum=row.quorum,
        outcome=row.outcome,
        approvers=approvers,
    )
