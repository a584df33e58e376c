"""The audit chain's key: generated once, sealed by the master key ring, opened at start-up.

The key is 32 random bytes in the one row of ``audit_keys``, sealed like any secret (AES-GCM
under the active master key, or a KMS envelope key), bound to its row by the seal's context.
It is one of the sealed tables (storage.master_keys), so ``apikey-bot keys reencrypt`` re-seals it under a new
master key and ``keys retire`` refuses to drop a master key that still seals it: the chain
stays verifiable across master-key rotation, and is never re-computed because of it.

Upgrading a trail written before the chain was keyed (revisions 0005 to 0011 hashed it with an
unkeyed SHA-256): the first start-up that finds no audit key verifies the old chain and, only if
it is intact, re-chains every event under the new key, in the same transaction that stores the
key (two replicas starting together: the chain lock makes one of them do it, the other reads its
key back). This is acceptable because re-keying adds no trust the old chain did not have: an
intact unkeyed chain is exactly what verify accepted until now, and it is the last moment it can
be checked. A broken old chain is not laundered: its events keep their old hashes, the break is
logged, and verify reports those events for as long as they are in the table. What re-keying
cannot tell is an old chain an attacker recomputed before the upgrade, or one recomputed after
deleting this key's row (the bot would take it for a first start): a checkpoint posted before
that (storage.audit.Checkpoint) shows the rewrite, since the re-keyed head no longer matches it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.vocabulary import AuditAction
from storage.audit import (
    _HASHED,
    AUDIT_KEY_BYTES,
    GENESIS,
    _table_of,
    _write_links,
    bind_audit_key,
    event_mac,
    legacy_hash,
    lock_chain,
    record_event,
)
from storage.crypto import CryptoError, KeyRing, KeyServiceUnavailable
from storage.db import session_scope
from storage.models import AuditEvent, AuditKey, utcnow

log = logging.getLogger(__name__)

AUDIT_KEY_ROW = 1
SYSTEM_TEAM = "-"
_BATCH = 2000


class AuditKeyError(Exception):
    """The audit key cannot be opened or made. The message is safe to print."""


def open_audit_key(engine: Engine, ring: KeyRing) -> bytes:
    """The audit key of this database (made and the old chain re-keyed on first use), bound
    to ``engine`` so that every event written through it is MACed."""
    with Session(engine) as session:
        row = session.get(AuditKey, AUDIT_KEY_ROW)
        stored = (row.sealed, row.mac_key_context()) if row is not None and row.sealed else None
    if stored is None:
        stored = _make_audit_key(engine, ring)
    key = _open(ring, *stored)
    bind_audit_key(engine, key)
    return key


def _open(ring: KeyRing, blob: bytes, context: str) -> bytes:
    try:
        key = ring.open(blob, context=context)
    except KeyServiceUnavailable as exc:
        raise AuditKeyError(f"the audit key cannot be opened: {exc}") from None
    except CryptoError:
        raise AuditKeyError(
            "the audit key does not open with the configured master keys: the audit_keys row "
            "was altered or copied from another database. Nothing was changed."
        ) from None
    if len(key) != AUDIT_KEY_BYTES:
        raise AuditKeyError("the audit key row holds no usable key. Nothing was changed.")
    return key


def _make_audit_key(engine: Engine, ring: KeyRing) -> tuple[bytes, str]:
    key = os.urandom(AUDIT_KEY_BYTES)
    template = AuditKey(id=AUDIT_KEY_ROW, created_at=utcnow())
    context = template.mac_key_context()
    try:
        sealed = ring.seal(key, context=context)
    except KeyServiceUnavailable as exc:
        raise AuditKeyError(f"the audit key cannot be sealed: {exc}") from None
    with session_scope(engine) as session:
        connection = session.connection()
        lock_chain(connection)
        table = _table_of(AuditKey)
        # Insert-or-nothing takes SQLite's write lock before anything is read; on PostgreSQL the
        # chain lock above already made this replica the only one here.
        inserted = connection.execute(
            sa.insert(table).from_select(
                ["id", "sealed", "seal_key_id", "created_at"],
                sa.select(
                    sa.literal(AUDIT_KEY_ROW),
                    sa.literal(sealed.blob, sa.LargeBinary),
                    sa.literal(sealed.key_id),
                    sa.literal(template.created_at, table.c.created_at.type),
                ).where(~sa.exists().where(table.c.id == AUDIT_KEY_ROW)),
            )
        ).rowcount
        if inserted:
            bind_audit_key(engine, key)  # the events below are MACed with it
            _rekey_legacy_chain(session, connection, key)
    with Session(engine) as session:
        row = session.get(AuditKey, AUDIT_KEY_ROW)
        if row is None or row.sealed is None:
            raise AuditKeyError(
                "the audit_keys row holds no key (emptied, or deleted while it was written): "
                "restore it from a backup. Nothing was changed."
            )
        return row.sealed, row.mac_key_context()


def _legacy_rows(connection: sa.Connection) -> Iterator[list[dict[str, Any]]]:
    """Every event, in id order, a batch at a time (each batch read whole before it is used,
    so the caller may update the rows it was given)."""
    table = _table_of(AuditEvent)
    columns = [table.c[name] for name in (*_HASHED, "prev_hash", "hash")]
    last = 0
    while True:
        rows = [
            dict(m)
            for m in connection.execute(
                sa.select(*columns).where(table.c.id > last).order_by(table.c.id).limit(_BATCH)
            ).mappings()
        ]
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def _rekey_legacy_chain(session: Session, connection: sa.Connection, key: bytes) -> None:
    prev, count, broken = GENESIS, 0, None
    for rows in _legacy_rows(connection):
        for row in rows:
            if row["prev_hash"] != prev or legacy_hash(row, prev) != row["hash"]:
                broken = row["id"]
                break
            prev, count = row["hash"], count + 1
        if broken is not None:
            break
    if broken is not None:
        log.error(
            "the audit trail's old (unkeyed) chain is broken at event #%s: it was NOT re-keyed "
            "and `audit verify` will report it; new events are MACed from now on",
            broken,
        )
        record_event(
            session,
            team_id=SYSTEM_TEAM,
            actor="system",
            action=AuditAction.AUDIT_KEY_CREATED,
            detail={"rekeyed_events": 0, "old_chain_broken_at": broken},
        )
        return
    prev = GENESIS
    for rows in _legacy_rows(connection):
        links = []
        for row in rows:
            mac = event_mac(key, row, prev)
            links.append({"link_id": row["id"], "link_prev": prev, "link_hash": mac})
            prev = mac
        _write_links(connection, links)
    if not count:
        return  # a fresh install: nothing to re-key, nothing to record
    log.warning("audit trail upgraded: %d event(s) of the old chain re-chained under a MAC", count)
    record_event(
        session,
        team_id=SYSTEM_TEAM,
        actor="system",
        action=AuditAction.AUDIT_KEY_CREATED,
        detail={"rekeyed_events": count},
    )
