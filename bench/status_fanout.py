"""Status fan-out: how long does checking 200 keys take when every Binance call costs 100 ms?

In one run, against the local Binance simulator:
  (a) the gateway's ``check_many`` over all keys (bounded thread pool, shared weight budget);
  (b) a plain sequential python-binance loop: ``Client(..., ping=False)`` and
      ``get_account_api_permissions()`` per key.
Prints a small table, then one JSON line (the last line). Exits non-zero if Binance answered
any request with HTTP 429, or if a check failed.

    python bench/status_fanout.py [--keys 200] [--latency-ms 100] [--workers 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from binance import Client

from bot.binance import BinanceGateway, Credentials, KeyType, WeightBudget
from bot.sandbox.binance_simulator import BinanceSimulator

TARGET_SPEEDUP = 15.0


def run(keys: int, latency_ms: int, workers: int) -> dict:
    with BinanceSimulator(latency=latency_ms / 1000) as sim:
        sim_keys = [sim.add_key(ip_restrict=True) for _ in range(keys)]
        batch = [Credentials(k.api_key, k.secret, KeyType(k.key_type)) for k in sim_keys]

        # A fresh budget and a cold client cache: the first status of a freshly started bot.
        gateway = BinanceGateway(sim.url, max_workers=workers, budget=WeightBudget())
        started = time.perf_counter()
        results = gateway.check_many(batch)
        gateway_s = time.perf_counter() - started
        gateway.close()
        failed = sum(1 for r in results if not r.ok)

        started = time.perf_counter()
        for key in sim_keys:
            client = Client(key.api_key, key.secret, ping=False)
            client.API_URL = sim.url + "/api"
            client.MARGIN_API_URL = sim.url + "/sapi"
            client.get_account_api_permissions()
        sequential_s = time.perf_counter() - started

        return {
            "bench": "status_fanout",
            "keys": keys,
            "latency_ms": latency_ms,
            "gateway_s": round(gateway_s, 3),
            "sequential_s": round(sequential_s, 3),
            "speedup": round(sequential_s / gateway_s, 1),
            "http_429": sim.count_429,
            "workers": workers,
            "failed": failed,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    result = run(args.keys, args.latency_ms, args.workers)

    rows = [
        ("keys", result["keys"]),
        ("latency per call", f"{result['latency_ms']} ms"),
        ("gateway check_many", f"{result['gateway_s']:.2f} s ({result['workers']} workers)"),
        ("sequential python-binance", f"{result['sequential_s']:.2f} s"),
        ("speedup", f"{result['speedup']}x (target >= {TARGET_SPEEDUP:g}x)"),
        ("HTTP 429 answers", result["http_429"]),
        ("failed checks", result["failed"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({k: v for k, v in result.items() if k not in ("workers", "failed")}))
    return 1 if result["http_429"] or result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
