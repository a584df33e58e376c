"""The benchmarks still run: each is started as a person would start it, with a small load, and
its last line is the one JSON object reports read. Speed is measured by the benchmarks
themselves (bench/), never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # each starts the bot as a process, with Binance and Slack


def run_bench(script: str, *args: str, timeout: float = 240) -> tuple[str, dict]:
    """Run ``bench/<script>``; its whole output and its last line, parsed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MASTER_KEY"))}
    env.pop("DATABASE_URL", None)
    env.pop("BINANCE_API_URL", None)
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    return result.stdout, json.loads(lines[-1])


def test_the_containment_bench_runs_and_every_key_is_deleted():
    """bench/contain.py with three incidents, one at a time: each governed key, created through
    the bot, is reported compromised and proven deleted in Binance."""
    out, summary = run_bench("contain.py", "--incidents", "3")
    assert summary["bench"] == "contain" and summary["incidents"] == 3
    assert summary["latency_ms"] == 100 and summary["burst"] is False
    assert summary["deleted"] == 3  # Binance (the simulator) deleted every reported key
    assert 0 < summary["p50_s"] <= summary["p95_s"] <= summary["max_s"]
    assert "contained as: deleted;" in out
    # The manual path is named, with no invented figure.
    (manual,) = [line for line in out.splitlines() if "manual path" in line]
    assert "minutes" in manual and not any(ch.isdigit() for ch in manual)


def test_a_burst_of_reports_is_contained_too():
    """All reports at once: the bot contains every key, none lost behind another."""
    _, summary = run_bench("contain.py", "--incidents", "3", "--burst")
    assert summary["burst"] is True and summary["deleted"] == 3
