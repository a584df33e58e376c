"""`/apikey edit <label> owner|purpose|account …`: an admin corrects who owns a key, what it is
for, or which Binance account it belongs to. Audited; reminders and findings follow at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.commands import EditField
from bot.config import Settings
from bot.model.findings import PURPOSE_NAMES, FindingKind
from bot.model.key_edit import KeyEdited
from bot.services.access import Actor, require_admin
from bot.services.custody.keys import _account, _alias_problem, find_live_key
from bot.services.errors import InvalidInput
from bot.services.oversight.status import stored_findings
from bot.services.rotation.reminder_plan import due_date, plan_reminders
from bot.vocabulary import AuditAction
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
) -> KeyEdited:
    """Change one attribute of a live key (admins only). ``value``: a Slack user id the caller
    has checked is a member of the workspace, a ``KeyPurpose`` value, or an account alias."""
    require_admin(engine, actor, action="change a key's owner, purpose or account")
    if field == EditField.ACCOUNT:
        problem = _alias_problem(value)
        if problem:
            raise InvalidInput(problem + " Nothing was changed.")
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
        record_event(
            session,
            team_id=actor.team_id,
            actor=actor.user_id,
            action=AuditAction.KEY_EDIT,
            target=key.label,
            target_key_id=key.id,
            source=source,
            detail={"field": field.value, "from": before, "to": value},
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
