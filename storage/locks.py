"""Named locks that hold across replicas: on PostgreSQL a transaction-scoped advisory lock,
on SQLite (one writer process) a lock in this process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


class HeldLocks:
    """The locks a block holds; ``also`` takes one more, held until the block ends (on the
    same database connection: a block never needs a second one for it)."""

    def __init__(self, take: Callable[[str], None]) -> None:
        self._take = take

    def also(self, name: str) -> None:
        self._take(name)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[HeldLocks]:
    """Run the block while no other holder of ``name`` runs it, in any replica. Locks taken
    later with ``also`` must come in one order everywhere (say, a key's before its
    destination's) so that two blocks never wait for each other."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:

            def take_advisory(lock: str) -> None:
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": lock}
                )

            take_advisory(name)
            yield HeldLocks(take_advisory)
        return
    with ExitStack() as held:

        def take_local(lock: str) -> None:
            with _local_guard:
                local = _local_locks.setdefault(lock, threading.Lock())
            held.enter_context(local)

        take_local(name)
        yield HeldLocks(take_local)
