"""The master-key ring in use: loading it, proving it at start-up, re-encrypting, retiring.

Rules:
- A wrong or missing master key stops start-up with a clear message and changes nothing.
- A new key file is created only on a fresh install (no sealed data at all) with nothing
  configured, or by `apikey-bot keys init`; never where MASTER_KEYS_FILE points by mistake,
  never over an existing file.
- Re-encryption works in small committed batches, so it can be interrupted and re-run.
- A master key is retired only when no row uses it any more.
- A key held by AWS KMS (an envelope key) has, in its canary row, the root of its fingerprint
  key: random bytes sealed under that KMS key, unwrapped at start-up. The canary proves the key
  and loads the fingerprint key in one Decrypt; it is written once, before any row uses the key,
  and a missing one while rows use the key stops start-up (their fingerprints would be lost).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import (
    FINGERPRINT_ROOT_BYTES,
    CryptoError,
    EnvelopeKey,
    KeyRing,
    KeyRingError,
    KeyServiceUnavailable,
    MasterKey,
    RingKey,
    generate_master_key,
    parse_master_keys,
)
from storage.db import session_scope
from storage.models import (
    ApiKey,
    ApprovalRequest,
    AuditKey,
    CryptoCanary,
    GovernorMint,
    PendingKeyPair,
    Rotation,
    RotationState,
    utcnow,
)

log = logging.getLogger(__name__)

CANARY_PLAINTEXT = b"apikey-bot canary: the master keys open what is stored"
# An envelope key's canary: this prefix, then the fingerprint root of that key.
ENVELOPE_CANARY_PREFIX = CANARY_PLAINTEXT + b"; fingerprint root:"
SYSTEM_TEAM = "-"
# The settings named in messages (storage knows no settings, only their names).
KMS_SETTING = "MASTER_KMS_KEY_ID"
KEY_FILE_SETTING = "MASTER_KEYS_FILE"
NO_MASTER_KEY = (
    "no master key is configured: set MASTER_KEYS or MASTER_KEYS_FILE, or make a first key "
    "file with `apikey-bot keys init`"
)


class VaultError(Exception):
    """The key ring and the database do not fit together. The message is safe to print."""


def _canary_context(key_id: str) -> str:
    return f"canary:{key_id}"


# Every table holding sealed material, with its (blob column, context) pairs. Each row's
# sealed columns share one master key, named by its seal_key_id column. The audit chain's key
# (storage.audit_key) is one of them: re-encryption carries it to a new master key.
SealedTable = (
    type[ApiKey]
    | type[Rotation]
    | type[PendingKeyPair]
    | type[AuditKey]
    | type[GovernorMint]
    | type[ApprovalRequest]
)
SEALED_TABLES: tuple[SealedTable, ...] = (
    ApiKey,
    Rotation,
    PendingKeyPair,
    AuditKey,
    GovernorMint,
    ApprovalRequest,
)
SealedRow = ApiKey | Rotation | PendingKeyPair | AuditKey | GovernorMint | ApprovalRequest
_Sealed = TypeVar("_Sealed", bound=SealedRow)


def _select_rows(table: type[_Sealed]) -> SelectOfScalar[_Sealed]:
    """``select(table)``, typed by the table's row class even when it is one of several."""
    return select(table)


def _sealed_fields(row: SealedRow) -> list[tuple[str, str]]:
    if isinstance(row, AuditKey):
        return [("sealed", row.mac_key_context())]
    if isinstance(row, ApiKey | ApprovalRequest):
        return [("api_key_sealed", row.api_key_context()), ("secret_sealed", row.secret_context())]
    if isinstance(row, PendingKeyPair | GovernorMint):
        return [("private_key_sealed", row.private_key_context())]
    return [
        ("old_api_key_sealed", row.api_key_context()),
        ("old_secret_sealed", row.secret_context()),
    ]


def holds_sealed_data(session: Session) -> bool:
    """Whether anything is sealed: a canary or a sealed row. Reads a database at any
    revision (a table an older schema lacks holds nothing), so it can be asked before
    migrating."""
    present = set(sa.inspect(session.connection()).get_table_names())
    if (
        CryptoCanary.__tablename__ in present
        and session.exec(select(func.count()).select_from(CryptoCanary)).one()
    ):
        return True
    return any(
        session.exec(
            select(func.count()).select_from(table).where(col(table.seal_key_id).is_not(None))
        ).one()
        for table in SEALED_TABLES
        if table.__tablename__ in present
    )


def key_ids_in_use(session: Session) -> dict[str, int]:
    """Master key id -> number of rows (in every sealed table) sealed under it."""
    counts: dict[str, int] = {}
    for table in SEALED_TABLES:
        seal_key_id = col(table.seal_key_id)
        rows = session.exec(
            select(seal_key_id, func.count()).where(seal_key_id.is_not(None)).group_by(seal_key_id)
        ).all()
        for kid, count in rows:
            if kid is not None:  # always, by the query: this tells the type checker
                counts[kid] = counts.get(kid, 0) + count
    return counts


def read_key_ring(
    *,
    keys_text: str | None,
    active_id: str | None,
    key_file: Path,
    key_file_required: bool = False,
    kms_key: EnvelopeKey | None = None,
) -> KeyRing | None:
    """The key ring the settings configure, read and checked without opening the database:
    MASTER_KEYS, else the key file, and the AWS KMS key (``kms_key``, MASTER_KMS_KEY_ID),
    active unless ``active_id`` names a local key.

    None when nothing at all is configured (a first run). VaultError, in one line, when what
    is configured is malformed, or when ``key_file_required`` (MASTER_KEYS_FILE was set) and
    the file does not exist: a mistyped path is a mistake to report, never a reason to make
    a new key there. Without KMS, a key file that holds no key is refused, never replaced.
    """
    local: list[MasterKey] = []
    if keys_text:
        try:
            local = parse_master_keys(keys_text)
        except KeyRingError as exc:
            raise VaultError(f"MASTER_KEYS: {exc}") from None
        if not local:
            raise VaultError("MASTER_KEYS: holds no master key (id:base64 entries)")
    elif key_file.exists() or (key_file_required and kms_key is None):
        local = _read_key_file(key_file)
    if not local and kms_key is None:
        return None
    keys: list[RingKey] = [*local]
    if kms_key is not None:
        keys.append(kms_key)
    try:
        return KeyRing(keys, active_id)
    except KeyRingError as exc:
        setting = "MASTER_KEY_ACTIVE" if "active" in str(exc) else "MASTER_KEYS"
        raise VaultError(f"{setting}: {exc}") from None


def _read_key_file(key_file: Path) -> list[MasterKey]:
    where = f"{KEY_FILE_SETTING}: {key_file.absolute()}"
    try:
        if not key_file.exists():
            raise VaultError(
                f"{where} does not exist: check the path. Nothing was created (to make a "
                "first master key there, run `apikey-bot keys init`)"
            )
        _warn_if_readable_by_others(key_file)
        text = key_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise VaultError(f"{where} cannot be read ({reason})") from None
    try:
        local = parse_master_keys(text)
    except KeyRingError as exc:
        raise VaultError(f"{where}: {exc}") from None
    if not local:
        raise VaultError(
            f"{where} holds no master key (id:base64 lines): restore it from your backup; "
            "it is never replaced"
        )
    return local


def first_key_ring(engine: Engine, *, key_file: Path, allow_create: bool = True) -> KeyRing:
    """Nothing is configured: a new key file at ``key_file`` on a fresh install (no sealed
    data at all), with owner-only permissions; refused when the database holds sealed data,
    which a new key could never open, or when ``allow_create`` is False."""
    refuse_if_sealed(engine, key_file=key_file)
    if not allow_create:
        raise VaultError(NO_MASTER_KEY)
    ring = KeyRing([create_key_file(key_file)])
    log.warning(
        "NO MASTER KEY WAS CONFIGURED: created a new one in %s (owner-only permissions). "
        "Back it up: without it the stored secrets cannot be opened. In production supply "
        "the key yourself through MASTER_KEYS or MASTER_KEYS_FILE from your secret manager.",
        key_file.resolve(),
    )
    return ring


def refuse_if_sealed(engine: Engine, *, key_file: Path) -> None:
    """VaultError when the database holds sealed data, with no master key configured: a new
    key could never open it (only reads)."""
    with Session(engine) as session:
        if holds_sealed_data(session):
            raise VaultError(
                "no master key is configured but the database holds sealed secrets: set "
                f"MASTER_KEYS or {KEY_FILE_SETTING} (looked for {key_file}). Refusing to "
                "create a new key, which could never open them."
            )


def load_key_ring(
    *,
    engine: Engine,
    keys_text: str | None,
    active_id: str | None,
    key_file: Path,
    key_file_required: bool = False,
    allow_create: bool = True,
    kms_key: EnvelopeKey | None = None,
) -> KeyRing:
    """``read_key_ring``, else (nothing configured) ``first_key_ring``."""
    ring = read_key_ring(
        keys_text=keys_text,
        active_id=active_id,
        key_file=key_file,
        key_file_required=key_file_required,
        kms_key=kms_key,
    )
    if ring is not None:
        return ring
    return first_key_ring(engine, key_file=key_file, allow_create=allow_create)


def key_file_problem(key_file: Path) -> str | None:
    """Why a key file cannot be created at ``key_file``, in one line; None when it can.
    Looks, creates nothing: never a directory either (a missing one may be a typo)."""
    path = key_file.absolute()
    if path.exists() or path.is_symlink():
        return (
            f"{KEY_FILE_SETTING}: {path} already exists: a key file is never overwritten "
            "(add a key to it with `apikey-bot keys generate ID`)"
        )
    if not path.parent.is_dir():
        return (
            f"{KEY_FILE_SETTING}: cannot create {path}: the directory {path.parent} does not "
            "exist (check the path, or create the directory first)"
        )
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"{KEY_FILE_SETTING}: cannot create {path}: {path.parent} is not writable"
    return None


def create_key_file(key_file: Path, key_id: str = "k1") -> MasterKey:
    """A new master key in a new file (owner-only), never over an existing one; VaultError
    when it cannot be created."""
    problem = key_file_problem(key_file)
    if problem is not None:
        raise VaultError(problem)
    key = generate_master_key(key_id)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise VaultError(
            f"{KEY_FILE_SETTING}: cannot create {key_file.absolute()} ({exc.strerror or exc})"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# apikey-bot master keys: id:base64, one per line; the last one is active.\n")
        handle.write(key.encoded() + "\n")
    return key


def _warn_if_readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("master key file %s is readable by others (mode %o): chmod 600 it", path, mode)


def active_key_opens(engine: Engine, ring: KeyRing) -> bool:
    """True when the active master key opens its canary (readiness: the bot can still read
    what it stores; with KMS, that AWS answers). Reads one row, writes nothing."""
    key_id = ring.active.key_id
    with Session(engine) as session:
        canary = session.get(CryptoCanary, key_id)
    if canary is None:
        return False
    try:
        ring.open(canary.sealed, context=_canary_context(key_id))
    except (CryptoError, KeyServiceUnavailable):
        return False
    return True


def verify_key_ring(engine: Engine, ring: KeyRing, *, write_missing: bool = True) -> KeyRing:
    """Prove the ring opens what is stored (canaries and one row per key id), then make sure
    the active key has a canary, and every KMS key its fingerprint root. Raises VaultError and
    changes nothing when it does not fit.

    Returns the ring to use: the one given, with the fingerprint roots of its KMS keys loaded.
    """
    roots: dict[str, bytes] = {}
    with Session(engine) as session:
        in_use = key_ids_in_use(session)
        canaries = {c.key_id: c for c in session.exec(select(CryptoCanary)).all()}
        # A canary of a key no row uses any more is stale, not a reason to refuse start-up.
        missing = sorted(set(in_use) - set(ring.key_ids))
        if missing:
            raise VaultError(
                "the database holds secrets sealed with master key(s) "
                f"{', '.join(missing)}, which are not configured: add them to MASTER_KEYS"
                + (f" (or {KMS_SETTING})" if any(":" in kid for kid in missing) else "")
            )
        for key_id in ring.envelope_key_ids:
            if key_id not in canaries and in_use.get(key_id):
                raise VaultError(
                    f"the fingerprint key of master key {key_id!r} is missing (no canary row) "
                    f"while {in_use[key_id]} row(s) are sealed with it: restore the "
                    "crypto_canaries table from a backup. Nothing was changed."
                )
        for key_id, canary in canaries.items():
            if not ring.has(key_id):
                continue
            plaintext = _open_or_fail(ring, canary.sealed, _canary_context(key_id), key_id)
            if ring.is_envelope(key_id):
                roots[key_id] = _fingerprint_root(plaintext, key_id)
        for key_id in in_use:
            for table in SEALED_TABLES:
                sample = session.exec(
                    _select_rows(table).where(col(table.seal_key_id) == key_id).limit(1)
                ).first()
                if sample is not None:
                    column, context = _sealed_fields(sample)[-1]
                    _open_or_fail(ring, getattr(sample, column), context, key_id)
    # Every check passed: only now write what is missing (unless only checking).
    for key_id, root in roots.items():
        ring = ring.with_fingerprint_root(key_id, root)
    if not write_missing:
        return ring
    for key_id in ring.envelope_key_ids:
        if key_id not in roots:
            ring = ring.with_fingerprint_root(key_id, _write_envelope_canary(engine, ring, key_id))
    if ring.active.key_id not in canaries and isinstance(ring.active, MasterKey):
        _write_canary(engine, ring)
    return ring


def _fingerprint_root(plaintext: bytes, key_id: str) -> bytes:
    root = plaintext.removeprefix(ENVELOPE_CANARY_PREFIX)
    if root is plaintext or len(root) != FINGERPRINT_ROOT_BYTES:
        raise VaultError(
            f"the canary of master key {key_id!r} holds no fingerprint key: it was not written "
            "by this bot. Nothing was changed."
        )
    return root


def _write_envelope_canary(engine: Engine, ring: KeyRing, key_id: str) -> bytes:
    """A KMS key's canary, holding a new fingerprint root, once (the first replica's wins).

    The new canary is opened again before it is stored, so a key the bot may use for
    GenerateDataKey but not for Decrypt stops start-up before anything is written.
    Returns the fingerprint root that is stored.
    """
    context = _canary_context(key_id)
    plaintext = ENVELOPE_CANARY_PREFIX + os.urandom(FINGERPRINT_ROOT_BYTES)
    try:
        sealed = ring.seal(plaintext, context=context, key_id=key_id)
    except KeyServiceUnavailable as exc:
        raise _kms_unusable(exc) from None
    _open_or_fail(ring, sealed.blob, context, key_id)
    stored = _insert_canary_once(engine, key_id, sealed.blob)
    return _fingerprint_root(_open_or_fail(ring, stored, context, key_id), key_id)


def _write_canary(engine: Engine, ring: KeyRing) -> None:
    """The active key's canary, once: replicas starting together may all find it missing, so
    the first insert wins and the others check that what it wrote opens with their key."""
    key_id = ring.active.key_id
    sealed = ring.seal(CANARY_PLAINTEXT, context=_canary_context(key_id))
    stored = _insert_canary_once(engine, key_id, sealed.blob)
    _open_or_fail(ring, stored, _canary_context(key_id), key_id)


def _insert_canary_once(engine: Engine, key_id: str, blob: bytes) -> bytes:
    """Store ``blob`` as the key's canary unless one is there; return the one stored (this
    one, or another replica's that won the race)."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with session_scope(engine) as session:
        session.exec(
            insert(CryptoCanary)
            .values(key_id=key_id, sealed=blob, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["key_id"])
        )
    with Session(engine) as session:
        stored = session.get(CryptoCanary, key_id)
        if stored is None:  # inserted above, or by another replica; only a retire removes it
            raise VaultError(
                f"the canary of master key {key_id!r} vanished while it was written: is the "
                "key being retired elsewhere? Nothing was changed."
            )
        return stored.sealed


def _open_or_fail(ring: KeyRing, blob: bytes, context: str, key_id: str) -> bytes:
    try:
        return ring.open(blob, context=context)
    except KeyServiceUnavailable as exc:
        raise _kms_unusable(exc) from None
    except CryptoError:
        setting = f" ({KMS_SETTING})" if ring.is_envelope(key_id) else ""
        raise VaultError(
            f"master key {key_id!r}{setting} does not open the stored data: the configured key "
            "is wrong. Nothing was changed."
        ) from None


def _kms_unusable(exc: KeyServiceUnavailable) -> VaultError:
    return VaultError(
        f"{KMS_SETTING}: {exc}: check the key, AWS_REGION, the AWS credentials and that they "
        "allow kms:GenerateDataKey and kms:Decrypt on it. Nothing was changed."
    )


@dataclass(frozen=True)
class ReencryptReport:
    rows_resealed: int
    rows_remaining: int
    active_key_id: str


def reencrypt_all(
    engine: Engine,
    ring: KeyRing,
    *,
    batch_size: int = 200,
    max_batches: int | None = None,
    actor: str = "cli",
) -> ReencryptReport:
    """Re-seal every row under the active key, one committed batch at a time.

    Each row is resealed (and re-fingerprinted) in full inside its batch's transaction, so an
    interruption leaves every row either wholly old or wholly new: re-running finishes the job.
    """
    active = ring.active.key_id
    done = 0
    batches = 0
    for table in SEALED_TABLES:
        while max_batches is None or batches < max_batches:
            resealed = _reencrypt_batch(engine, ring, table, batch_size, actor)
            if not resealed:
                break
            done += resealed
            batches += 1
    with Session(engine) as session:
        remaining = sum(n for kid, n in key_ids_in_use(session).items() if kid != active)
    return ReencryptReport(rows_resealed=done, rows_remaining=remaining, active_key_id=active)


def _reencrypt_batch(
    engine: Engine, ring: KeyRing, table: SealedTable, batch_size: int, actor: str
) -> int:
    active = ring.active.key_id
    with session_scope(engine) as session:
        query = (
            _select_rows(table)
            .where(col(table.seal_key_id).is_not(None), col(table.seal_key_id) != active)
            .order_by(col(table.id))
            .limit(batch_size)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.exec(query).all()
        if not rows:
            return 0
        from_keys = sorted({row.seal_key_id for row in rows if row.seal_key_id})
        for row in rows:
            reseal_row(ring, row)
        record_event(
            session,
            team_id=SYSTEM_TEAM,
            actor=actor,
            action=AuditAction.MASTER_KEY_REENCRYPT_BATCH,
            detail={
                "table": table.__tablename__,
                "rows": len(rows),
                "to_key": active,
                "from_keys": from_keys,
            },
        )
        return len(rows)


def reseal_row(ring: KeyRing, row: SealedRow) -> None:
    """Open every sealed field of a row and seal it again under the active key."""
    if isinstance(row, ApiKey):
        if row.api_key_sealed is None or row.secret_sealed is None:
            raise VaultError(f"api key {row.id} holds no sealed material to re-seal (shredded)")
        api_key = ring.open_text(row.api_key_sealed, context=row.api_key_context())
        secret = ring.open_text(row.secret_sealed, context=row.secret_context())
        seal_api_key_row(ring, row, api_key=api_key, secret=secret)
        return
    for column, context in _sealed_fields(row):
        blob = getattr(row, column)
        setattr(row, column, ring.seal(ring.open(blob, context=context), context=context).blob)
    row.seal_key_id = ring.active.key_id


def seal_api_key_row(ring: KeyRing, row: ApiKey, *, api_key: str, secret: str) -> None:
    """Seal an API key and its secret into ``row`` under the active key, with fingerprints."""
    row.api_key_sealed = ring.seal(api_key, context=row.api_key_context()).blob
    row.secret_sealed = ring.seal(secret, context=row.secret_context()).blob
    row.seal_key_id = ring.active.key_id
    row.api_key_fingerprint = ring.fingerprint(api_key)
    row.secret_fingerprint = ring.fingerprint(secret)


def shred_api_key_row(row: ApiKey) -> None:
    """Crypto-shred: drop the sealed material; only the masked form and metadata remain.

    The old credentials of the key's unfinished rotations are the key's material too: they go
    in the same transaction (see abandon_rotations) when the row belongs to a session.
    """
    row.api_key_sealed = None
    row.secret_sealed = None
    row.seal_key_id = None
    row.secret_fingerprint = None
    session = object_session(row)
    if session is not None and row.id is not None:
        if not isinstance(session, Session):  # every session here is SQLModel's
            raise TypeError("shred_api_key_row needs a sqlmodel Session")
        abandon_rotations(session, row.id)


def abandon_rotations(session: Session, key_id: str) -> int:
    """Crypto-shred the old credentials of a key's unfinished rotations and mark them abandoned.

    For a key that leaves the bot (removed, or revoked after an incident): its rotation probes
    are cancelled with it, so nothing would ever shred the old credentials otherwise.
    Returns how many rotations were abandoned.
    """
    rotations = session.exec(
        select(Rotation)
        .where(
            col(Rotation.key_id) == key_id,
            col(Rotation.state) == RotationState.PROBING.value,
        )
        .with_for_update()
    ).all()
    for rotation in rotations:
        rotation.state = RotationState.ABANDONED.value
        rotation.old_api_key_sealed = None
        rotation.old_secret_sealed = None
        rotation.seal_key_id = None
    return len(rotations)


def retire_key(engine: Engine, ring: KeyRing, key_id: str, *, actor: str = "cli") -> KeyRing:
    """Forget a master key: refused while any row still uses it. Returns the smaller ring."""
    if not ring.has(key_id):
        raise VaultError(f"master key {key_id!r} is not configured")
    if key_id == ring.active.key_id:
        raise VaultError(f"master key {key_id!r} is the active key: make another key active first")
    with session_scope(engine) as session:
        in_use = key_ids_in_use(session).get(key_id, 0)
        if in_use:
            raise VaultError(
                f"master key {key_id!r} still seals {in_use} row(s): run the re-encryption first"
            )
        session.exec(sa.delete(CryptoCanary).where(col(CryptoCanary.key_id) == key_id))
        record_event(
            session,
            team_id=SYSTEM_TEAM,
            actor=actor,
            action=AuditAction.MASTER_KEY_RETIRE,
            detail={"key": key_id},
        )
    return ring.without(key_id)
