"""Named locks that hold across replicas: on PostgreSQL a transaction-scoped advisory lock,
on SQLite (one writer process) a lock in this process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Run the block while no other holder of ``name`` runs it, in any replica."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name}
            )
            yield
        return
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    with lock:
        yield
