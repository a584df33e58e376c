"""The audit trail: written with the action (a failing audit write rolls the action back),
chained by hash (an edited or deleted row is detected), readable by admins only."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from storage.audit import record_event, verify_chain
from storage.db import session_scope
from storage.models import ApiKey, KeyStatus
from tests.e2e import ALICE, BOB, all_text, bot_client, register_directly
from tests.slack_requests import block_action, slash_command

ADMIN = "U0ADMIN"


def _events(engine, n: int) -> None:
    with session_scope(engine) as session:
        for i in range(n):
            record_event(
                session,
                team_id="T",
                actor="U1",
                action="test.event",
                target=f"k{i}",
                detail={"i": i},
            )


def test_the_chain_verifies_and_an_edited_row_is_detected(engine):
    _events(engine, 5)
    report = verify_chain(engine)
    assert report.ok and report.events == 5
    with engine.begin() as connection:
        third = connection.execute(
            sa.text("SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 2")
        ).scalar()
        connection.execute(
            sa.text("UPDATE audit_events SET actor = 'U0MALLORY' WHERE id = :id"), {"id": third}
        )
    report = verify_chain(engine)
    assert not report.ok and report.broken_at == third and "altered" in report.reason


def test_a_deleted_row_is_detected(engine):
    _events(engine, 4)
    with engine.begin() as connection:
        second = connection.execute(
            sa.text("SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 1")
        ).scalar()
        connection.execute(sa.text("DELETE FROM audit_events WHERE id = :id"), {"id": second})
    report = verify_chain(engine)
    assert not report.ok and report.broken_at > second and "deleted" in report.reason


def test_writers_appending_at_once_keep_one_unbroken_chain(engine):
    """Eight threads append single events and batches at the same time (on PostgreSQL these
    are truly concurrent transactions): the chain stays whole and nothing is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from storage.audit import record_events

    def write(worker: int) -> None:
        for round_ in range(5):
            with session_scope(engine) as session:
                if round_ % 2:
                    _event_args = {"team_id": "T", "actor": f"U{worker}", "action": "test.batch"}
                    record_events(session, [{**_event_args, "detail": {"n": n}} for n in range(7)])
                else:
                    record_event(session, team_id="T", actor=f"U{worker}", action="test.one")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    report = verify_chain(engine)
    assert report.ok, report.reason
    assert report.events == 8 * (3 * 1 + 2 * 7)


def test_the_cli_verify_exits_non_zero_on_tampering(database_url, tmp_path):
    from storage.db import make_engine, migrate

    engine = make_engine(database_url)
    migrate(engine)
    _events(engine, 3)
    run = [sys.executable, "-m", "bot", "audit", "verify"]
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "3 events" in ok.stdout
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE audit_events SET detail = '{}' WHERE id = (SELECT MIN(id) FROM audit_events)"
            )
        )
    bad = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "TAMPERED" in bad.stderr
    engine.dispose()


@pytest.fixture
def stack(make_stack):
    return make_stack(admin_user_ids=ADMIN)


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
    assert "key.register" in text and "rotation.policy" in text
    verify = client.post(
        slash_command("audit verify", user_id=ADMIN, response_url=stack.slack.response_url())
    )
    assert "intact" in all_text(verify.json())
    with Session(stack.services.engine) as session:
        denied_events = session.exec(
            sa.text("SELECT COUNT(*) FROM audit_events WHERE action = 'access.denied'")
        ).one()[0]
    assert denied_events == 1
