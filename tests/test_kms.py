"""AWS KMS as the master key (envelope encryption), against a real local server speaking the
KMS and IAM APIs: moto's standalone server, started here on 127.0.0.1 and a free port.

Covered: sealing through KMS bound to the row (EncryptionContext), the start-up canary with the
right key, a wrong key, KMS unreachable and access denied (one line, nothing changed), the
resumable re-encryption from a local ring to KMS and back, retiring, duplicate and leak
detection across the switch, and a registration through a signed modal submission while KMS
seals, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from bot.bootstrap import configure_logging, open_storage
from bot.config import ConfigError, Settings, load_settings
from bot.services.custody.keys import RegistrationForm, check_unique, open_credentials
from bot.services.errors import DomainError
from bot.services.response.leaks import match_registered_key
from storage.audit import verify_chain
from storage.crypto import (
    SEAL_VERSION,
    SEAL_VERSION_ENVELOPE,
    KeyRing,
    KeyServiceUnavailable,
    OpenFailed,
    generate_master_key,
    parse_key_id,
)
from storage.db import make_engine, migrate, session_scope
from storage.kms import kms_master_key, kms_ring_id
from storage.master_keys import VaultError, reencrypt_all, retire_key
from storage.models import ApiKey, AuditKey, CryptoCanary, KeyPurpose, KeyType
from tests.conftest import AWS_TEST_ENV
from tests.e2e import TEAM, bot_client, free_port, register_sim_key
from tests.factories import random_api_key, stored_key

REGION = "eu-west-1"
SECRET = "kms-sealed-secret-" + "q" * 46


# --- the local KMS --------------------------------------------------------------------------


@dataclass
class Kms:
    url: str
    admin: Any  # a boto3 KMS client with the tests' credentials
    key_id: str
    alias: str

    def new_key(self) -> str:
        return self.admin.create_key(Description="apikey-bot test")["KeyMetadata"]["KeyId"]


@pytest.fixture
def kms(moto_url, aws_env) -> Kms:
    """A fresh KMS key of its own, reachable by a fresh alias."""
    admin = boto3.client("kms", region_name=REGION, endpoint_url=moto_url)
    key_id = admin.create_key(Description="apikey-bot test")["KeyMetadata"]["KeyId"]
    alias = f"alias/apikey-bot-{uuid.uuid4().hex[:10]}"
    admin.create_alias(AliasName=alias, TargetKeyId=key_id)
    return Kms(url=moto_url, admin=admin, key_id=key_id, alias=alias)


# --- helpers --------------------------------------------------------------------------------


def _settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(
        _env_file=None,
        database_url=database_url,
        master_keys_file=tmp_path / "no-key-file.key",
        **overrides,
    )


def _kms_settings(database_url: str, tmp_path: Path, kms: Kms, **overrides: Any) -> Settings:
    overrides = {
        "master_kms_key_id": kms.alias,
        "aws_region": REGION,
        "aws_endpoint_url": kms.url,
        **overrides,
    }
    return _settings(database_url, tmp_path, **overrides)


def _dump(database_url: str) -> dict[str, list[str]]:
    """Every row of every table, to prove a refused start-up changed nothing."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(map(repr, connection.execute(sa.select(table)).all()))
                for table in SQLModel.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def _seed(engine, ring: KeyRing, count: int, prefix: str = "key") -> list[str]:
    """``count`` stored keys sealed under the ring's active key; returns their API keys."""
    api_keys = [random_api_key() for _ in range(count)]
    with session_scope(engine) as session:
        for i, api_key in enumerate(api_keys):
            stored_key(session, ring, label=f"{prefix}-{i}", api_key=api_key)
    return api_keys


def _rows(engine) -> list[ApiKey]:
    with Session(engine) as session:
        return list(session.exec(select(ApiKey).order_by(col(ApiKey.id))).all())


def _form(api_key: str, label: str = "again") -> RegistrationForm:
    return RegistrationForm(
        team_id=TEAM,
        actor="U0ALICE",
        label=label,
        account_alias="main",
        owner_user_id="U0ALICE",
        purpose=KeyPurpose.READ_ONLY,
        key_type=KeyType.HMAC,
        api_key=api_key,
        secret=random_api_key(),
    )


def _assert_found(engine, ring: KeyRing, api_key: str) -> None:
    """Duplicate detection (registration) and leak recognition both find ``api_key``."""
    with pytest.raises(DomainError, match="already registered"):
        check_unique(engine, ring, _form(api_key))
    with Session(engine) as session:
        assert match_registered_key(session, ring, TEAM, f"oops, pasted {api_key} here")


def _one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and text.strip() == text
    return text


# --- ids and sealing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "ring_id"),
    [
        ("alias/apikey-bot", "kms:alias/apikey-bot"),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "kms:1234abcd-12ab-34cd-56ef-1234567890ab"),
        (
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "kms:1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        ("arn:aws:kms:eu-west-1:111122223333:alias/apikey-bot", "kms:alias/apikey-bot"),
        ("mrk-" + "a" * 32, "kms:mrk-" + "a" * 32),
    ],
)
def test_a_kms_key_gets_a_short_ring_id_that_fits_the_key_id_columns(reference, ring_id):
    assert kms_ring_id(reference) == ring_id


def test_a_long_alias_is_shortened_to_a_stable_id_of_at_most_64_characters():
    long_alias = "alias/" + "team-binance-keys-production-" * 5
    ring_id = kms_ring_id(long_alias)
    assert len(ring_id) <= 64 and ring_id.startswith("kms:alias/team-binance")
    assert kms_ring_id(long_alias) == ring_id and kms_ring_id(long_alias + "x") != ring_id


def test_sealing_through_kms_is_bound_to_the_row(kms):
    key = kms_master_key(key_ref=kms.alias, region=REGION, endpoint_url=kms.url)
    ring = KeyRing([key])
    sealed = ring.seal(SECRET, context="api_key:row-a:secret")
    assert sealed.blob[0] == SEAL_VERSION_ENVELOPE and parse_key_id(sealed.blob) == key.key_id
    assert SECRET.encode() not in sealed.blob
    assert ring.open_text(sealed.blob, context="api_key:row-a:secret") == SECRET
    # Another row's context: KMS refuses the data key (the cache is keyed by context too).
    with pytest.raises(OpenFailed, match="another row"):
        ring.open(sealed.blob, context="api_key:row-b:secret")
    # A bot that never saw the blob (no cache) asks KMS, which refuses it as well.
    cold = KeyRing([kms_master_key(key_ref=kms.alias, region=REGION, endpoint_url=kms.url)])
    assert cold.open_text(sealed.blob, context="api_key:row-a:secret") == SECRET
    with pytest.raises(OpenFailed):
        cold.open(sealed.blob, context="api_key:row-b:secret")
    # Each seal has its own data key: one blob's wrapped key with another's ciphertext fails.
    other = ring.seal(SECRET, context="api_key:row-a:secret").blob
    assert other != sealed.blob
    head = 2 + sealed.blob[1]
    wrapped_length = int.from_bytes(sealed.blob[head : head + 2], "big")
    spliced = sealed.blob[: head + 2 + wrapped_length] + other[head + 2 + wrapped_length :]
    with pytest.raises(OpenFailed):
        cold.open(spliced, context="api_key:row-a:secret")


def test_a_ciphertext_copied_into_another_row_fails_to_open(engine, kms, tmp_path):
    storage = open_storage(
        _kms_settings(engine.url.render_as_string(hide_password=False), tmp_path, kms)
    )
    _seed(storage.engine, storage.key_ring, 2)
    first, second = _rows(engine)
    with session_scope(engine) as session:
        row = session.get(ApiKey, second.id)
        row.secret_sealed = first.secret_sealed
    (_, copied) = _rows(engine)
    # A process that never saw these data keys (nothing cached) asks KMS, which refuses.
    cold = KeyRing([kms_master_key(key_ref=kms.alias, region=REGION, endpoint_url=kms.url)])
    with pytest.raises(OpenFailed):
        open_credentials(cold, copied)
    assert open_credentials(cold, first).secret  # the original still opens


# --- start-up -----------------------------------------------------------------------------------


def test_start_up_with_the_kms_key_writes_its_canary_once_and_keeps_its_fingerprint_key(
    database_url, kms, tmp_path
):
    settings = _kms_settings(database_url, tmp_path, kms)
    first = open_storage(settings)
    assert first.key_ring.key_ids == (f"kms:{kms.alias}",)  # no local key file was made
    assert not (tmp_path / "no-key-file.key").exists()
    api_key = _seed(first.engine, first.key_ring, 1)[0]
    again = open_storage(settings)  # a restart, or another replica
    with Session(again.engine) as session:
        canaries = session.exec(select(CryptoCanary)).all()
    assert [c.key_id for c in canaries] == [f"kms:{kms.alias}"]
    assert canaries[0].sealed[0] == SEAL_VERSION_ENVELOPE
    assert again.key_ring.fingerprint(api_key) == first.key_ring.fingerprint(api_key)
    _assert_found(again.engine, again.key_ring, api_key)


def _kms_database(database_url: str, tmp_path: Path, kms: Kms) -> Settings:
    """A database whose secrets KMS sealed (two keys), and the settings that sealed them."""
    settings = _kms_settings(database_url, tmp_path, kms)
    storage = open_storage(settings)
    _seed(storage.engine, storage.key_ring, 2)
    storage.engine.dispose()
    return settings


def test_a_wrong_kms_key_stops_start_up_with_one_line_and_changes_nothing(
    database_url, kms, tmp_path
):
    settings = _kms_database(database_url, tmp_path, kms)
    before = _dump(database_url)
    # The alias now points at another key: KMS refuses to unwrap with it.
    kms.admin.update_alias(AliasName=kms.alias, TargetKeyId=kms.new_key())
    with pytest.raises(VaultError) as refused:
        open_storage(settings)
    assert "MASTER_KMS_KEY_ID" in _one_line(refused.value)
    assert _dump(database_url) == before
    # Another key altogether: its id is not the one the rows name.
    other = kms.new_key()
    with pytest.raises(VaultError) as missing:
        open_storage(_kms_settings(database_url, tmp_path, kms, master_kms_key_id=other))
    assert f"kms:{kms.alias}" in _one_line(missing.value) and "MASTER_KMS_KEY_ID" in str(
        missing.value
    )
    assert _dump(database_url) == before


def test_switching_to_a_kms_key_that_does_not_exist_changes_nothing(database_url, tmp_path, kms):
    k1 = generate_master_key("k1").encoded()
    storage = open_storage(_settings(database_url, tmp_path, master_keys=k1))
    _seed(storage.engine, storage.key_ring, 2)
    before = _dump(database_url)
    missing_key = str(uuid.uuid4())
    with pytest.raises(VaultError) as refused:
        open_storage(
            _kms_settings(
                database_url, tmp_path, kms, master_keys=k1, master_kms_key_id=missing_key
            )
        )
    assert "MASTER_KMS_KEY_ID" in _one_line(refused.value) and "NotFound" in str(refused.value)
    assert _dump(database_url) == before


def test_kms_unreachable_fails_closed_with_one_line_and_changes_nothing(
    database_url, kms, tmp_path
):
    settings = _kms_database(database_url, tmp_path, kms)
    before = _dump(database_url)
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(VaultError) as refused:
        open_storage(_kms_settings(database_url, tmp_path, kms, aws_endpoint_url=closed))
    text = _one_line(refused.value)
    assert "MASTER_KMS_KEY_ID" in text and "EndpointConnectionError" in text
    # A fresh switch to a KMS nobody can reach leaves the local ring's data alone too.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    fresh_url = f"sqlite:///{fresh / 'bot.db'}"
    k1 = generate_master_key("k1").encoded()
    open_storage(_settings(fresh_url, fresh, master_keys=k1))
    fresh_before = _dump(fresh_url)
    with pytest.raises(VaultError, match="MASTER_KMS_KEY_ID"):
        open_storage(_kms_settings(fresh_url, fresh, kms, master_keys=k1, aws_endpoint_url=closed))
    assert _dump(fresh_url) == fresh_before
    assert _dump(database_url) == before
    assert settings.master_kms_key_id == kms.alias


def _deny_kms(kms: Kms, monkeypatch) -> None:
    """Use the credentials of an IAM user with no KMS permission, with the server enforcing
    IAM from now on (``iam_enforced`` turns enforcement off again)."""
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=kms.url)
    user = f"bot-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    access = iam.create_access_key(UserName=user)["AccessKey"]
    requests.post(f"{kms.url}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access["SecretAccessKey"])


@pytest.fixture
def iam_enforced(kms) -> Iterator[None]:
    try:
        yield
    finally:
        requests.post(f"{kms.url}/moto-api/reset-auth", data=b"inf", timeout=5)


@pytest.mark.parametrize("already_sealed_by_kms", [True, False])
def test_kms_access_denied_fails_closed_with_one_line_and_changes_nothing(
    kms, tmp_path, monkeypatch, iam_enforced, already_sealed_by_kms
):
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    k1 = generate_master_key("k1").encoded()
    if already_sealed_by_kms:
        _kms_database(database_url, tmp_path, kms)
    else:
        storage = open_storage(_settings(database_url, tmp_path, master_keys=k1))
        _seed(storage.engine, storage.key_ring, 1)
    before = _dump(database_url)
    _deny_kms(kms, monkeypatch)
    with pytest.raises(VaultError) as refused:
        open_storage(_kms_settings(database_url, tmp_path, kms, master_keys=k1))
    text = _one_line(refused.value)
    assert "MASTER_KMS_KEY_ID" in text and "kms:Decrypt" in text
    refused_call = "Decrypt" if already_sealed_by_kms else "GenerateDataKey"
    assert f"AWS KMS {refused_call} failed" in text
    assert _dump(database_url) == before


def _run_bot(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "MASTER_", "DATABASE_", "BINANCE_", "AWS_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env={**base, **AWS_TEST_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_entry_point_prints_one_line_and_no_traceback_when_kms_refuses(kms, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = {
        "DATABASE_URL": database_url,
        "MASTER_KMS_KEY_ID": kms.alias,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": kms.url,
        "LOG_LEVEL": "WARNING",  # stderr then holds the refusal alone
    }
    sealed = _run_bot(["keys", "reencrypt"], tmp_path, **env)  # a database sealed through KMS
    assert sealed.returncode == 0, sealed.stderr
    ok = _run_bot(["check"], tmp_path, **env)
    assert ok.returncode == 0, ok.stderr
    assert f"kms:{kms.alias}" in ok.stdout
    before = (tmp_path / "bot.db").read_bytes()
    kms.admin.update_alias(AliasName=kms.alias, TargetKeyId=kms.new_key())
    done = _run_bot(["check"], tmp_path, **env)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "MASTER_KMS_KEY_ID" in done.stderr and "Traceback" not in done.stderr
    unreachable = _run_bot(
        ["check"], tmp_path, **{**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    )
    assert unreachable.returncode == 2 and unreachable.stderr.strip().count("\n") == 0
    assert "Traceback" not in unreachable.stderr
    no_region = _run_bot(["check"], tmp_path, **{**env, "AWS_REGION": ""})
    assert no_region.returncode == 2 and "AWS_REGION" in no_region.stderr
    assert (tmp_path / "bot.db").read_bytes() == before


# --- re-encryption, retiring, fingerprints across the switch ------------------------------------


def test_reencryption_from_a_local_ring_to_kms_and_back_keeps_every_key_findable(
    database_url, kms, tmp_path
):
    k1 = generate_master_key("k1").encoded()
    local = open_storage(_settings(database_url, tmp_path, master_keys=k1))
    api_keys = _seed(local.engine, local.key_ring, 5)
    kms_id = f"kms:{kms.alias}"
    assert {row.seal_key_id for row in _rows(local.engine)} == {"k1"}

    # Local -> KMS: KMS becomes the active key; the command is interrupted after one batch.
    env = {
        "DATABASE_URL": database_url,
        "MASTER_KEYS": k1,
        "MASTER_KMS_KEY_ID": kms.alias,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": kms.url,
        "MASTER_KEYS_FILE": str(tmp_path / "no-key-file.key"),
    }
    first = _run_bot(
        ["keys", "reencrypt", "--batch-size", "2", "--max-batches", "1"], tmp_path, **env
    )
    assert first.returncode == 3, first.stderr
    # Five API keys and the audit chain's key (storage.audit_key) are sealed.
    assert f"re-sealed 2 row(s) under {kms_id}; 4 still to do" in first.stdout
    mixed = _rows(local.engine)
    assert sorted(row.seal_key_id for row in mixed) == ["k1", "k1", "k1", kms_id, kms_id]
    assert {row.secret_sealed[0] for row in mixed} == {SEAL_VERSION, SEAL_VERSION_ENVELOPE}
    both = open_storage(_kms_settings(database_url, tmp_path, kms, master_keys=k1))
    for api_key in api_keys:  # half-way: every key is still found, whichever key seals it
        _assert_found(both.engine, both.key_ring, api_key)
    resumed = _run_bot(["keys", "reencrypt", "--batch-size", "2"], tmp_path, **env)
    assert resumed.returncode == 0, resumed.stderr
    assert "4 row(s)" in resumed.stdout and "0 still to do" in resumed.stdout
    assert {row.seal_key_id for row in _rows(local.engine)} == {kms_id}
    with pytest.raises(VaultError, match="active"):
        retire_key(both.engine, both.key_ring, kms_id)
    retired = _run_bot(["keys", "retire", "k1"], tmp_path, **env)
    assert retired.returncode == 0, retired.stderr

    # KMS only: the secrets open, every key is found (the fingerprint key came from the DB).
    only_kms = open_storage(_kms_settings(database_url, tmp_path, kms))
    assert only_kms.key_ring.key_ids == (kms_id,)
    opened = {open_credentials(only_kms.key_ring, row).api_key for row in _rows(only_kms.engine)}
    assert opened == set(api_keys)
    with Session(only_kms.engine) as session:
        assert session.exec(select(AuditKey)).one().seal_key_id == kms_id
    assert verify_chain(only_kms.engine).ok  # the audit key moved to KMS: the chain still fits
    for api_key in api_keys:
        _assert_found(only_kms.engine, only_kms.key_ring, api_key)

    # KMS -> local: a new local key made active, KMS kept to open what it sealed.
    k2 = generate_master_key("k2").encoded()
    back = open_storage(
        _kms_settings(database_url, tmp_path, kms, master_keys=k2, master_key_active="k2")
    )
    assert back.key_ring.active.key_id == "k2"
    for api_key in api_keys:
        _assert_found(back.engine, back.key_ring, api_key)
    report = reencrypt_all(back.engine, back.key_ring, batch_size=2, max_batches=1)
    assert (report.rows_resealed, report.rows_remaining) == (2, 4)
    with pytest.raises(VaultError, match="still seals 4 row"):
        retire_key(back.engine, back.key_ring, kms_id)
    report = reencrypt_all(back.engine, back.key_ring, batch_size=2)
    assert report.rows_remaining == 0
    assert {row.secret_sealed[0] for row in _rows(back.engine)} == {SEAL_VERSION}
    smaller = retire_key(back.engine, back.key_ring, kms_id)
    assert smaller.key_ids == ("k2",)
    assert verify_chain(back.engine).ok
    with Session(back.engine) as session:
        assert session.get(CryptoCanary, kms_id) is None

    # Local only again: no KMS setting, nothing of KMS needed.
    local_again = open_storage(_settings(database_url, tmp_path, master_keys=k2))
    rows = _rows(local_again.engine)
    assert {open_credentials(local_again.key_ring, row).api_key for row in rows} == set(api_keys)
    for api_key in api_keys:
        _assert_found(local_again.engine, local_again.key_ring, api_key)


def test_a_kms_key_whose_fingerprint_key_is_gone_refuses_to_start(kms, tmp_path):
    """Rows fingerprinted under KMS with the canary (fingerprint root) deleted: a new root would
    silently stop finding their duplicates, so start-up stops instead."""
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    settings = _kms_database(database_url, tmp_path, kms)
    engine = make_engine(database_url)
    with session_scope(engine) as session:
        session.exec(sa.delete(CryptoCanary))
    before = _dump(database_url)
    with pytest.raises(VaultError, match="fingerprint key") as refused:
        open_storage(settings)
    _one_line(refused.value)
    assert _dump(database_url) == before


def test_a_ring_not_verified_against_the_database_refuses_to_fingerprint_under_kms(kms):
    ring = KeyRing([kms_master_key(key_ref=kms.alias, region=REGION, endpoint_url=kms.url)])
    with pytest.raises(Exception, match="not loaded"):
        ring.fingerprint("anything")


# --- configuration ----------------------------------------------------------------------------


def test_kms_settings_are_checked_with_one_line_naming_the_setting(aws_env):
    with pytest.raises(ConfigError, match="MASTER_KMS_KEY_ID"):
        load_settings(_env_file=None, master_kms_key_id="my key", aws_region=REGION)
    with pytest.raises(ConfigError, match="AWS_REGION"):
        load_settings(_env_file=None, master_kms_key_id="alias/apikey-bot")
    with pytest.raises(ConfigError, match="AWS_REGION"):
        load_settings(_env_file=None, master_kms_key_id="alias/x", aws_region="Europe")
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL"):
        load_settings(_env_file=None, aws_endpoint_url="localhost:4566")
    arn = "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert load_settings(_env_file=None, master_kms_key_id=arn).kms_region == "us-east-2"


def test_kms_settings_come_from_the_environment(aws_env, monkeypatch):
    monkeypatch.setenv("MASTER_KMS_KEY_ID", "alias/apikey-bot")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://kms.eu-central-1.amazonaws.com")
    settings = load_settings(_env_file=None)
    assert settings.master_kms_key_id == "alias/apikey-bot"
    assert settings.kms_region == "eu-central-1"
    assert settings.aws_endpoint_url == "https://kms.eu-central-1.amazonaws.com"


# --- secrets stay secret ------------------------------------------------------------------------


def test_data_keys_stay_out_of_logs_and_exceptions(kms, caplog):
    stream = io.StringIO()
    handler = configure_logging("DEBUG", handler=logging.StreamHandler(stream))
    caplog.set_level(logging.DEBUG)
    try:
        key = kms_master_key(key_ref=kms.alias, region=REGION, endpoint_url=kms.url)
        ring = KeyRing([key])
        data_key, wrapped = key.service.generate_data_key(context="api_key:a:secret")
        blob = ring.seal(SECRET, context="api_key:a:secret").blob
        errors: list[BaseException] = []
        for attempt in (
            lambda: key.service.unwrap_data_key(wrapped, context="api_key:b:secret"),
            lambda: ring.open(blob, context="api_key:b:secret"),
        ):
            with pytest.raises(OpenFailed) as failed:
                attempt()
            errors.append(failed.value)
        dead = kms_master_key(
            key_ref=kms.alias, region=REGION, endpoint_url=f"http://127.0.0.1:{free_port()}"
        )
        with pytest.raises(KeyServiceUnavailable) as unavailable:
            dead.service.unwrap_data_key(wrapped, context="api_key:a:secret")
        errors.append(unavailable.value)
    finally:
        logging.getLogger().removeHandler(handler)
    forms = [data_key, base64.b64encode(data_key), data_key.hex().encode(), SECRET.encode()]
    logged = (stream.getvalue() + "\n".join(r.getMessage() for r in caplog.records)).encode()
    for form in forms:
        assert form not in logged
        for error in errors:
            assert form not in f"{error!s} {error!r} {error.__cause__!r}".encode()
    assert "Plaintext" not in logged.decode()  # botocore's DEBUG response bodies stay off


# --- end to end -----------------------------------------------------------------------------


def test_a_key_registered_through_the_modal_is_sealed_by_kms(database_url, make_stack, kms):
    stack = make_stack(
        database_url=database_url,
        master_kms_key_id=kms.alias,
        aws_region=REGION,
        aws_endpoint_url=kms.url,
    )
    kms_id = f"kms:{kms.alias}"
    assert stack.services.ring.active.key_id == kms_id
    client = bot_client(stack)
    sim_key = stack.simulator.add_key(key_type="HMAC", ip_restrict=True)
    response = register_sim_key(stack, client, sim_key, label="kms-sealed")
    assert response.status_code == 200
    assert response.json().get("response_action") == "update", response.text
    (stored,) = _rows(stack.services.engine)
    assert stored.seal_key_id == kms_id
    assert stored.secret_sealed[0] == SEAL_VERSION_ENVELOPE
    assert parse_key_id(stored.api_key_sealed) == kms_id
    assert sim_key.secret.encode() not in stored.secret_sealed
    assert open_credentials(stack.services.ring, stored).secret == sim_key.secret.strip()
    again = register_sim_key(stack, client, sim_key, label="kms-sealed-twice")
    assert "already registered" in again.text  # duplicate detection under KMS
    engine = make_engine(database_url)
    migrate(engine)
    with Session(engine) as session:
        assert session.get(CryptoCanary, kms_id) is not None
    engine.dispose()
