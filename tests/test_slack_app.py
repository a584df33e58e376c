"""The Slack app end to end: signed HTTP requests in, the Slack stand-in and the Binance
simulator on the other side, the database checked directly."""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.ids import Action
from bot.services.context import WorkInFlight
from storage.models import ApiKey, AuditEvent, KeyStatus
from tests.e2e import (
    BOB,
    all_text,
    bot_client,
    register_directly,
    register_sim_key,
    submit_registration,
    wait_until,
)
from tests.factories import TRADE, WITHDRAW, random_api_key
from tests.slack_requests import block_action, sign, slash_command


def _keys(stack) -> list[ApiKey]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(ApiKey)).all())


def _command(client, stack, text, **kw):
    response_url = stack.slack.response_url()
    response = client.post(slash_command(text, response_url=response_url, **kw))
    return response, response_url


def _responses(stack, url, count=1):
    return stack.slack.wait_for(
        "response_url",
        count=count,
        predicate=lambda call: call.params.get("_response_url") == url,
        timeout=15,
    )


# --- plumbing --------------------------------------------------------------------------


def test_health_check(stack):
    response = requests.get(stack.url + "/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_forged_signature_gets_401_and_changes_nothing(stack, client):
    body = slash_command("list", response_url=stack.slack.response_url())
    forged = client.post(body, signature="v0=" + "0" * 64)
    assert forged.status_code == 401
    stale = client.post(body, timestamp=1_000_000_000)
    assert stale.status_code == 401
    wrong_secret = requests.post(
        stack.url + "/slack/events",
        data=body,
        headers=sign(body, secret="not-the-secret"),
        timeout=5,
    )
    assert wrong_secret.status_code == 401
    assert stack.slack.calls == []
    with Session(stack.services.engine) as session:
        assert session.exec(select(AuditEvent)).all() == []


def test_help_and_unknown_subcommands_answer_ephemerally(stack, client):
    response, _ = _command(client, stack, "help")
    assert response.status_code == 200
    text = all_text(response.json())
    for sub in ("register", "status", "list", "remove", "help"):
        assert f"/apikey {sub}" in text
    unknown, _ = _command(client, stack, "frobnicate now")
    assert unknown.status_code == 200
    assert "frobnicate" in all_text(unknown.json())
    assert "/apikey status" in all_text(unknown.json())
    assert unknown.json().get("response_type", "ephemeral") == "ephemeral"


# --- register ----------------------------------------------------------------------------


def test_register_command_opens_the_modal(stack, client):
    response, _ = _command(client, stack, "register")
    assert response.status_code == 200
    (call,) = stack.slack.wait_for("views.open")
    view = call.params["view"]
    assert view["callback_id"] == "apikey_register"
    assert view["type"] == "modal"


def test_valid_key_is_checked_sealed_stored_and_summarised(stack, client):
    sim_key = stack.simulator.add_key(key_type="ED25519", permissions=TRADE, ip_restrict=False)
    response = register_sim_key(stack, client, sim_key, label="trading-bot", purpose="trading")
    assert response.status_code == 200
    assert response.json().get("response_action") == "update"
    (stored,) = _keys(stack)
    assert stored.label == "trading-bot" and stored.status == KeyStatus.ACTIVE.value
    assert stored.permissions_json["enableSpotAndMarginTrading"] is True
    ring = stack.services.ring
    assert (
        ring.open_text(stored.secret_sealed, context=stored.secret_context())
        == sim_key.secret.strip()
    )
    (summary,) = stack.slack.wait_for("chat.postEphemeral")
    text = all_text(summary.params)
    assert "trading-bot" in text and "IP whitelist" in text
    assert sim_key.api_key not in text and sim_key.secret not in text
    assert stored.api_key_masked in text


@pytest.mark.parametrize("key_type", ["HMAC", "ED25519", "RSA"])
def test_every_key_type_registers(stack, client, key_type):
    sim_key = stack.simulator.add_key(key_type=key_type, ip_restrict=True)
    response = register_sim_key(stack, client, sim_key, label=f"{key_type}-key")
    assert response.json().get("response_action") == "update", response.text
    assert [k.key_type for k in _keys(stack)] == [key_type]


def test_invalid_key_is_refused_in_the_modal_and_nothing_is_stored(stack, client):
    sim_key = stack.simulator.add_key()
    wrong_secret = submit_registration(
        client, label="bot", api_key=sim_key.api_key, secret=random_api_key()
    )
    body = wrong_secret.json()
    assert body["response_action"] == "errors"
    assert "does not belong" in body["errors"]["register_secret"]
    stack.simulator.delete_key(sim_key.api_key)
    deleted = register_sim_key(stack, client, sim_key, label="bot")
    assert "IP" in deleted.json()["errors"]["register_api_key"]
    malformed = submit_registration(client, label="bot", api_key="short", secret="short")
    assert set(malformed.json()["errors"]) >= {"register_api_key", "register_secret"}
    assert _keys(stack) == []
    assert stack.slack.calls_to("chat.postEphemeral") == []


def test_duplicate_label_and_duplicate_api_key_are_refused(stack, client):
    first = stack.simulator.add_key(ip_restrict=True)
    register_sim_key(stack, client, first, label="bot")
    second = stack.simulator.add_key(ip_restrict=True)
    same_label = register_sim_key(stack, client, second, label="bot")
    assert "already registered" in same_label.json()["errors"]["register_label"]
    other_case = register_sim_key(stack, client, second, label="BOT")
    error = other_case.json()["errors"]["register_label"]
    assert "“bot” is already registered" in error and "more than case" in error
    same_key = register_sim_key(stack, client, first, label="other")
    assert "“bot”" in same_key.json()["errors"]["register_api_key"]
    assert len(_keys(stack)) == 1


def test_slow_binance_switches_the_modal_to_checking_then_updates_it(stack, client):
    sim_key = stack.simulator.add_key(ip_restrict=True)
    stack.simulator.latency = 2.6
    response = register_sim_key(stack, client, sim_key, label="slow")
    assert response.json()["response_action"] == "update"
    assert "Binance" in all_text(response.json()["view"])
    stack.slack.wait_for("views.update", timeout=15)
    wait_until(lambda: len(_keys(stack)) == 1)


# --- status ------------------------------------------------------------------------------


def _register_tiers(stack, client):
    sim = stack.simulator
    keys = {
        "reader": sim.add_key(ip_restrict=True),
        "trader": sim.add_key(key_type="ED25519", permissions=TRADE, ip_restrict=True),
        "withdrawer": sim.add_key(key_type="RSA", permissions=WITHDRAW, ip_restrict=True),
        "gone": sim.add_key(ip_restrict=True),
    }
    purposes = {"trader": "trading", "withdrawer": "trading"}
    for label, key in keys.items():
        response = register_sim_key(
            stack, client, key, label=label, purpose=purposes.get(label, "read_only"), confirm=True
        )
        assert response.json().get("response_action") == "update", response.text
    sim.delete_key(keys["gone"].api_key)
    return keys


def test_status_reports_every_tier_and_a_deleted_key(stack, client):
    _register_tiers(stack, client)
    ack, url = _command(client, stack, "status all")
    assert ack.status_code == 200
    (reply,) = _responses(stack, url)
    text = all_text(reply.params)
    assert "4 keys: 2 critical" in text
    for label in ("reader", "trader", "withdrawer", "gone"):
        assert label in text
    # one line a key: its worst finding in words, and how many more it has
    lines = [b["text"]["text"] for b in reply.params["blocks"] if "accessory" in b]
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    withdrawer = next(line for line in lines if "*withdrawer*" in line)
    assert "Withdraw tier" in withdrawer and "_critical_: Withdrawals are enabled" in withdrawer
    assert re.search(r" · \+\d more$", withdrawer) and "beyond the declared purpose" not in text
    assert "_critical_: Binance rejected this key" in text
    assert len(reply.params["blocks"]) <= 50
    # the worst key comes first
    assert text.index("withdrawer") < text.index("reader")
    # `status <label>`: the key in full, every finding
    _, url = _command(client, stack, "status withdrawer")
    text = all_text(_responses(stack, url)[0].params)
    assert "Withdrawals are enabled" in text and "beyond the declared purpose" in text
    _, url = _command(client, stack, "status gone")
    text = all_text(_responses(stack, url)[0].params)
    assert "deleted" in text and "IP whitelist" in text  # the -2015 ambiguity is spelled out


def test_status_when_binance_is_unreachable_is_unknown_never_fine(stack, client):
    _register_tiers(stack, client)
    stack.simulator.inject_fault("503", count=1000)
    _, url = _command(client, stack, "status all")
    (reply,) = _responses(stack, url)
    text = all_text(reply.params)
    assert "4 keys: 4 unknown" in text
    assert "Could not check with Binance" in text


def test_status_of_one_label_and_of_an_unknown_label(stack, client):
    _register_tiers(stack, client)
    _, url = _command(client, stack, "status trader")
    text = all_text(_responses(stack, url)[0].params)
    assert "1 key" in text and "trader" in text and "withdrawer" not in text
    _, url = _command(client, stack, "status nosuchkey")
    assert "No registered key is labelled" in all_text(_responses(stack, url)[0].params)
    _, url = _command(client, stack, "status Trader")  # labels match regardless of case
    text = all_text(_responses(stack, url)[0].params)
    assert "1 key" in text and "trader" in text and "No registered key" not in text


def test_status_of_a_user(stack, client):
    sim_key = stack.simulator.add_key(ip_restrict=True)
    register_sim_key(stack, client, sim_key, label="bobs-key", owner=BOB, user_id=BOB)
    register_sim_key(stack, client, stack.simulator.add_key(ip_restrict=True), label="alices-key")
    _, url = _command(client, stack, f"status <@{BOB}|bob>", user_id=BOB)
    text = all_text(_responses(stack, url)[0].params)
    assert "bobs-key" in text and "alices-key" not in text
    _, url = _command(client, stack, "status <@U0CAROL|carol>")
    text = all_text(_responses(stack, url)[0].params)
    assert "Nothing to check: <@U0CAROL> owns no registered keys." in text


def test_permission_change_since_last_check_is_flagged(stack, client):
    sim_key = stack.simulator.add_key(ip_restrict=True)
    register_sim_key(stack, client, sim_key, label="reader")
    stack.simulator.set_permissions(sim_key.api_key, enableFutures=True)
    _, url = _command(client, stack, "status reader")
    text = all_text(_responses(stack, url)[0].params)
    assert "Permissions changed since the last check" in text and "Futures enabled" in text


def test_sixty_key_status_fits_slacks_limits_and_pages(stack, client):
    with stack.services.engine.begin():
        pass
    for i in range(60):
        key = stack.simulator.add_key(ip_restrict=bool(i % 2))
        response = register_sim_key(stack, client, key, label=f"key-{i:02d}")
        assert response.json().get("response_action") == "update"
    _, url = _command(client, stack, "status all")
    (first,) = _responses(stack, url)
    assert "60 keys" in all_text(first.params)
    seen = set()
    page_payload = first.params
    for _ in range(20):
        assert len(page_payload["blocks"]) <= 50
        assert len(json.dumps(page_payload)) < 40_000
        for block in page_payload["blocks"]:
            if block["type"] == "section" and block.get("text"):
                assert len(block["text"]["text"]) <= 3000
        seen |= {f"key-{i:02d}" for i in range(60) if f"key-{i:02d}" in all_text(page_payload)}
        next_buttons = [
            el
            for block in page_payload["blocks"]
            if block["type"] == "actions"
            for el in block["elements"]
            if el.get("action_id") == Action.STATUS_PAGE and "Next" in el["text"]["text"]
        ]
        if not next_buttons:
            break
        url = stack.slack.response_url()
        client.post(block_action(Action.STATUS_PAGE, next_buttons[0]["value"], response_url=url))
        page_payload = _responses(stack, url)[0].params
    assert len(seen) == 60


# --- list and remove ---------------------------------------------------------------------


def test_list_shows_keys_without_calling_binance(stack, client):
    _register_tiers(stack, client)
    stack.simulator.reset()
    response, _ = _command(client, stack, "list")
    text = all_text(response.json())
    for label in ("reader", "trader", "withdrawer", "gone"):
        assert label in text
    assert stack.simulator.request_log == []


def test_remove_asks_for_confirmation_then_shreds_the_secret(stack, client):
    sim_key = stack.simulator.add_key(ip_restrict=True)
    register_sim_key(stack, client, sim_key, label="old-bot")
    response, _ = _command(client, stack, "remove old-bot")
    buttons = [
        el
        for block in response.json()["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
    ]
    confirm = next(b for b in buttons if b["action_id"] == Action.REMOVE_CONFIRM)
    assert _keys(stack)[0].secret_sealed is not None  # nothing happens before the click
    url = stack.slack.response_url()
    client.post(block_action(Action.REMOVE_CONFIRM, confirm["value"], response_url=url))
    assert "old-bot" in all_text(_responses(stack, url)[0].params)
    (row,) = _keys(stack)
    assert row.status == KeyStatus.REMOVED.value
    assert row.secret_sealed is None and row.api_key_sealed is None
    with Session(stack.services.engine) as session:
        actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("key.register") == 1 and actions.count("key.remove") == 1
    again, _ = _command(client, stack, "remove old-bot")
    assert "No registered key" in all_text(again.json())


def test_remove_unknown_label_is_polite(stack, client):
    response, _ = _command(client, stack, "remove ghost")
    assert response.status_code == 200
    assert "No registered key is labelled “ghost”" in all_text(response.json())


# --- secrets never travel through command text -------------------------------------------


def test_secret_pasted_into_a_command_is_refused_not_logged_not_stored(stack, client, caplog):
    caplog.set_level(logging.DEBUG)
    sim_key = stack.simulator.add_key(ip_restrict=True)
    register_sim_key(stack, client, sim_key, label="bot")
    response, _ = _command(client, stack, f"status {sim_key.secret}")
    text = all_text(response.json())
    assert "exposed" in text or "leaked" in text
    assert "“bot”" in text or "bot" in text  # recognised by fingerprint
    assert sim_key.secret not in text
    assert sim_key.secret not in caplog.text
    with stack.services.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM audit_events")).all()
    assert sim_key.secret not in repr(rows)
    assert any("command.secret_refused" in repr(r) for r in rows)


def test_private_key_pasted_into_a_command_is_refused(stack, client):
    sim_key = stack.simulator.add_key(key_type="ED25519")
    response, _ = _command(client, stack, f"register {sim_key.secret}")
    text = all_text(response.json())
    assert "private key" in text
    assert "PRIVATE KEY" not in text


def test_the_bot_is_idle_only_once_what_an_ack_started_has_reached_slack(stack, client):
    """``wait_idle`` is what the tests' "nothing else happened" checks rely on: after it, every
    answer the requests so far caused has arrived (here: a status report asked of Binance)."""
    register_directly(stack, "bot")
    stack.simulator.latency = 0.3  # the report is still being made when the ack comes back
    ack, url = _command(client, stack, "status bot")
    assert ack.status_code == 200
    assert not stack.wait_idle(timeout=0.05)
    assert stack.wait_idle(timeout=10)
    (reply,) = [c for c in stack.slack.calls_to("response_url") if c.params["_response_url"] == url]
    assert "bot" in all_text(reply.params)


def test_work_in_flight_counts_a_task_and_the_work_it_hands_on():
    work = WorkInFlight()
    listeners = work.executor(max_workers=1, thread_name_prefix="test-listener")
    background = work.executor(max_workers=1, thread_name_prefix="test-work")
    release = threading.Event()
    try:
        listeners.submit(lambda: background.submit(release.wait)).result(timeout=5)
        assert not work.wait_idle(timeout=0.05)  # the listener is done, its slow work is not
        release.set()
        assert work.wait_idle(timeout=5)
        assert work.wait_idle(timeout=0)  # idle stays idle
    finally:
        release.set()
        listeners.shutdown()
        background.shutdown()


def test_status_is_one_message_with_no_placeholder_left_above_it(stack):
    """On real Slack nothing can replace a slash command's ack (see the stand-in's
    ``shown_at``): the ack is empty and the report is the only message the person sees."""
    import json

    from tests.e2e import register_directly

    register_directly(stack, "alpha")
    client = bot_client(stack)
    url = stack.slack.response_url(command=True)
    ack = client.command("status all", user_id="U0ALICE", response_url=url)
    assert ack.status_code == 200 and not ack.text
    stack.slack.wait_for("response_url", predicate=lambda c: c.params.get("_response_url") == url)
    stack.wait_idle()
    ack_body = ack.json() if ack.text else None
    (shown,) = stack.slack.shown_at(url, ack=ack_body)
    assert "alpha" in json.dumps(shown)
