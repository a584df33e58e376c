"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable), key rings, and the
local stacks (bot, Binance simulator, Slack stand-in) of the end-to-end tests."""

from __future__ import annotations

import logging
import os
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


def create_postgres_database() -> str:
    """A fresh, empty database on the local server; returns its SQLAlchemy URL."""
    name = f"apikey_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty database of each kind: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'apikey-bot.db'}"
        return
    require_postgres()
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def engine(database_url) -> Iterator[Engine]:
    """A migrated database of each kind, with an audit key (in memory only: the bot seals its
    own at start-up, storage.audit_key) so that events can be written and verified."""
    engine = make_engine(database_url)
    migrate(engine)
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
