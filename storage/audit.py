"""Audit events, written in the caller's transaction: an action and its record commit together."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from storage.models import AuditEvent

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
    detail = dict(detail or {})
    for key in detail:
        if _FORBIDDEN_DETAIL_KEYS.search(key):
            raise AuditDetailError(f"audit detail key {key!r} is not allowed")
    event = AuditEvent(
        team_id=team_id,
        actor=actor,
        action=action,
        target=target,
        target_key_id=target_key_id,
        source=source,
        detail=detail,
    )
    session.add(event)
    session.flush()
    return event
