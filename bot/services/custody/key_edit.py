"""`/apikey edit <label> owner|purpose|account …`: an admin corrects who owns a key, what it is
for, or which Binance account it belongs to. Audited; reminders and findings follow at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import binance
from bot.commands import EditField
from bot.config import Settings
from bot.model.findings import PURPOSE_NAMES, FindingKind
from bot.model.key_edit import KeyEdited
from bot.services.access import Actor, require_admin
from bot.services.approvals.holding import (
    ApprovedChange,
    HeldForApproval,
    edit_stake,
    finish_applied,
    hold_change,
    permissions_at_stake,
    widens_purpose,
)
from bot.services.custody.keys import _account, _alias_problem, find_live_key
from bot.services.errors import InvalidInput
from bot.services.oversight.status import stored_findings
from bot.services.rotation.reminder_plan import due_date, plan_reminders
from bot.vocabulary import ApprovalKind, AuditAction
from storage.audit import record_event
from storage.db import session_scope
from storage.models import BinanceAccount, KeyPurpose


def edit_key(
    *,
    engine: Engine,
    settings: Settings,
    actor: Actor,
    label: str,
    field: EditField,
    value: str,
    now: datetime,
    source: str | None = None,
    approved: ApprovedChange | None = None,
) -> KeyEdited:
    """Change one attribute of a live key (admins only). ``value``: a Slack user id the caller
    has checked is a member of the workspace, a ``KeyPurpose`` value, or an account alias.

    A new owner or a wider purpose waits for another person when APPROVAL_REQUIRED_FOR names
    key_edit (HeldForApproval); ``approved``: that request, approved, being carried out."""
    require_admin(engine, actor, action="change a key's owner, purpose or account")
    if field == EditField.ACCOUNT:
        problem = _alias_problem(value)
        if problem:
            raise InvalidInput(problem + " Nothing was changed.")
    if approved is None and ApprovalKind.KEY_EDIT in settings.approval_required_for:
        _hold_if_widening(engine, settings, actor, label, field, value, now, source)
    with session_scope(engine) as session:
        key, account = find_live_key(session, actor.team_id, label)
        new_account = False
        if field == EditField.OWNER:
            before = key.owner_user_id
            if value == before:
                raise InvalidInput(f"<@{value}> already owns “{key.label}”; nothing was changed.")
            key.owner_user_id = value
            key.snoozed_until = None  # the old owner's snooze is not the new owner's
        elif field == EditField.PURPOSE:
            before = key.purpose
            purpose = KeyPurpose(value)
            if value == before:
                raise InvalidInput(
                    f"“{key.label}” is already declared for {PURPOSE_NAMES[purpose]}; "
                    "nothing was changed."
                )
            key.purpose = purpose.value
        else:
            before = account.alias
            if value == before:
                raise InvalidInput(
                    f"“{key.label}” already belongs to the account “{value}”; nothing was changed."
                )
            new_account = (
                session.exec(
                    select(BinanceAccount).where(
                        BinanceAccount.team_id == actor.team_id, BinanceAccount.alias == value
                    )
                ).first()
                is None
            )
            key.account_id = _account(session, actor.team_id, value).id
        key.updated_at = now
        session.flush()
        account = session.get(BinanceAccount, key.account_id) or account
        # What `/apikey status <label>` would show if Binance says again what it said last.
        findings = tuple(
            f
            for f in stored_findings(session, key, account, now)
            if key.permissions_json is not None or f.kind != FindingKind.UNREACHABLE
        )
        # Reminders read the owner when they are sent; a fresh plan also drops a snooze's delay.
        plan_reminders(session, key, settings, now=now)
        approval = {}
        if approved is not None:
            request = finish_applied(session, approved, key_id=key.id, now=now)
            approval = {"approval": request.id, "approved_by": request.approved_by}
        record_event(
            session,
            team_id=actor.team_id,
            actor=actor.user_id,
            action=AuditAction.KEY_EDIT,
            target=key.label,
            target_key_id=key.id,
            source=source,
            detail={"field": field.value, "from": before, "to": value, **approval},
        )
        return KeyEdited(
            label=key.label,
            field=field,
            before=before,
            after=value,
            owner_user_id=key.owner_user_id,
            rotation_due_at=due_date(key),
            findings=findings,
            checked_at=key.permissions_checked_at,
            new_account=new_account,
        )


def _hold_if_widening(
    engine: Engine,
    settings: Settings,
    actor: Actor,
    label: str,
    field: EditField,
    value: str,
    now: datetime,
    source: str | None,
) -> None:
    """A new owner, or a purpose wider than the key's, is held for approval (HeldForApproval);
    anything else goes on at once. What the request shows Binance said last about the key:
    approving asks Binance again and refuses if that changed."""
    if field not in (EditField.OWNER, EditField.PURPOSE):
        return
    with Session(engine) as session:
        key, account = find_live_key(session, actor.team_id, label)
        before = key.owner_user_id if field == EditField.OWNER else key.purpose
        if value == before:
            return  # edit_key says nothing changes
        if field == EditField.PURPOSE and not widens_purpose(key.purpose, value):
            return
        key_id, masked, owner, permissions = (
            key.id,
            key.api_key_masked,
            key.owner_user_id,
            key.permissions_json,
        )
        key_label, alias = key.label, account.alias
    last_seen = binance.KeyPermissions.from_dict(permissions) if permissions else None
    stake = edit_stake(field.value, before, value)
    if last_seen is not None:
        stake += permissions_at_stake(last_seen, [])
    with session_scope(engine) as session:
        view = hold_change(
            session,
            None,
            settings,
            team_id=actor.team_id,
            change="edit",
            kinds=[ApprovalKind.KEY_EDIT],
            at_stake=stake,
            label=key_label,
            requested_by=actor.user_id,
            now=now,
            form={"field": field.value, "value": value, "before": before},
            permissions=last_seen,
            account_alias=alias,
            key_id=key_id,
            masked=masked,
            owner_user_id=owner,
            source=source,
        )
    raise HeldForApproval(view)
