"""Rotation end to end: policies, reminders at each step, snooze, rotation proven on Binance.

Time is injected: the scheduler is ticked by hand with a FixedClock."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Block, Callback
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.requests import rotate_form_values
from storage.models import ApiKey, KeyStatus, Rotation, ScheduledJob, utcnow
from tests.e2e import ALICE, BOB, all_text, register_directly
from tests.factories import TRADE, WITHDRAW
from tests.slack_requests import block_action, slash_command, view_submission

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN, default_rotation_days=30)


def _register(stack, label="bot", *, owner=ALICE, now=None, permissions=None, key_type="HMAC"):
    return register_directly(
        stack, label, owner=owner, now=now, permissions=permissions, key_type=key_type
    )


def _posts(stack) -> list:
    return stack.slack.calls_to("chat.postMessage")


def _key(stack, label="bot") -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


# --- policies -------------------------------------------------------------------------------


def test_policy_command_sets_the_period_and_replans(stack, client):
    _register(stack)
    reply = client.post(
        slash_command("rotate bot every 7d", response_url=stack.slack.response_url())
    )
    assert "every 7 days" in all_text(reply.json())
    key = _key(stack)
    assert key.rotation_period_days == 7
    with Session(stack.services.engine) as session:
        pending = session.exec(
            select(ScheduledJob).where(
                ScheduledJob.key_id == key.id, ScheduledJob.state == "pending"
            )
        ).all()
    due = key.last_rotated_at + timedelta(days=7)
    assert {job.due_at for job in pending if job.payload["step"] == "due"} == {due}
    bad = client.post(slash_command("rotate bot every 0d", response_url=stack.slack.response_url()))
    assert "from 1 to" in all_text(bad.json())


def test_rotation_overview_lists_most_urgent_first(stack, client):
    now = utcnow()
    _register(stack, "alpha", now=now)
    _register(stack, "bravo", now=now - timedelta(days=40))
    _register(stack, "charlie", now=now - timedelta(days=25))
    reply = client.post(slash_command("rotation", response_url=stack.slack.response_url()))
    text = all_text(reply.json())
    assert "3 keys: 1 overdue, 1 due soon" in text
    assert text.index("bravo") < text.index("charlie") < text.index("alpha")


# --- reminders ------------------------------------------------------------------------------


def test_each_step_reminds_the_right_people_exactly_once(stack):
    t0 = utcnow()
    _register(stack, now=t0)
    clock = FixedClock(t0)
    expected = [
        (16, "D", "due in 14 days"),
        (23, "D", "due in 7 days"),
        (29, "D", "due in 1 day"),
        (30, ALERTS, "due *today*"),
        (33, ALERTS, f"<@{ADMIN}>"),
        (37, ALERTS, "<!channel>"),
    ]
    for day, channel, fragment in expected:
        clock.current = t0 + timedelta(days=day, minutes=1)
        before = len(_posts(stack))
        stack.tick(clock)
        stack.tick(clock)  # a second tick at the same time sends nothing more
        posts = _posts(stack)[before:]
        assert len(posts) == 1, (day, [all_text(p.params)[:200] for p in posts])
        assert posts[0].params["channel"].startswith(channel)
        text = all_text(posts[0].params)
        assert fragment in text and "bot" in text
        assert "Sent late" not in text
        if channel == ALERTS:
            assert f"<@{ALICE}>" in text
    clock.current = t0 + timedelta(days=60)
    before = len(_posts(stack))
    stack.tick(clock)
    assert len(_posts(stack)) == before


def test_after_downtime_a_missed_reminder_is_sent_once_and_marked_late(stack):
    t0 = utcnow()
    _register(stack, now=t0)
    clock = FixedClock(t0 + timedelta(days=35))  # the bot was down from day 0 to day 35
    stack.tick(clock)
    stack.tick(clock)
    (post,) = _posts(stack)
    text = all_text(post.params)
    assert "5 days overdue" in text and f"<@{ADMIN}>" in text and "Sent late" in text
    with Session(stack.services.engine) as session:
        late = session.exec(select(ScheduledJob).where(ScheduledJob.late == True)).all()  # noqa: E712
    assert len(late) == 1


def test_snooze_by_the_owner_pauses_reminders_for_a_day(stack, client):
    t0 = utcnow() - timedelta(days=16, minutes=1)  # the 14-day reminder is due now
    registered, _ = _register(stack, now=t0)
    stranger = client.post(
        block_action(
            Action.SNOOZE, registered.key_id, user_id=BOB, response_url=stack.slack.response_url()
        )
    )
    assert stranger.status_code == 200
    assert _key(stack).snoozed_until is None
    url = stack.slack.response_url()
    client.post(block_action(Action.SNOOZE, registered.key_id, user_id=ALICE, response_url=url))
    reply = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "Snoozed" in all_text(reply[0].params)
    snoozed_until = _key(stack).snoozed_until
    clock = FixedClock(utcnow())
    stack.tick(clock)
    assert _posts(stack) == []
    clock.current = snoozed_until + timedelta(minutes=1)
    stack.tick(clock)
    assert len(_posts(stack)) == 1


def test_reminder_for_a_key_whose_owner_left_goes_to_the_admins(stack):
    stack.slack.add_user(BOB, name="bob", deleted=True)
    t0 = utcnow()
    _register(stack, owner=BOB, now=t0)
    stack.tick(FixedClock(t0 + timedelta(days=16, minutes=1)))
    (post,) = _posts(stack)
    opened = stack.slack.calls_to("conversations.open")
    assert opened[-1].params["users"] == ADMIN
    assert "no owner in the workspace" in all_text(post.params)


# --- the rotation flow --------------------------------------------------------------------


def _submit_rotation(client, stack, key_id, sim_key, *, user_id=ALICE, confirm=False):
    values = rotate_form_values(
        key_type=sim_key.key_type, api_key=sim_key.api_key, secret=sim_key.secret, confirm=confirm
    )
    body = view_submission(
        Callback.ROTATE.value,
        values,
        user_id=user_id,
        private_metadata=json.dumps({"key_id": key_id, "channel": "C0GENERAL"}),
    )
    return client.post(body)


def test_rotation_completes_only_once_binance_rejects_the_old_key(stack, client):
    registered, old = _register(stack)
    reply = client.post(slash_command("rotate bot", response_url=stack.slack.response_url()))
    assert reply.status_code == 200
    (opened,) = stack.slack.wait_for("views.open")
    assert opened.params["view"]["callback_id"] == Callback.ROTATE
    new = stack.simulator.add_key(ip_restrict=True)
    response = _submit_rotation(client, stack, registered.key_id, new)
    assert response.json().get("response_action") == "update", response.text
    key = _key(stack)
    assert key.status == KeyStatus.ROTATING.value
    ring = stack.services.ring
    assert ring.open_text(key.api_key_sealed, context=key.api_key_context()) == new.api_key
    clock = FixedClock(utcnow())
    stack.tick(clock)  # the old key still works: nothing announced
    assert _key(stack).status == KeyStatus.ROTATING.value
    assert not [p for p in _posts(stack) if "complete" in all_text(p.params)]
    stack.simulator.delete_key(old.api_key)  # the owner deletes it in Binance
    clock.advance(timedelta(minutes=11))
    stack.tick(clock)
    stack.tick(clock)  # the announcement job
    key = _key(stack)
    assert key.status == KeyStatus.ACTIVE.value
    with Session(stack.services.engine) as session:
        rotation = session.exec(select(Rotation)).one()
    assert rotation.state == "complete"
    assert rotation.old_secret_sealed is None and rotation.old_api_key_sealed is None
    (announced,) = [p for p in _posts(stack) if "Rotation of" in all_text(p.params)]
    assert announced.params["channel"] == ALERTS
    assert old.secret not in all_text(announced.params)


def test_old_key_still_alive_after_grace_is_reported_to_the_channel_once(stack, client):
    registered, _old = _register(stack)
    new = stack.simulator.add_key(ip_restrict=True)
    response = _submit_rotation(client, stack, registered.key_id, new)
    assert response.json().get("response_action") == "update", response.text
    clock = FixedClock(utcnow() + timedelta(hours=25))
    for _ in range(3):
        stack.tick(clock)
        clock.advance(timedelta(hours=2))
    alive = [p for p in _posts(stack) if "still works" in all_text(p.params)]
    assert len(alive) == 1 and alive[0].params["channel"] == ALERTS
    assert _key(stack).status == KeyStatus.ROTATING.value


def test_rotation_to_the_same_key_is_refused(stack, client):
    registered, old = _register(stack)
    response = _submit_rotation(client, stack, registered.key_id, old)
    assert "already registered" in response.json()["errors"][Block.API_KEY]
    assert _key(stack).status == KeyStatus.ACTIVE.value


def test_new_key_with_more_permissions_needs_the_owners_confirmation(stack, client):
    registered, _ = _register(stack, permissions=TRADE)
    wider = stack.simulator.add_key(
        ip_restrict=True,
        permissions=WITHDRAW,
    )
    refused = _submit_rotation(client, stack, registered.key_id, wider)
    assert "Withdraw" in refused.json()["errors"][Block.ROTATE_CONFIRM]
    # an admin may rotate the key, but only its owner may accept more permissions
    by_admin = _submit_rotation(
        client, stack, registered.key_id, wider, user_id=ADMIN, confirm=True
    )
    assert "owner" in by_admin.json()["errors"][Block.ROTATE_CONFIRM]
    # a member who is neither may not rotate it at all
    by_other = _submit_rotation(client, stack, registered.key_id, wider, user_id=BOB, confirm=True)
    assert "Only its owner" in by_other.json()["errors"][Block.API_KEY]
    assert _key(stack).status == KeyStatus.ACTIVE.value
    accepted = _submit_rotation(client, stack, registered.key_id, wider, confirm=True)
    assert accepted.json().get("response_action") == "update", accepted.text
    assert _key(stack).status == KeyStatus.ROTATING.value
