"""`apikey-bot audit export` over 1,000,000 events (SQLite, and PostgreSQL when a server
answers), as JSON lines and CSV: seconds, events a second and the export's peak resident memory
next to a 1,000-event export's (streaming: the two should be close). Then the audit forwarder
catching up on 20,000 events to a local HTTP collector (SQLite).

    python bench/audit_export.py [--events 1000000] [--forward 20000]

Each export runs as its own process (`python -m bot audit export --output FILE`), measured by
Linux's VmHWM (that process's own peak resident set). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa
from _common import POSTGRES_ADMIN_URL, drop_postgres, postgres_database

from bot.config import load_settings
from bot.jobs.audit_forwarder import start_audit_forwarder
from storage.db import make_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
MB = 2**20

_MEASURE = (
    "import re, sys\n"
    "from bot.__main__ import main\n"
    "code = main(['audit', 'export', '--format', sys.argv[1], '--output', sys.argv[2]])\n"
    "status = open('/proc/self/status').read()\n"
    "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1]) * 1024, file=sys.stderr)\n"
    "sys.exit(code)\n"
)

_SQLITE_SEED = (
    "INSERT INTO audit_events (team_id, at, actor, action, target, target_key_id, source,"
    " detail, prev_hash, hash)"
    " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)"
    " SELECT 'T0TEST', strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01',"
    "  '+' || (i % 86400) || ' seconds'), 'U0ALICE', 'key.status', 'key-' || i, 'k' || i,"
    "  'slash', json_object('i', i, 'note', 'status checked by the daily drift run'),"
    "  printf('%064x', i - 1), printf('%064x', i) FROM n"
)
_POSTGRES_SEED = (
    "INSERT INTO audit_events (team_id, at, actor, action, target, target_key_id, source,"
    " detail, prev_hash, hash)"
    " SELECT 'T0TEST', timestamptz '2026-01-01 00:00:00+00' + (i % 86400) * interval '1 second',"
    "  'U0ALICE', 'key.status', 'key-' || i, 'k' || i, 'slash',"
    "  json_build_object('i', i, 'note', 'status checked by the daily drift run'),"
    "  lpad(to_hex(i - 1), 64, '0'), lpad(to_hex(i), 64, '0')"
    " FROM generate_series(1, :count) AS i"
)


def seed(url: str, count: int) -> float:
    """``count`` events in one INSERT … SELECT; returns the seconds it took."""
    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    statement = _POSTGRES_SEED if engine.dialect.name == "postgresql" else _SQLITE_SEED
    if engine.dialect.name == "sqlite":  # sqlite3 itself: SQLAlchemy adds nothing here
        engine.dispose()
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(statement.replace(":count", "?"), (count,))
    else:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), {"count": count})
        engine.dispose()
    return time.perf_counter() - started


def export(url: str, fmt: str, out: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, fmt, str(out)],
        env={**os.environ, "DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"export failed: {result.stderr.strip()}")
    size = out.stat().st_size
    out.unlink()
    return {
        "seconds": seconds,
        "peak_mb": int(result.stderr.splitlines()[-1]) / MB,
        "mb": size / MB,
    }


def measure(make_url, events: int, tmp: Path) -> dict:
    """Seed ``events`` and 1,000 events in two databases; export each in both formats."""
    row: dict = {}
    for label, count in (("small", 1_000), ("big", events)):
        url = make_url(label)
        row[f"{label}_seed_s"] = seed(url, count)
        for fmt in ("jsonl", "csv"):
            row[f"{label}_{fmt}"] = export(url, fmt, tmp / f"{label}.{fmt}")
    return row


def forward_catch_up(events: int, tmp: Path) -> dict:
    """A forwarder starting with ``events`` already written: seconds until the collector has
    them all (batches of 100, one POST each)."""
    url = f"sqlite:///{tmp / 'forward.db'}"
    seed(url, events)
    received = [0]

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received[0] += len(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = load_settings(
        _env_file=None,
        database_url=url,
        audit_forward_url=f"http://127.0.0.1:{server.server_port}/collect",
    )
    engine = make_engine(url)
    started = time.perf_counter()
    stop = start_audit_forwarder(settings, engine)
    while received[0] < events and time.perf_counter() - started < 600:
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    stop()
    server.shutdown()
    server.server_close()
    engine.dispose()
    return {"events": received[0], "seconds": seconds, "batch": settings.audit_forward_batch}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--forward", type=int, default=20_000)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results["sqlite"] = measure(
            lambda label: f"sqlite:///{tmp / f'{label}.db'}", args.events, tmp
        )
        made: list[str] = []

        def pg_url(label: str) -> str:
            database = postgres_database()
            if database is None:
                raise LookupError("no PostgreSQL")
            made.append(database[1])
            return database[0]

        if postgres_database_reachable():
            try:
                results["postgresql"] = measure(pg_url, args.events, tmp)
            finally:
                for name in made:
                    drop_postgres(name)
        forwarded = forward_catch_up(args.forward, tmp)

    print(
        f"{'database':<11} {'format':<6} {'events':>9} {'seconds':>8} {'events/s':>9} "
        f"{'output MB':>10} {'peak MB':>8} {'peak MB, 1,000 events':>22}"
    )
    for backend, row in results.items():
        for fmt in ("jsonl", "csv"):
            big, small = row[f"big_{fmt}"], row[f"small_{fmt}"]
            print(
                f"{backend:<11} {fmt:<6} {args.events:>9,} {big['seconds']:>8.1f} "
                f"{args.events / big['seconds']:>9,.0f} {big['mb']:>10.0f} {big['peak_mb']:>8.1f} "
                f"{small['peak_mb']:>22.1f}"
            )
    print(
        f"forwarder catch-up: {forwarded['events']:,} events to a local HTTP collector in "
        f"{forwarded['seconds']:.1f} s ({forwarded['events'] / forwarded['seconds']:,.0f}/s, "
        f"batches of {forwarded['batch']})"
    )
    sqlite_jsonl = results["sqlite"]["big_jsonl"]
    figures: dict[str, object] = {
        "bench": "audit_export",
        "events": args.events,
        "seconds": round(sqlite_jsonl["seconds"], 2),
        "peak_mb": round(sqlite_jsonl["peak_mb"], 1),
        "peak_mb_1000_events": round(results["sqlite"]["small_jsonl"]["peak_mb"], 1),
        "output_mb": round(sqlite_jsonl["mb"], 1),
    }
    for backend, row in results.items():
        for fmt in ("jsonl", "csv"):
            figures[f"{backend}_{fmt}_seconds"] = round(row[f"big_{fmt}"]["seconds"], 2)
            figures[f"{backend}_{fmt}_peak_mb"] = round(row[f"big_{fmt}"]["peak_mb"], 1)
    figures["forward_events"] = forwarded["events"]
    figures["forward_seconds"] = round(forwarded["seconds"], 2)
    print(json.dumps(figures))
    return 0 if forwarded["events"] == args.forward else 1


def postgres_database_reachable() -> bool:
    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(main())
