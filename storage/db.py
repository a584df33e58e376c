"""Engine, sessions and migrations. SQLite by default; PostgreSQL with the same code.

Opening a database never creates one by mistake: a missing driver or a SQLite path that
cannot be written is found before anything is created, and said in one line
(DatabaseUnavailable) instead of a traceback.
"""

from __future__ import annotations

import json
import os
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
# The setting named in DatabaseUnavailable (storage knows no settings, only their names), and
# pyproject.toml's extra that installs the PostgreSQL driver.
DATABASE_SETTING = "DATABASE_URL"
POSTGRES_EXTRA = "pip install 'apikey-bot[postgres]'"


class DatabaseUnavailable(Exception):
    """The database DATABASE_URL names cannot be opened. One line, safe to print (never the
    URL's password)."""


def read_json(text: str | bytes) -> Any:
    """The engine's JSON reader: ``json.loads`` with every object's keys interned. Thousands of
    rows hold objects with the same keys (each key's permissions: Binance's ~15 field names),
    and ``json.loads`` makes new key strings for every row: a team-wide read of 10,000 keys
    held 13 MB of permissions where one shared copy of each name leaves 5 MB."""
    return json.loads(text, object_pairs_hook=_shared_keys)


def _shared_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {sys.intern(key): value for key, value in pairs}


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """One engine per process. SQLite gets WAL, foreign keys and a busy timeout.

    Connects to nothing yet; DatabaseUnavailable when the driver is missing or the SQLite
    file cannot be created or written where the URL says (found without creating it)."""
    if url.startswith("sqlite"):
        problem = sqlite_path_problem(url)
        if problem is not None:
            raise DatabaseUnavailable(problem)
        engine = create_engine(
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
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_deserializer=read_json,
    )


def create_engine(url: str, **options: Any) -> Engine:
    """``sa.create_engine``, with a missing driver said in one line naming what to install
    (SQLAlchemy imports the driver here, before any connection)."""
    try:
        return sa.create_engine(url, **options)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise DatabaseUnavailable(_driver_problem(url, exc)) from None


def _driver_problem(url: str, exc: Exception) -> str:
    parsed = sa.engine.make_url(url)
    driver = parsed.get_driver_name() if "+" in parsed.drivername else parsed.drivername
    if parsed.get_backend_name() == "postgresql" and driver == "psycopg":
        if isinstance(exc, ModuleNotFoundError):
            return (
                f"{DATABASE_SETTING}: PostgreSQL needs the psycopg driver, which is not "
                f"installed: {POSTGRES_EXTRA}"
            )
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"{DATABASE_SETTING}: the psycopg driver could not be loaded ({reason}): "
            f"reinstall it with {POSTGRES_EXTRA}"
        )
    return (
        f"{DATABASE_SETTING}: the database driver {driver!r} is not installed: use "
        f"postgresql+psycopg://… and {POSTGRES_EXTRA}"
    )


def sqlite_path_problem(url: str) -> str | None:
    """Why the SQLite database of ``url`` cannot be created or written, in one line naming
    the path; None when it can (or the URL is not a SQLite file). Looks, creates nothing."""
    parsed = sa.engine.make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if "mode=memory" in url or database.startswith("file:"):
        return None
    path = Path(database).absolute()
    directory = path.parent
    if path.exists():
        if path.is_dir():
            return f"{DATABASE_SETTING}: {path} is a directory, not a SQLite database file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{DATABASE_SETTING}: the SQLite database {path} is not writable"
        if not os.access(directory, os.W_OK | os.X_OK):
            return (
                f"{DATABASE_SETTING}: the directory {directory} is not writable (SQLite keeps "
                f"its journal beside {path.name})"
            )
        return None
    cannot = f"{DATABASE_SETTING}: cannot create the SQLite database {path}"
    missing = next((p for p in [directory, *directory.parents] if p.exists()), None)
    if missing is not None and not missing.is_dir():
        return f"{cannot}: {missing} is not a directory"
    if not directory.exists():
        return f"{cannot}: the directory {directory} does not exist (create it first)"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{cannot}: the directory {directory} is not writable"
    return None


def ensure_reachable(engine: Engine, *, url: str | None = None) -> None:
    """Connect once: DatabaseUnavailable, in one line, when the database cannot be opened
    (a server that does not answer or refuses us, a file that is not a database). ``url``:
    the one to name, when the engine's own is not it (a read-only SQLite engine)."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        shown = sa.engine.make_url(url) if url is not None else engine.url
        raise DatabaseUnavailable(_connect_problem(shown, exc)) from None


def _connect_problem(url: sa.engine.URL, exc: sa.exc.DBAPIError) -> str:
    # The driver's first line says why ('connection to server at "h", port 5432 failed:
    # Connection refused'); the lines after it are hints.
    text = str(exc.orig).strip()
    reason = text.splitlines()[0].rsplit("failed: ", 1)[-1].strip() if text else ""
    if url.password:  # drivers do not echo it; this makes sure
        reason = reason.replace(str(url.password), "***")
    reason = reason or type(exc.orig).__name__
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "").absolute()
        return f"{DATABASE_SETTING}: cannot open the SQLite database {path}: {reason}"
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
    return (
        f"{DATABASE_SETTING}: cannot connect to PostgreSQL at {where}: {reason} (check that "
        "the server is up, and the host, port, user and password)"
    )


def open_database(url: str) -> Engine:
    """An engine proven to connect: ``make_engine`` and one connection (which creates a
    missing SQLite file: call this only once nothing else can refuse start-up)."""
    engine = make_engine(url)
    try:
        ensure_reachable(engine)
    except DatabaseUnavailable:
        engine.dispose()
        raise
    return engine


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
