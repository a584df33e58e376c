"""The Slack stand-in, driven by slack_sdk's real clients, and the signed-request builders,
checked against slack_sdk's verifier and Bolt's own payload parsing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs

import pytest
import requests
from slack_bolt import App, BoltRequest
from slack_bolt.request import payload_utils
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.models.blocks import DividerBlock, SectionBlock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.sandbox.slack_standin import SlackCall, SlackStandIn
from bot.slack.gate import gate_for
from bot.slack.http_server import make_server
from tests.slack_requests import (
    SIGNING_SECRET,
    BotClient,
    block_action,
    event_callback,
    sign,
    slash_command,
    url_verification,
    view_submission,
)

TOKEN = "xoxb-test"
MODAL = {
    "type": "modal",
    "callback_id": "demo",
    "title": {"type": "plain_text", "text": "Demo"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}],
}


@pytest.fixture
def slack():
    with SlackStandIn(users={"U0ALICE": {"name": "alice", "tz": "Europe/Paris"}}) as standin:
        yield standin


@pytest.fixture
def web_client(slack) -> WebClient:
    return WebClient(base_url=slack.url, token=TOKEN)


# --- the stand-in, through slack_sdk ---------------------------------------------------------


def test_url_is_a_web_api_base_url_on_a_free_local_port(slack):
    assert slack.url.startswith("http://127.0.0.1:") and slack.url.endswith("/api/")
    with SlackStandIn() as other:
        assert other.url != slack.url  # port 0: stand-ins never collide


def test_post_message_is_recorded_with_its_blocks_decoded(slack, web_client):
    blocks = [SectionBlock(text="*hello*"), DividerBlock()]
    first = web_client.chat_postMessage(channel="C0GENERAL", text="hello", blocks=blocks)
    second = web_client.chat_postMessage(channel="C0GENERAL", text="again")
    assert first["ok"] and first["channel"] == "C0GENERAL"
    assert first["ts"] == "1700000000.000100" and float(second["ts"]) > float(first["ts"])
    assert first["message"]["text"] == "hello" and first["message"]["bot_id"]
    (call, _) = slack.calls_to("chat.postMessage")
    assert isinstance(call, SlackCall) and call.ok
    assert call.token == TOKEN
    assert call.params["blocks"] == [b.to_dict() for b in blocks]
    assert call.params["channel"] == "C0GENERAL" and call.params["text"] == "hello"


def test_form_encoded_json_fields_are_decoded_and_the_token_kept_out_of_params(slack, web_client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "form"}}]
    web_client.api_call(
        "chat.postMessage", data={"channel": "C0GENERAL", "blocks": json.dumps(blocks)}
    )
    form = requests.post(
        slack.url + "chat.postMessage",
        data={"token": TOKEN, "channel": "C0X", "text": "t", "attachments": "[]"},
        timeout=5,
    ).json()
    assert form["ok"]
    via_sdk, via_form = slack.calls_to("chat.postMessage")
    assert via_sdk.params["blocks"] == blocks
    assert via_form.params == {"channel": "C0X", "text": "t", "attachments": []}
    assert via_form.token == TOKEN


def test_posting_to_a_user_id_lands_in_their_dm_and_conversations_open_agrees(slack, web_client):
    opened = web_client.conversations_open(users="U0ALICE")
    posted = web_client.chat_postMessage(channel="U0ALICE", text="psst")
    assert opened["channel"]["id"].startswith("D")
    assert posted["channel"] == opened["channel"]["id"]
    assert web_client.conversations_open(users=["U0ALICE", "U0BOB"])["channel"]["id"].startswith(
        "G"
    )
    (call, _) = slack.calls_to("conversations.open")
    assert call.params["users"] == "U0ALICE"
    assert (
        web_client.conversations_info(channel=opened["channel"]["id"])["channel"]["is_im"] is True
    )


def test_ephemeral_update_delete_permalink_and_reaction(slack, web_client):
    ephemeral = web_client.chat_postEphemeral(channel="C0GENERAL", user="U0ALICE", text="only you")
    assert ephemeral["message_ts"]
    posted = web_client.chat_postMessage(channel="C0GENERAL", text="v1")
    updated = web_client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="v2")
    assert updated["ts"] == posted["ts"] and updated["text"] == "v2"
    link = web_client.chat_getPermalink(channel="C0GENERAL", message_ts=posted["ts"])
    assert link["permalink"].endswith("/archives/C0GENERAL/p1700000000000200")
    assert web_client.reactions_add(channel="C0GENERAL", timestamp=posted["ts"], name="eyes")["ok"]
    assert web_client.chat_delete(channel="C0GENERAL", ts=posted["ts"])["ok"]
    methods = [c.method for c in slack.calls]
    assert methods == [
        "chat.postEphemeral",
        "chat.postMessage",
        "chat.update",
        "chat.getPermalink",
        "reactions.add",
        "chat.delete",
    ]


def test_views_open_update_and_publish(slack, web_client):
    opened = web_client.views_open(trigger_id="trig.1", view=MODAL)
    view = opened["view"]
    assert view["id"].startswith("V") and view["hash"] and view["callback_id"] == "demo"
    assert view["state"] == {"values": {}}
    (call,) = slack.wait_for("views.open")
    assert call.params["view"] == MODAL and call.params["trigger_id"] == "trig.1"
    updated = web_client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert updated["view"]["id"] == view["id"] and updated["view"]["hash"] != view["hash"]
    with pytest.raises(SlackApiError) as stale:
        web_client.views_update(view_id=view["id"], hash=view["hash"], view=MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    # a view Slack itself opened (its id came in a signed payload) can be updated too
    assert web_client.views_update(view_id="V0VIEW", view=MODAL)["view"]["id"] == "V0VIEW"
    home = {"type": "home", "blocks": []}
    assert web_client.views_publish(user_id="U0ALICE", view=home)["view"]["id"].startswith("V")


def test_what_slack_refuses_is_refused(slack, web_client):
    too_many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as blocks:
        web_client.chat_postMessage(channel="C0GENERAL", text="x", blocks=too_many)
    assert blocks.value.response["error"] == "invalid_blocks"
    long_title = {
        **MODAL,
        "title": {"type": "plain_text", "text": "A title far too long for Slack"},
    }
    with pytest.raises(SlackApiError) as title:
        web_client.views_open(trigger_id="t", view=long_title)
    assert title.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as no_text, pytest.warns(UserWarning, match="`text`"):
        web_client.chat_postMessage(channel="C0GENERAL")
    assert no_text.value.response["error"] == "no_text"
    assert [c.error for c in slack.calls] == ["invalid_blocks", "invalid_arguments", "no_text"]


def test_users_info_known_deleted_and_unknown(slack, web_client):
    slack.add_user("U0BOB", name="bob", deleted=True, is_admin=True)
    alice = web_client.users_info(user="U0ALICE")["user"]
    assert alice["id"] == "U0ALICE" and alice["name"] == "alice" and alice["deleted"] is False
    assert alice["tz"] == "Europe/Paris" and alice["tz_offset"] in (3600, 7200)
    bob = web_client.users_info(user="U0BOB")["user"]
    assert bob["deleted"] is True and bob["is_admin"] is True
    with pytest.raises(SlackApiError) as missing:
        web_client.users_info(user="U0NOBODY")
    assert missing.value.response["error"] == "user_not_found"
    members = {m["id"] for m in web_client.users_list()["members"]}
    assert {"U0ALICE", "U0BOB", slack.bot_user_id} <= members
    slack.add_usergroup("S0ADMINS", ["U0BOB"])
    assert web_client.usergroups_users_list(usergroup="S0ADMINS")["users"] == ["U0BOB"]


def test_auth_test_answers_like_slack_and_is_not_recorded_by_default(slack, web_client):
    auth = web_client.auth_test()
    assert auth["user_id"] == "U0BOT" and auth["team_id"] == "T0TEST"
    assert auth["bot_id"] and auth["url"].startswith("https://")
    assert auth["is_enterprise_install"] is False
    assert slack.calls == []
    with SlackStandIn(record_auth_test=True) as recording:
        WebClient(base_url=recording.url, token=TOKEN).auth_test()
        assert [c.method for c in recording.calls] == ["auth.test"]


def test_a_bolt_app_starts_against_the_stand_in(slack, web_client):
    app = App(client=web_client, signing_secret=SIGNING_SECRET)  # calls auth.test on construction
    assert app.client.base_url == slack.url
    assert slack.calls == []


def test_wrong_or_missing_token_is_refused_and_recorded(slack):
    with pytest.raises(SlackApiError) as wrong:
        WebClient(base_url=slack.url, token="xoxb-wrong").chat_postMessage(channel="C0X", text="x")
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=slack.url).chat_postMessage(channel="C0X", text="x")
    assert missing.value.response["error"] == "not_authed"
    wrong_call, missing_call = slack.calls_to("chat.postMessage")
    assert (wrong_call.token, wrong_call.error) == ("xoxb-wrong", "invalid_auth")
    assert (missing_call.token, missing_call.error) == (None, "not_authed")


def test_unknown_method_is_answered_and_recorded(slack, web_client):
    with pytest.raises(SlackApiError) as unknown:
        web_client.api_call("frobnicate.now", json={"x": 1})
    assert unknown.value.response["error"] == "unknown_method"
    (call,) = slack.calls_to("frobnicate.now")
    assert call.params == {"x": 1}


def test_response_url_posts_are_recorded(slack):
    url = slack.response_url()
    other = slack.response_url("status")
    assert url != other and url.startswith(slack.base + "/response/") and "status" in other
    reply = WebhookClient(url).send(text="Checking…", response_type="ephemeral")
    assert reply.status_code == 200 and reply.body == "ok"
    WebhookClient(other).send(blocks=[SectionBlock(text="done")], replace_original=True)
    (call,) = slack.wait_for("response_url", predicate=lambda c: c.params["_response_url"] == url)
    assert call.token is None
    assert call.params == {"text": "Checking…", "response_type": "ephemeral", "_response_url": url}
    (replaced,) = slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == other
    )
    assert replaced.params["blocks"] == [SectionBlock(text="done").to_dict()]
    assert replaced.params["replace_original"] is True


def test_response_url_refuses_what_slack_refuses(slack):
    too_many = WebhookClient(slack.response_url()).send(blocks=[{"type": "divider"}] * 51)
    assert (too_many.status_code, too_many.body) == (400, "invalid_blocks")
    not_json = requests.post(slack.response_url(), data="text=hi", timeout=5)
    assert (not_json.status_code, not_json.text) == (400, "invalid_payload")
    assert [c.status for c in slack.calls_to("response_url")] == [400, 400]


def test_injected_429_is_retried_by_the_rate_limit_handler(slack):
    slack.inject_fault("chat.postMessage", status=429, retry_after=0)
    retrying = WebClient(
        base_url=slack.url,
        token=TOKEN,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    assert retrying.chat_postMessage(channel="C0GENERAL", text="eventually")["ok"]
    limited, delivered = slack.calls_to("chat.postMessage")
    assert (limited.status, limited.error) == (429, "ratelimited")
    assert delivered.ok


def test_injected_429_without_a_retry_handler_raises_ratelimited(slack):
    slack.inject_fault("chat.postMessage", status=429, retry_after=7, count=2)
    plain = WebClient(base_url=slack.url, token=TOKEN, retry_handlers=[])
    for _ in range(2):
        with pytest.raises(SlackApiError) as limited:
            plain.chat_postMessage(channel="C0GENERAL", text="x")
        assert limited.value.response.status_code == 429
        assert limited.value.response["error"] == "ratelimited"
        assert limited.value.response.headers["Retry-After"] == "7"
    assert plain.chat_postMessage(channel="C0GENERAL", text="x")["ok"]  # the faults are used up


def test_injected_server_error_and_ok_false(slack):
    plain = WebClient(base_url=slack.url, token=TOKEN, retry_handlers=[])
    slack.inject_fault("views.open", status=503)
    with pytest.raises(SlackApiError) as unavailable:
        plain.views_open(trigger_id="t", view=MODAL)
    assert unavailable.value.response.status_code == 503
    slack.inject_fault("chat.postMessage", status=200, error="channel_not_found")
    with pytest.raises(SlackApiError) as not_found:
        plain.chat_postMessage(channel="C0GONE", text="x")
    assert not_found.value.response.status_code == 200
    assert not_found.value.response["error"] == "channel_not_found"
    slack.inject_fault("response_url", status=404, error="expired_url")
    expired = WebhookClient(slack.response_url()).send(text="late")
    assert (expired.status_code, expired.body) == (404, "expired_url")
    with pytest.raises(ValueError):
        slack.inject_fault("chat.postMessage", status=200)


def test_wait_for_blocks_until_calls_arrive(slack, web_client):
    def later():
        time.sleep(0.2)
        web_client.chat_postMessage(channel="C0A", text="one")
        web_client.chat_postMessage(channel="C0B", text="two")

    threading.Thread(target=later, daemon=True).start()
    calls = slack.wait_for("chat.postMessage", count=2, timeout=5)
    assert [c.params["channel"] for c in calls] == ["C0A", "C0B"]
    (b,) = slack.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "C0B")
    assert b.params["text"] == "two"


def test_wait_for_timeout_says_what_did_arrive(slack, web_client):
    web_client.chat_postMessage(channel="C0GENERAL", text="the only message")
    web_client.users_info(user="U0ALICE")
    started = time.monotonic()
    with pytest.raises(AssertionError) as timed_out:
        slack.wait_for("views.open", timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 3
    message = str(timed_out.value)
    assert "views.open" in message and "got 0 matching" in message
    assert "chat.postMessage channel=C0GENERAL" in message and "the only message" in message
    assert "users.info user=U0ALICE" in message


def test_clear_forgets_calls_and_latency_slows_answers(slack, web_client):
    web_client.chat_postMessage(channel="C0GENERAL", text="x")
    slack.clear()
    assert slack.calls == []
    slack.latency = 0.3
    started = time.monotonic()
    web_client.chat_postMessage(channel="C0GENERAL", text="y")
    assert time.monotonic() - started >= 0.3
    assert len(slack.calls) == 1


def test_stop_is_idempotent_and_url_needs_a_running_stand_in():
    standin = SlackStandIn().start()
    standin.stop()
    standin.stop()
    with pytest.raises(RuntimeError):
        _ = standin.url


def test_cli_prints_its_url_and_each_call():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox.slack_standin", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        url = first.split("listening on ", 1)[1].split()[0]
        WebClient(base_url=url, token=TOKEN).chat_postMessage(channel="C0CLI", text="from the cli")
        line = proc.stdout.readline()
        assert "chat.postMessage channel=C0CLI" in line and "-> ok" in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the signed-request builders ----------------------------------------------------------------


def test_signature_verifies_with_slack_sdk():
    body = slash_command("help", response_url="http://127.0.0.1:1/response/x")
    headers = sign(body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    stale = sign(body, timestamp=1_000_000_000)
    assert not verifier.is_valid_request(body, stale)  # older than five minutes
    assert (
        verifier.is_valid(body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"])
        is False
    )
    assert sign(event_callback({"type": "app_home_opened"}))["Content-Type"] == "application/json"


def test_slash_command_body_has_the_fields_slack_sends():
    body = slash_command("status all", response_url="http://r/1", user_id="U0BOB")
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    assert list(fields) == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert fields["command"] == "/apikey" and fields["text"] == "status all"
    assert fields["user_id"] == "U0BOB" and fields["user_name"] == "bob"
    assert fields["team_id"] == "T0TEST" and fields["channel_id"] == "C0GENERAL"
    assert fields["response_url"] == "http://r/1" and fields["is_enterprise_install"] == "false"
    assert "status+all" in body  # spaces encoded the way Slack encodes them


def _bolt_request(body: str) -> BoltRequest:
    return BoltRequest(body=body, headers={k.lower(): [v] for k, v in sign(body).items()})


def test_block_action_in_a_message_is_what_bolt_expects():
    body = block_action(
        "approve", "key-1", response_url="http://r/2", message_ts="1700000000.000100"
    )
    request = _bolt_request(body)
    payload = request.body
    assert payload_utils.is_action(payload) and payload_utils.is_block_actions(payload)
    assert payload_utils.to_action(payload) == payload["actions"][0]
    assert (
        payload["actions"][0]["action_id"] == "approve"
        and payload["actions"][0]["value"] == "key-1"
    )
    assert payload["message"]["ts"] == payload["container"]["message_ts"] == "1700000000.000100"
    context = request.context
    assert (context.user_id, context.team_id, context.channel_id) == (
        "U0ALICE",
        "T0TEST",
        "C0GENERAL",
    )
    assert context.response_url == "http://r/2"


def test_block_action_in_an_ephemeral_message_and_in_a_modal():
    ephemeral = _bolt_request(block_action("next", "p:2", response_url="http://r/3")).body
    assert ephemeral["container"]["is_ephemeral"] is True and "message" not in ephemeral
    view = {"id": "V0MODAL", "callback_id": "demo", "private_metadata": "{}"}
    in_modal = _bolt_request(block_action("pick", None, response_url=None, view=view))
    payload = in_modal.body
    assert payload_utils.is_action(payload) and "value" not in payload["actions"][0]
    assert payload["container"] == {"type": "view", "view_id": "V0MODAL"}
    assert payload["view"]["callback_id"] == "demo" and payload["view"]["type"] == "modal"
    assert in_modal.context.response_url is None and "channel" not in payload


def test_view_submission_and_events_are_what_bolt_expects():
    values = {"label": {"label_input": {"type": "plain_text_input", "value": "bot"}}}
    submitted = _bolt_request(view_submission("apikey_register", values, private_metadata="m"))
    payload = submitted.body
    assert payload_utils.is_view_submission(payload)
    assert payload["view"]["state"]["values"] == values
    assert payload["view"]["private_metadata"] == "m"
    assert submitted.context.user_id == "U0ALICE"
    event = _bolt_request(
        event_callback({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    )
    assert payload_utils.is_app_home_opened_event(event.body, tab="home")
    assert event.context.team_id == "T0TEST" and event.body["event_id"].startswith("Ev")
    assert json.loads(url_verification("c-123")) == {
        "token": json.loads(url_verification("x"))["token"],
        "challenge": "c-123",
        "type": "url_verification",
    }


# --- BotClient against a real Bolt app over HTTP ---------------------------------------------------


@pytest.fixture
def bolt_bot(slack, web_client):
    app = App(client=web_client, signing_secret=SIGNING_SECRET)
    seen: list[str] = []

    @app.command("/apikey")
    def on_command(ack, command, respond, request):
        retry = request.headers.get("x-slack-retry-num")
        if retry:
            seen.append(f"retry {retry[0]}")
        ack(f"you said {command['text']}")
        respond(text=f"later: {command['text']}")

    @app.action("approve")
    def on_action(ack, body, respond):
        ack()
        respond(text=f"approved {body['actions'][0]['value']}")

    @app.view("demo")
    def on_submit(ack, view):
        ack(
            response_action="errors",
            errors={"label": view["state"]["values"]["label"]["in"]["value"]},
        )

    @app.event("app_home_opened")
    def on_home(event):
        seen.append(event["user"])

    gate = gate_for(app, signing_secret=SIGNING_SECRET, slack_api_url=slack.url)
    server = make_server(gate, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield BotClient(f"http://127.0.0.1:{server.server_port}", slack=slack), seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_bot_client_drives_a_bolt_app_end_to_end(slack, bolt_bot):
    bot, seen = bolt_bot
    acked = bot.command("register now")
    assert acked.status_code == 200 and "you said register now" in acked.text
    (later,) = slack.wait_for("response_url")
    assert later.params["text"] == "later: register now"
    assert bot.action("approve", "k1", message_ts="1700000000.000100").status_code == 200
    slack.wait_for("response_url", predicate=lambda c: c.params.get("text") == "approved k1")
    values = {"label": {"in": {"type": "plain_text_input", "value": "taken"}}}
    submitted = bot.submit("demo", values)
    assert submitted.json() == {"response_action": "errors", "errors": {"label": "taken"}}
    assert (
        bot.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"}).status_code == 200
    )
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen == ["U0ALICE"]
    challenge = bot.post(url_verification("c-42"))
    assert challenge.json() == {"challenge": "c-42"}


def test_bot_client_forged_stale_and_retried_requests(slack, bolt_bot):
    bot, seen = bolt_bot
    body = slash_command("help", response_url=slack.response_url())
    assert bot.post(body, signature="v0=" + "0" * 64).status_code == 401
    assert bot.post(body, timestamp=1_000_000_000).status_code == 401
    assert (
        BotClient(bot.url.removesuffix("/slack/events"), secret="wrong").post(body).status_code
        == 401
    )
    assert slack.calls == []  # nothing forged reached a listener
    retried = bot.post(body, retry_num=1)
    assert retried.status_code == 200
    (later,) = slack.wait_for("response_url")
    assert later.params["text"] == "later: help"
    assert seen == ["retry 1"]
    with pytest.raises(TypeError):
        BotClient(bot.url).command("help")  # no stand-in to mint a response_url


def test_a_slash_commands_response_url_cannot_replace_anything(slack):
    """Slack: a slash command's ack message, and any message sent through its response_url,
    cannot be replaced or deleted through that response_url (bolt-python#1268, bolt-js#2287);
    an action's response_url replaces the message that held the button."""
    command = slack.response_url(command=True)
    WebhookClient(command).send(text="working…")
    WebhookClient(command).send(text="report", replace_original=True)
    shown = slack.shown_at(command, ack={"text": "asking…"})
    assert [m["text"] for m in shown] == ["asking…", "working…", "report"]
    action = slack.response_url()
    WebhookClient(action).send(text="first")
    WebhookClient(action).send(text="second", replace_original=True)
    assert [m["text"] for m in slack.shown_at(action)] == ["second"]
    WebhookClient(action).send(delete_original=True)
    assert slack.shown_at(action) == []
