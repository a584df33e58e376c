"""Leak detection reads every message shape that carries text a person sees.

The Slack stand-in sends each shape as Slack's Events API does (bot.sandbox.slack_events cites
the pages): thread replies broadcast to the channel, edits (``message_changed``, the new text
in ``message``), file shares (the message's text, the file's title and preview), other apps'
messages (``bot_message``, or a message with a ``bot_id``). Only the bot's own messages are
skipped, recognised by the bot id and bot user id ``auth.test`` gave (as Bolt does).

Every event is signed and posted to the running bot over HTTP.
"""

from __future__ import annotations

import logging

import pytest
from sqlmodel import Session, select

from bot.ids import Action
from bot.sandbox import slack_events as shapes
from storage.models import AuditEvent
from tests.e2e import ALICE, BOB, TEAM, all_text, register_directly
from tests.factories import random_api_key
from tests.slack_requests import SIGNING_SECRET

CHANNEL = "C0DEV"
PARENT_TS = "1700000001.000100"
TS = "1700000002.000200"
OTHER_BOT = "B0DEPLOYER"


def _send(stack, event: dict, **kw) -> None:
    response = stack.slack.deliver_event(event, to=stack.url, signing_secret=SIGNING_SECRET, **kw)
    assert response.status_code == 200


def _warning(stack):
    (reply,) = stack.slack.wait_for("chat.postMessage")
    return reply.params


def _leaks(stack) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == "leak.detected")
        return list(session.exec(query).all())


def _assert_matched(stack, registered, sim_key, *, thread_ts: str, caplog) -> None:
    params = _warning(stack)
    assert params["channel"] == CHANNEL and params["thread_ts"] == thread_ts
    text = all_text(params)
    assert "trading-bot" in text and sim_key.secret not in text
    button = params["blocks"][-1]["elements"][0]
    assert button["action_id"] == Action.INCIDENT_RAISE and button["value"] == registered.key_id
    (leak,) = _leaks(stack)
    assert leak.team_id == TEAM and leak.target_key_id == registered.key_id
    assert sim_key.secret not in caplog.text


@pytest.fixture
def leaked(stack, caplog):
    caplog.set_level(logging.DEBUG)
    return register_directly(stack, "trading-bot")


def test_a_thread_reply_also_sent_to_the_channel(stack, leaked, caplog):
    registered, sim_key = leaked
    event = shapes.thread_broadcast(
        f"here you go {sim_key.secret}",
        channel=CHANNEL,
        user=ALICE,
        team=TEAM,
        ts=TS,
        thread_ts=PARENT_TS,
        root=shapes.user_message("which key?", channel=CHANNEL, user=BOB, team=TEAM, ts=PARENT_TS),
    )
    _send(stack, event)
    _assert_matched(stack, registered, sim_key, thread_ts=PARENT_TS, caplog=caplog)


def test_a_plain_thread_reply_is_answered_in_its_thread(stack, leaked, caplog):
    """Slack: a reply's ``thread_ts`` names its parent; replies go to the parent's ts."""
    registered, sim_key = leaked
    event = shapes.user_message(
        sim_key.api_key, channel=CHANNEL, user=ALICE, team=TEAM, ts=TS, thread_ts=PARENT_TS
    )
    _send(stack, event)
    _assert_matched(stack, registered, sim_key, thread_ts=PARENT_TS, caplog=caplog)


def test_an_edit_that_adds_the_secret(stack, leaked, caplog):
    registered, sim_key = leaked
    before = shapes.user_message("the secret is <later>", channel=CHANNEL, user=ALICE, ts=TS)
    after = shapes.user_message(
        f"the secret is {sim_key.secret}", channel=CHANNEL, user=ALICE, ts=TS
    )
    _send(stack, shapes.message_changed(after, previous=before, channel=CHANNEL))
    _assert_matched(stack, registered, sim_key, thread_ts=TS, caplog=caplog)


def test_an_edit_whose_secret_is_only_in_blocks_or_attachments(stack, leaked, caplog):
    registered, sim_key = leaked
    before = shapes.user_message("config below", channel=CHANNEL, user=ALICE, ts=TS)
    after = {
        **before,
        "text": "config below",
        "blocks": shapes.rich_text(f"config below\nsecret: {sim_key.secret}"),
        "attachments": [
            {"fallback": "cfg", "fields": [{"title": "key", "value": sim_key.api_key}]}
        ],
    }
    _send(stack, shapes.message_changed(after, previous=before, channel=CHANNEL))
    _assert_matched(stack, registered, sim_key, thread_ts=TS, caplog=caplog)


def test_an_edit_that_adds_nothing_new_gets_no_second_warning(stack, leaked):
    """Slack also sends ``message_changed`` when an unfurl or a reply count changes: the text a
    person sees is the same, and it was warned about already."""
    _, sim_key = leaked
    message = shapes.user_message(f"oops {sim_key.secret}", channel=CHANNEL, user=ALICE, ts=TS)
    unfurled = {**message, "attachments": [{"fallback": "example.com", "title": "Example"}]}
    _send(stack, shapes.message_changed(unfurled, previous=message, channel=CHANNEL))
    assert stack.wait_idle()
    assert stack.slack.calls_to("chat.postMessage") == []


def test_a_file_share_with_the_secret_in_its_message(stack, leaked, caplog):
    registered, sim_key = leaked
    file = shapes.file_object("notes.txt", user=ALICE)
    event = shapes.file_share(
        f"keys: {sim_key.secret}", channel=CHANNEL, user=ALICE, team=TEAM, ts=TS, files=[file]
    )
    _send(stack, event)
    _assert_matched(stack, registered, sim_key, thread_ts=TS, caplog=caplog)


@pytest.mark.parametrize("where", ["title", "preview"])
def test_a_file_share_with_the_secret_in_the_file_title_or_preview(stack, leaked, caplog, where):
    registered, sim_key = leaked
    if where == "title":
        file = shapes.file_object(sim_key.secret, user=ALICE)
    else:
        file = shapes.file_object(
            "bot.env", user=ALICE, preview=f"API_KEY={sim_key.api_key}\nMODE=live"
        )
    event = shapes.file_share("", channel=CHANNEL, user=ALICE, team=TEAM, ts=TS, files=[file])
    _send(stack, event)
    _assert_matched(stack, registered, sim_key, thread_ts=TS, caplog=caplog)


def test_another_apps_bot_message(stack, leaked, caplog):
    registered, sim_key = leaked
    event = shapes.bot_message(
        "deploy finished",
        channel=CHANNEL,
        bot_id=OTHER_BOT,
        ts=TS,
        username="deployer",
        attachments=[{"fallback": "env", "text": f"BINANCE_SECRET={sim_key.secret}"}],
    )
    _send(stack, event)
    _assert_matched(stack, registered, sim_key, thread_ts=TS, caplog=caplog)


def test_another_apps_message_posted_as_its_bot_user(stack, leaked, caplog):
    registered, sim_key = leaked
    event = shapes.app_message(
        f"rotated: {sim_key.api_key}",
        channel=CHANNEL,
        bot_id=OTHER_BOT,
        bot_user="U0DEPLOYER",
        app_id="A0DEPLOYER",
        team=TEAM,
        ts=TS,
    )
    _send(stack, event)
    _assert_matched(stack, registered, sim_key, thread_ts=TS, caplog=caplog)


def test_the_bots_own_messages_are_skipped_in_every_shape(stack):
    """Recognised by the bot id and bot user id of ``auth.test``, whatever the shape."""
    slack = stack.slack
    key_shaped = random_api_key()
    posted = stack.app.client.chat_postMessage(channel=CHANNEL, text=f"masked? {key_shaped}")
    own_messages = [
        slack.posted_message_event(CHANNEL, posted["ts"]),
        shapes.bot_message(key_shaped, channel=CHANNEL, bot_id=slack.bot_id, ts=TS, username="x"),
        shapes.message_changed(
            slack.posted_message_event(CHANNEL, posted["ts"]) | {"text": f"{key_shaped}!"},
            previous=slack.posted_message_event(CHANNEL, posted["ts"]),
            channel=CHANNEL,
        ),
    ]
    slack.clear()
    for event in own_messages:
        _send(stack, event)
    assert stack.wait_idle()
    assert slack.calls_to("chat.postMessage") == [] and _leaks(stack) == []


def test_other_subtypes_without_text_a_person_wrote_are_left_alone(stack):
    key_shaped = random_api_key()
    joined = shapes.user_message(f"<@{ALICE}> has joined", channel=CHANNEL, user=ALICE, ts=TS)
    _send(stack, {**joined, "subtype": "channel_join"})
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "channel": CHANNEL,
        "ts": TS,
        "deleted_ts": PARENT_TS,
        "previous_message": shapes.user_message(key_shaped, channel=CHANNEL, user=ALICE, ts=TS),
    }
    _send(stack, deleted)
    assert stack.wait_idle()
    assert stack.slack.calls_to("chat.postMessage") == []
