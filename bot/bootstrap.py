"""Start-up steps shared by the bot and its admin commands: storage, migrations, key ring."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot import log_redaction
from bot.config import Settings
from bot.observability.json_logs import JsonFormatter
from storage.audit_export import reading_engine
from storage.audit_key import AuditKeyError, open_audit_key
from storage.crypto import EnvelopeKey, KeyRing, KeyRingError
from storage.db import ensure_reachable, migrate, open_database
from storage.kms import kms_master_key
from storage.master_keys import (
    NO_MASTER_KEY,
    VaultError,
    create_key_file,
    first_key_ring,
    key_file_problem,
    read_key_ring,
    refuse_if_sealed,
    verify_key_ring,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Storage:
    engine: Engine
    key_ring: KeyRing


def open_storage(
    settings: Settings, *, run_migrations: bool = True, allow_new_key: bool = True
) -> Storage:
    """Engine + migrations + a key ring proven to open what is stored, and the audit chain's
    key opened with it (else VaultError).

    Nothing is created because of a mistake: the key ring's settings are read and checked
    first (a malformed key or a key file that does not exist stops here), then the database
    (a missing driver or a path that cannot be written: DatabaseUnavailable), and only then
    is the database created or migrated. A first key file is made only when nothing at all
    is configured and nothing is sealed yet; ``allow_new_key=False``: never (a command that
    only reads, like ``audit verify``, or an admin command)."""
    ring = read_configured_ring(settings)
    if ring is None:
        problem = key_file_problem(settings.key_file) if allow_new_key else NO_MASTER_KEY
        if problem is not None:
            raise VaultError(problem)
    engine = open_database(settings.database_url)
    if ring is None:  # no key for a database of secrets: refused before migrating it
        refuse_if_sealed(engine, key_file=settings.key_file)
    if run_migrations:
        migrate(engine)
    if ring is None:
        ring = first_key_ring(engine, key_file=settings.key_file)
    ring = verify_key_ring(engine, ring)
    try:
        open_audit_key(engine, ring)  # every event written from now on is MACed with it
    except AuditKeyError as exc:
        raise VaultError(str(exc)) from None
    log.info(
        "storage ready: %s, master keys %s (active: %s)",
        engine.url.render_as_string(),
        ", ".join(ring.key_ids),
        ring.active.key_id,
    )
    return Storage(engine=engine, key_ring=ring)


def _keys_text(settings: Settings) -> str | None:
    return settings.master_keys.get_secret_value() if settings.master_keys else None


def read_configured_ring(settings: Settings) -> KeyRing | None:
    """The master key ring the settings configure (MASTER_KEYS, the key file, KMS), checked
    without opening the database; None when nothing at all is configured (a first run)."""
    return read_key_ring(
        keys_text=_keys_text(settings),
        active_id=settings.master_key_active,
        key_file=settings.key_file,
        key_file_required=settings.master_keys_file is not None,
        kms_key=kms_key_of(settings),
    )


def init_key_file(settings: Settings) -> Path:
    """`apikey-bot keys init`: a first master key in a new key file where MASTER_KEYS_FILE
    says (else the default path). Never over an existing file, never when the master keys
    come from elsewhere, never when the database holds secrets a new key could not open.
    Returns the file's path; VaultError with the reason otherwise."""
    if _keys_text(settings):
        raise VaultError(
            "MASTER_KEYS is set: the master keys come from it and no key file is read (unset "
            "it to keep them in a file instead)"
        )
    if settings.master_kms_key_id is not None:
        raise VaultError(
            "MASTER_KMS_KEY_ID is set: AWS KMS holds the active master key, no key file is needed"
        )
    problem = key_file_problem(settings.key_file)
    if problem is not None:
        raise VaultError(problem)
    if nothing_to_check(settings, table="crypto_canaries") is None:
        engine = reading_engine(settings.database_url)
        try:
            refuse_if_sealed(engine, key_file=settings.key_file)
        finally:
            engine.dispose()
    create_key_file(settings.key_file)
    return settings.key_file.absolute()


def kms_key_of(settings: Settings) -> EnvelopeKey | None:
    """The AWS KMS member of the key ring, when MASTER_KMS_KEY_ID is set."""
    if settings.master_kms_key_id is None:
        return None
    try:
        return kms_master_key(
            key_ref=settings.master_kms_key_id,
            region=settings.kms_region,
            endpoint_url=settings.aws_endpoint_url,
        )
    except KeyRingError as exc:
        raise VaultError(f"MASTER_KMS_KEY_ID: {exc}") from None


# Libraries whose DEBUG output carries request bodies or signed URLs: never below INFO. Their
# INFO can carry bodies too (Bolt's rejected requests): the handlers' RedactingFilter is what
# keeps secrets out, at every level.
_CHATTY_LOGGERS = ("slack_bolt", "slack_sdk", "urllib3", "binance", "requests", "boto3", "botocore")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(
    level: str, *, handler: logging.Handler | None = None, log_format: str = "text"
) -> logging.Handler:
    """The bot's log handler on the root logger (stderr unless given), with the redacting
    filter that keeps secrets out of whatever any library logs; returns the handler.
    ``log_format`` "json": one JSON object per line (LOG_FORMAT)."""
    handler = handler or logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    log_redaction.install([handler])
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # waitress logs every request that waits for a free worker at WARNING ("Task queue depth
    # is 1"): a burst of acks queues for milliseconds by design; the ack latency histogram
    # (/metrics) is where a real backlog shows. Its errors still reach the log.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return handler


def nothing_to_check(settings: Settings, *, table: str, empty: str | None = None) -> str | None:
    """Why a read-only command has nothing to check (no database file, no ``table`` in it,
    or, when ``empty`` says what an empty table means, no row in it), found without creating
    anything; None when there is something. The command line's one rule: nothing to check is
    no failure (exit 0), said in one line on standard error (bot.__main__.EXIT_CODES)."""
    url = sa.engine.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return f"nothing to check: there is no database at {url.database} yet (the bot creates it)"
    engine = reading_engine(settings.database_url)
    try:
        ensure_reachable(engine, url=settings.database_url)
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table):
                return "nothing to check: the database has no tables yet (`apikey-bot migrate`)"
            if empty is not None and not _has_rows(connection, table):
                return f"nothing to check: {empty}"
    finally:
        engine.dispose()
    return None


def _has_rows(connection: sa.Connection, table: str) -> bool:
    return (
        connection.execute(sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)).first()
        is not None
    )


def check_master_keys(settings: Settings) -> int:
    """`apikey-bot check`: prove the configured master keys open what is stored, changing
    nothing: no database, table or key file is created, no canary written. A malformed key
    or a key file that does not exist is reported before anything else; says so when there
    is nothing to check yet. Returns the exit code."""
    ring = read_configured_ring(settings)
    nothing = nothing_to_check(settings, table="crypto_canaries")
    if nothing is not None:
        print(nothing, file=sys.stderr)
        return 0
    engine = reading_engine(settings.database_url)
    try:
        if ring is None:
            refuse_if_sealed(engine, key_file=settings.key_file)
            print(
                "nothing to check: no master key is configured and nothing is sealed yet",
                file=sys.stderr,
            )
            return 0
        ring = verify_key_ring(engine, ring, write_missing=False)
    finally:
        engine.dispose()
    print(f"master keys OK: {', '.join(ring.key_ids)} (active: {ring.active.key_id})")
    return 0
