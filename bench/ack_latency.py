"""Ack latency of `/apikey status all`: 50 concurrent signed requests over HTTP against a
running bot, with Binance answering in 0 ms and then in 2000 ms, in one run.

    python bench/ack_latency.py [--requests 50] [--keys 5]

The ack must never wait for Binance: the 2000 ms run should ack as fast as the 0 ms run.
Prints a table and, last, one JSON line.
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

from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.requests import sign, slash_command
from bot.sandbox.stack import SANDBOX_SIGNING_SECRET, start_local_stack
from bot.services.keys import RegistrationForm, register_key
from storage.models import KeyPurpose, KeyType


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def fire(url: str, slack_url: str, count: int) -> list[float]:
    """`count` signed /apikey status all requests released at once; returns ack times (s)."""
    bodies = [
        slash_command("status all", response_url=slack_url, team_id="T0TEST") for _ in range(count)
    ]
    times: list[float] = [0.0] * count
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        headers = sign(bodies[i], secret=SANDBOX_SIGNING_SECRET)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--keys", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, BinanceSimulator() as sim:
        stack = start_local_stack(workdir=Path(tmp), simulator=sim, binance_timeout_seconds=10)
        try:
            services = stack.services
            for i in range(args.keys):
                key = sim.add_key(ip_restrict=True)
                register_key(
                    engine=services.engine,
                    ring=services.ring,
                    gateway=services.gateway,
                    settings=services.settings,
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
            fire(stack.url, stack.slack.response_url(), 5)  # warm up connections and caches
            for latency_ms in (0, 2000):
                sim.latency = latency_ms / 1000
                times = fire(stack.url, stack.slack.response_url(), args.requests)
                rows.append(
                    {
                        "latency_ms": latency_ms,
                        "p50_ms": statistics.median(times) * 1000,
                        "p99_ms": percentile(times, 99) * 1000,
                        "max_ms": max(times) * 1000,
                    }
                )
            sim.latency = 0
            services.background.shutdown(wait=True)  # let the reports finish before stopping
        finally:
            stack.stop()
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
    figures = {
        "bench": "ack_latency",
        "requests": args.requests,
        "p50_ms_0": round(rows[0]["p50_ms"], 1),
        "p99_ms_0": round(rows[0]["p99_ms"], 1),
        "p50_ms_2000": round(rows[1]["p50_ms"], 1),
        "p99_ms_2000": round(rows[1]["p99_ms"], 1),
        "p99_ratio": round(ratio, 2),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
