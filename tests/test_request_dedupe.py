"""Slack delivers again (X-Slack-Retry-Num) when an answer was slow or lost: the same command,
click, form or event has one effect, and a second copy is acknowledged with nothing."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Callback
from bot.services.request_dedupe import SeenRequests
from storage.models import ApiKey, AuditEvent, Incident, utcnow
from tests.e2e import ALICE, BOB, all_text, bot_client, register_directly, register_values
from tests.slack_requests import (
    block_action,
    event_callback,
    slash_command,
    view_submission,
)

ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS)


def _deliver_twice(stack, body: str) -> tuple:
    client = bot_client(stack)
    first = client.post(body)
    again = client.post(body, retry_num=1, retry_reason="http_timeout")
    assert first.status_code == again.status_code == 200
    return first, again


def _settle(stack) -> None:
    """Wait until anything a repeated delivery might have started has reached Slack (it must
    not have started anything)."""
    assert stack.wait_idle(), "the bot is still working"


def _audit(stack, action: str) -> int:
    with Session(stack.services.engine) as session:
        return len(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_a_repeated_command_has_one_effect(stack):
    register_directly(stack, "bot")
    url = stack.slack.response_url()
    _, again = _deliver_twice(stack, slash_command("compromised bot", response_url=url))
    assert again.text == ""  # the copy is acknowledged with nothing
    stack.slack.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == ALERTS)
    with Session(stack.services.engine) as session:
        assert len(session.exec(select(Incident)).all()) == 1
    stack.slack.wait_for("response_url", predicate=lambda c: c.params["_response_url"] == url)
    _settle(stack)
    replies = [c for c in stack.slack.calls_to("response_url") if c.params["_response_url"] == url]
    assert len(replies) == 1 and "already open" not in all_text(replies[0].params)
    assert _audit(stack, "incident.raise") == 1


def test_a_repeated_click_has_one_effect(stack):
    registered, _ = register_directly(stack, "bot")
    url = stack.slack.response_url()
    body = block_action(
        Action.INCIDENT_RAISE, registered.key_id, response_url=url, user_id=BOB, message_ts="1.2"
    )
    _deliver_twice(stack, body)
    stack.slack.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == ALERTS)
    with Session(stack.services.engine) as session:
        assert len(session.exec(select(Incident)).all()) == 1
    stack.slack.wait_for("response_url")
    _settle(stack)
    assert len(stack.slack.calls_to("response_url")) == 1  # no "already open" for the copy
    assert _audit(stack, "incident.raise") == 1


def test_a_repeated_form_submission_registers_once_and_shows_no_error(stack):
    sim_key = stack.simulator.add_key(account="main", ip_restrict=True)
    body = view_submission(
        Callback.REGISTER.value,
        register_values(label="dash", api_key=sim_key.api_key, secret=sim_key.secret),
        private_metadata=json.dumps({"channel": "C0GENERAL"}),
    )
    first, again = _deliver_twice(stack, body)
    assert "errors" not in first.text and again.text == ""
    with Session(stack.services.engine) as session:
        assert len(session.exec(select(ApiKey)).all()) == 1
    assert _audit(stack, "key.register") == 1


def test_a_repeated_event_is_answered_once(stack):
    event = {
        "type": "message",
        "channel": "C0DEV",
        "user": ALICE,
        "text": "secret: " + "A1b2" * 16,
        "ts": "1700000001.000200",
    }
    _deliver_twice(stack, event_callback(event, event_id="Ev0RETRY01"))
    stack.slack.wait_for("chat.postMessage")
    _settle(stack)
    assert len(stack.slack.calls_to("chat.postMessage")) == 1


def test_a_new_request_with_the_same_shape_is_not_a_repeat(stack):
    """Two people typing the same command are two requests (each has its own trigger_id)."""
    client = bot_client(stack)
    for user in (ALICE, BOB):
        url = stack.slack.response_url()
        assert client.post(slash_command("list", user_id=user, response_url=url)).text != ""


def test_the_delivery_log_tells_a_first_delivery_from_a_repeat_on_each_database(engine):
    deliveries = SeenRequests(engine)
    now = utcnow()
    assert deliveries.first_time("event:Ev1", now) is True
    assert deliveries.first_time("event:Ev1", now) is False
    assert deliveries.first_time("event:Ev2", now) is True
