"""What one Prometheus scrape of /metrics costs with 10,000 keys: the database figures (open
incidents and pages, keys by tier and by worst finding, credential deliveries) read afresh, and
a scrape within the 15 s cache, on SQLite and (when a server answers) PostgreSQL.

    python bench/metrics_scrape.py [--keys 10000] [--rounds 5]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from _common import drop_postgres, postgres_database, seed_keys
from sqlmodel import col

from bot.binance import BinanceGateway
from bot.config import load_settings
from bot.operations.collectors import read_figures
from bot.operations.routes import start_observability
from bot.services.context import Services
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate
from storage.models import ApiKey

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
READ = {"enableReading": True, "ipRestrict": True}
TIERS = (READ, {**READ, "enableSpotAndMarginTrading": True}, {**READ, "enableWithdrawals": True})


def measure(url: str, *, keys: int, rounds: int) -> dict:
    settings = load_settings(_env_file=None, database_url=url)
    engine = make_engine(url)
    migrate(engine)
    ring = KeyRing([generate_master_key("k1")])
    seed_keys(
        engine,
        ring,
        settings,
        team_id="T0BENCH",
        count=keys,
        now=NOW,
        owner=lambda _i: "U0OWNER",
        rotated_at=lambda _i: NOW,
    )
    with engine.begin() as connection:  # what Binance said: a third of each tier
        ids = [
            row[0] for row in connection.execute(sa.select(col(ApiKey.id)).order_by(col(ApiKey.id)))
        ]
        for tier, permissions in enumerate(TIERS):
            chunk = ids[tier::3]
            connection.execute(
                sa.update(ApiKey)
                .where(col(ApiKey.id).in_(chunk))
                .values(permissions_json=permissions)
            )
    fresh = []
    for _ in range(rounds):
        started = time.perf_counter()
        figures = read_figures(engine, NOW)
        fresh.append(time.perf_counter() - started)
    assert sum(figures.keys_by_tier.values()) == keys
    services = Services(settings=settings, engine=engine, ring=ring, gateway=BinanceGateway())
    observability = start_observability(services, slack_connected=None, scheduler_lag=lambda: 0.0)
    metrics = observability.metrics["/metrics"]
    started = time.perf_counter()
    status, body, _ = metrics()  # the first scrape reads the database
    first = time.perf_counter() - started
    cached = []
    for _ in range(rounds):
        started = time.perf_counter()
        metrics()
        cached.append(time.perf_counter() - started)
    observability.close()
    services.close()
    engine.dispose()
    return {
        "keys": keys,
        "figures_s": statistics.median(fresh),
        "first_scrape_s": first,
        "cached_scrape_s": statistics.median(cached),
        "bytes": len(body),
        "status": status,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        results["sqlite"] = measure(url, keys=args.keys, rounds=args.rounds)
    postgres = postgres_database()  # None (and said so) when no server answers
    if postgres is not None:
        url, name = postgres
        try:
            results["postgresql"] = measure(url, keys=args.keys, rounds=args.rounds)
        finally:
            drop_postgres(name)
    print(f"{'database':<12}{'keys':>8}{'figures':>12}{'1st scrape':>12}{'cached':>12}")
    for name, r in results.items():
        print(
            f"{name:<12}{r['keys']:>8}{r['figures_s'] * 1000:>10.0f}ms"
            f"{r['first_scrape_s'] * 1000:>10.0f}ms{r['cached_scrape_s'] * 1000:>10.1f}ms"
        )
    figures: dict[str, object] = {"bench": "metrics_scrape", "keys": args.keys}
    for backend, r in results.items():  # one flat object, as every benchmark's last line
        figures[f"{backend}_figures_ms"] = round(r["figures_s"] * 1000, 1)
        figures[f"{backend}_first_scrape_ms"] = round(r["first_scrape_s"] * 1000, 1)
        figures[f"{backend}_cached_scrape_ms"] = round(r["cached_scrape_s"] * 1000, 2)
        figures[f"{backend}_status"] = r["status"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
