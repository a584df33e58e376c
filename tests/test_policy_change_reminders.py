"""A reminder made due by a change of rotation policy is sent once, on time, and is not
escalated as if the key had been overdue unnoticed: "Sent late: the bot was not running" is
kept for real downtime. The scheduler is ticked by hand with a FixedClock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.job_queue.scheduler import FixedClock
from storage.models import ApiKey, AuditEvent, ScheduledJob, utcnow
from tests.e2e import ALICE, all_text, bot_client, register_directly

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN, default_rotation_days=30)


def _posts_after(stack, clock, count_before: int) -> list[str]:
    stack.tick(clock)
    stack.tick(clock)  # a second tick at the same moment sends nothing more
    return [all_text(p.params) for p in stack.slack.calls_to("chat.postMessage")[count_before:]]


def _set_policy(stack, text: str) -> str:
    reply = bot_client(stack).command(text, response_url=stack.slack.response_url())
    return all_text(reply.json())


def _late_jobs(stack) -> list[ScheduledJob]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(ScheduledJob).where(ScheduledJob.late == True)))  # noqa: E712


def test_shortening_the_period_of_an_old_key_reminds_once_now_without_late_or_channel_ping(
    stack,
):
    t0 = utcnow()
    register_directly(stack, "bot", now=t0 - timedelta(days=20))  # 30-day policy: due in 10
    assert "every 7 days" in _set_policy(stack, "rotate bot every 7d")  # now 13 days overdue
    clock = FixedClock(t0 + timedelta(minutes=1))
    (text,) = _posts_after(stack, clock, 0)
    assert "13 days overdue" in text and "bot" in text
    assert "Sent late" not in text and "not running" not in text
    assert "<!channel>" not in text and f"<@{ADMIN}>" not in text  # not escalated at once
    assert f"<@{ALICE}>" in text  # the owner hears of it in the alert channel
    assert _late_jobs(stack) == []
    with Session(stack.services.engine) as session:
        audit = session.exec(
            select(AuditEvent).where(AuditEvent.action == "rotation.reminder")
        ).all()
    assert [(e.detail["step"], e.detail["late"]) for e in audit] == [("due", False)]

    # Escalation counts from the change: the admins after 3 more days, the channel after 7.
    clock.current = t0 + timedelta(days=2, hours=23)
    assert _posts_after(stack, clock, 1) == []
    clock.current = t0 + timedelta(days=3, minutes=2)
    (admins,) = _posts_after(stack, clock, 1)
    assert f"<@{ADMIN}>" in admins and "<!channel>" not in admins and "Sent late" not in admins
    clock.current = t0 + timedelta(days=7, minutes=2)
    (everyone,) = _posts_after(stack, clock, 2)
    assert "<!channel>" in everyone and "Sent late" not in everyone
    assert _late_jobs(stack) == []


def test_a_period_that_makes_the_key_due_soon_sends_the_current_lead_reminder_once(stack):
    t0 = utcnow()
    register_directly(stack, "bot", now=t0 - timedelta(days=20))
    _set_policy(stack, "rotate bot every 25d")  # due in 5 days: the 14- and 7-day steps passed
    clock = FixedClock(t0 + timedelta(minutes=1))
    (text,) = _posts_after(stack, clock, 0)
    assert "due in 5 days" in text and "Sent late" not in text
    clock.current = t0 + timedelta(days=4, minutes=2)
    (last_day,) = _posts_after(stack, clock, 1)
    assert "due in 1 day" in last_day and "Sent late" not in last_day
    assert _late_jobs(stack) == []


def test_a_policy_change_while_the_bot_is_down_is_still_late_when_sent_days_after(stack):
    """The reminder planned at the change is late only if the bot sends it much later."""
    t0 = utcnow()
    register_directly(stack, "bot", now=t0 - timedelta(days=20))
    _set_policy(stack, "rotate bot every 7d")
    clock = FixedClock(t0 + timedelta(days=1))  # the bot was down for a day after the change
    (text,) = _posts_after(stack, clock, 0)
    assert "Sent late" in text and "<!channel>" not in text
    assert len(_late_jobs(stack)) == 1


def test_the_plan_after_a_change_keeps_one_job_per_step_and_none_in_the_past(stack):
    t0 = utcnow()
    register_directly(stack, "bot", now=t0 - timedelta(days=20))
    _set_policy(stack, "rotate bot every 7d")
    with Session(stack.services.engine) as session:
        key = session.exec(select(ApiKey)).one()
        pending = session.exec(
            select(ScheduledJob).where(
                ScheduledJob.key_id == key.id, ScheduledJob.state == "pending"
            )
        ).all()
    steps = sorted((job.due_at, job.payload["step"]) for job in pending)
    assert [step for _, step in steps] == ["due", "overdue_admins", "overdue_channel"]
    assert all(due >= t0 - timedelta(seconds=5) for due, _ in steps)


@pytest.mark.parametrize(
    "commands",
    [["rotate bot every 30d"], ["rotate bot every 7d", "rotate bot every 30d"]],
    ids=["same period again", "there and back"],
)
def test_a_policy_that_comes_back_to_the_same_due_date_keeps_its_reminders(stack, commands):
    t0 = utcnow()
    register_directly(stack, "bot", now=t0)
    for command in commands:
        _set_policy(stack, command)
    clock = FixedClock(t0 + timedelta(days=16, minutes=1))
    (text,) = _posts_after(stack, clock, 0)
    assert "due in 14 days" in text and "Sent late" not in text
    clock.current = t0 + timedelta(days=30, minutes=1)
    (due,) = _posts_after(stack, clock, 1)
    assert "due *today*" in due


def test_a_step_already_sent_is_not_sent_again_by_a_new_plan_for_the_same_due_date(stack):
    t0 = utcnow()
    register_directly(stack, "bot", now=t0 - timedelta(days=16, minutes=5))  # 14-day step due
    stack.tick(FixedClock(t0))
    assert len(stack.slack.calls_to("chat.postMessage")) == 1
    _set_policy(stack, "rotate bot every 30d")  # the same due date: a new plan
    assert _posts_after(stack, FixedClock(t0 + timedelta(minutes=1)), 1) == []
