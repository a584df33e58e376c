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
from sqlmodel import Session, SQLModel, col, select

from storage.models import AuditEvent, utcnow

# Detail keys that could only ever hold secret material: refused outright.
_FORBIDDEN_DETAIL_KEYS = re.compile(r"secret|private|password|passphrase|token", re.IGNORECASE)
GENESIS = "0" * 64
_CHAIN_LOCK = 724100202


def _table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a SQLModel table class (SQLModel does not declare ``__table__``)."""
    table = sa.inspect(model).local_table
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


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
) -> None:
    """Add an audit event to ``session``'s transaction (not committed: the caller's unit of
    work commits it together with the action, or rolls both back)."""
    record_events(
        session,
        [
            {
                "team_id": team_id,
                "actor": actor,
                "action": action,
                "target": target,
                "target_key_id": target_key_id,
                "source": source,
                "detail": detail,
            }
        ],
    )


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Several audit events (``record_event``'s keyword arguments), appended to the chain in
    bulk: one INSERT for the rows, then their hashes in one batched UPDATE (ids first: each
    hash covers its row's id)."""
    if not events:
        return
    now = utcnow()
    rows = [
        {
            "team_id": e["team_id"],
            "at": e.get("at") or now,
            "actor": e["actor"],
            "action": e["action"],
            "target": e.get("target"),
            "target_key_id": e.get("target_key_id"),
            "source": e.get("source"),
            "detail": _checked(e.get("detail")),
        }
        for e in events
    ]
    table = _table_of(AuditEvent)
    connection = session.connection()
    _lock_chain(connection)
    # Inserting first also takes SQLite's write lock, so the chain is read by its only writer.
    ids = connection.execute(
        table.insert().returning(table.c.id, sort_by_parameter_order=True), rows
    ).scalars()
    for row, event_id in zip(rows, ids, strict=True):
        row["id"] = event_id
    prev = _hash_before(connection, rows[0]["id"])
    links = []
    for row in rows:
        row_link = {"link_id": row["id"], "link_prev": prev, "link_hash": row_hash(row, prev)}
        links.append(row_link)
        prev = row_link["link_hash"]
    connection.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("link_id"))
        .values(prev_hash=sa.bindparam("link_prev"), hash=sa.bindparam("link_hash")),
        links,
    )


def _lock_chain(connection: sa.Connection) -> None:
    """Serialise appends to the chain until commit (SQLite has a single writer anyway)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})"))


def _hash_before(connection: sa.Connection, event_id: int) -> str:
    """The hash of the last chained event before ``event_id`` (the chain's start if none)."""
    table = _table_of(AuditEvent)
    last = connection.execute(
        sa.select(table.c.hash)
        .where(table.c.id < event_id, table.c.hash.is_not(None))
        .order_by(table.c.id.desc())
        .limit(1)
    ).scalar()
    return last or GENESIS


def event_hash(event: AuditEvent, prev_hash: str) -> str:
    return row_hash({name: getattr(event, name) for name in _HASHED}, prev_hash)


_HASHED = ("id", "team_id", "at", "actor", "action", "target", "target_key_id", "source", "detail")


def row_hash(row: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 over the previous hash and the event's content (``_HASHED`` fields)."""
    at = row["at"].astimezone(UTC) if row["at"].tzinfo else row["at"]
    content = json.dumps(
        [
            prev_hash,
            row["id"],
            row["team_id"],
            at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            row["actor"],
            row["action"],
            row["target"],
            row["target_key_id"],
            row["source"],
            row["detail"],
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
    """Recompute the chain over every row: an edited row breaks its own hash, a deleted row its
    successor's, and a row without a proper hash (inserted or emptied outside the bot: every
    append hashes its rows before it commits) is tampering too, never skipped."""
    prev = GENESIS
    count = 0
    last_id: int | None = None
    with Session(engine) as session:
        while True:
            query = select(AuditEvent).order_by(col(AuditEvent.id)).limit(batch)
            if last_id is not None:
                query = query.where(col(AuditEvent.id) > last_id)
            rows = session.exec(query).all()
            if not rows:
                return ChainReport(events=count, broken_at=None, reason=None)
            for event in rows:
                if not _is_digest(event.hash) or not _is_digest(event.prev_hash):
                    return ChainReport(
                        count, event.id, "it has no valid hash: it was not written by the bot"
                    )
                if event.prev_hash != prev:
                    return ChainReport(
                        count, event.id, "the event before it was deleted or altered"
                    )
                if event_hash(event, prev) != event.hash:
                    return ChainReport(count, event.id, "its content was altered")
                prev = event.hash
                count += 1
                last_id = event.id


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _is_digest(value: str | None) -> bool:
    return value is not None and _DIGEST.fullmatch(value) is not None


def rechain_all(connection: sa.Connection) -> int:
    """Hash every row again, in id order, from the start of the chain (for a migration that
    brings rows written before the chain existed into it); returns the number of rows."""
    table = _table_of(AuditEvent)
    columns = [table.c[name] for name in _HASHED]
    prev = GENESIS
    count = 0
    links = []
    for mapping in connection.execute(sa.select(*columns).order_by(table.c.id)).mappings():
        row = dict(mapping)
        if isinstance(row["detail"], str):  # a JSON column read without its type
            row["detail"] = json.loads(row["detail"])
        link = row_hash(row, prev)
        links.append({"link_id": row["id"], "link_prev": prev, "link_hash": link})
        prev = link
        count += 1
    if links:
        connection.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("link_id"))
            .values(prev_hash=sa.bindparam("link_prev"), hash=sa.bindparam("link_hash")),
            links,
        )
    return count
