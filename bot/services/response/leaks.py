"""Recognising a leaked key by its keyed fingerprint, without storing or logging the text."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from bot.secret_shapes import secret_shaped_tokens
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey


def match_registered_key(session: Session, ring: KeyRing, team_id: str, text: str) -> ApiKey | None:
    """The live key whose API key or secret appears in ``text``, if any."""
    fingerprints = [fp for token in secret_shaped_tokens(text) for fp in ring.fingerprints(token)]
    if not fingerprints:
        return None
    return session.exec(
        select(ApiKey).where(
            ApiKey.team_id == team_id,
            col(ApiKey.status).not_in(RETIRED_STATUSES),
            or_(
                col(ApiKey.api_key_fingerprint).in_(fingerprints),
                col(ApiKey.secret_fingerprint).in_(fingerprints),
            ),
        )
    ).first()


def record_secret_in_command(
    *, engine: Engine, ring: KeyRing, team_id: str, actor: str, text: str, source: str | None
) -> str | None:
    """Audit that someone pasted a secret into a command; return the matching key's label."""
    with session_scope(engine) as session:
        key = match_registered_key(session, ring, team_id, text)
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action=AuditAction.COMMAND_SECRET_REFUSED,
            target=key.label if key else None,
            target_key_id=key.id if key else None,
            source=source,
            detail={"matched_registered_key": key is not None},
        )
        return key.label if key else None


def record_leak_in_channel(
    *, engine: Engine, ring: KeyRing, team_id: str, actor: str, channel: str | None, text: str
) -> tuple[str, str] | None:
    """Audit a key-shaped value seen in a channel; return the matching key's (label, id)."""
    with session_scope(engine) as session:
        key = match_registered_key(session, ring, team_id, text)
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action=AuditAction.LEAK_DETECTED,
            target=key.label if key else None,
            target_key_id=key.id if key else None,
            source=f"slack:{channel}" if channel else None,
            detail={"matched_registered_key": key is not None},
        )
        return (key.label, key.id) if key else None
