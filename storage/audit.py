"""Audit events, written in the caller's transaction: an action and its record commit together
(if the audit write fails, the action fails with it).

Events form a hash chain: each stores SHA-256 over the previous event's hash and its own
content, so ``verify_chain`` detects an edited or deleted row. Writers are serialised while
they append (PostgreSQL: an advisory lock held to commit; SQLite: its single writer).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.models import AuditEvent, utcnow

# Detail keys that could only ever hold secret material: refused outright.
_FORBIDDEN_DETAIL_KEYS = re.compile(r"secret|private|password|passphrase|token", re.IGNORECASE)
GENESIS = "0" * 64
_CHAIN_LOCK = 724100202


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
    _lock_chain(session)
    event = AuditEvent(
        team_id=team_id,
        actor=actor,
        action=action,
        target=target,
        target_key_id=target_key_id,
        source=source,
        detail=_checked(detail),
        at=utcnow(),
    )
    session.add(event)
    session.flush()
    _link(session, [event])
    return event


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Several audit events (``record_event``'s keyword arguments), appended in bulk."""
    if not events:
        return
    _lock_chain(session)
    rows = [
        AuditEvent(
            team_id=e["team_id"],
            at=e.get("at") or utcnow(),
            actor=e["actor"],
            action=e["action"],
            target=e.get("target"),
            target_key_id=e.get("target_key_id"),
            source=e.get("source"),
            detail=_checked(e.get("detail")),
        )
        for e in events
    ]
    session.add_all(rows)
    session.flush()
    _link(session, rows)


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.exec(sa.text(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})"))


def _link(session: Session, events: list[AuditEvent]) -> None:
    """Chain freshly inserted events (already flushed, so they have ids) in id order."""
    events = sorted(events, key=lambda e: e.id)
    previous = session.exec(
        select(AuditEvent.hash)
        .where(col(AuditEvent.id) < events[0].id, col(AuditEvent.hash).is_not(None))
        .order_by(col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    prev = previous or GENESIS
    for event in events:
        event.prev_hash = prev
        event.hash = event_hash(event, prev)
        prev = event.hash
    session.flush()


def event_hash(event: AuditEvent, prev_hash: str) -> str:
    at = event.at.astimezone(UTC) if event.at.tzinfo else event.at
    content = json.dumps(
        [
            prev_hash,
            event.id,
            event.team_id,
            at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            event.actor,
            event.action,
            event.target,
            event.target_key_id,
            event.source,
            event.detail,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _checked(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    detail = dict(detail or {})
    for key in detail:
        if _FORBIDDEN_DETAIL_KEYS.search(key):
            raise AuditDetailError(f"audit detail key {key!r} is not allowed")
    return detail


@dataclass(frozen=True)
class ChainReport:
    events: int
    broken_at: int | None  # id of the first event that does not fit the chain
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(engine: Engine, *, batch: int = 5000) -> ChainReport:
    """Recompute the chain: an edited row breaks its own hash, a deleted row its successor's."""
    prev = GENESIS
    count = 0
    last_id = 0
    with Session(engine) as session:
        while True:
            rows = session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.id) > last_id, col(AuditEvent.hash).is_not(None))
                .order_by(col(AuditEvent.id))
                .limit(batch)
            ).all()
            if not rows:
                return ChainReport(events=count, broken_at=None, reason=None)
            for event in rows:
                if event.prev_hash != prev:
                    return ChainReport(
                        count, event.id, "the event before it was deleted or altered"
                    )
                if event_hash(event, prev) != event.hash:
                    return ChainReport(count, event.id, "its content was altered")
                prev = event.hash
                count += 1
                last_id = event.id
