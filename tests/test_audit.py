"""The audit trail: written with the action (a failing audit write rolls the action back),
chained by MAC under a key the master keys seal (a forged, edited, reordered or deleted row is
detected, and an unkeyed SHA-256 recomputed by someone with database access is not accepted),
witnessed by checkpoints in Slack (deleted newest events, a truncated table and a rolled-back
database show), readable and verifiable by admins only."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk import WebClient
from sqlmodel import Session, select

from bot.bootstrap import open_storage
from bot.config import Settings, load_settings
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.audit_trail import ensure_checkpoint_job
from bot.slack.checkpoints import CHECKPOINT_EVENT, post_checkpoint, read_witness
from bot.vocabulary import AuditAction
from storage.audit import (
    GENESIS,
    Checkpoint,
    chain_head,
    legacy_hash,
    rechain_all,
    record_event,
    verify_chain,
)
from storage.crypto import generate_master_key
from storage.db import make_engine, migrate, session_scope
from storage.master_keys import VaultError, reencrypt_all, retire_key
from storage.models import ApiKey, AuditKey, KeyStatus, ScheduledJob, utcnow
from tests.e2e import ALICE, BOB, all_text, audit_verdict, bot_client, register_directly
from tests.slack_requests import block_action, slash_command

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
COLUMNS = ("id", "team_id", "at", "actor", "action", "target", "target_key_id", "source")


def _events(engine, n: int, *, first: int = 0) -> None:
    with session_scope(engine) as session:
        for i in range(first, first + n):
            record_event(
                session,
                team_id="T",
                actor="U1",
                action=AuditAction.KEY_STATUS,
                target=f"k{i}",
                detail={"i": i},
            )


def _ids(engine) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(sa.text("SELECT id FROM audit_events ORDER BY id")).scalars()
        )


def _rows(engine) -> list[dict[str, Any]]:
    """Every event as stored, to edit or restore like someone with database access would."""
    table = sa.Table("audit_events", sa.MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        return [
            dict(r) for r in connection.execute(sa.select(table).order_by(table.c.id)).mappings()
        ]


def _restore(engine, rows: list[dict[str, Any]]) -> None:
    """Replace the whole table by ``rows`` (an older copy of the database, restored)."""
    table = sa.Table("audit_events", sa.MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(sa.delete(table))
        if rows:
            connection.execute(sa.insert(table), rows)


# --- the chain itself ----------------------------------------------------------------------


def test_the_chain_verifies_and_an_edited_row_is_detected(engine):
    _events(engine, 5)
    report = verify_chain(engine)
    assert report.ok and report.events == 5 and report.verified == 5
    third = _ids(engine)[2]
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE audit_events SET actor = 'U0MALLORY' WHERE id = :id"), {"id": third}
        )
    report = verify_chain(engine)
    assert not report.ok and report.broken_at == third and "altered" in report.reason
    assert report.verified == 2 and report.events == 5


def test_a_deleted_row_is_detected(engine):
    _events(engine, 4)
    second = _ids(engine)[1]
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": second})
    report = verify_chain(engine)
    assert not report.ok and report.broken_at > second and "deleted" in report.reason


def test_a_forged_row_is_detected_even_with_a_well_formed_mac(engine):
    """Someone with database access appends an event linked to the real head, with a MAC made
    under a key of their own (the audit key is sealed by the master key they do not hold)."""
    from storage.audit import event_mac

    _events(engine, 3)
    head = chain_head(engine)
    row = {
        "id": head.head_id + 1,
        "team_id": "T",
        "at": utcnow(),
        "actor": "U0MALLORY",
        "action": "key.remove",
        "target": "k0",
        "target_key_id": None,
        "source": None,
        "detail": {},
    }
    forged = {**row, "prev_hash": head.head, "hash": event_mac(os.urandom(32), row, head.head)}
    table = sa.Table("audit_events", sa.MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(table), [forged])
    report = verify_chain(engine)
    assert report.broken_at == row["id"] and "forged" in report.reason


def test_reordered_rows_are_detected(engine):
    """Two events swap places (each keeps its content and MAC, under the other's id)."""
    _events(engine, 5)
    rows = _rows(engine)
    second, third = rows[1], rows[2]
    swapped = [
        *rows[:1],
        {**third, "id": second["id"]},
        {**second, "id": third["id"]},
        *rows[3:],
    ]
    _restore(engine, swapped)
    report = verify_chain(engine)
    assert not report.ok and report.broken_at == second["id"]


def test_an_emptied_mac_is_tampering(engine):
    _events(engine, 3)
    last = _ids(engine)[-1]
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE audit_events SET hash = NULL WHERE id = :id"), {"id": last}
        )
    report = verify_chain(engine)
    assert report.broken_at == last and "no valid MAC" in report.reason


def test_a_row_recomputed_with_the_old_unkeyed_sha256_is_rejected(engine):
    """Before: anyone with write access edited a row and recomputed the chain with SHA-256."""
    _events(engine, 4)
    rows = _rows(engine)
    rows[1]["actor"] = "U0MALLORY"
    prev = rows[0]["hash"]
    for row in rows[1:]:  # the attacker re-links everything after the edit, the old way
        row["prev_hash"] = prev
        row["hash"] = prev = legacy_hash(row, prev)
    _restore(engine, rows)
    report = verify_chain(engine)
    assert report.broken_at == rows[1]["id"] and "unkeyed SHA-256" in report.reason


def test_writers_appending_at_once_keep_one_unbroken_chain(engine):
    """Eight threads append single events and batches at the same time (on PostgreSQL these
    are truly concurrent transactions): the chain stays whole and nothing is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from storage.audit import record_events

    def write(worker: int) -> None:
        for round_ in range(5):
            with session_scope(engine) as session:
                if round_ % 2:
                    _event_args = {"team_id": "T", "actor": f"U{worker}", "action": "drift.check"}
                    record_events(session, [{**_event_args, "detail": {"n": n}} for n in range(7)])
                else:
                    record_event(
                        session, team_id="T", actor=f"U{worker}", action=AuditAction.KEY_STATUS
                    )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    report = verify_chain(engine)
    assert report.ok, report.reason
    assert report.events == 8 * (3 * 1 + 2 * 7)


def test_verify_reads_in_batches_smaller_than_the_trail(engine):
    _events(engine, 23)
    assert verify_chain(engine, batch=5).events == 23


# --- checkpoints: what the chain alone cannot show ------------------------------------------


def test_deleted_newest_events_fit_the_chain_but_not_the_checkpoint(engine):
    _events(engine, 6)
    checkpoint = chain_head(engine)
    assert checkpoint.events == 6 and checkpoint.head_id == _ids(engine)[-1]
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events "
                "ORDER BY id DESC LIMIT 2)"
            )
        )
    alone = verify_chain(engine)
    assert alone.ok and alone.events == 4  # what verify saw before the checkpoints
    report = verify_chain(engine, checkpoints=[checkpoint])
    assert not report.ok and report.broken_at is None and report.checkpoints_checked == 1
    (problem,) = report.witness_problems
    assert "witnessed 6 events but the table holds 4" in problem and "deleted" in problem


def test_a_truncated_table_is_caught_by_the_checkpoint(engine):
    _events(engine, 3)
    checkpoint = chain_head(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_events"))
    report = verify_chain(engine, checkpoints=[checkpoint])
    assert report.events == 0 and not report.ok
    assert "holds 0" in report.witness_problems[0]


def test_a_rollback_to_an_older_copy_is_caught_by_the_checkpoint(engine):
    """The database is restored from a copy taken before the checkpoint; the bot writes on, so
    the table holds as many events as the checkpoint witnessed, but not the same ones."""
    _events(engine, 3)
    older_copy = _rows(engine)
    _events(engine, 2, first=3)
    checkpoint = chain_head(engine)
    _restore(engine, older_copy)
    rolled_back = verify_chain(engine, checkpoints=[checkpoint])
    assert "holds 3" in rolled_back.witness_problems[0]
    _events(engine, 2, first=10)
    report = verify_chain(engine, checkpoints=[checkpoint])
    assert report.broken_at is None and report.events == 5  # the chain alone fits...
    (problem,) = report.witness_problems  # ...the checkpoint does not
    assert "rewritten or rolled back" in problem


def test_checkpoints_that_still_fit_are_quiet(engine):
    _events(engine, 2)
    early = chain_head(engine)
    _events(engine, 3, first=2)
    report = verify_chain(
        engine, checkpoints=[early, chain_head(engine), Checkpoint(0, GENESIS, utcnow())]
    )
    assert report.ok and report.checkpoints_checked == 2


# --- the key: sealed by the master keys, across their rotation, and the upgrade ----------------


def _settings(database_url: str, tmp_path: Path, keys: str, **overrides: Any) -> Settings:
    return load_settings(
        _env_file=None,
        database_url=database_url,
        master_keys=keys,
        master_keys_file=tmp_path / "no-key-file.key",
        **overrides,
    )


def test_master_key_rotation_keeps_the_chain_verifiable(database_url, tmp_path):
    k1, k2 = generate_master_key("k1").encoded(), generate_master_key("k2").encoded()
    first = open_storage(_settings(database_url, tmp_path, k1))
    _events(first.engine, 4)
    with Session(first.engine) as session:
        assert session.exec(select(AuditKey)).one().seal_key_id == "k1"
    both = open_storage(_settings(database_url, tmp_path, f"{k1}\n{k2}"))  # k2 active
    assert verify_chain(both.engine).ok
    report = reencrypt_all(both.engine, both.key_ring)
    assert report.rows_remaining == 0 and report.rows_resealed == 1  # the audit key
    retire_key(both.engine, both.key_ring, "k1")
    only_k2 = open_storage(_settings(database_url, tmp_path, k2))
    with Session(only_k2.engine) as session:
        assert session.exec(select(AuditKey)).one().seal_key_id == "k2"
    _events(only_k2.engine, 2, first=4)  # the chain goes on under the same audit key
    report = verify_chain(only_k2.engine)
    assert report.ok and report.events == 4 + 1 + 1 + 2  # 4, re-seal, retire, 2
    with pytest.raises(VaultError, match="k2"):  # a ring without k2 cannot open it any more
        open_storage(_settings(database_url, tmp_path / "other", k1))
    for storage in (first, both, only_k2):
        storage.engine.dispose()


def _legacy_trail(database_url: str, n: int) -> list[dict[str, Any]]:
    """A database as revision 0011 left it: events chained with the unkeyed SHA-256."""
    engine = make_engine(database_url)
    migrate(engine)
    with engine.begin() as connection:
        for i in range(n):
            connection.execute(
                sa.text(
                    "INSERT INTO audit_events (team_id, at, actor, action, target, detail) "
                    "VALUES ('T', :at, 'U1', 'old.event', :target, '{}')"
                ),
                {"at": utcnow(), "target": f"k{i}"},
            )
        rechain_all(connection)
    rows = _rows(engine)
    engine.dispose()
    return rows


def test_an_intact_old_chain_is_rekeyed_at_first_start(database_url, tmp_path):
    old = _legacy_trail(database_url, 5)
    storage = open_storage(_settings(database_url, tmp_path, generate_master_key("k1").encoded()))
    report = verify_chain(storage.engine)
    assert report.ok and report.events == 6, report.reason  # 5 old ones and "key created"
    new = _rows(storage.engine)
    assert [r["hash"] for r in new[:5]] != [r["hash"] for r in old]
    assert [(r["actor"], r["target"]) for r in new[:5]] == [(r["actor"], r["target"]) for r in old]
    assert new[5]["action"] == "audit.key_created" and new[5]["detail"] == {"rekeyed_events": 5}
    storage.engine.dispose()


def test_a_broken_old_chain_is_reported_not_laundered(database_url, tmp_path):
    old = _legacy_trail(database_url, 4)
    engine = make_engine(database_url)
    with engine.begin() as connection:  # edited before the upgrade, hash left as it was
        connection.execute(
            sa.text("UPDATE audit_events SET actor = 'U0MALLORY' WHERE id = :id"),
            {"id": old[2]["id"]},
        )
    engine.dispose()
    storage = open_storage(_settings(database_url, tmp_path, generate_master_key("k1").encoded()))
    rows = _rows(storage.engine)
    assert [r["hash"] for r in rows[:4]] == [r["hash"] for r in old]  # left as they were
    assert rows[4]["detail"] == {"rekeyed_events": 0, "old_chain_broken_at": old[2]["id"]}
    report = verify_chain(storage.engine)
    assert not report.ok and report.broken_at == old[0]["id"]
    assert "unkeyed SHA-256" in report.reason
    storage.engine.dispose()


# --- the command line -----------------------------------------------------------------------


def _cli(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "MASTER_", "DATABASE_", "ALERT_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify"],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_verify_exits_non_zero_on_tampering(database_url, tmp_path):
    keys = generate_master_key("k1").encoded()
    storage = open_storage(_settings(database_url, tmp_path, keys))
    _events(storage.engine, 3)
    env = {"DATABASE_URL": database_url, "MASTER_KEYS": keys}
    ok = _cli(tmp_path, **env)
    assert ok.returncode == 0, ok.stderr
    assert "3 events" in ok.stdout and "could only check the database" in ok.stdout
    with storage.engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE audit_events SET detail = '{}' WHERE id = (SELECT MAX(id) FROM audit_events)"
            )
        )
    bad = _cli(tmp_path, **env)
    assert bad.returncode == 1 and "TAMPERED" in bad.stderr and "Traceback" not in bad.stderr
    wrong_key = _cli(tmp_path, **{**env, "MASTER_KEYS": generate_master_key("k1").encoded()})
    assert wrong_key.returncode == 2 and "Traceback" not in wrong_key.stderr
    storage.engine.dispose()


def test_the_cli_verify_never_makes_a_master_key(tmp_path):
    """Verify reads: on a database without sealed data and no key configured it says what to
    set instead of creating a key file (which the start-up of the bot itself would do)."""
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    nothing = _cli(tmp_path, DATABASE_URL=fresh)  # no database at all: nothing to check
    assert nothing.returncode == 0 and "nothing to check" in nothing.stderr
    assert not (tmp_path / "fresh.db").exists()
    migrate(make_engine(fresh))  # a database, without a sealed row or an event yet
    run = _cli(tmp_path, DATABASE_URL=fresh)  # the same rule as `check`: nothing to check
    assert run.returncode == 0 and "the audit trail is empty" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert not list(tmp_path.glob("*.key"))


def test_the_cli_compares_with_the_checkpoints_in_slack(database_url, tmp_path):
    keys = generate_master_key("k1").encoded()
    storage = open_storage(_settings(database_url, tmp_path, keys))
    _events(storage.engine, 5)
    with SlackStandIn() as slack:
        client = WebClient(base_url=slack.url, token=slack.bot_token)
        post_checkpoint(client, ALERTS, chain_head(storage.engine))
        env = {
            "DATABASE_URL": database_url,
            "MASTER_KEYS": keys,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_API_URL": slack.url,
            "ALERT_CHANNEL": ALERTS,
        }
        ok = _cli(tmp_path, **env)
        assert ok.returncode == 0, ok.stderr
        assert f"compared with 1 checkpoint(s) read back from {ALERTS}" in ok.stdout
        with storage.engine.begin() as connection:
            connection.execute(
                sa.text("DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)")
            )
        bad = _cli(tmp_path, **env)
    assert bad.returncode == 1 and "deleted" in bad.stderr, bad.stderr
    storage.engine.dispose()


# --- the Slack stand-in's conversations.history ----------------------------------------------


def test_conversations_history_pages_newest_first_with_metadata_on_request():
    with SlackStandIn() as slack:
        client = WebClient(base_url=slack.url, token=slack.bot_token)
        posted = [
            client.chat_postMessage(
                channel=ALERTS,
                text=f"m{i}",
                metadata={"event_type": "test", "event_payload": {"i": i}},
            )["ts"]
            for i in range(5)
        ]
        client.chat_postMessage(channel=ALERTS, text="reply", thread_ts=posted[0])
        first = client.conversations_history(channel=ALERTS, limit=2, include_all_metadata=True)
        assert [m["text"] for m in first["messages"]] == ["m4", "m3"] and first["has_more"]
        assert first["messages"][0]["metadata"]["event_payload"] == {"i": 4}
        cursor = first["response_metadata"]["next_cursor"]
        rest = client.conversations_history(channel=ALERTS, limit=10, cursor=cursor)
        assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"]
        assert not rest["has_more"] and rest["response_metadata"]["next_cursor"] == ""
        assert "metadata" not in rest["messages"][0]  # only with include_all_metadata
        ranged = client.conversations_history(channel=ALERTS, oldest=posted[1], latest=posted[4])
        assert [m["text"] for m in ranged["messages"]] == ["m3", "m2"]
        inclusive = client.conversations_history(
            channel=ALERTS, oldest=posted[1], latest=posted[4], inclusive=True
        )
        assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2", "m1"]
        client.chat_delete(channel=ALERTS, ts=posted[4])
        assert len(client.conversations_history(channel=ALERTS)["messages"]) == 4


def test_only_the_bots_own_checkpoint_messages_count():
    with SlackStandIn() as slack:
        client = WebClient(base_url=slack.url, token=slack.bot_token)
        real = Checkpoint(events=3, head="a" * 64, at=utcnow(), head_id=3)
        post_checkpoint(client, ALERTS, real)
        client.chat_postMessage(channel=ALERTS, text="hello")
        with slack._lock:  # a person's message carrying the same metadata: not the bot's
            slack._history[ALERTS].append(
                {
                    "type": "message",
                    "user": ALICE,
                    "ts": "1800000000.000100",
                    "text": "fake",
                    "metadata": {
                        "event_type": CHECKPOINT_EVENT,
                        "event_payload": {
                            "events": 1,
                            "head": "b" * 64,
                            "at": utcnow().isoformat(),
                        },
                    },
                }
            )
        witness = read_witness(client, ALERTS)
    assert [(c.events, c.head, c.head_id) for c in witness.checkpoints] == [(3, "a" * 64, 3)]


# --- through the bot --------------------------------------------------------------------------


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, alert_channel=ALERTS)


@pytest.fixture
def any_stack(database_url, make_stack):
    """A stack on each kind of database (made after it, so stopped before it is dropped)."""
    return make_stack(admin_user_ids=ADMIN, alert_channel=ALERTS, database_url=database_url)


def _checkpoint_posts(stack) -> list:
    return [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if (c.params.get("metadata") or {}).get("event_type") == CHECKPOINT_EVENT
    ]


def test_a_checkpoint_is_posted_on_demand_and_verify_reads_it_back(any_stack):
    stack = any_stack
    register_directly(stack, "bot", owner=ALICE)
    client = bot_client(stack)
    url = stack.slack.response_url()
    ack = client.post(slash_command("audit checkpoint", user_id=ADMIN, response_url=url))
    assert "Posting a checkpoint" in all_text(ack.json())
    (done,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "Checkpoint posted" in all_text(done.params)
    (post,) = _checkpoint_posts(stack)
    payload = post.params["metadata"]["event_payload"]
    head = chain_head(stack.services.engine)
    assert post.params["channel"] == ALERTS and payload["head"] == head.head
    assert payload["events"] == head.events and head.head in post.params["text"]

    ack_text, verdict = audit_verdict(stack, ADMIN)
    assert "Verifying" in ack_text and "intact" not in ack_text  # the ack comes first...
    assert "properly chained" in verdict and "Compared with 1 checkpoint" in verdict  # ...then
    (history,) = stack.slack.calls_to("conversations.history")
    assert history.params["channel"] == ALERTS and history.params["include_all_metadata"]

    with stack.services.engine.begin() as connection:  # the newest events are deleted
        connection.execute(
            sa.text(
                "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events "
                "ORDER BY id DESC LIMIT 2)"
            )
        )
    _, verdict = audit_verdict(stack, ADMIN)
    assert "TAMPERED" in verdict and "events were deleted" in verdict


def test_only_admins_take_checkpoints(stack):
    reply = bot_client(stack).post(
        slash_command("audit checkpoint", user_id=BOB, response_url=stack.slack.response_url())
    )
    assert "Only admins" in all_text(reply.json())
    assert _checkpoint_posts(stack) == []
    ack_text = all_text(
        bot_client(stack)
        .post(slash_command("audit verify", user_id=BOB, response_url=stack.slack.response_url()))
        .json()
    )
    assert "Only admins" in ack_text


def test_without_an_alert_channel_verify_says_nothing_witnesses_the_chain(make_stack):
    stack = make_stack(admin_user_ids=ADMIN)
    refused = bot_client(stack).post(
        slash_command("audit checkpoint", user_id=ADMIN, response_url=stack.slack.response_url())
    )
    assert "No alert channel" in all_text(refused.json()) and _checkpoint_posts(stack) == []
    _, verdict = audit_verdict(stack, ADMIN)
    assert "nothing outside the database witnesses the chain" in verdict
    assert stack.slack.calls_to("conversations.history") == []


def test_an_unreadable_alert_channel_is_said_honestly(stack):
    stack.slack.inject_fault("conversations.history", status=200, error="not_in_channel")
    _, verdict = audit_verdict(stack, ADMIN)
    assert "could not be read" in verdict and "not_in_channel" in verdict


def test_a_checkpoint_slack_refuses_is_said_politely(stack):
    stack.slack.inject_fault("chat.postMessage", status=200, error="not_in_channel")
    url = stack.slack.response_url()
    bot_client(stack).post(slash_command("audit checkpoint", user_id=ADMIN, response_url=url))
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    text = all_text(reply.params)
    assert "Slack refused the checkpoint" in text and "not_in_channel" in text
    assert "Traceback" not in text


def test_the_daily_checkpoint_is_posted_and_plans_the_next(stack):
    register_directly(stack, "bot", owner=ALICE)
    engine = stack.services.engine
    clock = FixedClock(utcnow() + timedelta(hours=1))
    ensure_checkpoint_job(engine, interval=timedelta(0), now=clock.now())
    ensure_checkpoint_job(engine, interval=timedelta(0), now=clock.now())  # planned once
    stack.tick(clock)
    (post,) = _checkpoint_posts(stack)
    assert post.params["metadata"]["event_payload"]["head"] == chain_head(engine).head
    with Session(engine) as session:
        jobs = session.exec(
            select(ScheduledJob).where(ScheduledJob.kind == JobKind.AUDIT_CHECKPOINT)
        ).all()
    assert sorted(j.state for j in jobs) == ["done", "pending"]
    (pending,) = [j for j in jobs if j.state == "pending"]
    assert pending.due_at == clock.now() + timedelta(hours=24)
    _, verdict = audit_verdict(stack, ADMIN)
    assert "Compared with 1 checkpoint" in verdict and "🚨" not in verdict


# --- the trail itself -------------------------------------------------------------------------


def test_a_failing_audit_write_rolls_the_action_back(stack):
    registered, _ = register_directly(stack, "bot", owner=ALICE)
    with stack.services.engine.begin() as connection:  # the audit table refuses this one action
        connection.execute(
            sa.text(
                "CREATE TRIGGER refuse_remove_audit BEFORE INSERT ON audit_events "
                "WHEN NEW.action = 'key.remove' BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END"
            )
        )
    url = stack.slack.response_url()
    bot_client(stack).post(
        block_action("apikey_remove_confirm", registered.key_id, user_id=ALICE, response_url=url)
    )
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "nothing was changed" in all_text(reply.params)
    with Session(stack.services.engine) as session:
        key = session.exec(select(ApiKey)).one()
    assert key.status == KeyStatus.ACTIVE.value and key.secret_sealed is not None


def test_only_admins_read_the_trail_and_every_action_is_in_it(stack):
    register_directly(stack, "bot", owner=ALICE)
    client = bot_client(stack)
    client.post(
        slash_command(
            "rotate bot every 30d", user_id=ALICE, response_url=stack.slack.response_url()
        )
    )
    denied = client.post(
        slash_command("audit", user_id=BOB, response_url=stack.slack.response_url())
    )
    assert "Only admins" in all_text(denied.json())
    trail = client.post(
        slash_command("audit bot --days 7", user_id=ADMIN, response_url=stack.slack.response_url())
    )
    text = all_text(trail.json())
    assert "registered" in text and "set the rotation period" in text  # in words
    _, verdict = audit_verdict(stack, ADMIN)
    assert "properly chained" in verdict
    with Session(stack.services.engine) as session:
        denied_events = session.exec(
            sa.text("SELECT COUNT(*) FROM audit_events WHERE action = 'access.denied'")
        ).one()[0]
    assert denied_events == 1
