"""One scheduler tick over 10,000 and 100,000 keys with 1,000 reminders due, on SQLite and
PostgreSQL, in one run. Cost should follow the due rows, not the total number of keys.

    python bench/scheduler_tick.py [--keys 10000 100000] [--due 1000]

Prints a table and, last, one JSON line. PostgreSQL is skipped (and said so) when no server
answers at APIKEY_BOT_TEST_POSTGRES_URL / 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import RemoteServices, drop_postgres, postgres_database, seed_keys

from bot.app import make_web_client
from bot.binance import BinanceGateway
from bot.config import load_settings
from bot.job_queue.scheduler import FixedClock
from bot.jobs.handlers import build_scheduler
from bot.services.context import Services
from storage.audit_key import open_audit_key
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SCHEDULER_CONCURRENCY = 16  # bot.job_queue.scheduler.Scheduler's default pool


def seed(engine, ring: KeyRing, settings, *, keys: int, due: int) -> None:
    """`keys` keys with their full reminder plans; the 14-day reminder of `due` of them is due."""
    period = settings.default_rotation_days

    def rotated_at(i: int) -> datetime:
        # due keys: their 14-day lead is 1 minute old; the others are far from due
        return NOW - timedelta(days=period - 14, minutes=1) if i < due else NOW

    seed_keys(
        engine,
        ring,
        settings,
        team_id="T0BENCH",
        count=keys,
        now=NOW,
        owner=lambda _i: "U0OWNER",
        rotated_at=rotated_at,
    )


def measure(url: str, *, keys: int, due: int, slack: RemoteServices) -> dict:
    settings = load_settings(
        _env_file=None,
        slack_bot_token="xoxb-test",
        slack_api_url=slack.slack_url,
        database_url=url,
        alert_channel="C0ALERTS",
    )
    engine = make_engine(url)
    migrate(engine)
    ring = KeyRing([generate_master_key("k1")])
    open_audit_key(engine, ring)  # as the bot's start-up does: events are MACed with it
    started = time.perf_counter()
    seed(engine, ring, settings, keys=keys, due=due)
    seeded = time.perf_counter() - started
    services = Services(settings=settings, engine=engine, ring=ring, gateway=BinanceGateway())
    client = make_web_client(settings)
    scheduler = build_scheduler(
        services, client, clock=FixedClock(NOW), batch_size=due, worker_id="bench"
    )
    before = slack.count("chat.postMessage")
    started = time.perf_counter()
    report = scheduler.tick()
    tick = time.perf_counter() - started
    posted = slack.count("chat.postMessage") - before
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


def slack_floor(slack: RemoteServices, *, posts: int, concurrency: int) -> float:
    """Seconds for ``posts`` bare chat.postMessage calls to the stand-in, ``concurrency`` at a
    time (the scheduler's pool): what a tick spends on Slack alone, whatever the database."""
    settings = load_settings(
        _env_file=None, slack_bot_token="xoxb-test", slack_api_url=slack.slack_url
    )
    client = make_web_client(settings)
    channel = client.conversations_open(users="U0OWNER")["channel"]["id"]
    text = "Rotation reminder: bench is due in 14 days"

    def post(_: int) -> None:
        client.chat_postMessage(channel=channel, text=text)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        started = time.perf_counter()
        list(pool.map(post, range(posts)))
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=int, default=1000)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    # The Slack stand-in in its own process, as Slack is remote for a real bot: the bench
    # measures the bot's tick, not the stand-in's CPU (they would share one GIL in-process).
    slack = RemoteServices(simulator=False, users={"U0OWNER": "owner"})
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
    floor = slack_floor(slack, posts=args.due, concurrency=SCHEDULER_CONCURRENCY)
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
    figures["slack_floor_s"] = round(floor, 4)
    print(
        f"Slack alone: {args.due} bare chat.postMessage to the stand-in, "
        f"{SCHEDULER_CONCURRENCY} at a time = {floor:.3f} s (a floor for every tick above)"
    )
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
