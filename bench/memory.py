"""Resident memory of the bot (`python -m bot`, its own process) holding 10,000 registered keys,
and of the same bot holding none, in one run.

    python bench/memory.py [--keys 10000] [--mine 300] [--reminders 200] [--drift-changes 50]
                           [--rounds 2] [--weight-limit 100000]

Each bot serves HTTP with its scheduler running; the Binance simulator (holding every key) and
the Slack stand-in run in another process. The keys are seeded straight into the bot's SQLite
database, sealed under its master key as registration seals them, with their reminder plans.
Then real work arrives, through signed requests and through the scheduler, --rounds times (the
second round shows whether memory keeps growing once the working set is there):

  /apikey list x3              every key, last known facts (no Binance)
  App Home opened x3           an admin's tab: their keys and the team's picture
  /apikey status mine x2       the requester's keys (--mine) checked on Binance
  scheduler: reminders+drift   --reminders rotation reminders come due, and the drift check of
                               every key (--drift-changes of them had withdrawals switched)
  /apikey status all           every key checked on Binance (an admin: full details)

VmRSS and VmHWM (the peak) are read from /proc/<pid>/status after start-up and after each step.
Binance's /api weight limit is lifted on both sides (--weight-limit). Each /sapi endpoint keeps
Binance's own limit (12,000 a minute per IP), so the drift check spends most of a minute's
apiRestrictions weight and `status all` right after it finds most keys refused by the bot's
budget (reported unknown). Failed checks cost about as much memory as answered ones (README,
"Tests and benchmarks"). Target: a peak under 250 MB with 10,000 keys. Prints a table and,
last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from _common import SIGNING_SECRET, BotProcess, Memory, RemoteServices, seed_keys, start_bot
from sqlmodel import col, select

from bot.config import load_settings
from bot.job_queue.kinds import JobKind, drift_check
from bot.job_queue.queue import schedule_jobs
from bot.sandbox.requests import SignedClient, app_home_opened, slash_command
from storage.audit_key import open_audit_key
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate, session_scope
from storage.master_keys import verify_key_ring
from storage.models import AuditEvent, ScheduledJob

TARGET_MB = 250.0
TEAM = "T0TEST"  # the Slack stand-in's workspace
USER = "U0BENCH"  # who types the commands: an admin who owns --mine keys
OWNERS = [f"U0OWNER{i:02d}" for i in range(50)]  # the owners of the other keys
ALERTS = "C0ALERTS"
SETTLE_SECONDS = 3.0  # after start-up / after the load, before reading "idle" memory
WAIT_SECONDS = 600.0  # the most any step may take


@dataclass(frozen=True)
class Step:
    round: int  # 0: idle, before or after the load
    name: str
    seconds: float
    memory: Memory
    note: str = ""


class Load:
    """Drives one bot through the steps, reading its memory after each."""

    def __init__(self, bot: BotProcess, remote: RemoteServices, engine, *, keys: int, args) -> None:
        self.bot, self.remote, self.engine = bot, remote, engine
        self.keys, self.args = keys, args
        self.client = SignedClient(bot.url, secret=SIGNING_SECRET, timeout=WAIT_SECONDS)
        self.steps: list[Step] = []
        self.round = 0

    def run(self) -> list[Step]:
        time.sleep(SETTLE_SECONDS)  # the scheduler's first tick, the first plans
        self.steps.append(Step(0, "idle after start-up", 0.0, self.bot.memory()))
        for round_ in range(1, self.args.rounds + 1):
            self.round = round_
            self._step("/apikey list x3", self.list_keys)
            self._step("App Home opened x3", self.open_home)
            self._step(f"/apikey status mine x2 ({min(self.args.mine, self.keys)} keys)", self.mine)
            self._step("scheduler: reminders + drift check", self.scheduler)
            self._step(f"/apikey status all ({self.keys} keys)", self.status_all)
        time.sleep(SETTLE_SECONDS)
        self.steps.append(Step(0, "idle after the load", 0.0, self.bot.memory()))
        self.client.close()
        return self.steps

    def _step(self, name: str, action: Callable[[], str]) -> None:
        started = time.perf_counter()
        note = action()
        elapsed = time.perf_counter() - started
        self.steps.append(Step(self.round, name, elapsed, self.bot.memory(), note))

    def command(self, text: str) -> dict:
        body = slash_command(
            text, response_url=self.remote.response_url(), user_id=USER, team_id=TEAM
        )
        reply = self.client.post(body)
        if reply.status != 200:
            raise RuntimeError(f"/apikey {text}: HTTP {reply.status}")
        return reply.body or {}

    def status(self, target: str) -> str:
        """One `/apikey status`: acked at once, the report arrives through response_url."""
        before = self.remote.count("response_url")
        self.command(f"status {target}")
        if self.remote.wait_for("response_url", before + 1, timeout=WAIT_SECONDS) <= before:
            raise RuntimeError(f"/apikey status {target}: no report")
        return _short(self.remote.last_text("response_url"))

    def list_keys(self) -> str:
        for _ in range(3):
            text = self.command("list").get("text", "")
        return _short(text)

    def open_home(self) -> str:
        before = self.remote.count("views.publish")
        for i in range(1, 4):
            reply = self.client.post(app_home_opened(user_id=USER, team_id=TEAM))
            if reply.status != 200:
                raise RuntimeError(f"app_home_opened: HTTP {reply.status}")
            self.remote.wait_for("views.publish", before + i, timeout=WAIT_SECONDS)
        return f"{self.remote.count('views.publish') - before} views published"

    def mine(self) -> str:
        self.status("mine")
        return self.status("mine")

    def status_all(self) -> str:
        return self.status("all")

    def scheduler(self) -> str:
        """Reminders come due and a drift check is due now; wait until the bot has done both.
        Each round flips withdrawals on (then off) for --drift-changes keys: a digest to post."""
        if self.keys:
            changed = self.remote.keys[self.args.mine : self.args.mine + self.args.drift_changes]
            enable = self.round % 2 == 1
            self.remote.set_permissions([k.api_key for k in changed], enableWithdrawals=enable)
        now = datetime.now(UTC)
        # One drift check per round: its dedupe key names the hour it is due.
        drift = drift_check(team_id=TEAM, due_at=now - timedelta(hours=self.round))
        posts = self.remote.count("chat.postMessage")
        last_event = self._last_drift_event()
        with session_scope(self.engine) as session:
            due = session.exec(
                select(ScheduledJob.id)
                .where(
                    col(ScheduledJob.kind) == JobKind.ROTATION_REMINDER,
                    col(ScheduledJob.state) == "pending",
                    col(ScheduledJob.dedupe_key).like("%:lead_14d"),
                )
                .limit(self.args.reminders)
            ).all()
            ids = list(due)
            session.exec(
                sa.update(ScheduledJob).where(col(ScheduledJob.id).in_(ids)).values(due_at=now)
            )
            schedule_jobs(session, [drift])
        deadline = time.monotonic() + WAIT_SECONDS
        while self._job_state(drift.dedupe_key) != "done":
            if time.monotonic() > deadline or self.bot.proc.poll() is not None:
                raise RuntimeError("the drift check did not finish")
            time.sleep(0.2)
        event_id, detail = self._last_drift_event()
        if event_id == last_event[0]:
            raise RuntimeError("the drift check left no audit event")
        digest = 1 if detail["changes"] or detail["could_not_check"] else 0
        sent = self.remote.wait_for("chat.postMessage", posts + len(ids) + digest) - posts
        return (
            f"{len(ids)} reminders, {sent} posts; drift checked {detail['checked']}, "
            f"{detail['changes']} changes, {detail['could_not_check']} not checked"
        )

    def _last_drift_event(self) -> tuple[int | None, dict]:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(col(AuditEvent.id), col(AuditEvent.detail))
                .where(col(AuditEvent.action) == "drift.check")
                .order_by(col(AuditEvent.id).desc())
                .limit(1)
            ).first()
        return (row[0], row[1]) if row else (None, {})

    def _job_state(self, dedupe_key: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(col(ScheduledJob.state)).where(col(ScheduledJob.dedupe_key) == dedupe_key)
            ).scalar_one_or_none()


def _short(text: str | None, width: int = 60) -> str:
    line = (text or "").splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def measure(tmp: Path, remote: RemoteServices, *, keys: int, args) -> list[Step]:
    """Seed a database with `keys` keys, start a bot on it, drive it, stop it."""
    workdir = tmp / f"bot-{keys}"
    workdir.mkdir()
    database_url = f"sqlite:///{workdir / 'bot.db'}"
    master = generate_master_key("k1").encoded()
    engine = make_engine(database_url)
    migrate(engine)
    ring = KeyRing.parse(master)
    verify_key_ring(engine, ring)
    open_audit_key(engine, ring)  # as the bot's start-up does: events are MACed with it
    now = datetime.now(UTC)
    mine = args.mine
    seed_keys(
        engine,
        ring,
        load_settings(_env_file=None),
        team_id=TEAM,
        count=keys,
        now=now,
        owner=lambda i: USER if i < mine else OWNERS[i % len(OWNERS)],
        # rotated over the last 60 days of a 90-day period: no reminder is due yet
        rotated_at=lambda i: now - timedelta(days=i % 60),
        credentials=remote.keys[:keys],
    )
    bot = start_bot(
        workdir,
        remote=remote,
        database_url=database_url,
        master=master,
        admin_user_ids=USER,
        alert_channel=ALERTS,
        scheduler_interval_seconds=1,
        binance_weight_limit=args.weight_limit,
    )
    try:
        return Load(bot, remote, engine, keys=keys, args=args).run()
    finally:
        bot.stop()
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--mine", type=int, default=300, help="keys the requester owns")
    parser.add_argument("--reminders", type=int, default=200)
    parser.add_argument("--drift-changes", type=int, default=50)
    parser.add_argument("--weight-limit", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="times the whole load is repeated")
    args = parser.parse_args()
    users = {USER: "bench", **{owner: owner.lower() for owner in OWNERS}}
    remote = RemoteServices(keys=args.keys, users=users, weight_limit=args.weight_limit)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            full = measure(Path(tmp), remote, keys=args.keys, args=args)
            empty = measure(Path(tmp), remote, keys=0, args=args)
        failures = remote.failures()
    finally:
        remote.stop()

    report(full, empty, keys=args.keys, failures=failures)
    return 0 if full[-1].memory.hwm_mb < TARGET_MB and not failures else 1


def report(full: list[Step], empty: list[Step], *, keys: int, failures: list[str]) -> None:
    print(
        f"{'round':>5}  {'step':<38} {'s':>5} {'RSS MB':>7} {'peak MB':>8}"
        f"  {'0 keys: RSS':>11} {'peak':>6}  outcome with {keys} keys"
    )
    for step, other in zip(full, empty, strict=True):
        print(
            f"{step.round or '':>5}  {step.name:<38} {step.seconds:>5.1f} "
            f"{step.memory.rss_mb:>7.1f} {step.memory.hwm_mb:>8.1f}  "
            f"{other.memory.rss_mb:>11.1f} {other.memory.hwm_mb:>6.1f}  {step.note}"
        )
    idle, after = full[0].memory, full[-1].memory
    idle_empty, after_empty = empty[0].memory, empty[-1].memory
    first_round = max(s.memory.hwm_mb for s in full if s.round == 1)
    extra = after.hwm_mb - after_empty.hwm_mb
    per_key_kb = extra * 1024 / keys if keys else 0.0
    under = after.hwm_mb < TARGET_MB
    print(
        f"idle after start-up: {keys} keys {idle.rss_mb:.1f} MB, 0 keys {idle_empty.rss_mb:.1f} "
        f"MB ({idle.rss_mb - idle_empty.rss_mb:+.1f} MB)"
    )
    print(
        f"peak (VmHWM): {keys} keys {after.hwm_mb:.1f} MB (first round {first_round:.1f} MB), "
        f"0 keys {after_empty.hwm_mb:.1f} MB: {extra:+.1f} MB, {per_key_kb:.1f} KB per key"
    )
    print(
        f"after the load: {keys} keys {after.rss_mb:.1f} MB resident, {after.threads} threads; "
        f"0 keys {after_empty.rss_mb:.1f} MB"
    )
    print(f"target: peak under {TARGET_MB:g} MB with {keys} keys: {'yes' if under else 'NO'}")
    if failures:
        print(f"Slack calls answered with an error: {len(failures)}, e.g. {failures[0]}")
    print(
        json.dumps(
            {
                "bench": "memory",
                "keys": keys,
                "rss_mb_idle": round(idle.rss_mb, 1),
                "rss_mb_peak": round(after.hwm_mb, 1),
                "rss_mb_peak_round1": round(first_round, 1),
                "rss_mb_after_load": round(after.rss_mb, 1),
                "rss_mb_empty": round(idle_empty.rss_mb, 1),
                "rss_mb_empty_peak": round(after_empty.hwm_mb, 1),
                "kb_per_key_peak": round(per_key_kb, 1),
                "slack_errors": len(failures),
                "under_250mb": under,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
