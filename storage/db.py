"""Engine, sessions and migrations. SQLite by default; PostgreSQL with the same code."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def read_json(text: str | bytes) -> Any:
    """The engine's JSON reader: ``json.loads`` with every object's keys interned. Thousands of
    rows hold objects with the same keys (each key's permissions: Binance's ~15 field names),
    and ``json.loads`` makes new key strings for every row: a team-wide read of 10,000 keys
    held 13 MB of permissions where one shared copy of each name leaves 5 MB."""
    return json.loads(text, object_pairs_hook=_shared_keys)


def _shared_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {sys.intern(key): value for key, value in pairs}


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """One engine per process. SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_deserializer=read_json,
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(  # pragma: no cover - trivial
            dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
        ) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if ":memory:" not in url and "mode=memory" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_deserializer=read_json,
    )


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent; safe for several replicas on PostgreSQL)."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Replicas starting together must not run the same migration twice.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(724100201)"))
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
