"""Zero-touch rotation of governed keys, end to end through signed Slack requests, the Binance
simulator and a file sink: the governor makes the successor with the same flags and IP list,
both keys work for the overlap window, then the bot deletes the old key itself, proves it and
completes the rotation. Failures keep the old key working and are retried; two replicas make
one successor; a crash after Binance's answer leaves no key that nobody knows about."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, select

from bot.ids import Action
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sinks.files import file_path
from storage.crypto import generate_master_key
from storage.models import (
    AuditEvent,
    GovernorMint,
    KeyStatus,
    MintState,
    Rotation,
    RotationState,
    ScheduledJob,
    utcnow,
)
from tests.e2e import ALICE, BOB, all_text, bot_client, wait_until
from tests.test_governor_flows import ALERTS, SUB, create, govern
from tests.test_governor_registration import ADMIN
from tests.test_key_pairs import _key
from tests.test_secret_leak_scan import Canary, find_leaks

OVERLAP = timedelta(hours=1)


@pytest.fixture
def sink_dir(tmp_path):
    path = tmp_path / "sink"
    path.mkdir()
    return path


@pytest.fixture
def stack_settings(sink_dir) -> dict[str, object]:
    return dict(
        admin_user_ids=ADMIN,
        bot_egress_ips="127.0.0.1",
        alert_channel=ALERTS,
        sink_file_dir=str(sink_dir),
        sink_default="file",
    )


def governed_key(stack, client, label="maker"):
    """A governed key made by the governor (futures on, two trusted IPs), delivered to the
    file sink; returns the key row and its simulator key."""
    govern(stack, client)
    create(client, label=label, extras=("futures",))
    wait_until(lambda: _key(stack, label) is not None, timeout=20)
    stack.wait_idle()
    stack.tick(FixedClock(utcnow()), times=2)  # the first delivery, announcements
    (sim_key,) = stack.simulator.keys_of(SUB)
    return _key(stack, label), sim_key


def rotate_now(stack, client, label="maker", user=ALICE):
    return client.command(f"rotate {label}", user_id=user, response_url=stack.slack.response_url())


def _successor(stack, old):
    live = [k for k in stack.simulator.keys_of(SUB) if k.api_key != old.api_key]
    return live[0] if len(live) == 1 else None


def _rotation(stack, key_id) -> Rotation | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(Rotation).where(Rotation.key_id == key_id)).first()


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _jobs(stack, kind: str) -> list[ScheduledJob]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(ScheduledJob).where(ScheduledJob.kind == kind)).all())


def _said(stack, text: str, timeout: float = 20):
    """The first message (posted, ephemeral or by response_url) that says ``text``."""
    return wait_until(
        lambda: next((c for c in stack.slack.calls if text in all_text(c.params)), None),
        timeout=timeout,
    )


def test_rotate_now_makes_the_successor_and_deletes_the_old_key_after_the_overlap(
    stack, client, sink_dir, caplog
):
    caplog.set_level(logging.DEBUG)
    key, old = governed_key(stack, client)
    forms = len(stack.slack.calls_to("views.open"))
    answer = rotate_now(stack, client)
    assert answer.status_code == 200
    new = wait_until(lambda: _successor(stack, old), timeout=20)
    wait_until(lambda: _key(stack, "maker").status == KeyStatus.ROTATING.value, timeout=20)
    stack.wait_idle()
    # No form: nobody pastes anything.
    assert len(stack.slack.calls_to("views.open")) == forms
    # The same flags and the same IP list as the old key.
    assert new.key_type == "ED25519" and new.ip_list == old.ip_list
    for flag in ("enableSpotAndMarginTrading", "enableFutures", "enableMargin"):
        assert new.permissions[flag] == old.permissions[flag]
    assert not new.permissions["enableWithdrawals"]
    row = _key(stack, "maker")
    assert row.api_key_masked != key.api_key_masked and row.api_key_fingerprint != (
        key.api_key_fingerprint
    )
    rotation = _rotation(stack, key.id)
    assert rotation.old_masked == key.api_key_masked and rotation.old_api_key_sealed is not None
    (mint,) = [m for m in _mints(stack) if m.reason == "rotate"]
    assert mint.state == MintState.CREATED.value and mint.replaces_key_id == key.id
    # Both keys work during the overlap; the owner has the button to end it.
    started = _said(stack, "The service uses the new key")
    assert Action.ROTATION_NEW_KEY_IN_USE in json.dumps(started.params)
    now = utcnow()
    stack.tick(FixedClock(now), times=2)  # the new credentials reach the sink
    assert new.api_key in (file_path(sink_dir, "maker")).read_text()
    assert not old.deleted
    stack.tick(FixedClock(now + OVERLAP / 2))
    assert not old.deleted and _rotation(stack, key.id).state == RotationState.PROBING.value
    # The window ends: the governor deletes the old key, a probe proves it, the rotation ends.
    stack.tick(FixedClock(now + OVERLAP + timedelta(minutes=1)), times=3)
    assert old.deleted and not new.deleted
    rotation = _rotation(stack, key.id)
    assert rotation.state == RotationState.COMPLETE.value
    assert rotation.old_api_key_sealed is None and rotation.old_secret_sealed is None
    assert _key(stack, "maker").status == KeyStatus.ACTIVE.value
    deletes = [e.detail for e in _events(stack, "governor.call") if e.detail["method"] == "DELETE"]
    assert [d["why"] for d in deletes] == ["rotate"] and deletes[0]["outcome"] == "ok"
    (deleted,) = _events(stack, "key.rotate_old_key_deleted")
    assert deleted.detail["early"] is False
    stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: (
            c.params.get("channel") == ALERTS and "Rotation of" in all_text(c.params)
        ),
        timeout=20,
    )
    # The successor's private key lives only in its sealed column and the sink's file.
    row = _key(stack, "maker")
    private_pem = stack.services.ring.open_text(row.secret_sealed, context=row.secret_context())
    stack.wait_idle()
    slack = {f"slack {i}": json.dumps(c.params) for i, c in enumerate(stack.slack.calls)}
    with stack.services.engine.connect() as connection:
        dump = {
            t: repr(connection.execute(sa.text(f'SELECT * FROM "{t}"')).all())
            for t in sa.inspect(stack.services.engine).get_table_names()
        }
    found = find_leaks(
        [Canary("successor's private key", private_pem)],
        {**slack, **dump, "binance": repr(stack.simulator.request_log), "log": caplog.text},
    )
    assert found == []


def test_the_reminders_rotate_now_button_rotates_a_governed_key_without_a_form(stack, client):
    key, old = governed_key(stack, client)
    forms = len(stack.slack.calls_to("views.open"))
    client.action(Action.ROTATE_NOW, key.id, user_id=ALICE, trigger_id="1.2.rotate")
    assert wait_until(lambda: _successor(stack, old), timeout=20)
    _said(stack, "The service uses the new key")
    stack.wait_idle()
    assert len(stack.slack.calls_to("views.open")) == forms


def _mints(stack) -> list[GovernorMint]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(GovernorMint)).all())


def test_the_owner_ends_the_overlap_early_with_the_button(stack, client):
    key, old = governed_key(stack, client)
    rotate_now(stack, client)
    wait_until(lambda: _successor(stack, old), timeout=20)
    _said(stack, "The service uses the new key")
    stack.wait_idle()
    stack.tick(FixedClock(utcnow()), times=2)  # delivered
    assert not old.deleted
    # Bob (neither owner nor admin) may not end it.
    client.action(Action.ROTATION_NEW_KEY_IN_USE, key.id, user_id=BOB)
    stack.wait_idle()
    assert not old.deleted
    client.action(Action.ROTATION_NEW_KEY_IN_USE, key.id, user_id=ALICE)
    wait_until(lambda: old.deleted, timeout=20)
    stack.wait_idle()
    stack.tick(FixedClock(utcnow()), times=2)
    assert _rotation(stack, key.id).state == RotationState.COMPLETE.value
    (ended,) = _events(stack, "key.rotate_overlap_ended")
    assert ended.actor == ALICE
    (deleted,) = _events(stack, "key.rotate_old_key_deleted")
    assert deleted.detail["early"] is True


def test_a_due_governed_key_is_rotated_by_the_scheduler_instead_of_reminded(stack, client):
    key, old = governed_key(stack, client)
    due = key.created_at + timedelta(days=key.rotation_period_days)
    stack.tick(FixedClock(due + timedelta(minutes=1)), times=3)
    new = wait_until(lambda: _successor(stack, old), timeout=20)
    assert new is not None and not old.deleted
    _said(stack, "The service uses the new key")
    (started,) = _events(stack, "key.rotate_start")
    assert started.actor == "bot"
    reminders = [
        c.params.get("text")
        for c in stack.slack.calls_to("chat.postMessage")
        if "Rotation reminder" in all_text(c.params) and "maker" in all_text(c.params)
    ]
    assert reminders == []  # (the governor's own key, not governed, is still reminded)


def test_a_key_that_is_not_governed_still_opens_the_rotate_form(stack, client):
    from tests.e2e import register_directly

    register_directly(stack, "plain", owner=ALICE)
    rotate_now(stack, client, "plain")
    stack.wait_idle()
    stack.slack.wait_for("views.open", timeout=10)
    assert _jobs(stack, "governed_rotation") == []  # (the kind this change adds)


def test_binance_refusing_the_successor_keeps_the_old_key_and_retries(stack, client):
    key, old = governed_key(stack, client)
    stack.simulator.fail_kyc_ip_check = True
    rotate_now(stack, client)
    _said(stack, "could not make the new key")
    stack.wait_idle()
    row = _key(stack, "maker")
    assert row.status == KeyStatus.ACTIVE.value and row.api_key_masked == key.api_key_masked
    assert stack.simulator.keys_of(SUB) == [old] and not old.deleted
    (job,) = _jobs(stack, JobKind.GOVERNED_ROTATION)
    assert job.state == "pending" and job.due_at > utcnow()
    (failed,) = _events(stack, "key.rotate_failed")
    assert failed.detail["step"] == "successor"
    # A second click while the retry waits tries again at once, on the same claim.
    rotate_now(stack, client)
    stack.wait_idle()
    (job,) = _jobs(stack, JobKind.GOVERNED_ROTATION)
    assert job.attempts == 2 and len(_events(stack, "key.rotate_failed")) == 2
    assert stack.simulator.keys_of(SUB) == [old]
    stack.simulator.fail_kyc_ip_check = False
    stack.tick(FixedClock(job.due_at + timedelta(seconds=1)))
    assert wait_until(lambda: _successor(stack, old), timeout=20)
    assert _key(stack, "maker").status == KeyStatus.ROTATING.value


def test_a_failed_deletion_of_the_old_key_keeps_both_and_retries(stack, client):
    key, old = governed_key(stack, client)
    rotate_now(stack, client)
    wait_until(lambda: _successor(stack, old), timeout=20)
    stack.wait_idle()
    now = utcnow()
    stack.tick(FixedClock(now), times=2)
    stack.simulator.inject_fault("503", count=1, path="/sapi/v1/sub-account/subAccountApi")
    stack.tick(FixedClock(now + OVERLAP + timedelta(minutes=1)))
    assert not old.deleted
    assert _rotation(stack, key.id).state == RotationState.PROBING.value
    _said(stack, "could not delete the old key")
    (retire,) = _jobs(stack, JobKind.ROTATION_RETIRE)
    assert retire.state == "pending"
    stack.tick(FixedClock(retire.due_at + timedelta(seconds=1)), times=2)
    assert old.deleted
    assert _rotation(stack, key.id).state == RotationState.COMPLETE.value


def _fail_rotation_insert(engine, error):
    """Every INSERT into rotations fails: the store step breaks after Binance made the key."""

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO ROTATIONS"):
            raise error

    event.listen(engine, "before_cursor_execute", before)
    return lambda: event.remove(engine, "before_cursor_execute", before)


def test_a_store_failure_after_binance_made_the_key_deletes_it_again(stack, client):
    key, old = governed_key(stack, client)
    undo = _fail_rotation_insert(
        stack.services.engine, sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
    )
    try:
        rotate_now(stack, client)
        wait_until(lambda: len(stack.simulator.keys_of(SUB)) == 2, timeout=20)
        made = next(k for k in stack.simulator.keys_of(SUB) if k.api_key != old.api_key)
        wait_until(lambda: made.deleted, timeout=20)
        stack.wait_idle()
    finally:
        undo()
    assert not old.deleted
    row = _key(stack, "maker")
    assert row.status == KeyStatus.ACTIVE.value and row.api_key_masked == key.api_key_masked
    assert _rotation(stack, key.id) is None
    (mint,) = [m for m in _mints(stack) if m.reason == "rotate"]
    assert mint.state == MintState.REFUSED.value and mint.private_key_sealed is None


def test_a_made_key_that_cannot_be_deleted_again_is_named_to_the_admins(stack, client):
    """The store step fails after Binance made the key, and deleting it fails too: the mint
    check names it to the admins (before: the intent was closed and nobody was told)."""
    key, old = governed_key(stack, client)
    undo = _fail_rotation_insert(
        stack.services.engine, sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
    )
    stack.simulator.inject_fault("503", count=5, path="/sapi/v1/sub-account/subAccountApi")
    try:
        rotate_now(stack, client)
        wait_until(lambda: len(stack.simulator.keys_of(SUB)) == 2, timeout=20)
        _said(stack, "could not make the new key")
        stack.wait_idle()
    finally:
        undo()
        stack.simulator.clear_faults()
    made = next(k for k in stack.simulator.keys_of(SUB) if k.api_key != old.api_key)
    assert not made.deleted and not old.deleted
    assert _key(stack, "maker").api_key_masked == key.api_key_masked
    (mint,) = [m for m in _mints(stack) if m.reason == "rotate"]
    stack.tick(FixedClock(utcnow() + timedelta(minutes=6)), times=2)
    message = _said(stack, mint.api_name)
    assert ADMIN in all_text(message.params)
    with Session(stack.services.engine) as session:
        settled = session.get(GovernorMint, mint.id)
    assert settled.state == MintState.UNKNOWN.value and settled.private_key_sealed is None


class _ProcessDied(BaseException):
    """What a killed process looks like to the code after it: nothing more runs."""


def test_a_crash_after_binance_answered_is_named_to_the_admins(stack, client):
    _, old = governed_key(stack, client)
    undo = _fail_rotation_insert(stack.services.engine, _ProcessDied())
    try:
        rotate_now(stack, client)
        wait_until(lambda: len(stack.simulator.keys_of(SUB)) == 2, timeout=20)
        stack.wait_idle()
    finally:
        undo()
    made = next(k for k in stack.simulator.keys_of(SUB) if k.api_key != old.api_key)
    (mint,) = [m for m in _mints(stack) if m.reason == "rotate"]
    assert mint.state == MintState.ASKING.value  # the bot "died" before it learnt anything
    assert _key(stack, "maker").status == KeyStatus.ACTIVE.value
    # The claim's lease runs out and the mint check comes due: the successor is not made a
    # second time while the first is unsettled, and the admins are told which key to delete.
    stack.tick(FixedClock(utcnow() + timedelta(minutes=6)), times=2)
    message = _said(stack, mint.api_name)
    assert ADMIN in all_text(message.params)
    assert len(stack.simulator.keys_of(SUB)) == 2 and not made.deleted and not old.deleted
    with Session(stack.services.engine) as session:
        settled = session.get(GovernorMint, mint.id)
    assert settled.state == MintState.UNKNOWN.value and settled.private_key_sealed is None


def test_two_replicas_racing_make_one_successor(make_stack, pg_url, tmp_path):
    """Two bots on one PostgreSQL and one Binance, each asked to rotate the same key at the
    same moment (the simulator slowed so both are in flight): one successor, one rotation."""
    ring = generate_master_key("k1").encoded()
    settings = dict(
        admin_user_ids=ADMIN,
        bot_egress_ips="127.0.0.1",
        alert_channel=ALERTS,
        database_url=pg_url,
        master_keys=ring,
    )
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = make_stack(workdir=tmp_path / "a", **settings)
    second = make_stack(workdir=tmp_path / "b", simulator=first.simulator, **settings)
    clients = [bot_client(first), bot_client(second)]
    govern(first, clients[0])
    create(clients[0])
    wait_until(lambda: _key(first, "maker") is not None, timeout=20)
    (old,) = first.simulator.keys_of(SUB)
    first.simulator.latency = 0.2
    barrier = threading.Barrier(2)

    def press(stack, client) -> None:
        barrier.wait()
        rotate_now(stack, client)

    threads = [
        threading.Thread(target=press, args=(s, c))
        for s, c in zip((first, second), clients, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: _successor(first, old), timeout=30)
    first.wait_idle(30)
    second.wait_idle(30)
    first.simulator.latency = 0.0
    assert len(first.simulator.keys_of(SUB)) == 2
    with Session(first.services.engine) as session:
        assert len(session.exec(select(Rotation)).all()) == 1
        rotate_mints = [m for m in session.exec(select(GovernorMint)).all() if m.reason == "rotate"]
    assert len(rotate_mints) == 1
    busy = [
        c
        for s in (first, second)
        for c in s.slack.calls
        if "being rotated already" in all_text(c.params)
    ]
    assert len(busy) == 1


def test_an_old_key_that_will_not_go_is_told_to_the_channel_once(stack, client):
    """The owner hears of every failed retry; the team, once it keeps failing (two keys stay
    alive longer than planned)."""
    from bot.jobs.probes import CHANNEL_AFTER_FAILURES

    _key_row, old = governed_key(stack, client)
    rotate_now(stack, client)
    wait_until(lambda: _successor(stack, old), timeout=20)
    stack.wait_idle()
    now = utcnow()
    stack.tick(FixedClock(now), times=2)
    stack.simulator.inject_fault("503", count=50, path="/sapi/v1/sub-account/subAccountApi")
    stack.tick(FixedClock(now + OVERLAP + timedelta(minutes=1)))
    for _ in range(CHANNEL_AFTER_FAILURES + 1):
        (retire,) = _jobs(stack, JobKind.ROTATION_RETIRE)
        stack.tick(FixedClock(retire.due_at + timedelta(seconds=1)))
    assert not old.deleted
    told = [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if c.params.get("channel") == stack.settings.alert_channel
        and "could not delete the old key" in all_text(c.params)
    ]
    assert len(told) == 1
