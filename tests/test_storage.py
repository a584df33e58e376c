"""Storage on SQLite and PostgreSQL: migrations, sealed rows, canary, re-encryption, retirement."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from storage.crypto import KeyRing, OpenFailed, generate_master_key
from storage.db import current_revision, make_engine, migrate, session_scope
from storage.master_keys import (
    VaultError,
    load_key_ring,
    reencrypt_all,
    retire_key,
    shred_api_key_row,
    verify_key_ring,
)
from storage.models import ApiKey, AuditEvent, CryptoCanary, KeyStatus
from tests.factories import random_api_key, stored_key

REPO = Path(__file__).resolve().parent.parent


def _dump(engine) -> bytes:
    """Everything the database holds, as bytes: the raw files for SQLite, pg_dump for PostgreSQL."""
    if engine.dialect.name == "sqlite":
        engine.dispose()
        path = Path(engine.url.database)
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    if shutil.which("pg_dump"):
        return subprocess.run(["pg_dump", url], check=True, capture_output=True).stdout
    chunks: list[bytes] = []
    with engine.connect() as connection:
        for table in sa.inspect(connection).get_table_names():
            chunks.extend(
                repr(r).encode() for r in connection.execute(sa.text(f"SELECT * FROM {table}"))
            )
    return b"\n".join(chunks)


def _forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex().encode()]


def test_migrations_create_the_schema_and_are_idempotent(engine):
    assert current_revision(engine) is not None
    migrate(engine)  # a second run (another replica starting) changes nothing
    tables = set(sa.inspect(engine).get_table_names())
    assert {"api_keys", "binance_accounts", "audit_events", "crypto_canaries"} <= tables


def test_database_holds_no_plaintext_secret_or_api_key(engine, key_ring):
    api_key, secret = random_api_key(), random_api_key()
    with session_scope(engine) as session:
        stored_key(session, key_ring, label="bot", api_key=api_key, secret=secret)
    dump = _dump(engine)
    assert b"bot" in dump  # the dump really holds the row
    for value in (api_key, secret):
        for form in _forms(value):
            assert form not in dump


def test_sealed_row_opens_and_a_copied_ciphertext_does_not(engine, key_ring):
    with session_scope(engine) as session:
        a = stored_key(session, key_ring, label="a", secret="secret-of-a")
        b = stored_key(session, key_ring, label="b", secret="secret-of-b")
        a_id, b_id = a.id, b.id
    with session_scope(engine) as session:
        a = session.get(ApiKey, a_id)
        b = session.get(ApiKey, b_id)
        assert key_ring.open_text(a.secret_sealed, context=a.secret_context()) == "secret-of-a"
        b.secret_sealed = a.secret_sealed  # an attacker with write access swaps ciphertexts
    with Session(engine) as session:
        b = session.get(ApiKey, b_id)
        with pytest.raises(OpenFailed, match="another row"):
            key_ring.open(b.secret_sealed, context=b.secret_context())


def test_flipped_byte_in_the_database_fails_to_open(engine, key_ring):
    with session_scope(engine) as session:
        row_id = stored_key(session, key_ring, label="a").id
    with session_scope(engine) as session:
        row = session.get(ApiKey, row_id)
        blob = bytearray(row.secret_sealed)
        blob[-3] ^= 0x80
        row.secret_sealed = bytes(blob)
    with Session(engine) as session:
        row = session.get(ApiKey, row_id)
        with pytest.raises(OpenFailed):
            key_ring.open(row.secret_sealed, context=row.secret_context())


def test_label_is_unique_per_workspace_among_live_keys(engine, key_ring):
    with session_scope(engine) as session:
        stored_key(session, key_ring, label="bot", team_id="T1")
        stored_key(session, key_ring, label="bot", team_id="T2")
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        stored_key(session, key_ring, label="bot", team_id="T1")
    with session_scope(engine) as session:
        old = session.exec(select(ApiKey).where(ApiKey.team_id == "T1")).one()
        shred_api_key_row(old)
        old.status = KeyStatus.REMOVED.value
    with session_scope(engine) as session:  # a removed key's label is free again
        stored_key(session, key_ring, label="bot", team_id="T1")


def test_timestamps_come_back_timezone_aware(engine, key_ring):
    with session_scope(engine) as session:
        row_id = stored_key(session, key_ring, label="a").id
    with Session(engine) as session:
        assert session.get(ApiKey, row_id).created_at.tzinfo is not None


def test_verify_writes_a_canary_and_accepts_the_right_key(engine, key_ring):
    verify_key_ring(engine, key_ring)
    verify_key_ring(engine, key_ring)
    with Session(engine) as session:
        assert [c.key_id for c in session.exec(select(CryptoCanary)).all()] == ["k1"]


def test_wrong_master_key_is_refused_and_changes_nothing(engine, key_ring):
    with session_scope(engine) as session:
        stored_key(session, key_ring, label="a")
    verify_key_ring(engine, key_ring)
    before = _table_counts(engine)
    with pytest.raises(VaultError, match="does not open"):
        verify_key_ring(engine, KeyRing([generate_master_key("k1")]))
    with pytest.raises(VaultError, match="not configured"):
        verify_key_ring(engine, KeyRing([generate_master_key("k2")]))
    assert _table_counts(engine) == before


def _table_counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            t: connection.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar()
            for t in ("api_keys", "crypto_canaries", "audit_events")
        }


def test_missing_key_with_sealed_data_never_creates_a_new_key(engine, key_ring, tmp_path):
    with session_scope(engine) as session:
        stored_key(session, key_ring, label="a")
    key_file = tmp_path / "master.key"
    with pytest.raises(VaultError, match="Refusing to create"):
        load_key_ring(engine=engine, keys_text=None, active_id=None, key_file=key_file)
    assert not key_file.exists()


def test_fresh_install_creates_an_owner_only_key_file_once(engine, tmp_path, caplog):
    key_file = tmp_path / "master.key"
    ring = load_key_ring(engine=engine, keys_text=None, active_id=None, key_file=key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "Back it up" in caplog.text and str(key_file) in caplog.text
    again = load_key_ring(engine=engine, keys_text=None, active_id=None, key_file=key_file)
    assert again.export_line("k1") == ring.export_line("k1")


def test_reencryption_interrupted_half_way_and_rerun_leaves_every_row_readable(engine):
    k1 = generate_master_key("k1")
    old_ring = KeyRing([k1])
    secrets_by_id = {}
    with session_scope(engine) as session:
        for i in range(25):
            row = stored_key(session, old_ring, label=f"key-{i}", secret=f"secret-{i}")
            secrets_by_id[row.id] = f"secret-{i}"
    new_ring = KeyRing([k1, generate_master_key("k2")])

    first = reencrypt_all(engine, new_ring, batch_size=10, max_batches=1)
    assert (first.rows_resealed, first.rows_remaining) == (10, 15)
    _assert_all_open(engine, new_ring, secrets_by_id)  # half old, half new: all readable

    rest = reencrypt_all(engine, new_ring, batch_size=10)
    assert (rest.rows_resealed, rest.rows_remaining) == (15, 0)
    _assert_all_open(engine, new_ring, secrets_by_id)
    with Session(engine) as session:
        assert {r.seal_key_id for r in session.exec(select(ApiKey)).all()} == {"k2"}
        assert session.exec(
            select(AuditEvent).where(AuditEvent.action == "master_key.reencrypt_batch")
        ).all()
    # fingerprints follow the active key, so duplicates are still found after rotation
    only_new = KeyRing([new_ring.active])
    _assert_all_open(engine, only_new, secrets_by_id)


def _assert_all_open(engine, ring, secrets_by_id):
    with Session(engine) as session:
        for row in session.exec(select(ApiKey)).all():
            assert (
                ring.open_text(row.secret_sealed, context=row.secret_context())
                == secrets_by_id[row.id]
            )
            assert row.secret_fingerprint in ring.fingerprints(secrets_by_id[row.id])


def test_retiring_a_key_is_refused_while_rows_use_it(engine):
    k1, k2 = generate_master_key("k1"), generate_master_key("k2")
    with session_scope(engine) as session:
        stored_key(session, KeyRing([k1]), label="a")
    ring = KeyRing([k1, k2])
    verify_key_ring(engine, ring)
    with pytest.raises(VaultError, match="still seals 1 row"):
        retire_key(engine, ring, "k1")
    with pytest.raises(VaultError, match="active key"):
        retire_key(engine, ring, "k2")
    reencrypt_all(engine, ring)
    smaller = retire_key(engine, ring, "k1")
    assert smaller.key_ids == ("k2",)
    verify_key_ring(engine, smaller)  # start-up with the retired key gone works


def test_reencryption_killed_mid_run_then_rerun_from_the_cli(database_url, tmp_path):
    """A real interruption: the CLI process is SIGKILLed while re-sealing, then run again."""
    k1, k2 = generate_master_key("k1"), generate_master_key("k2")
    engine = make_engine(database_url)
    migrate(engine)
    secrets_by_id = {}
    with session_scope(engine) as session:
        for i in range(400):
            row = stored_key(session, KeyRing([k1]), label=f"key-{i}", secret=f"secret-{i}")
            secrets_by_id[row.id] = f"secret-{i}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MASTER_KEYS": f"{k1.encoded()},{k2.encoded()}",
        "LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "bot", "keys", "reencrypt", "--batch-size", "5"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env)
    _wait_until_some_rows_move(engine, "k2", proc)
    proc.kill()
    proc.wait()
    ring = KeyRing([k1, k2])
    _assert_all_open(engine, ring, secrets_by_id)
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "0 still to do" in done.stdout
    _assert_all_open(engine, KeyRing([k2]), secrets_by_id)
    engine.dispose()


def _wait_until_some_rows_move(engine, key_id, proc, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            moved = connection.execute(
                sa.text("SELECT COUNT(*) FROM api_keys WHERE seal_key_id = :k"), {"k": key_id}
            ).scalar()
        if moved:
            return
        assert proc.poll() is None, "re-encryption finished before it could be interrupted"
        time.sleep(0.01)
    raise AssertionError("re-encryption never started")


def test_migrations_match_the_models(engine):
    """Every table and column the models declare exists as the migrations made it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_upgrade_shreds_old_credentials_left_by_keys_removed_mid_rotation(engine, key_ring):
    """Revision 0009 clears what earlier versions left behind: a key removed or revoked during
    its rotation kept the rotation's old credentials sealed with nothing left to shred them."""
    from datetime import timedelta

    from storage.models import Rotation, RotationState, utcnow

    def rotation_of(row: ApiKey) -> Rotation:
        rotation = Rotation(
            team_id=row.team_id,
            key_id=row.id,
            started_by="U0ALICE",
            started_at=utcnow(),
            grace_until=utcnow() + timedelta(hours=24),
            old_masked="abcd…wxyz",
            old_key_type="HMAC",
            seal_key_id=key_ring.active.key_id,
        )
        rotation.old_api_key_sealed = key_ring.seal(
            "old-key", context=rotation.api_key_context()
        ).blob
        rotation.old_secret_sealed = key_ring.seal(
            "old-secret", context=rotation.secret_context()
        ).blob
        return rotation

    with session_scope(engine) as session:
        removed = stored_key(session, key_ring, label="gone")
        removed.status = KeyStatus.REMOVED.value
        live = stored_key(session, key_ring, label="still-rotating")
        live.status = KeyStatus.ROTATING.value
        orphan, kept = rotation_of(removed), rotation_of(live)
        session.add_all([orphan, kept])
        orphan_id, kept_id = orphan.id, kept.id
    # as a database written before revision 0009: the later revisions undone (0009 and 0010
    # change no schema; 0011's table goes), the rows above kept
    from alembic import command

    from storage.db import alembic_config

    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")

    migrate(engine)

    assert current_revision(engine) == _head_revision(engine)
    with Session(engine) as session:
        orphan, kept = session.get(Rotation, orphan_id), session.get(Rotation, kept_id)
        assert orphan.state == RotationState.ABANDONED.value
        assert (orphan.old_api_key_sealed, orphan.old_secret_sealed, orphan.seal_key_id) == (
            None,
            None,
            None,
        )
        assert kept.state == RotationState.PROBING.value
        assert key_ring.open_text(kept.old_secret_sealed, context=kept.secret_context()) == (
            "old-secret"
        )


def test_replicas_starting_together_write_one_canary_and_all_start(engine):
    """Several processes verifying the same fresh database at once (replicas starting): the
    active key's canary is written once and none of them fails."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ring = KeyRing([generate_master_key("k1")])
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        verify_key_ring(engine, ring)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda _: start(), range(6)))
    with Session(engine) as session:
        assert [c.key_id for c in session.exec(select(CryptoCanary)).all()] == ["k1"]
    verify_key_ring(engine, ring)


def _head_revision(engine) -> str | None:
    from alembic.script import ScriptDirectory

    from storage.db import alembic_config

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_upgrade_gives_earlier_incidents_their_commander_and_outcome(engine, key_ring):
    """Revision 0017: before it, whoever raised an incident led it and every closed incident
    was handled as a real leak (there was no false-alarm close)."""
    from alembic import command

    from storage.db import alembic_config
    from storage.models import Incident, utcnow

    with session_scope(engine) as session:
        key = stored_key(session, key_ring, label="leaked")
        now = utcnow()
        rows = {
            state: Incident(
                team_id=key.team_id,
                key_id=key.id,
                label=key.label,
                account_alias="main",
                state=state,
                raised_by=f"U0{state.upper()}",
                raised_at=now,
                activity_since=now,
            )
            for state in ("open", "closed")
        }
        session.add_all(rows.values())
        ids = {state: row.id for state, row in rows.items()}
    with engine.begin() as connection:  # as a database written before revision 0017
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, "0016")

    migrate(engine)

    with Session(engine) as session:
        opened, closed = (session.get(Incident, ids[s]) for s in ("open", "closed"))
        assert (opened.commander, opened.outcome) == ("U0OPEN", None)
        assert (closed.commander, closed.outcome) == ("U0CLOSED", "handled")
