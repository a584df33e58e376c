"""Every benchmark in one command: each runs as its own process, one after the other; the JSON
line each prints last is collected and checked against its target.

    python bench/report.py [--only memory ack_latency ...] [--verbose]

Prints the machine it ran on, one table (benchmark, figure, value, target, met?) and, last, one
JSON line with everything. Progress (and, with --verbose, each benchmark's own output) goes to
stderr. PostgreSQL is optional: scheduler_tick and audit_verify skip it when no server
answers, and so does the machine description. Exits non-zero only when a benchmark produced
no result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BENCHES = ("status_fanout", "ack_latency", "scheduler_tick", "memory", "audit_verify")
TIMEOUT_SECONDS = 1800
POSTGRES_URL = os.environ.get(
    "APIKEY_BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Check:
    bench: str
    figure: str
    value: str
    target: str
    met: bool | None  # None: a figure without a target, or nothing measured


@dataclass
class Outcome:
    bench: str
    exit_code: int | None  # None: timed out
    seconds: float
    result: dict | None  # the JSON line it printed last
    error: str = ""  # why there is no result


# --- running ----------------------------------------------------------------------------------


def run_bench(name: str, *, verbose: bool) -> Outcome:
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(BENCH_DIR / f"{name}.py")],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - started
        return Outcome(name, None, seconds, None, f"timed out after {TIMEOUT_SECONDS} s")
    seconds = time.perf_counter() - started
    if verbose:
        sys.stderr.write(proc.stdout + proc.stderr)
    result, error = None, ""
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        result = None
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        error = f"exit {proc.returncode}: {tail[:120]}"
    return Outcome(name, proc.returncode, seconds, result, error)


# --- targets ----------------------------------------------------------------------------------


def _met(value: float | None, ok: Callable[[float], bool]) -> bool | None:
    return None if value is None else ok(value)


def status_fanout_checks(r: dict) -> list[Check]:
    speedup, http_429 = r.get("speedup"), r.get("http_429")
    return [
        Check(
            "status_fanout",
            f"check {r.get('keys')} keys at {r.get('latency_ms')} ms/call: speedup vs sequential",
            f"{speedup}x ({r.get('gateway_s')} s vs {r.get('sequential_s')} s)",
            ">= 15x",
            _met(speedup, lambda v: v >= 15),
        ),
        Check(
            "status_fanout",
            "HTTP 429 answers from Binance",
            str(http_429),
            "0",
            _met(http_429, lambda v: v == 0),
        ),
    ]


def ack_latency_checks(r: dict) -> list[Check]:
    checks = [
        Check(
            "ack_latency",
            f"p99 ack, {r.get('requests')} concurrent status, Binance {latency} ms",
            f"{r.get(f'p99_ms_{latency}')} ms (p50 {r.get(f'p50_ms_{latency}')} ms)",
            "< 300 ms (Slack: 3 s)",
            _met(r.get(f"p99_ms_{latency}"), lambda v: v < 300),
        )
        for latency in (0, 2000)
    ]
    expected = 5 + 2 * r["requests"] if isinstance(r.get("requests"), int) else None
    delivered = r.get("reports_delivered")
    checks += [
        Check(
            "ack_latency",
            "p99 ratio, Binance 2000 ms / 0 ms",
            str(r.get("p99_ratio")),
            "<= 1.5",
            _met(r.get("p99_ratio"), lambda v: v <= 1.5),
        ),
        Check(
            "ack_latency",
            "status reports delivered",
            f"{delivered} of {expected}",
            "all",
            None if delivered is None or expected is None else delivered >= expected,
        ),
    ]
    return checks


def scheduler_tick_checks(r: dict) -> list[Check]:
    checks = []
    ticks: dict[str, dict[int, float]] = {}
    for name, value in r.items():
        if match := re.fullmatch(r"(\w+?)_(\d+)_tick_s", name):
            ticks.setdefault(match[1], {})[int(match[2])] = value
    due = r.get("due")
    for backend in ("sqlite", "postgresql"):
        by_keys = ticks.get(backend)
        if not by_keys:
            checks.append(
                Check("scheduler_tick", f"{backend}: tick", "skipped (no server)", "-", None)
            )
            continue
        small, large = min(by_keys), max(by_keys)
        for keys, seconds in sorted(by_keys.items()):
            is_large = keys == large and large > small
            checks.append(
                Check(
                    "scheduler_tick",
                    f"{backend}: tick, {keys:,} keys, {due} reminders due",
                    f"{seconds:.3f} s",
                    "< 1 s" if is_large else "-",
                    (seconds < 1) if is_large else None,
                )
            )
        if large > small:
            ratio = r.get(f"{backend}_ratio") or by_keys[large] / by_keys[small]
            checks.append(
                Check(
                    "scheduler_tick",
                    f"{backend}: tick {large:,} keys / {small:,} keys",
                    f"{ratio:.2f}x",
                    "<= 2x",
                    ratio <= 2,
                )
            )
    if (floor := r.get("slack_floor_s")) is not None:
        checks.append(
            Check(
                "scheduler_tick",
                f"Slack alone: {due} bare posts to the stand-in (floor of each tick)",
                f"{floor:.3f} s",
                "-",
                None,
            )
        )
    return checks


def memory_checks(r: dict) -> list[Check]:
    keys = r.get("keys")
    return [
        Check(
            "memory", "RSS idle after start-up, 0 keys", f"{r.get('rss_mb_empty')} MB", "-", None
        ),
        Check(
            "memory",
            f"RSS idle after start-up, {keys:,} keys",
            f"{r.get('rss_mb_idle')} MB",
            "-",
            None,
        ),
        Check(
            "memory",
            f"peak RSS (VmHWM) under load, {keys:,} keys",
            f"{r.get('rss_mb_peak')} MB (1st round {r.get('rss_mb_peak_round1')} MB; "
            f"0 keys {r.get('rss_mb_empty_peak')} MB)",
            "< 250 MB",
            r.get("under_250mb"),
        ),
        Check(
            "memory",
            f"RSS after the load, {keys:,} keys",
            f"{r.get('rss_mb_after_load')} MB",
            "-",
            None,
        ),
    ]


def audit_verify_checks(r: dict) -> list[Check]:
    events = r.get("events")
    checks = []
    for backend, key in (("sqlite", "sqlite_seconds"), ("postgresql", "postgres_seconds")):
        seconds = r.get(key)
        checks.append(
            Check(
                "audit_verify",
                f"{backend}: verify {events:,} events (after the ack)",
                "skipped (no server)" if seconds is None else f"{seconds} s",
                "-",
                None,
            )
        )
    checks.append(
        Check(
            "audit_verify",
            f"peak RSS while verifying {events:,} events",
            f"{r.get('peak_mb')} MB (before: {r.get('rss_before_mb')} MB)",
            "< 250 MB",
            _met(r.get("peak_mb"), lambda v: v < 250),
        )
    )
    return checks


CHECKS = {
    "audit_verify": audit_verify_checks,
    "status_fanout": status_fanout_checks,
    "ack_latency": ack_latency_checks,
    "scheduler_tick": scheduler_tick_checks,
    "memory": memory_checks,
}


def checks_for(outcome: Outcome) -> list[Check]:
    if outcome.result is None:
        return [Check(outcome.bench, "run", f"no result ({outcome.error})", "a result", False)]
    try:
        return CHECKS[outcome.bench](outcome.result)
    except (KeyError, TypeError, ValueError) as exc:
        return [Check(outcome.bench, "result", f"unreadable ({exc!r})", "-", False)]


# --- the machine ------------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = None
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
        "code": code_version(),
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def postgres_version() -> str | None:
    """The server's version, or None when no server answers (as scheduler_tick would skip)."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                return connection.execute(sa.text("SHOW server_version")).scalar_one()
        finally:
            engine.dispose()
    except Exception:
        return None


def code_version() -> str | None:
    """The commit measured, "-dirty" when the working tree has changes."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run(
            [git, "describe", "--always", "--dirty"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


# --- output -----------------------------------------------------------------------------------


def print_report(info: dict, outcomes: list[Outcome], checks: list[Check]) -> None:
    pg = info["postgresql"] or "not reachable"
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; "
        f"{info['os']}\n"
        f"software: Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {pg}; "
        f"code {info['code']}; {info['at']}"
    )
    print(
        "benchmarks: "
        + ", ".join(
            f"{o.bench} {o.seconds:.0f} s" + ("" if o.exit_code == 0 else f" (exit {o.exit_code})")
            for o in outcomes
        )
    )
    print()
    headers = ("benchmark", "figure", "value", "target", "met?")
    rows = [
        (c.bench, c.figure, c.value, c.target, {True: "yes", False: "NO", None: "-"}[c.met])
        for c in checks
    ]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = (f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    met = [c.met for c in checks if c.met is not None]
    print(f"\ntargets met: {sum(met)} of {len(met)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--verbose", action="store_true", help="each benchmark's output, on stderr")
    args = parser.parse_args()
    info = machine()
    outcomes = []
    for name in [b for b in BENCHES if b in args.only]:
        print(f"running {name}…", file=sys.stderr, flush=True)
        outcome = run_bench(name, verbose=args.verbose)
        status = "ok" if outcome.result is not None else outcome.error
        print(f"  {name}: {outcome.seconds:.0f} s, {status}", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    checks = [check for outcome in outcomes for check in checks_for(outcome)]
    print_report(info, outcomes, checks)
    print(
        json.dumps(
            {
                "bench": "report",
                "machine": info,
                "results": {o.bench: o.result for o in outcomes},
                "exit_codes": {o.bench: o.exit_code for o in outcomes},
                "checks": [asdict(c) for c in checks],
                "all_met": all(c.met is not False for c in checks),
            },
            ensure_ascii=False,
        )
    )
    return 0 if all(o.result is not None for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
