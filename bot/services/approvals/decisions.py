"""Deciding a held change: approve (and, at quorum, carry it out after Binance confirms the
key is what was approved), deny, withdraw, expire. Every decision, and every refused one
(an unknown or decided request, a second vote, the requester's own, an outsider's), is
audited; a refused one changes nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.binance.governor import GovernorGateway
from bot.commands import EditField
from bot.config import Settings
from bot.job_queue.kinds import approval_outcome
from bot.job_queue.queue import schedule_jobs
from bot.model.approvals import ApprovalView
from bot.services import access
from bot.services.access import AccessDenied, Actor
from bot.services.approvals.holding import (
    ApprovedChange,
    ChangedSinceRequest,
    shred_request,
    view_of,
)
from bot.services.custody.key_edit import edit_key
from bot.services.custody.keys import (
    RegistrationForm,
    open_credentials,
    register_key,
)
from bot.services.errors import InvalidInput
from bot.services.governor.minting import create_key, creation_from
from bot.services.rotation.rotate import RotationForm, start_rotation
from bot.vocabulary import ApprovalState, AuditAction, KeyPurpose, KeyType
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import ApiKey, ApprovalRequest

# Binance answers that mean "this key is not what was approved any more".
NOT_THE_SAME_KEY = (binance.KeyRejected, binance.BadSignature, binance.BadKeyFormat)


@dataclass(frozen=True)
class Decision:
    """What became of a request after a decision, and what to tell the person who decided."""

    view: ApprovalView
    note: str


def _refuse(engine: Engine, actor: Actor, request_id: str, reason: str, message: str) -> NoReturn:
    """Audit a refused decision (nothing else changes) and raise the polite answer."""
    with session_scope(engine) as session:
        record_event(
            session,
            team_id=actor.team_id,
            actor=actor.user_id,
            action=AuditAction.APPROVAL_REFUSED,
            target=request_id[:32],
            source=f"slack:{actor.channel}" if actor.channel else None,
            detail={"request": request_id[:32], "reason": reason},
        )
    raise AccessDenied(message + " Nothing was changed.")


def access_denied(
    engine: Engine, actor: Actor, *, action: str, target: str, message: str | None = None
) -> AccessDenied:
    """Someone outside the approvers (or not the requester) tried: audited like any denial."""
    return access.deny(
        engine,
        actor,
        action=action,
        target=target,
        message=message
        or "Only the approvers (the admins, or the configured approver group) can "
        f"{action.split()[0]} it. Nothing was changed.",
    )


def _end(
    session: Session,
    row: ApprovalRequest,
    state: ApprovalState,
    *,
    by: str,
    action: AuditAction,
    now: datetime,
    outcome: str | None = None,
) -> None:
    """End a request without carrying it out: its material shredded, audited, and the
    requester told (a job, in this transaction)."""
    shred_request(row)
    row.state = state.value
    row.ended_at = now
    row.ended_by = by
    row.outcome = outcome[:300] if outcome else None
    schedule_jobs(
        session,
        [approval_outcome(team_id=row.team_id, request_id=row.id, state=state.value, due_at=now)],
    )
    record_event(
        session,
        team_id=row.team_id,
        actor=by,
        action=action,
        target=row.label,
        target_key_id=row.key_id,
        detail={"request": row.id, "change": row.change, "shredded": True, "outcome": outcome},
    )


def _open_row(engine: Engine, actor: Actor, request_id: str, now: datetime) -> ApprovalRequest:
    """The actor's team's open request ``request_id``, or a refusal (audited)."""
    with Session(engine) as session:
        row = session.get(ApprovalRequest, request_id) if len(request_id) <= 32 else None
        if row is not None:
            session.expunge(row)
    if row is None or row.team_id != actor.team_id:
        _refuse(engine, actor, request_id, "unknown", "There is no such request.")
    if row.state != ApprovalState.OPEN.value:
        _refuse(
            engine,
            actor,
            request_id,
            f"already {row.state}",
            f"That request for “{row.label}” is already {row.state}.",
        )
    if now >= row.expires_at:
        expire_request(engine, request_id, now)
        _refuse(engine, actor, request_id, "expired", f"That request for “{row.label}” expired.")
    return row


def approve(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    actor: Actor,
    request_id: str,
    eligible: frozenset[str],
    now: datetime,
    governor: GovernorGateway | None = None,
) -> Decision:
    """One approver's yes. Never the requester's, never an outsider's, never twice; at quorum
    the change is carried out, after Binance confirms the key is what was approved."""
    row = _open_row(engine, actor, request_id, now)
    if actor.user_id == row.requested_by:
        _refuse(
            engine,
            actor,
            request_id,
            "self-approval",
            "You asked for this change: another person must approve it.",
        )
    if actor.user_id not in eligible:
        raise access_denied(engine, actor, action="approve a change", target=row.label)
    with session_scope(engine) as session:
        locked = session.get(ApprovalRequest, request_id, with_for_update=True)
        if locked is None or locked.state != ApprovalState.OPEN.value:
            state = locked.state if locked is not None else "gone"
            duplicate = None
        else:
            state = None
            duplicate = actor.user_id in locked.approved_by
            if not duplicate:
                locked.approved_by = [*locked.approved_by, actor.user_id]
                record_event(
                    session,
                    team_id=locked.team_id,
                    actor=actor.user_id,
                    action=AuditAction.APPROVAL_APPROVE,
                    target=locked.label,
                    target_key_id=locked.key_id,
                    detail={
                        "request": locked.id,
                        "approvals": len(locked.approved_by),
                        "quorum": locked.quorum,
                    },
                )
            reached = len(locked.approved_by) >= locked.quorum
    if state is not None:
        _refuse(engine, actor, request_id, f"already {state}", f"That request is {state}.")
    if duplicate and not reached:
        _refuse(engine, actor, request_id, "second approval", "You approved this already.")
    if not reached:
        return Decision(view=request_view(engine, request_id), note="Your approval is counted.")
    return _carry_out(
        engine=engine,
        ring=ring,
        gateway=gateway,
        settings=settings,
        request_id=request_id,
        now=now,
        governor=governor,
    )


def _carry_out(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    request_id: str,
    now: datetime,
    governor: GovernorGateway | None,
) -> Decision:
    with Session(engine) as session:
        row = session.get(ApprovalRequest, request_id)
        if row is None:
            raise InvalidInput("That request is gone.")
        session.expunge(row)
        key = session.get(ApiKey, row.key_id) if row.key_id else None
        carries_a_key = row.change in ("register", "rotate")
        credentials = _held_credentials(ring, row) if carries_a_key else None
        if credentials is None and key is not None:
            credentials = open_credentials(ring, key)
    if row.change == "create":  # nothing exists in Binance yet: nothing to check first
        return _create(engine, ring, gateway, settings, row, governor, now)
    if credentials is None:
        raise InvalidInput("The key of that request is gone; nothing was changed.")
    try:
        seen = gateway.api_restrictions(credentials)
    except NOT_THE_SAME_KEY as error:
        why = f"Binance no longer accepts the key ({error.user_message})"
        return _changed(engine, request_id, now, why)
    except binance.BinanceError as error:
        return Decision(
            view=request_view(engine, request_id),
            note="Approved, but Binance could not be asked to confirm the key "
            f"({error.user_message}). The request stays open: press Approve again later.",
        )
    # An edit of a key never checked has no earlier answer to compare with.
    if row.permissions_json is not None and seen.to_dict() != row.permissions_json:
        return _changed(engine, request_id, now, "Binance's answer about the key changed")
    approved = ApprovedChange(request_id=request_id, permissions=row.permissions_json)
    try:
        if row.change == "register":
            held = row.form
            register_key(
                engine=engine,
                ring=ring,
                gateway=gateway,
                settings=settings,
                form=RegistrationForm(
                    team_id=row.team_id,
                    actor=row.requested_by,
                    label=str(held["label"]),
                    account_alias=str(held["account_alias"]),
                    owner_user_id=str(held["owner_user_id"]),
                    purpose=KeyPurpose(held["purpose"]),
                    key_type=KeyType(held["key_type"]),
                    api_key=credentials.api_key,
                    secret=credentials.secret,
                    source=held.get("source"),
                    actor_is_admin=True,  # checked when the request was made
                    delivery=held.get("delivery"),
                    confirm_beyond_purpose=bool(held.get("confirm_beyond_purpose")),
                    applying_request=request_id,
                ),
                now=now,
                approved=approved,
            )
        elif row.change == "rotate" and row.key_id is not None:
            start_rotation(
                engine=engine,
                ring=ring,
                gateway=gateway,
                settings=settings,
                form=RotationForm(
                    team_id=row.team_id,
                    actor=row.requested_by,
                    key_id=row.key_id,
                    key_type=KeyType(row.form["key_type"]),
                    api_key=credentials.api_key,
                    secret=credentials.secret,
                    confirm_more_permissions=bool(row.form.get("confirm_more_permissions")),
                    source=row.form.get("source"),
                    actor_is_admin=True,  # checked when the request was made
                ),
                now=now,
                authorised=True,
                approved=approved,
            )
        elif row.change == "edit":
            edit_key(
                engine=engine,
                settings=settings,
                actor=Actor(user_id=row.requested_by, team_id=row.team_id, is_admin=True),
                label=row.label,
                field=EditField(row.form["field"]),
                value=str(row.form["value"]),
                now=now,
                approved=approved,
            )
        else:
            raise InvalidInput(f"This bot cannot carry out a “{row.change}” request.")
    except ChangedSinceRequest as exc:
        return _changed(engine, request_id, now, exc.user_message)
    view = request_view(engine, request_id)
    return Decision(view=view, note=f"Approved and carried out: “{view.label}”.")


def _create(
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    row: ApprovalRequest,
    governor: GovernorGateway | None,
    now: datetime,
) -> Decision:
    """Have the governor create exactly the approved key (it proves it with apiRestrictions
    before storing, as every creation)."""
    if governor is None:
        raise InvalidInput("This bot has no governor gateway; nothing was created.")
    create_key(
        engine=engine,
        ring=ring,
        gateway=gateway,
        governor=governor,
        settings=settings,
        request=creation_from(row.form),
        now=now,
        approved=ApprovedChange(request_id=row.id, permissions=None),
    )
    view = request_view(engine, row.id)
    return Decision(view=view, note=f"Approved and carried out: “{view.label}” was created.")


def _held_credentials(ring: KeyRing, row: ApprovalRequest) -> binance.Credentials | None:
    """The request's sealed key, opened for one Binance call: never log or keep it."""
    if row.api_key_sealed is None or row.secret_sealed is None:
        return None
    return binance.Credentials(
        api_key=ring.open_text(row.api_key_sealed, context=row.api_key_context()),
        secret=ring.open_text(row.secret_sealed, context=row.secret_context()),
        key_type=binance.KeyType(str(row.form["key_type"])),
    )


def _changed(engine: Engine, request_id: str, now: datetime, why: str) -> Decision:
    """The key is not what was approved: nothing is stored, the request goes back."""
    with session_scope(engine) as session:
        row = session.get(ApprovalRequest, request_id, with_for_update=True)
        if row is not None and row.state == ApprovalState.OPEN.value:
            _end(
                session,
                row,
                ApprovalState.CHANGED,
                by="bot",
                action=AuditAction.APPROVAL_CHANGED,
                now=now,
                outcome=why,
            )
    view = request_view(engine, request_id)
    return Decision(
        view=view,
        note=f"Not carried out: {why}. Nothing was stored; the requester was told to ask again.",
    )


def deny(
    *, engine: Engine, actor: Actor, request_id: str, eligible: frozenset[str], now: datetime
) -> Decision:
    row = _open_row(engine, actor, request_id, now)
    if actor.user_id == row.requested_by:
        return withdraw(engine=engine, actor=actor, request_id=request_id, now=now)
    if actor.user_id not in eligible:
        raise access_denied(engine, actor, action="deny a change", target=row.label)
    return _decide(engine, actor, request_id, ApprovalState.DENIED, AuditAction.APPROVAL_DENY, now)


def withdraw(*, engine: Engine, actor: Actor, request_id: str, now: datetime) -> Decision:
    row = _open_row(engine, actor, request_id, now)
    if actor.user_id != row.requested_by:
        raise access_denied(
            engine,
            actor,
            action="withdraw someone else's request",
            target=row.label,
            message="Only the person who asked can withdraw a request. Nothing was changed.",
        )
    return _decide(
        engine, actor, request_id, ApprovalState.WITHDRAWN, AuditAction.APPROVAL_WITHDRAW, now
    )


def _decide(
    engine: Engine,
    actor: Actor,
    request_id: str,
    state: ApprovalState,
    action: AuditAction,
    now: datetime,
) -> Decision:
    with session_scope(engine) as session:
        row = session.get(ApprovalRequest, request_id, with_for_update=True)
        decided = row is not None and row.state == ApprovalState.OPEN.value
        if row is not None and decided:
            _end(session, row, state, by=actor.user_id, action=action, now=now)
    if not decided:
        _refuse(engine, actor, request_id, "decided meanwhile", "That request was just decided.")
    view = request_view(engine, request_id)
    return Decision(view=view, note=f"The request for “{view.label}” is {state.value}.")


def expire_request(engine: Engine, request_id: str, now: datetime) -> ApprovalView | None:
    """Shred a request nobody decided in time (audited); its view, or None."""
    with session_scope(engine) as session:
        row = session.get(ApprovalRequest, request_id, with_for_update=True)
        if row is None or row.state != ApprovalState.OPEN.value or now < row.expires_at:
            return None
        _end(
            session,
            row,
            ApprovalState.EXPIRED,
            by="bot",
            action=AuditAction.APPROVAL_EXPIRE,
            now=now,
        )
        return view_of(row)


def request_view(engine: Engine, request_id: str, approvers: tuple[str, ...] = ()) -> ApprovalView:
    with Session(engine) as session:
        row = session.get(ApprovalRequest, request_id)
        if row is None:
            raise InvalidInput("That request is gone.")
        return view_of(row, approvers)


def open_requests(engine: Engine, team_id: str) -> list[ApprovalView]:
    """The team's requests waiting for approval, oldest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.team_id == team_id,
                ApprovalRequest.state == ApprovalState.OPEN.value,
            )
            .order_by(col(ApprovalRequest.created_at))
        ).all()
        return [view_of(r) for r in rows]


def waiting_for(
    engine: Engine, team_id: str, user_id: str, eligible: frozenset[str], now: datetime
) -> list[ApprovalView]:
    """Open requests ``user_id`` may approve and has not: never their own."""
    if user_id not in eligible:
        return []
    return [
        v
        for v in open_requests(engine, team_id)
        if v.requested_by != user_id and user_id not in v.approved_by and now < v.expires_at
    ]


__all__ = [
    "Decision",
    "approve",
    "deny",
    "expire_request",
    "open_requests",
    "request_view",
    "waiting_for",
    "withdraw",
]
