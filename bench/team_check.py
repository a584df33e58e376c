"""Team-wide check: 10,000 keys at 100 ms Binance latency, within Binance's documented limits.

Binance lets one IP call GET /sapi/v1/account/apiRestrictions 12,000 times a minute (Weight(IP)
1 of that endpoint's own 12,000-a-minute budget), so a team of 10,000 keys can be checked in
under a minute without a single HTTP 429. The simulator enforces the documented limits (each
/sapi endpoint's own IP budget per calendar minute, /api's shared one); the gateway paces itself
with its real budgets (``RateLimits``), as the bot does.

Prints a table and, last, one JSON line with ``keys``, ``seconds``, ``http_429``, ``http_418``.
Exits non-zero if the check took longer than the bound, or Binance answered 429 or 418.

    python bench/team_check.py [--keys 10000] [--latency-ms 100] [--workers 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bot.binance import BinanceGateway, Credentials, KeyType, RateLimits
from bot.sandbox.binance_simulator import BinanceSimulator

BOUND_SECONDS = 60.0


def run(keys: int, latency_ms: int, workers: int) -> dict:
    with BinanceSimulator(latency=latency_ms / 1000) as sim:
        batch = []
        for _ in range(keys):
            key = sim.add_key(ip_restrict=True)
            batch.append(Credentials(key.api_key, key.secret, KeyType(key.key_type)))
        # Fresh budgets, as a freshly started bot has, with Binance's documented limits.
        gateway = BinanceGateway(sim.url, max_workers=workers, limits=RateLimits())
        started = time.perf_counter()
        results = gateway.check_many(batch, patience=BOUND_SECONDS)
        seconds = time.perf_counter() - started
        gateway.close()
        statuses = [r.status for r in sim.request_log]
        return {
            "bench": "team_check",
            "keys": keys,
            "latency_ms": latency_ms,
            "workers": workers,
            "seconds": round(seconds, 2),
            "bound_seconds": BOUND_SECONDS,
            "checked": sum(1 for r in results if r.ok),
            "failed": sum(1 for r in results if not r.ok),
            "http_429": statuses.count(429),
            "http_418": statuses.count(418),
            "keys_per_second": round(keys / seconds, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    result = run(args.keys, args.latency_ms, args.workers)
    rows = [
        ("keys", f"{result['keys']:,}"),
        ("Binance latency per call", f"{result['latency_ms']} ms"),
        ("workers", result["workers"]),
        ("team-wide check", f"{result['seconds']:.1f} s (bound {BOUND_SECONDS:g} s)"),
        ("keys a second", result["keys_per_second"]),
        ("checked / failed", f"{result['checked']:,} / {result['failed']:,}"),
        ("HTTP 429 / 418 answers", f"{result['http_429']} / {result['http_418']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(result))
    ok = (
        result["seconds"] <= BOUND_SECONDS
        and result["http_429"] == 0
        and result["http_418"] == 0
        and result["failed"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
