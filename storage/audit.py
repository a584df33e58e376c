"""Audit events, written in the caller's transaction: an action and its record commit together."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import AuditEvent, utcnow

# Detail keys that could only ever hold secret material: refused outright.
_FORBIDDEN_DETAIL_KEYS = re.compile(r"secret|private|password|passphrase|token", re.IGNORECASE)


class AuditDetailError(ValueError):
    """A caller tried to put secret-looking material into an audit event."""


def record_event(
    session: Session,
    *,
    team_id: str,
    actor: str,
    action: str,
    target: str | None = None,
    target_key_id: str | None = None,
    source: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to ``session`` (flushed, not committed: the caller's unit of work
    commits it together with the action, or rolls both back)."""
    event = AuditEvent(
        team_id=team_id,
        actor=actor,
        action=action,
        target=target,
        target_key_id=target_key_id,
        source=source,
        detail=_checked(detail),
    )
    session.add(event)
    session.flush()
    return event


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Several audit events (``record_event``'s keyword arguments) in one bulk insert."""
    if not events:
        return
    rows = [
        {
            "team_id": e["team_id"],
            "at": e.get("at") or utcnow(),
            "actor": e["actor"],
            "action": e["action"],
            "target": e.get("target"),
            "target_key_id": e.get("target_key_id"),
            "source": e.get("source"),
            "detail": _checked(e.get("detail")),
        }
        for e in events
    ]
    session.exec(sa.insert(AuditEvent), params=rows)


def _checked(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    detail = dict(detail or {})
    for key in detail:
        if _FORBIDDEN_DETAIL_KEYS.search(key):
            raise AuditDetailError(f"audit detail key {key!r} is not allowed")
    return detail
