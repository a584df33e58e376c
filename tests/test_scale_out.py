"""Three bot processes (HTTP mode, scheduler on) behind one PostgreSQL, as README's scale-out
section runs them: commands, checklist clicks and reminders go through all of them, and there
is no duplicate reminder, no lost checklist tick and no duplicate incident."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.config import load_settings
from bot.ids import Action
from bot.model.incidents import STEPS
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.rotation.reminder_plan import plan_reminders
from storage.crypto import KeyRing, generate_master_key
from storage.db import make_engine, session_scope
from storage.models import ApiKey, Incident, IncidentStep, utcnow
from tests.e2e import ALICE, BOB, all_text, free_port, register_values, wait_until
from tests.factories import stored_key
from tests.slack_requests import SIGNING_SECRET, BotClient, view_submission

pytestmark = pytest.mark.postgres
REPLICAS = 3
REMINDERS = 150
ALERTS = "C0ALERTS"
RAISED_IN = "C0GENERAL"
CAROL = "U0CAROL"
ADMIN = "U0BOSS"


def _env(url: str, ring: KeyRing, sim: BinanceSimulator, slack: SlackStandIn, **extra) -> dict:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MASTER_"))},
        "DATABASE_URL": url,
        "MASTER_KEYS": ring.export_line("k1"),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "SLACK_TEAM_ID": "T0TEST",
        "BINANCE_API_URL": sim.url,
        "ALERT_CHANNEL": ALERTS,
        "ADMIN_USER_IDS": ADMIN,
        "SCHEDULER_INTERVAL_SECONDS": "0.2",
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def _seed_due_reminders(url: str, ring: KeyRing) -> None:
    """REMINDERS keys whose 14-day reminder is due now (and nothing else is)."""
    engine = make_engine(url)
    settings = load_settings(_env_file=None)
    rotated = utcnow() - timedelta(days=settings.default_rotation_days - 13, hours=12)
    with session_scope(engine) as session:
        for i in range(REMINDERS):
            key = stored_key(session, ring, label=f"key-{i:04d}", owner=ALICE)
            key.last_rotated_at = rotated
            session.flush()
            plan_reminders(session, key, settings, now=rotated)  # planned when rotated
    engine.dispose()


def _reminded_labels(slack: SlackStandIn) -> Counter:
    labels: Counter = Counter()
    for call in slack.calls_to("chat.postMessage"):
        text = call.params.get("text", "")
        if "Rotation reminder" not in text:
            continue
        for word in text.replace("*", " ").split():
            if word.startswith("key-"):
                labels[word.strip(".,:")] += 1
                break
    return labels


@pytest.fixture
def cluster(pg_url, tmp_path):
    ring = KeyRing([generate_master_key("k1")])
    with BinanceSimulator() as sim, SlackStandIn() as slack:
        for user in (ALICE, BOB, CAROL, ADMIN):
            slack.add_user(user, name=user.lower())
        env = _env(pg_url, ring, sim, slack)
        # The migration step, once, before the replicas start (README: scale-out).
        migrated = subprocess.run(
            [sys.executable, "-m", "bot", "migrate"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr.decode()
        ports = [free_port() for _ in range(REPLICAS)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=tmp_path,
                env={**env, "PORT": str(port)},
                stderr=subprocess.PIPE,
            )
            for port in ports
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            for url in urls:
                wait_until(lambda url=url: _healthy(url), timeout=60, interval=0.2)
            _seed_due_reminders(pg_url, ring)  # due now, with every replica's scheduler polling
            yield sim, slack, [BotClient(url, slack=slack) for url in urls], make_engine(pg_url)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            errors = [proc.communicate(timeout=30)[1].decode() for proc in procs]
            assert all(proc.returncode == 0 for proc in procs), errors
            tracebacks = [
                e[max(0, e.index("Traceback") - 300) :] for e in errors if "Traceback" in e
            ]
            assert not tracebacks, tracebacks[0][:4000]


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _register(client: BotClient, sim_key, label: str, user: str) -> requests.Response:
    body = view_submission(
        "apikey_register",
        register_values(label=label, api_key=sim_key.api_key, secret=sim_key.secret, owner=user),
        user_id=user,
        private_metadata=json.dumps({"channel": RAISED_IN}),
    )
    return client.post(body)


def test_three_replicas_share_commands_clicks_and_reminders(cluster):
    sim, slack, bots, engine = cluster
    owners = (ALICE, BOB, CAROL)

    # Reminders: every replica's scheduler runs; each reminder is posted exactly once.
    wait_until(lambda: len(_reminded_labels(slack)) >= REMINDERS, timeout=120, interval=0.2)

    # Commands through every replica: one key registered on each.
    sim_keys = [sim.add_key(account="main", ip_restrict=True) for _ in owners]
    for i, (bot, owner, key) in enumerate(zip(bots, owners, sim_keys, strict=True)):
        reply = _register(bot, key, f"bot-{i}", owner)
        assert reply.status_code == 200 and "errors" not in reply.text, reply.text
    # The same new key submitted to all three at once is stored once; the others are refused.
    extra = sim.add_key(account="main", ip_restrict=True)
    with ThreadPoolExecutor(REPLICAS) as pool:
        replies = list(pool.map(lambda b: _register(b, extra, f"dup-{bots.index(b)}", ALICE), bots))
    refused = [r for r in replies if "errors" in r.text]
    assert len(refused) == REPLICAS - 1 and "already registered" in refused[0].text

    # Every replica sees the same keys.
    for bot in bots:
        listed = bot.command("list", user_id=ADMIN)
        assert all(f"bot-{i}" in listed.text for i in range(3)), listed.text

    # The same key reported compromised on all three replicas at once: one incident.
    answer_urls = [slack.response_url() for _ in bots]
    with ThreadPoolExecutor(REPLICAS) as pool:
        list(
            pool.map(
                lambda sent: sent[0].command(
                    "compromised bot-0", user_id=sent[1], channel_id=RAISED_IN, response_url=sent[2]
                ),
                zip(bots, owners, answer_urls, strict=True),
            )
        )
    # Each replica answers last, after posting its checklist if it opened the incident: once
    # all three have answered, a duplicate incident's checklist would be here.
    slack.wait_for(
        "response_url",
        count=REPLICAS,
        predicate=lambda c: c.params["_response_url"] in answer_urls,
        timeout=30,
    )
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
    assert [c.params["channel"] for c in _checklists(slack)] == [ALERTS]  # one live copy

    # Steps 2..5 ticked at the same moment by different people on different replicas: all kept.
    clicks = [
        (bots[i % REPLICAS], owners[i % REPLICAS], f"{incident.id}:{step.number}")
        for i, step in enumerate(STEPS[1:])
    ]
    with ThreadPoolExecutor(len(clicks)) as pool:
        list(
            pool.map(
                lambda c: c[0].action(
                    Action.INCIDENT_TICK,
                    c[2],
                    user_id=c[1],
                    channel_id=ALERTS,
                    message_ts="1700000000.000100",
                ),
                clicks,
            )
        )
    with Session(engine) as session:
        wait_until(
            lambda: (
                len(
                    session.exec(
                        select(IncidentStep).where(IncidentStep.incident_id == incident.id)
                    ).all()
                )
                == len(STEPS) - 1
            )
        )
    # The live message ends up showing every tick, whichever replica rendered it last.
    wait_until(lambda: all(_ticked(u) == len(STEPS) - 1 for u in _last_updates(slack)), timeout=10)

    # No reminder was posted twice, by any replica, at any point.
    reminded = _reminded_labels(slack)
    assert len(reminded) == REMINDERS and set(reminded.values()) == {1}
    with engine.connect() as connection:
        keys = connection.execute(sa.text("SELECT COUNT(*) FROM api_keys")).scalar()
    assert keys == REMINDERS + 4  # three bot keys plus the one registered once
    with Session(engine) as session:
        assert session.exec(select(ApiKey).where(ApiKey.label == "bot-0")).one().status == (
            "compromised"
        )
    engine.dispose()


def _checklists(slack: SlackStandIn) -> list:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if "bot-0" in c.params.get("text", "")
        and "thread_ts" not in c.params  # replies in a checklist's thread are not checklists
        and "Rotation reminder" not in c.params["text"]
        and c.params["channel"] in (ALERTS, RAISED_IN)
    ]


def _last_updates(slack: SlackStandIn) -> list[dict]:
    """The last chat.update of each posted checklist message."""
    last: dict[tuple, dict] = {}
    for call in slack.calls_to("chat.update"):
        last[(call.params["channel"], call.params["ts"])] = call.params
    return list(last.values()) or [{}]


def _ticked(params: dict) -> int:
    """How many checklist steps the rendered message shows as done."""
    return all_text(params).count("_done by ")
