"""Start-up mistakes, through the real command line (`python -m bot …` in a subprocess).

A mistyped key file path, garbage master keys, a missing database driver or a database path
that cannot be written must each stop every command that opens the key ring or the database
with one clear line, and create nothing: no database file, no key file. A first master key
is made only by `apikey-bot keys init`, or on a first run with nothing configured at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.sandbox.slack_standin import SlackStandIn
from storage.crypto import generate_master_key
from storage.db import current_revision, make_engine, migrate
from tests.e2e import free_port
from tests.slack_requests import SIGNING_SECRET

POSTGRES_EXTRA = "pip install 'apikey-bot[postgres]'"

# Every command that opens the key ring, the database, or both.
COMMANDS = {
    "run": [],
    "scheduler": ["scheduler"],
    "migrate": ["migrate"],
    "check": ["check"],
    "audit verify": ["audit", "verify"],
    "keys reencrypt": ["keys", "reencrypt"],
}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "MASTER_", "DATABASE_", "BINANCE_", "AWS_"))
    }
    env.update({"DATABASE_URL": f"sqlite:///{home / 'bot.db'}", "LOG_LEVEL": "WARNING", **extra})
    return env


def _run(args: list[str], home: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_command(command: str, home: Path, **settings: str) -> subprocess.CompletedProcess:
    """``command`` with ``settings``; `run` and `scheduler` get what they need from Slack
    (a stand-in that answers auth.test), so that only the setting under test is wrong."""
    if command not in ("run", "scheduler"):
        return _run(COMMANDS[command], home, _env(home, **settings))
    with SlackStandIn() as slack:
        slack_settings = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url,
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
        }
        return _run(COMMANDS[command], home, _env(home, **slack_settings, **settings))


def _keys_for(command: str) -> dict[str, str]:
    """A master key for the admin commands, which never make a first one (the others make
    one on a first run with nothing configured: that must not happen either)."""
    return (
        {"MASTER_KEYS": generate_master_key("k1").encoded()} if command.startswith("keys") else {}
    )


def _refused_in_one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line
    return done.stderr


def _files(directory: Path) -> list[str]:
    """What is in ``directory``, but SQLite's own side files: a read-only look into a WAL
    database leaves an empty -wal and -shm beside it, which the next writer removes."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if not p.name.endswith(("-wal", "-shm"))
    )


# --- MASTER_KEYS_FILE: a path that does not exist is a mistake, never a new key ------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_a_mistyped_key_file_stops_every_command_and_creates_nothing(tmp_path, command):
    mistyped = tmp_path / "secrets" / "master.kye"
    (tmp_path / "secrets").mkdir()
    line = _refused_in_one_line(_run_command(command, tmp_path, MASTER_KEYS_FILE=str(mistyped)))
    assert "MASTER_KEYS_FILE" in line and str(mistyped) in line and "does not exist" in line
    assert "apikey-bot keys init" in line  # how to make a first key on purpose
    assert _files(tmp_path) == ["secrets"]  # no key file, no database


def test_a_mistyped_key_file_is_refused_even_when_a_database_already_exists(tmp_path):
    key_file = tmp_path / "master.key"
    assert (
        _run(["keys", "init"], tmp_path, _env(tmp_path, MASTER_KEYS_FILE=str(key_file))).returncode
        == 0
    )
    sealed = _run(["keys", "reencrypt"], tmp_path, _env(tmp_path, MASTER_KEYS_FILE=str(key_file)))
    assert sealed.returncode == 0, sealed.stderr
    before = (tmp_path / "bot.db").read_bytes()
    line = _refused_in_one_line(
        _run_command("run", tmp_path, MASTER_KEYS_FILE=str(tmp_path / "master.ky"))
    )
    assert "does not exist" in line
    assert _files(tmp_path) == ["bot.db", "master.key"]
    assert (tmp_path / "bot.db").read_bytes() == before


# --- MASTER_KEYS: checked before a database is created or migrated ---------------------------


@pytest.mark.parametrize("command", ["run", "scheduler", "migrate", "keys reencrypt"])
def test_garbage_master_keys_stop_before_any_database_is_created(tmp_path, command):
    line = _refused_in_one_line(_run_command(command, tmp_path, MASTER_KEYS="garbage"))
    assert "MASTER_KEYS" in line and "garbage" not in line  # the value is never echoed
    assert _files(tmp_path) == []  # no database was created, no migration ran


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"MASTER_KEYS": "k1:c2hvcnQ="}, "must be 32 bytes"),
        ({"MASTER_KEYS": "# the key goes here"}, "holds no master key"),
        (
            {"MASTER_KEYS": generate_master_key("k1").encoded(), "MASTER_KEY_ACTIVE": "k9"},
            "MASTER_KEY_ACTIVE",
        ),
    ],
)
def test_malformed_master_keys_stop_migrate_before_it_runs(tmp_path, settings, says):
    line = _refused_in_one_line(_run(["migrate"], tmp_path, _env(tmp_path, **settings)))
    assert says in line
    assert _files(tmp_path) == []


def test_an_empty_key_file_is_refused_not_replaced(tmp_path):
    key_file = tmp_path / "apikey-bot-master.key"  # the default path, left empty
    key_file.touch(mode=0o600)
    line = _refused_in_one_line(_run_command("run", tmp_path))
    assert "holds no master key" in line and str(key_file.name) in line
    assert key_file.read_text() == "" and _files(tmp_path) == ["apikey-bot-master.key"]


def test_no_key_for_a_database_of_secrets_is_refused_before_any_migration(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    migrate(engine, revision="0016")  # an older bot's database, holding a sealed canary
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO crypto_canaries (key_id, sealed, created_at) "
                "VALUES ('k1', x'00', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    line = _refused_in_one_line(_run_command("run", tmp_path))
    assert "Refusing to create a new key" in line
    assert _files(tmp_path) == ["bot.db"]  # no key file
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    assert current_revision(engine) == "0016"  # not migrated
    engine.dispose()


# --- keys init: the one explicit way to make a first key file ------------------------------------


def test_keys_init_creates_the_configured_key_file_once_and_the_bot_uses_it(tmp_path):
    (tmp_path / "secrets").mkdir()
    key_file = tmp_path / "secrets" / "master.key"
    env = _env(tmp_path, MASTER_KEYS_FILE=str(key_file))
    made = _run(["keys", "init"], tmp_path, env)
    assert made.returncode == 0, made.stderr
    assert str(key_file) in made.stdout and "Back it up" in made.stdout
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _files(tmp_path) == ["secrets", "secrets/master.key"]  # no database yet
    content = key_file.read_bytes()
    assert content.decode().strip().splitlines()[-1].split(":", 1)[0] == "k1"
    assert content.decode() not in made.stdout + made.stderr  # the key is never printed
    sealed = _run(["keys", "reencrypt"], tmp_path, env)
    assert sealed.returncode == 0, sealed.stderr
    assert "master keys OK: k1" in _run(["check"], tmp_path, env).stdout
    again = _refused_in_one_line(_run(["keys", "init"], tmp_path, env))
    assert "already exists" in again and str(key_file) in again
    assert key_file.read_bytes() == content  # never overwritten


def test_keys_init_refuses_when_a_new_key_could_never_open_what_is_stored(tmp_path):
    k1 = generate_master_key("k1").encoded()
    sealed = _run(["keys", "reencrypt"], tmp_path, _env(tmp_path, MASTER_KEYS=k1))
    assert sealed.returncode == 0, sealed.stderr
    before = (tmp_path / "bot.db").read_bytes()
    line = _refused_in_one_line(_run(["keys", "init"], tmp_path, _env(tmp_path)))
    assert "sealed" in line
    assert _files(tmp_path) == ["bot.db"] and (tmp_path / "bot.db").read_bytes() == before


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"MASTER_KEYS": generate_master_key("k1").encoded()}, "MASTER_KEYS is set"),
        ({"MASTER_KEYS_FILE": "{home}/no/such/dir/master.key"}, "does not exist"),
    ],
)
def test_keys_init_refuses_what_it_cannot_do_and_creates_nothing(tmp_path, settings, says):
    settings = {name: value.format(home=tmp_path) for name, value in settings.items()}
    line = _refused_in_one_line(_run(["keys", "init"], tmp_path, _env(tmp_path, **settings)))
    assert says in line
    assert _files(tmp_path) == []


# --- DATABASE_URL: a missing driver or an unusable path, in one line, nothing created ----------


@pytest.mark.parametrize("command", ["run", "scheduler", "migrate", "check", "keys reencrypt"])
def test_a_missing_database_driver_names_the_extra_to_install(tmp_path, command):
    line = _refused_in_one_line(
        _run_command(
            command,
            tmp_path,
            DATABASE_URL="postgresql+psycopg2://bot@127.0.0.1/test",
            **_keys_for(command),
        )
    )
    assert "DATABASE_URL" in line and "psycopg2" in line and POSTGRES_EXTRA in line
    assert _files(tmp_path) == []  # not even a first-run key file


def test_audit_export_names_the_extra_too(tmp_path):
    done = _run(
        ["audit", "export"],
        tmp_path,
        _env(tmp_path, DATABASE_URL="postgresql+psycopg2://bot@127.0.0.1/test"),
    )
    line = _refused_in_one_line(done)
    assert POSTGRES_EXTRA in line and done.stdout == ""


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_without_psycopg_installed_postgresql_names_the_extra(tmp_path, command):
    # psycopg made unimportable for this one process, as in an install without the extra
    absent = tmp_path.parent / f"{tmp_path.name}-no-psycopg"
    (absent / "psycopg").mkdir(parents=True)
    (absent / "psycopg" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    python_path = os.pathsep.join(filter(None, [str(absent), os.environ.get("PYTHONPATH")]))
    line = _refused_in_one_line(
        _run_command(
            command,
            tmp_path,
            DATABASE_URL="postgresql+psycopg://bot@127.0.0.1/test",
            PYTHONPATH=python_path,
        )
    )
    assert "DATABASE_URL" in line and "psycopg" in line and POSTGRES_EXTRA in line
    assert _files(tmp_path) == []


@pytest.mark.parametrize("command", ["run", "scheduler", "migrate", "keys reencrypt"])
def test_a_database_path_in_a_missing_directory_is_named_and_nothing_is_created(tmp_path, command):
    database = tmp_path / "data" / "bot.db"
    line = _refused_in_one_line(
        _run_command(command, tmp_path, DATABASE_URL=f"sqlite:///{database}", **_keys_for(command))
    )
    assert "DATABASE_URL" in line and str(database) in line and "does not exist" in line
    assert _files(tmp_path) == []  # neither the directory nor a key file


def test_a_database_path_under_a_file_is_named_and_nothing_is_created(tmp_path):
    (tmp_path / "notes.txt").write_text("not a directory")
    database = tmp_path / "notes.txt" / "bot.db"
    line = _refused_in_one_line(_run_command("run", tmp_path, DATABASE_URL=f"sqlite:///{database}"))
    assert str(database) in line and "not a directory" in line
    assert _files(tmp_path) == ["notes.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any directory: run as a user")
def test_a_database_path_in_a_read_only_directory_is_named(tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    database = read_only / "bot.db"
    line = _refused_in_one_line(
        _run_command("migrate", tmp_path, DATABASE_URL=f"sqlite:///{database}")
    )
    assert str(read_only) in line and "not writable" in line
    assert _files(tmp_path) == ["read-only"]


def test_a_file_that_is_not_a_database_is_named_and_left_alone(tmp_path):
    (tmp_path / "bot.db").write_text("these are my notes, not a database\n" * 100)
    before = (tmp_path / "bot.db").read_bytes()
    line = _refused_in_one_line(_run_command("run", tmp_path))
    assert "DATABASE_URL" in line and str(tmp_path / "bot.db") in line
    assert "not a database" in line
    assert _files(tmp_path) == ["bot.db"] and (tmp_path / "bot.db").read_bytes() == before


def test_an_unreachable_postgresql_server_is_one_line(tmp_path):
    url = f"postgresql+psycopg://bot:hunter2-pw@127.0.0.1:{free_port()}/test"
    line = _refused_in_one_line(_run_command("migrate", tmp_path, DATABASE_URL=url))
    assert "DATABASE_URL" in line and "cannot connect" in line
    assert "hunter2-pw" not in line
    assert _files(tmp_path) == []


def test_admin_commands_never_make_a_first_key(tmp_path):
    line = _refused_in_one_line(_run(["keys", "reencrypt"], tmp_path, _env(tmp_path)))
    assert "no master key is configured" in line and "apikey-bot keys init" in line
    assert _files(tmp_path) == []


# --- the sandbox: its data directory is the one thing it opens from the command line -----------


def test_a_sandbox_data_dir_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a directory")
    wanted = tmp_path / "notes.txt" / "sandbox"
    done = _run(["sandbox", "--data-dir", str(wanted)], tmp_path, _env(tmp_path))
    line = _refused_in_one_line(done)
    assert "--data-dir" in line and str(wanted) in line
    assert _files(tmp_path) == ["notes.txt"]
