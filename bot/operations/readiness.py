"""What the probes check in the background: the database answers, the active master key opens
its canary. Each with a short timeout and no retry, through connections of its own, so a check
neither waits behind the bot's work nor hides a failure behind a cache.

- The database: a connection of its own each time (no pool: a dead pooled connection cannot
  linger), ``timeout`` seconds to connect, and on PostgreSQL ``statement_timeout``.
- The master key: with AWS KMS, its own KMS client (one attempt, ``timeout`` seconds to
  connect and to read, no data-key cache: ``KmsDataKeys.for_probes``), so each check asks KMS.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bot.operations.checks import Check
from storage.crypto import EnvelopeKey, KeyRing
from storage.kms import KmsDataKeys
from storage.master_keys import active_key_opens


def probe_engine(engine: Engine, *, timeout: float) -> Engine:
    """An engine to the same database for the checks: unpooled, quick to give up. An
    in-memory SQLite database exists only in its own connections: the bot's engine is used."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            return engine
        return sa.create_engine(
            url,
            poolclass=NullPool,
            connect_args={"timeout": timeout, "check_same_thread": False},
        )
    if url.get_backend_name() == "postgresql":
        # libpq's connect_timeout is whole seconds, at least 2 (libpq's documentation).
        seconds = max(2, math.ceil(timeout))
        return sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": seconds})
    return engine


def probe_ring(ring: KeyRing, *, timeout: float) -> KeyRing:
    """The active master key as the check opens its canary: a KMS key through a client of its
    own (see the module docstring); a local key as it is (opening it asks nobody)."""
    active = ring.active
    if isinstance(active, EnvelopeKey) and isinstance(active.service, KmsDataKeys):
        quick = EnvelopeKey(key_id=active.key_id, service=active.service.for_probes(timeout))
        return KeyRing([quick])
    return ring


def database_check(engine: Engine, *, timeout: float) -> Check:
    milliseconds = max(1, int(timeout * 1000))

    def answers() -> bool:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(sa.text(f"SET LOCAL statement_timeout = {milliseconds}"))
            connection.execute(sa.text("SELECT 1"))
        return True

    return Check("database", answers, failed="down")


def master_key_check(engine: Engine, ring: KeyRing) -> Check:
    return Check("master_keys", lambda: active_key_opens(engine, ring), failed="cannot open")
