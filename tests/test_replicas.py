"""Several scheduler replicas on one PostgreSQL: every reminder posted exactly once, and a
replica killed with SIGKILL after claiming loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot.config import load_settings
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.rotation.reminder_plan import plan_reminders
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, migrate, session_scope
from storage.models import utcnow
from tests.factories import stored_key

pytestmark = pytest.mark.postgres
REMINDERS = 1000


def _seed(url: str, ring: KeyRing, count: int) -> None:
    """`count` keys whose 14-day reminder is due now (and nothing else is)."""
    engine = make_engine(url)
    migrate(engine)
    settings = load_settings(_env_file=None)
    rotated = utcnow() - timedelta(days=settings.default_rotation_days - 13, hours=12)
    with session_scope(engine) as session:
        for i in range(count):
            key = stored_key(session, ring, label=f"key-{i:04d}", owner="U0ALICE")
            key.last_rotated_at = rotated
            key.rotation_period_days = settings.default_rotation_days
            session.flush()
            plan_reminders(session, key, settings, now=rotated)  # planned when rotated
    engine.dispose()


def _start(url: str, ring_text: str, slack: SlackStandIn, tmp_path, **extra) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MASTER_"))},
        "DATABASE_URL": url,
        "MASTER_KEYS": ring_text,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_API_URL": slack.url,
        "SCHEDULER_INTERVAL_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "scheduler"], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )


def _posted_labels(slack: SlackStandIn) -> Counter:
    labels: Counter = Counter()
    for call in slack.calls_to("chat.postMessage"):
        text = call.params.get("text", "")
        for word in text.replace("*", " ").split():
            if word.startswith("key-"):
                labels[word.strip(".,:")] += 1
                break
    return labels


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)


def _due_job_states(engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT state, COUNT(*) FROM scheduled_jobs WHERE due_at <= now() GROUP BY state"
            )
        ).all()
    return dict(rows)


def test_three_replicas_post_each_reminder_exactly_once(pg_url, tmp_path):
    ring = KeyRing([generate_master_key("k1")])
    _seed(pg_url, ring, REMINDERS)
    engine = make_engine(pg_url)
    with SlackStandIn() as slack:
        slack.add_user("U0ALICE", name="alice")
        replicas = [_start(pg_url, ring.export_line("k1"), slack, tmp_path) for _ in range(3)]
        try:
            _wait_for(lambda: _due_job_states(engine) == {"done": REMINDERS}, 120)
        finally:
            # A replica finishes the jobs in its hands before it exits: once all have exited,
            # every reminder that was posted, also twice, has reached the stand-in.
            for proc in replicas:
                proc.send_signal(signal.SIGTERM)
            errors = [proc.communicate(timeout=30)[1].decode() for proc in replicas]
    labels = _posted_labels(slack)
    assert len(labels) == REMINDERS, errors
    assert set(labels.values()) == {1}
    states = _due_job_states(engine)
    with Session(engine) as session:
        workers = session.exec(
            sa.text("SELECT COUNT(DISTINCT claimed_by) FROM scheduled_jobs WHERE state = 'done'")
        ).one()[0]
    engine.dispose()
    assert states == {"done": REMINDERS}
    assert workers >= 2  # the work really was shared
    assert all(proc.returncode == 0 for proc in replicas), errors


def test_a_replica_killed_after_claiming_leaves_no_reminder_unsent(pg_url, tmp_path):
    ring = KeyRing([generate_master_key("k1")])
    _seed(pg_url, ring, 300)
    engine = make_engine(pg_url)

    def claimed() -> int:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT COUNT(*) FROM scheduled_jobs WHERE claimed_by IS NOT NULL")
            ).scalar()

    with SlackStandIn() as slack:
        slack.add_user("U0ALICE", name="alice")
        slack.latency = 0.05  # posting is slow: the victim dies with claims in hand
        victim = _start(
            pg_url, ring.export_line("k1"), slack, tmp_path, SCHEDULER_LEASE_SECONDS="2"
        )
        _wait_for(lambda: claimed() > 0, 60)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        with engine.connect() as connection:
            unfinished = connection.execute(
                sa.text(
                    "SELECT COUNT(*) FROM scheduled_jobs WHERE claimed_by IS NOT NULL AND state = 'pending'"
                )
            ).scalar()
        assert unfinished > 0  # it really died holding claims
        slack.latency = 0.0
        rescuer = _start(
            pg_url, ring.export_line("k1"), slack, tmp_path, SCHEDULER_LEASE_SECONDS="2"
        )
        try:
            _wait_for(lambda: len(_posted_labels(slack)) >= 300, 90)
        finally:
            rescuer.send_signal(signal.SIGTERM)
            rescuer.communicate(timeout=30)
    assert len(_posted_labels(slack)) == 300
    with engine.connect() as connection:
        pending = connection.execute(
            sa.text(
                "SELECT COUNT(*) FROM scheduled_jobs WHERE state = 'pending' AND due_at <= now()"
            )
        ).scalar()
    engine.dispose()
    assert pending == 0
