"""What the benchmarks share: Binance and Slack in another process, the bot as its own process,
and keys seeded in bulk through the storage layer.

- ``RemoteServices``: the Binance simulator (with keys) and the Slack stand-in in a child process,
  as Binance and Slack are remote for a real bot: the bot's process is measured, not theirs (in
  one process they would share one interpreter lock).
- ``start_bot``: ``python -m bot`` in HTTP mode on a free port, pointed at those services.
- ``seed_keys``: thousands of registered keys with their reminder plans, inserted directly (no
  Binance round trip per key); with credentials, their secrets are sealed under the master key
  exactly as registration seals them, so the bot can open and check them.
- ``postgres_database`` / ``drop_postgres``: a scratch PostgreSQL database for one run (None,
  said on stderr, when no server answers).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from bot.binance import KeyPermissions
from bot.job_queue.kinds import JobKind
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.rotation.reminder_plan import reminder_steps
from storage.crypto import KeyRing, mask_api_key
from storage.master_keys import seal_api_key_row
from storage.models import ApiKey, BinanceAccount, ScheduledJob

POSTGRES_ADMIN_URL = os.environ.get(
    "APIKEY_BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SIGNING_SECRET = "bench-signing-secret"  # local only, like every key in the simulator
BOT_TOKEN = "xoxb-test"  # the Slack stand-in's default token


# --- Binance and Slack, remote --------------------------------------------------------------


@dataclass(frozen=True)
class RemoteKey:
    """A key the simulator holds: what a user would paste, and what Binance says about it."""

    api_key: str
    secret: str = field(repr=False)
    key_type: str
    restrictions: dict


class RemoteServices:
    """The Binance simulator (unless ``simulator=False``) holding ``keys`` read-only keys with an
    IP whitelist, and the Slack stand-in knowing ``users`` (id -> name), in a child process."""

    def __init__(
        self,
        *,
        keys: int = 0,
        simulator: bool = True,
        users: Mapping[str, str] | None = None,
        weight_limit: int = 6000,
    ) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.Process(
            target=_serve,
            args=(child, keys, simulator, dict(users or {}), weight_limit),
            daemon=True,
        )
        self._proc.start()
        info = self._conn.recv()
        self.binance_url: str | None = info["binance"]
        self.slack_url: str = info["slack"]
        self.keys: list[RemoteKey] = info["keys"]

    def _ask(self, *command: object) -> Any:  # what the other process sent back
        self._conn.send(command)
        return self._conn.recv()

    def response_url(self) -> str:
        return self._ask("response_url")

    def set_latency(self, seconds: float) -> None:
        self._ask("latency", seconds)

    def set_permissions(self, api_keys: Sequence[str], **flags: bool) -> None:
        self._ask("permissions", list(api_keys), flags)

    def count(self, method: str) -> int:
        """How many calls the Slack stand-in received for ``method`` (or ``response_url``)."""
        return self._ask("count", method)

    def last_text(self, method: str) -> str | None:
        """The ``text`` of the last call to ``method`` (None when there was none)."""
        return self._ask("last_text", method)

    def failures(self) -> list[str]:
        """One line for each call the Slack stand-in answered with an error."""
        return self._ask("failures")

    def wait_for(self, method: str, count: int, *, timeout: float = 120.0) -> int:
        """Wait until ``method`` was called ``count`` times (or the timeout); returns the count."""
        deadline = time.monotonic() + timeout
        while (seen := self.count(method)) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return seen

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)


def _serve(conn, keys: int, simulator: bool, users: dict[str, str], weight_limit: int) -> None:
    with contextlib.ExitStack() as stack:
        sim = (
            stack.enter_context(BinanceSimulator(weight_limit=weight_limit)) if simulator else None
        )
        slack = stack.enter_context(SlackStandIn())
        for user_id, name in users.items():
            slack.add_user(user_id, name=name)
        created = [sim.add_key(ip_restrict=True) for _ in range(keys)] if sim else []
        conn.send(
            {
                "binance": sim.url if sim else None,
                "slack": slack.url,
                "keys": [
                    RemoteKey(k.api_key, k.secret, k.key_type, k.restrictions()) for k in created
                ],
            }
        )
        while (command := conn.recv()) != "stop":
            kind, *args = command
            if kind == "response_url":
                conn.send(slack.response_url())
            elif kind == "latency":
                assert sim is not None, "started without a Binance simulator"
                sim.latency = args[0]
                conn.send("ok")
            elif kind == "permissions":
                assert sim is not None, "started without a Binance simulator"
                for api_key in args[0]:
                    sim.set_permissions(api_key, **args[1])
                conn.send("ok")
            elif kind == "count":
                conn.send(len(slack.calls_to(args[0])))
            elif kind == "last_text":
                calls = slack.calls_to(args[0])
                conn.send(str(calls[-1].params.get("text", "")) if calls else None)
            elif kind == "failures":
                conn.send([call.summary() for call in slack.calls if not call.ok])


# --- the bot, as its own process ------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # VmRSS: resident now
    hwm_mb: float  # VmHWM: the highest resident set since the process started
    threads: int


def read_memory(pid: int) -> Memory:
    """The resident memory of a process, from /proc/<pid>/status (Linux)."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return Memory(
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
        hwm_mb=int(fields["VmHWM"].split()[0]) / 1024,
        threads=int(fields["Threads"]),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BotProcess:
    proc: subprocess.Popen
    url: str  # e.g. http://127.0.0.1:54321

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory(self) -> Memory:
        return read_memory(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


def start_bot(
    workdir: Path,
    *,
    remote: RemoteServices,
    database_url: str,
    master: str,
    **settings: object,
) -> BotProcess:
    """``python -m bot`` serving HTTP on 127.0.0.1, healthy; ``settings`` become environment
    variables (``scheduler_enabled=False`` -> ``SCHEDULER_ENABLED=false``)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MASTER_"))},
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": remote.slack_url,
        "DATABASE_URL": database_url,
        "MASTER_KEYS": master,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    if remote.binance_url:
        env["BINANCE_API_URL"] = remote.binance_url
    for name, value in settings.items():
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=workdir, env=env)
    bot = BotProcess(proc, f"http://127.0.0.1:{port}")
    try:
        wait_healthy(bot.url, proc)
    except BaseException:
        bot.stop()
        raise
    return bot


def wait_healthy(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the bot exited during start-up")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the bot did not become healthy")


# --- keys in bulk ---------------------------------------------------------------------------


def seed_keys(
    engine,
    ring: KeyRing,
    settings,
    *,
    team_id: str,
    count: int,
    now: datetime,
    owner: Callable[[int], str],
    rotated_at: Callable[[int], datetime],
    credentials: Sequence[RemoteKey] | None = None,
    batch: int = 5000,
) -> None:
    """``count`` live read-only keys labelled ``key-000000``… in account "main", each with its
    full reminder plan (due ``rotation period`` after ``rotated_at(i)``), owned by ``owner(i)``.

    With ``credentials`` (one per key) every row holds that key sealed under the active master
    key, its fingerprints and what Binance said about it, as registration stores it. Without,
    every row holds one placeholder ciphertext that nothing opens (enough for reminders).
    """
    steps = reminder_steps(settings)
    period = settings.default_rotation_days
    account_id = uuid.uuid4().hex
    with engine.begin() as connection:
        connection.execute(
            sa.insert(BinanceAccount),
            [{"id": account_id, "team_id": team_id, "alias": "main", "created_at": now}],
        )
    placeholder = ring.seal("x" * 64, context="bench").blob
    for start in range(0, count, batch):
        key_rows, job_rows = [], []
        for i in range(start, min(start + batch, count)):
            key_id = uuid.uuid4().hex
            rotated = rotated_at(i)
            row = {
                "id": key_id,
                "team_id": team_id,
                "label": f"key-{i:06d}",
                "account_id": account_id,
                "owner_user_id": owner(i),
                "purpose": "read_only",
                "key_type": "HMAC",
                "status": "active",
                "api_key_sealed": placeholder,
                "secret_sealed": placeholder,
                "seal_key_id": ring.active.key_id,
                "api_key_masked": "AAAA…ZZZZ",
                "created_by": owner(i),
                "created_at": rotated,
                "updated_at": rotated,
                "last_rotated_at": rotated,
                "rotation_period_days": period,
            }
            if credentials is not None:
                row.update(_sealed_columns(ring, key_id, credentials[i], now))
            key_rows.append(row)
            due_date = rotated + timedelta(days=period)
            cycle = due_date.strftime("%Y%m%dT%H%M%S")
            job_rows += [
                {
                    "id": uuid.uuid4().hex,
                    "team_id": team_id,
                    "kind": JobKind.ROTATION_REMINDER,
                    "key_id": key_id,
                    "dedupe_key": f"reminder:{key_id}:{cycle}:{step.name}",
                    "due_at": due_date + step.offset,
                    "state": "pending",
                    "attempts": 0,
                    "late": False,
                    "payload": {"cycle": cycle, "step": step.name},
                }
                for step in steps
            ]
        with engine.begin() as connection:
            connection.execute(sa.insert(ApiKey), key_rows)
            connection.execute(sa.insert(ScheduledJob), job_rows)
    # Fresh statistics, as a long-running database has them (and SQLite's WAL folded back).
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(sa.text("ANALYZE"))
        if engine.dialect.name == "sqlite":
            connection.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))


def _sealed_columns(ring: KeyRing, key_id: str, key: RemoteKey, now: datetime) -> dict:
    """The columns registration fills from a key: sealed (bound to this row), fingerprinted,
    masked, and Binance's answer about it."""
    # A table model is not validated on construction; pydantic's plugin types it as if it were.
    row = ApiKey(id=key_id)  # type: ignore[call-arg]
    seal_api_key_row(ring, row, api_key=key.api_key, secret=key.secret)
    return {
        "key_type": key.key_type,
        "api_key_sealed": row.api_key_sealed,
        "secret_sealed": row.secret_sealed,
        "seal_key_id": row.seal_key_id,
        "api_key_fingerprint": row.api_key_fingerprint,
        "secret_fingerprint": row.secret_fingerprint,
        "api_key_masked": mask_api_key(key.api_key),
        "permissions_json": KeyPermissions.from_api(key.restrictions).to_dict(),
        "permissions_checked_at": now,
        "last_check_result": "ok",
    }


# --- a scratch PostgreSQL database ------------------------------------------------------------


def postgres_database() -> tuple[str, str] | None:
    """A new, empty database on the local server: (its URL, its name); None when none answers."""
    try:
        admin = sa.create_engine(
            POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        name = f"apikey_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}", file=sys.stderr)
        return None


def drop_postgres(name: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
