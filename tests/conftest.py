"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable), key rings, and the
local stacks (bot, Binance simulator, Slack stand-in) of the end-to-end tests."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.stack import LocalStack, start_local_stack
from storage.audit import bind_audit_key
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate
from tests.e2e import ALICE, BOB, bot_client
from tests.slack_requests import SIGNING_SECRET, BotClient

# The server CI provides. Tests marked `postgres` skip (with this reason) when it is not
# reachable; .ci/run sets APIKEY_BOT_REQUIRE_POSTGRES=1, which turns the skip into a failure.
POSTGRES_ADMIN_URL = os.environ.get(
    "APIKEY_BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("APIKEY_BOT_REQUIRE_POSTGRES") == "1"


def _postgres_unreachable_reason() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means "not reachable"
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}"


_PG_REASON: list[str | None] = []


def postgres_unreachable_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(_postgres_unreachable_reason())
    return _PG_REASON[0]


def require_postgres() -> None:
    reason = postgres_unreachable_reason()
    if reason is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"{reason} (APIKEY_BOT_REQUIRE_POSTGRES=1: PostgreSQL tests are required)")
    pytest.skip(reason)


def create_postgres_database(*, template: str | None = None) -> str:
    """A fresh database on the local server; returns its SQLAlchemy URL. Empty, or a copy of
    the database named ``template``."""
    name = f"apikey_test_{uuid.uuid4().hex[:12]}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"{copy_of}'))
    admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Approvals (README: Approvals) hold every change of APPROVAL_REQUIRED_FOR for a second
# person; by default nothing else needs that here: the tests of one person's paths (an owner's
# tick, an admin's edit) predate it. tests/test_approvals.py turns them on.
NO_APPROVALS = "none"


@pytest.fixture(autouse=True)
def _approvals_off_unless_asked(monkeypatch) -> None:
    monkeypatch.setenv("APPROVAL_REQUIRED_FOR", NO_APPROVALS)


# --- migrated databases, migrated once ------------------------------------------------------
# Running the Alembic migrations costs a SQLite database ~0.15 s and a PostgreSQL one ~0.5 s;
# hundreds of tests need a migrated, otherwise empty database. Each test process migrates one
# of each kind once (the real `migrate`, as the bot runs it) and every test gets its own copy:
# the SQLite file copied, the PostgreSQL database made with CREATE DATABASE ... TEMPLATE. A copy
# is the migrated database byte for byte, so what a test proves is unchanged; tests of the
# migrations themselves (and of a first start) still begin with an empty database.

_TEMPLATES: dict[str, str] = {}


def _migrated_sqlite_template() -> Path:
    if "sqlite" not in _TEMPLATES:
        folder = tempfile.mkdtemp(prefix="apikey-template-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / "migrated.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        engine.dispose()  # the last connection checkpoints the WAL into the file
        leftovers = sorted(p.name for p in Path(folder).iterdir() if p != path)
        assert leftovers == [], f"the migrated SQLite file is not whole: {leftovers}"
        _TEMPLATES["sqlite"] = str(path)
    return Path(_TEMPLATES["sqlite"])


def copy_migrated_sqlite(path: Path) -> None:
    """A migrated, otherwise empty SQLite database at ``path`` (which must not exist)."""
    assert not path.exists(), path
    shutil.copyfile(_migrated_sqlite_template(), path)


@pytest.fixture(scope="session")
def migrated_postgres_template() -> Iterator[str]:
    """The name of a migrated PostgreSQL database, made once per test process, that
    ``create_postgres_database(template=...)`` copies."""
    require_postgres()
    url = create_postgres_database()
    try:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it to have no connection
        yield url.rsplit("/", 1)[1]
    finally:
        drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    """A database of each kind: a SQLite file, and a fresh PostgreSQL database. Empty, except
    for a test that also asks for ``engine``: migrated then (a copy of one migrated once)."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "apikey-bot.db"
        if migrated:
            copy_migrated_sqlite(path)
        yield f"sqlite:///{path}"
        return
    require_postgres()
    template = request.getfixturevalue("migrated_postgres_template") if migrated else None
    url = create_postgres_database(template=template)
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def engine(database_url) -> Iterator[Engine]:
    """A migrated database of each kind, with an audit key (in memory only: the bot seals its
    own at start-up, storage.audit_key) so that events can be written and verified."""
    engine = make_engine(database_url)
    migrate(engine)  # already done (``database_url``): proves the copy is at the head revision
    bind_audit_key(engine, os.urandom(32))
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for tests that only ever run on PostgreSQL."""
    require_postgres()
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def key_ring() -> KeyRing:
    return KeyRing([generate_master_key("k1")])


@pytest.fixture
def sim() -> Iterator[BinanceSimulator]:
    """A Binance simulator of this test's own."""
    with BinanceSimulator() as simulator:
        yield simulator


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def aws_env(monkeypatch, tmp_path) -> dict[str, str]:
    """Dummy credentials, and nothing of the machine's own AWS configuration."""
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "MASTER_KMS_KEY_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        **AWS_TEST_ENV,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's standalone server (AWS KMS and Secrets Manager) on 127.0.0.1, one per module."""
    from moto.server import ThreadedMotoServer  # only the AWS tests pay for importing moto

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- local stacks ------------------------------------------------------------------------------

USUAL_USERS = (ALICE, BOB)  # workspace members of every stack, with its admins


def start_test_stack(
    workdir: Path, *, users: Iterable[str] = USUAL_USERS, **settings: Any
) -> LocalStack:
    """A running local stack as the end-to-end tests use it: requests signed with the tests'
    ``SIGNING_SECRET``; ``users`` and every id of ``admin_user_ids`` are workspace members of
    the Slack stand-in (U0ALICE is named "alice"). ``settings`` go to ``start_local_stack``.

    The caller stops it; tests use the ``make_stack`` or ``stack`` fixtures, which do.
    """
    settings.setdefault("signing_secret", SIGNING_SECRET)
    database = workdir / "apikey-bot.db"  # start_local_stack's default database
    if settings.get("database_url") is None and not database.exists():
        copy_migrated_sqlite(database)  # the bot's own migration then finds nothing to do
    stack = start_local_stack(workdir=workdir, **settings)
    admins = [a.strip() for a in str(settings.get("admin_user_ids") or "").split(",")]
    for user in dict.fromkeys([*users, *filter(None, admins)]):
        stack.slack.add_user(user, name=user.removeprefix("U0").lower())
    return stack


@pytest.fixture
def make_stack(tmp_path) -> Iterator[Callable[..., LocalStack]]:
    """``make_stack(**settings)``: a stack on this test's directory (see ``start_test_stack``);
    every stack made is stopped when the test ends (stopping one early is fine too)."""
    with ExitStack() as stops:  # every stack is stopped, even if stopping another fails

        def make(*, workdir: Path | None = None, **settings: Any) -> LocalStack:
            stack = start_test_stack(workdir or tmp_path, **settings)
            stops.callback(stack.stop)
            return stack

        yield make


@pytest.fixture
def stack_settings() -> dict[str, object]:
    """The settings of ``stack`` (see ``start_test_stack``): a test file needing others
    overrides this fixture, not ``stack``."""
    return {}


@pytest.fixture
def stack(stack_settings, make_stack) -> LocalStack:
    """A stack with this file's ``stack_settings`` (asked for first, so that whatever they
    start, a simulator or a pager, outlives the stack)."""
    return make_stack(**stack_settings)


@pytest.fixture
def client(stack) -> BotClient:
    """Signed requests to ``stack``'s bot (see ``tests.e2e.bot_client``)."""
    return bot_client(stack)


# --- the fast set --------------------------------------------------------------------------------

# Tests that start a whole local stack (bot, Binance simulator, Slack stand-in), a subprocess of
# the bot or a local AWS server are marked `slow` here (others by hand); `pytest -m "not slow"`
# runs the rest (rules, rendering, parsing, storage) in well under a minute.
FULL_STACK_FIXTURES = {"make_stack", "stack", "moto_url"}
FULL_STACK_MODULES = {
    "test_audit",  # the audit CLI in a subprocess, checkpoints in the Slack stand-in
    "test_binance_simulator",
    "test_credential_delivery",  # moto's server for the AWS sink
    "test_entrypoint",  # the bot's entry point in a subprocess
    "test_kms",  # moto's server for KMS
    "test_model_sequences",
    "test_replicas",
    "test_sandbox",
    "test_sandbox_drill",
    "test_scale_out",
    "test_slack_standin",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rsplit(".", 1)[-1] if module is not None else ""
        if FULL_STACK_FIXTURES & set(getattr(item, "fixturenames", ())) or name in (
            FULL_STACK_MODULES
        ):
            item.add_marker(pytest.mark.slow)
