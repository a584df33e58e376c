"""One scheduler tick over 10,000 and 100,000 keys with 1,000 reminders due, on SQLite and
PostgreSQL, in one run. Cost should follow the due rows, not the total number of keys.

    python bench/scheduler_tick.py [--keys 10000 100000] [--due 1000]

Prints a table and, last, one JSON line. PostgreSQL is skipped (and said so) when no server
answers at APIKEY_BOT_TEST_POSTGRES_URL / 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.app import make_web_client
from bot.binance import BinanceGateway
from bot.config import load_settings
from bot.jobs import build_scheduler
from bot.sandbox.slack_standin import SlackStandIn
from bot.scheduler import FixedClock
from bot.services.context import Services
from bot.services.reminder_plan import REMINDER_JOB, reminder_steps
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate
from storage.models import ApiKey, BinanceAccount, ScheduledJob

POSTGRES_ADMIN_URL = os.environ.get(
    "APIKEY_BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def seed(engine, ring: KeyRing, settings, *, keys: int, due: int) -> None:
    """`keys` keys with their full reminder plans; the 14-day reminder of `due` of them is due."""
    steps = reminder_steps(settings)
    period = settings.default_rotation_days
    account_id = uuid.uuid4().hex
    with engine.begin() as connection:
        connection.execute(
            sa.insert(BinanceAccount.__table__),
            [{"id": account_id, "team_id": "T0BENCH", "alias": "main", "created_at": NOW}],
        )
    sealed = ring.seal("x" * 64, context="bench").blob  # the handler never opens it
    batch = 5000
    for start in range(0, keys, batch):
        key_rows, job_rows = [], []
        for i in range(start, min(start + batch, keys)):
            key_id = uuid.uuid4().hex
            # due keys: their 14-day lead is 1 minute old; the others are far from due
            rotated = NOW - timedelta(days=period - 14, minutes=1) if i < due else NOW
            key_rows.append(
                {
                    "id": key_id,
                    "team_id": "T0BENCH",
                    "label": f"key-{i:06d}",
                    "account_id": account_id,
                    "owner_user_id": "U0OWNER",
                    "purpose": "read_only",
                    "key_type": "HMAC",
                    "status": "active",
                    "api_key_sealed": sealed,
                    "secret_sealed": sealed,
                    "seal_key_id": ring.active.key_id,
                    "api_key_masked": "AAAA…ZZZZ",
                    "created_by": "U0OWNER",
                    "created_at": rotated,
                    "updated_at": rotated,
                    "last_rotated_at": rotated,
                    "rotation_period_days": period,
                }
            )
            due_date = rotated + timedelta(days=period)
            cycle = due_date.strftime("%Y%m%dT%H%M%S")
            for step in steps:
                job_rows.append(
                    {
                        "id": uuid.uuid4().hex,
                        "team_id": "T0BENCH",
                        "kind": REMINDER_JOB,
                        "key_id": key_id,
                        "dedupe_key": f"reminder:{key_id}:{cycle}:{step.name}",
                        "due_at": due_date + step.offset,
                        "state": "pending",
                        "attempts": 0,
                        "late": False,
                        "payload": {"cycle": cycle, "step": step.name},
                    }
                )
        with engine.begin() as connection:
            connection.execute(sa.insert(ApiKey.__table__), key_rows)
            connection.execute(sa.insert(ScheduledJob.__table__), job_rows)
    # Fresh statistics, as a long-running database has them (and SQLite's WAL folded back).
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(sa.text("ANALYZE"))
        if engine.dialect.name == "sqlite":
            connection.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))


class RemoteSlack:
    """The Slack stand-in in its own process, as Slack is remote for a real bot: the bench
    measures the bot's tick, not the stand-in's CPU (they would share one GIL in-process)."""

    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._proc = multiprocessing.Process(target=_serve_slack, args=(child,), daemon=True)
        self._proc.start()
        self.url = self._conn.recv()

    def posted(self) -> int:
        self._conn.send("count")
        return self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(timeout=10)


def _serve_slack(conn) -> None:
    with SlackStandIn() as slack:
        slack.add_user("U0OWNER", name="owner")
        conn.send(slack.url)
        while (command := conn.recv()) != "stop":
            if command == "count":
                conn.send(len(slack.calls_to("chat.postMessage")))


def measure(url: str, *, keys: int, due: int, slack: RemoteSlack) -> dict:
    settings = load_settings(
        _env_file=None,
        slack_bot_token="xoxb-test",
        slack_api_url=slack.url,
        database_url=url,
        alert_channel="C0ALERTS",
    )
    engine = make_engine(url)
    migrate(engine)
    ring = KeyRing([generate_master_key("k1")])
    started = time.perf_counter()
    seed(engine, ring, settings, keys=keys, due=due)
    seeded = time.perf_counter() - started
    services = Services(settings=settings, engine=engine, ring=ring, gateway=BinanceGateway())
    client = make_web_client(settings)
    scheduler = build_scheduler(
        services, client, clock=FixedClock(NOW), batch_size=due, worker_id="bench"
    )
    before = slack.posted()
    started = time.perf_counter()
    report = scheduler.tick()
    tick = time.perf_counter() - started
    posted = slack.posted() - before
    scheduler.close()
    services.close()
    engine.dispose()
    return {
        "keys": keys,
        "due": due,
        "tick_s": tick,
        "posted": posted,
        "done": report.done,
        "seed_s": seeded,
    }


def postgres_database() -> tuple[str, str] | None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=int, default=1000)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    slack = RemoteSlack()
    with tempfile.TemporaryDirectory() as tmp:
        for keys in args.keys:
            url = f"sqlite:///{Path(tmp) / f'bench-{keys}.db'}"
            results.setdefault("sqlite", []).append(
                measure(url, keys=keys, due=args.due, slack=slack)
            )
            pg = postgres_database()
            if pg is not None:
                try:
                    results.setdefault("postgresql", []).append(
                        measure(pg[0], keys=keys, due=args.due, slack=slack)
                    )
                finally:
                    drop_postgres(pg[1])
    slack.stop()
    print(f"{'database':<11} {'keys':>8} {'due':>6} {'posted':>7} {'tick s':>8} {'seed s':>8}")
    figures: dict[str, object] = {"bench": "scheduler_tick", "due": args.due}
    ok = True
    for backend, rows in results.items():
        for row in rows:
            print(
                f"{backend:<11} {row['keys']:>8} {row['due']:>6} {row['posted']:>7} "
                f"{row['tick_s']:>8.3f} {row['seed_s']:>8.1f}"
            )
            figures[f"{backend}_{row['keys']}_tick_s"] = round(row["tick_s"], 4)
            ok &= row["posted"] == row["due"]
        if len(rows) >= 2:
            ratio = rows[-1]["tick_s"] / rows[0]["tick_s"]
            figures[f"{backend}_ratio"] = round(ratio, 2)
            print(
                f"{backend}: {rows[-1]['keys']}-key tick / {rows[0]['keys']}-key tick = {ratio:.2f}x"
            )
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
