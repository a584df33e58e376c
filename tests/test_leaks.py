"""Leak detection in channels: warn in thread, offer the playbook for a registered key,
never keep or log the text."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from bot.ids import Action
from tests.e2e import ALICE, all_text, bot_client, register_directly
from tests.factories import random_api_key
from tests.slack_requests import BOT_ID, BOT_USER_ID, event_callback


def _say(stack, text: str, **extra):
    event = {
        "type": "message",
        "channel": "C0DEV",
        "user": ALICE,
        "text": text,
        "ts": "1700000001.000200",
        **extra,
    }
    response = bot_client(stack).post(event_callback(event))
    assert response.status_code == 200


def _dump(stack) -> str:
    with stack.services.engine.connect() as connection:
        return repr(connection.execute(sa.text("SELECT * FROM audit_events")).all())


def test_a_registered_secret_pasted_in_a_channel_gets_a_thread_warning_with_the_playbook(
    stack, caplog
):
    caplog.set_level(logging.DEBUG)
    registered, sim_key = register_directly(stack, "trading-bot")
    _say(stack, f"here is the secret for the bot: {sim_key.secret} ok?")
    (reply,) = stack.slack.wait_for("chat.postMessage")
    assert reply.params["thread_ts"] == "1700000001.000200" and reply.params["channel"] == "C0DEV"
    text = all_text(reply.params)
    assert "trading-bot" in text and "leaked" in text
    button = reply.params["blocks"][-1]["elements"][0]
    assert button["action_id"] == Action.INCIDENT_RAISE and button["value"] == registered.key_id
    assert sim_key.secret not in text
    assert sim_key.secret not in caplog.text
    dump = _dump(stack)
    assert sim_key.secret not in dump and "leak.detected" in dump


def test_an_unknown_key_shaped_value_gets_a_warning_without_a_button(stack):
    _say(stack, f"api key {random_api_key()}")
    (reply,) = stack.slack.wait_for("chat.postMessage")
    assert not any(b["type"] == "actions" for b in reply.params["blocks"])
    assert "treated as leaked" in all_text(reply.params)


def test_ordinary_messages_and_the_bots_own_messages_are_left_alone(stack):
    """Other apps' messages are read too (tests/test_leak_shapes.py); the bot's own are not."""
    _say(stack, "let's rotate the trading bot key tomorrow")
    _say(stack, f"{random_api_key()}", bot_id=BOT_ID, user=BOT_USER_ID)
    _say(stack, f"{random_api_key()}", subtype="message_changed")  # no edited message in it
    bot_client(stack).post(event_callback({"type": "app_mention", "user": ALICE, "text": "hi"}))
    assert stack.wait_idle()  # whatever the events started is over
    assert stack.slack.calls_to("chat.postMessage") == []
