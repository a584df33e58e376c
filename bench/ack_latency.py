"""Ack latency of `/apikey status all`: 50 concurrent signed requests over HTTP against a
running bot (`python -m bot`, its own process), with Binance answering in 0 ms and then in
2000 ms, in one run.

    python bench/ack_latency.py [--requests 50] [--keys 5]

The Binance simulator and the Slack stand-in run in a third process, as Binance and Slack are
remote for a real bot; the load comes from this process. The ack must never wait for Binance:
the 2000 ms run should ack as fast as the 0 ms run. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from _common import SIGNING_SECRET, RemoteKey, RemoteServices, start_bot

from bot.binance import BinanceGateway
from bot.config import load_settings
from bot.sandbox.requests import sign, slash_command
from bot.services.custody.keys import RegistrationForm, register_key
from storage.audit_key import open_audit_key
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate
from storage.master_keys import verify_key_ring
from storage.models import KeyPurpose, KeyType


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def fire(url: str, response_url: str, count: int) -> list[float]:
    """`count` signed `/apikey status all` released together; returns each ack time (s)."""
    bodies = [
        slash_command("status all", response_url=response_url, team_id="T0TEST")
        for _ in range(count)
    ]
    times = [0.0] * count
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        headers = sign(bodies[i], secret=SIGNING_SECRET)
        barrier.wait()
        started = time.perf_counter()
        response = requests.post(url + "/slack/events", data=bodies[i], headers=headers, timeout=30)
        times[i] = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def seed(database_url: str, master: str, binance_url: str, keys: list[RemoteKey]) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    ring = KeyRing.parse(master)
    verify_key_ring(engine, ring)
    open_audit_key(engine, ring)  # as the bot's start-up does: events are MACed with it
    settings = load_settings(_env_file=None)
    gateway = BinanceGateway(binance_url)
    for i, key in enumerate(keys):
        register_key(
            engine=engine,
            ring=ring,
            gateway=gateway,
            settings=settings,
            form=RegistrationForm(
                team_id="T0TEST",
                actor="U0BENCH",
                label=f"key-{i}",
                account_alias="main",
                owner_user_id="U0BENCH",
                purpose=KeyPurpose.READ_ONLY,
                key_type=KeyType.HMAC,
                api_key=key.api_key,
                secret=key.secret,
            ),
        )
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--keys", type=int, default=5)
    args = parser.parse_args()
    remote = RemoteServices(keys=args.keys)
    response_url = remote.response_url()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        master = generate_master_key("k1").encoded()
        assert remote.binance_url is not None, "the remote stack runs a Binance simulator"
        seed(database_url, master, remote.binance_url, remote.keys)
        bot = start_bot(
            Path(tmp),
            remote=remote,
            database_url=database_url,
            master=master,
            scheduler_enabled=False,
        )
        try:
            fire(bot.url, response_url, 5)  # warm up
            for latency_ms in (0, 2000):
                remote.set_latency(latency_ms / 1000)
                time.sleep(1.0)  # let earlier reports finish
                times = fire(bot.url, response_url, args.requests)
                rows.append(
                    {
                        "latency_ms": latency_ms,
                        "p50_ms": statistics.median(times) * 1000,
                        "p99_ms": percentile(times, 99) * 1000,
                        "max_ms": max(times) * 1000,
                    }
                )
            # The reports arrive after their acks: wait for every one.
            responses = remote.wait_for("response_url", 5 + 2 * args.requests, timeout=60)
        finally:
            bot.stop()
            remote.stop()
    print(
        f"{'Binance latency':>16} {'requests':>9} {'p50 ack ms':>11} {'p99 ack ms':>11} {'max ms':>8}"
    )
    for row in rows:
        print(
            f"{row['latency_ms']:>13} ms {args.requests:>9} {row['p50_ms']:>11.1f} "
            f"{row['p99_ms']:>11.1f} {row['max_ms']:>8.1f}"
        )
    ratio = rows[1]["p99_ms"] / rows[0]["p99_ms"]
    print(f"p99 ratio (2000 ms / 0 ms): {ratio:.2f} (target <= 1.5; p99 target < 300 ms)")
    print(f"status reports delivered through response_url: {responses} of {5 + 2 * args.requests}")
    print(
        json.dumps(
            {
                "bench": "ack_latency",
                "requests": args.requests,
                "p50_ms_0": round(rows[0]["p50_ms"], 1),
                "p99_ms_0": round(rows[0]["p99_ms"], 1),
                "p50_ms_2000": round(rows[1]["p50_ms"], 1),
                "p99_ms_2000": round(rows[1]["p99_ms"], 1),
                "p99_ratio": round(ratio, 2),
                "reports_delivered": responses,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
