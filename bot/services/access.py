"""Who may do what. Enforced on the server for every command, button and modal.

- Admins (ADMIN_USER_IDS and/or the members of ADMIN_USERGROUP_ID) may do everything.
- A key's owner sees and manages their own keys.
- Other members see the summary of `status` and `list`, but not the details of keys they do
  not own; they cannot register on someone else's behalf, rotate, snooze or remove.
- Anyone may raise `compromised` (a leak must never wait for permission).
Every denial is audited and changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bot.services.errors import DomainError
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.db import session_scope
from storage.models import ApiKey


class AccessDenied(DomainError):
    pass


@dataclass(frozen=True)
class Actor:
    user_id: str
    team_id: str
    is_admin: bool = False
    channel: str | None = None

    def owns(self, owner_user_id: str | None) -> bool:
        return owner_user_id is not None and owner_user_id == self.user_id

    def may_manage(self, owner_user_id: str | None) -> bool:
        return self.is_admin or self.owns(owner_user_id)

    def may_see_details(self, owner_user_id: str | None) -> bool:
        return self.is_admin or self.owns(owner_user_id)


def deny(
    engine: Engine,
    actor: Actor,
    *,
    action: str,
    message: str,
    target: str | None = None,
    target_key_id: str | None = None,
) -> AccessDenied:
    """Audit a refused action and return the polite error to raise."""
    with session_scope(engine) as session:
        record_event(
            session,
            team_id=actor.team_id,
            actor=actor.user_id,
            action=AuditAction.ACCESS_DENIED,
            target=target,
            target_key_id=target_key_id,
            source=f"slack:{actor.channel}" if actor.channel else None,
            detail={"attempted": action},
        )
    return AccessDenied(message)


def require_manage(
    engine: Engine,
    actor: Actor,
    *,
    action: str,
    label: str,
    owner_user_id: str | None,
    key_id: str | None = None,
) -> None:
    if actor.may_manage(owner_user_id):
        return
    owner = f"its owner <@{owner_user_id}>" if owner_user_id else "its owner"
    raise deny(
        engine,
        actor,
        action=action,
        target=label,
        target_key_id=key_id,
        message=f"Only {owner} or an admin can {action} “{label}”. Nothing was changed.",
    )


def require_manage_key(engine: Engine, actor: Actor, key: ApiKey, *, action: str) -> None:
    """``require_manage`` for a stored key: its owner or an admin, else denied and audited."""
    require_manage(
        engine,
        actor,
        action=action,
        label=key.label,
        owner_user_id=key.owner_user_id,
        key_id=key.id,
    )


def require_admin(engine: Engine, actor: Actor, *, action: str) -> None:
    if actor.is_admin:
        return
    raise deny(engine, actor, action=action, message=f"Only admins can {action}.")
