"""`audit verify` over 1,000,000 audit events, on SQLite and PostgreSQL, in one run.

    python bench/audit_verify.py [--events 1000000] [--batch 5000]

The events are built as the bot writes them (MACed under an audit key, each linked to the one
before it) and bulk-inserted in a child process (SQLite: executemany in large transactions;
PostgreSQL: COPY), so that this process only verifies. Verification is the real one
(storage.audit.verify_chain, as `/apikey audit verify` and `apikey-bot audit verify` run it),
compared with a checkpoint of the head as the alert channel would hold it. Its peak memory is
this process's VmHWM, reset just before (Linux /proc/self/clear_refs), so it is what verify
itself needed: it should stay flat however many events there are.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from _common import drop_postgres, postgres_database

from storage.audit import GENESIS, Checkpoint, bind_audit_key, event_mac, verify_chain
from storage.db import make_engine, migrate

START = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 20_000
COLUMNS = (
    "id",
    "team_id",
    "at",
    "actor",
    "action",
    "target",
    "target_key_id",
    "source",
    "detail",
    "prev_hash",
    "hash",
)
ACTIONS = ("key.register", "key.status", "rotation.policy", "access.denied", "key.remove")


def _rows(key: bytes, count: int):
    """The events, in order, each with its link: chunks of CHUNK row dicts."""
    prev = GENESIS
    chunk = []
    for i in range(1, count + 1):
        row = {
            "id": i,
            "team_id": "T0BENCH",
            "at": START + timedelta(seconds=i),
            "actor": f"U0USER{i % 50:03d}",
            "action": ACTIONS[i % len(ACTIONS)],
            "target": f"key-{i % 1000:04d}",
            "target_key_id": f"{i % 1000:032x}",
            "source": "slack:C0BENCH",
            "detail": {"n": i, "tier": "Trade"},
        }
        mac = event_mac(key, row, prev)
        chunk.append({**row, "prev_hash": prev, "hash": mac})
        prev = mac
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed(url: str, key_hex: str, count: int) -> None:
    """In a child process: the schema and ``count`` chained events."""
    engine = make_engine(url)
    migrate(engine)
    key = bytes.fromhex(key_hex)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            raw = connection.connection.driver_connection
            copy_sql = f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
                for chunk in _rows(key, count):
                    for row in chunk:
                        copy.write_row(
                            [json.dumps(row[n]) if n == "detail" else row[n] for n in COLUMNS]
                        )
            connection.execute(
                sa.text("SELECT setval('audit_events_id_seq', (SELECT MAX(id) FROM audit_events))")
            )
    else:
        table = sa.Table("audit_events", sa.MetaData(), autoload_with=engine)
        with engine.begin() as connection:
            for chunk in _rows(key, count):
                connection.execute(sa.insert(table), chunk)
    engine.dispose()


def _vm(field: str) -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def measure(url: str, *, events: int, batch: int) -> dict:
    key = os.urandom(32)
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=seed, args=(url, key.hex(), events))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"seeding failed (exit {child.exitcode})")
    seeded = time.perf_counter() - started
    engine = make_engine(url)
    bind_audit_key(engine, key)
    with engine.connect() as connection:
        head = connection.execute(
            sa.text("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    witness = Checkpoint(events=events, head=head, at=datetime.now(UTC))
    rss_before = _vm("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    report = verify_chain(engine, checkpoints=[witness], batch=batch)
    seconds = time.perf_counter() - started
    peak = _vm("VmHWM")
    engine.dispose()
    if not report.ok or report.events != events or report.checkpoints_checked != 1:
        raise RuntimeError(f"verify did not accept the seeded chain: {report}")
    return {
        "seed_s": round(seeded, 1),
        "verify_s": round(seconds, 2),
        "events_per_s": round(events / seconds),
        "rss_before_mb": round(rss_before, 1),
        "peak_mb": round(peak, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'audit.db'}"
        print(f"sqlite: seeding {args.events:,} events…", file=sys.stderr)
        results["sqlite"] = measure(url, events=args.events, batch=args.batch)
    pg = postgres_database()
    if pg is not None:
        try:
            print(f"postgresql: seeding {args.events:,} events…", file=sys.stderr)
            results["postgresql"] = measure(pg[0], events=args.events, batch=args.batch)
        finally:
            drop_postgres(pg[1])
    print(
        f"{'backend':<12}{'events':>11}{'verify s':>10}{'events/s':>11}{'peak MB':>9}{'seed s':>8}"
    )
    for backend, r in results.items():
        print(
            f"{backend:<12}{args.events:>11,}{r['verify_s']:>10}{r['events_per_s']:>11,}"
            f"{r['peak_mb']:>9}{r['seed_s']:>8}"
        )
    if "postgresql" not in results:
        print("postgresql  skipped (no server)")
    peak = max(r["peak_mb"] for r in results.values())
    print(
        json.dumps(
            {
                "bench": "audit_verify",
                "events": args.events,
                "batch": args.batch,
                "sqlite_seconds": results["sqlite"]["verify_s"],
                "postgres_seconds": results.get("postgresql", {}).get("verify_s"),
                "peak_mb": peak,
                "sqlite_peak_mb": results["sqlite"]["peak_mb"],
                "postgres_peak_mb": results.get("postgresql", {}).get("peak_mb"),
                "rss_before_mb": results["sqlite"]["rss_before_mb"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
