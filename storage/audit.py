"""Audit events, written in the caller's transaction: an action and its record commit together
(if the audit write fails, the action fails with it).

Events form a MAC chain: each stores HMAC-SHA256, under the audit key, over the previous
event's MAC and its own content, so ``verify_chain`` detects an edited, inserted, reordered or
deleted row, and someone who can write to the database but does not hold the master key (which
seals the audit key: storage.audit_key) cannot recompute the chain after changing it. Deleting
the newest events, or restoring an older copy of the database, leaves a shorter chain that
still fits: the checkpoints (event count and head MAC, posted outside the database) catch that.
Writers are serialised while they append (PostgreSQL: an advisory lock held to commit; SQLite:
its single writer).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from bot.vocabulary import AuditAction
from bot.vocabulary import ChainReport as ChainReport
from bot.vocabulary import Checkpoint as Checkpoint
from storage.models import AuditEvent, utcnow

# Detail keys that could only ever hold secret material: refused outright.
_FORBIDDEN_DETAIL_KEYS = re.compile(r"secret|private|password|passphrase|token", re.IGNORECASE)
GENESIS = "0" * 64
_CHAIN_LOCK = 724100202
AUDIT_KEY_BYTES = 32

# The audit key of each engine, bound once at start-up (storage.audit_key.open_audit_key): every
# writer of events only holds a session, and this keeps the key out of every call in between.
_MAC_KEYS: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()


class AuditKeyMissing(RuntimeError):
    """An event was to be written or verified before the audit key was opened."""


def bind_audit_key(engine: Engine, key: bytes) -> None:
    if len(key) != AUDIT_KEY_BYTES:
        raise ValueError("the audit key must be 32 bytes")
    _MAC_KEYS[engine] = key


def audit_key_of(engine: Engine) -> bytes:
    key = _MAC_KEYS.get(engine)
    if key is None:
        raise AuditKeyMissing(
            "the audit key is not open for this database: open storage (bot.bootstrap) first"
        )
    return key


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
    action: AuditAction,
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
                "action": AuditAction(action).value,
                "target": target,
                "target_key_id": target_key_id,
                "source": source,
                "detail": detail,
            }
        ],
    )


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Several audit events (``record_event``'s keyword arguments), appended to the chain in
    bulk: one INSERT for the rows, then their MACs in one batched UPDATE (ids first: each
    MAC covers its row's id)."""
    if not events:
        return
    now = utcnow()
    rows = [
        {
            "team_id": e["team_id"],
            "at": e.get("at") or now,
            "actor": e["actor"],
            "action": AuditAction(e["action"]).value,
            "target": e.get("target"),
            "target_key_id": e.get("target_key_id"),
            "source": e.get("source"),
            "detail": _checked(e.get("detail")),
        }
        for e in events
    ]
    table = _table_of(AuditEvent)
    connection = session.connection()
    key = audit_key_of(connection.engine)  # before anything is written
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
        row_link = {"link_id": row["id"], "link_prev": prev, "link_hash": event_mac(key, row, prev)}
        links.append(row_link)
        prev = row_link["link_hash"]
    _write_links(connection, links)


def _write_links(connection: sa.Connection, links: list[dict[str, Any]]) -> None:
    table = _table_of(AuditEvent)
    connection.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("link_id"))
        .values(prev_hash=sa.bindparam("link_prev"), hash=sa.bindparam("link_hash")),
        links,
    )


def lock_chain(connection: sa.Connection) -> None:
    """Serialise appends to the chain until commit (SQLite has a single writer anyway)."""
    _lock_chain(connection)


def _lock_chain(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})"))


def _hash_before(connection: sa.Connection, event_id: int) -> str:
    """The MAC of the last chained event before ``event_id`` (the chain's start if none)."""
    table = _table_of(AuditEvent)
    last = connection.execute(
        sa.select(table.c.hash)
        .where(table.c.id < event_id, table.c.hash.is_not(None))
        .order_by(table.c.id.desc())
        .limit(1)
    ).scalar()
    return last or GENESIS


_HASHED = ("id", "team_id", "at", "actor", "action", "target", "target_key_id", "source", "detail")


def canonical_content(row: Mapping[str, Any], prev_hash: str) -> bytes:
    """The bytes a link covers: the previous link and the event's content (``_HASHED``)."""
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
    return content.encode("utf-8")


def event_mac(key: bytes, row: Mapping[str, Any], prev_hash: str) -> str:
    """HMAC-SHA256 under the audit key over the previous MAC and the event's content (hex)."""
    return hmac.new(key, canonical_content(row, prev_hash), hashlib.sha256).hexdigest()


def legacy_hash(row: Mapping[str, Any], prev_hash: str) -> str:
    """The unkeyed SHA-256 of the chain before it was keyed (revisions 0005 to 0011): anyone
    with write access could recompute it. Only read to upgrade an old trail, never written."""
    return hashlib.sha256(canonical_content(row, prev_hash)).hexdigest()


# Kept under its old name for revision 0010, which chains pre-0005 rows the way the chain was
# then (unkeyed); the first start-up after revision 0012 re-keys that chain (storage.audit_key).
row_hash = legacy_hash


def _checked(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    detail = dict(detail or {})
    for key in detail:
        if _FORBIDDEN_DETAIL_KEYS.search(key):
            raise AuditDetailError(f"audit detail key {key!r} is not allowed")
    return detail


# --- checkpoints and verification --------------------------------------------------------


def chain_head(engine: Engine, *, now: datetime | None = None) -> Checkpoint:
    """The chain's current length and head, read in one statement (one snapshot)."""
    table = _table_of(AuditEvent)
    last = sa.select(table.c.id, table.c.hash).order_by(table.c.id.desc()).limit(1).subquery("last")
    query = sa.select(
        sa.select(sa.func.count()).select_from(table).scalar_subquery(),
        sa.select(last.c.id).scalar_subquery(),
        sa.select(last.c.hash).scalar_subquery(),
    )
    with engine.connect() as connection:
        count, head_id, head = connection.execute(query).one()
    return Checkpoint(
        events=int(count or 0), head=head or GENESIS, head_id=head_id, at=now or utcnow()
    )


_COLUMNS = (*_HASHED, "prev_hash", "hash")


def _stream(engine: Engine, batch: int) -> Iterator[dict[str, Any]]:
    """Every event in id order, ``batch`` rows at a time (a server-side cursor on PostgreSQL):
    memory stays flat however long the trail is."""
    table = _table_of(AuditEvent)
    columns = [table.c[name] for name in _COLUMNS]
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=batch).execute(
            sa.select(*columns).order_by(table.c.id)
        )
        for values in result:
            yield dict(zip(_COLUMNS, values, strict=True))


def verify_chain(
    engine: Engine,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    key: bytes | None = None,
    batch: int = 5000,
) -> ChainReport:
    """Recompute the chain over every row, streaming: an edited row breaks its own MAC, a
    deleted or reordered row its successor's link, and a row without a proper MAC (inserted or
    emptied outside the bot, or hashed the old unkeyed way) is tampering too, never skipped.
    Then each checkpoint is compared with the event at its position: a checkpoint counting more
    events than the table holds means events were deleted (the newest ones, or the database was
    rolled back to an older copy); a head that differs means the trail was rewritten."""
    key = key if key is not None else audit_key_of(engine)
    waiting = sorted((c for c in checkpoints if c.events > 0), key=lambda c: c.events)
    problems: list[str] = []
    checked = 0
    prev = GENESIS
    count = 0
    verified = 0
    broken_at: int | None = None
    reason: str | None = None
    for row in _stream(engine, batch):
        count += 1
        if broken_at is None:
            reason = _link_problem(key, row, prev)
            if reason is None:
                prev = row["hash"]
                verified += 1
            else:
                broken_at = row["id"]
        while waiting and waiting[0].events == count:
            checkpoint = waiting.pop(0)
            checked += 1
            if not hmac.compare_digest(str(row["hash"] or ""), checkpoint.head):
                problems.append(
                    f"the checkpoint of {_when(checkpoint.at)} witnessed {checkpoint.events} "
                    f"events ending with another event than the one now at that position "
                    f"(#{row['id']}): the trail was rewritten or rolled back"
                )
    for checkpoint in waiting:
        checked += 1
        problems.append(
            f"the checkpoint of {_when(checkpoint.at)} witnessed {checkpoint.events} events but "
            f"the table holds {count}: events were deleted (the newest ones, or the database was "
            "restored from an older copy)"
        )
    return ChainReport(
        events=count,
        broken_at=broken_at,
        reason=reason,
        checkpoints_checked=checked,
        witness_problems=tuple(problems),
        verified=verified,
    )


def _link_problem(key: bytes, row: Mapping[str, Any], prev: str) -> str | None:
    if not _is_digest(row["hash"]) or not _is_digest(row["prev_hash"]):
        return "it has no valid MAC: it was not written by the bot"
    if row["prev_hash"] != prev:
        return "the event before it was deleted, moved or altered"
    if hmac.compare_digest(event_mac(key, row, prev), row["hash"]):
        return None
    if legacy_hash(row, prev) == row["hash"]:
        return (
            "it carries an unkeyed SHA-256 hash, not the bot's MAC: it was rewritten outside "
            "the bot (or is from an old trail whose chain was already broken when it was keyed)"
        )
    return "its content was altered, or it was forged: its MAC does not fit"


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _is_digest(value: str | None) -> bool:
    return value is not None and _DIGEST.fullmatch(value) is not None


def rechain_all(connection: sa.Connection) -> int:
    """Hash every row again, unkeyed, in id order, from the start of the chain (revision 0010
    brings rows written before the chain existed into it: the chain was unkeyed then);
    returns the number of rows."""
    table = _table_of(AuditEvent)
    columns = [table.c[name] for name in _HASHED]
    prev = GENESIS
    count = 0
    links = []
    for mapping in connection.execute(sa.select(*columns).order_by(table.c.id)).mappings():
        row = dict(mapping)
        if isinstance(row["detail"], str):  # a JSON column read without its type
            row["detail"] = json.loads(row["detail"])
        link = legacy_hash(row, prev)
        links.append({"link_id": row["id"], "link_prev": prev, "link_hash": link})
        prev = link
        count += 1
    if links:
        _write_links(connection, links)
    return count
