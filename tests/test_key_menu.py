"""`/apikey status` one line a key, and the menu beside each key, through signed requests to
the running bot: what each option offers to whom, and what choosing it does."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Callback
from storage.models import ApiKey, Incident, KeyPurpose, KeyStatus
from tests.e2e import ALICE, BOB, all_text, register_directly, wait_until
from tests.factories import WITHDRAW
from tests.payloads import menu_choices, styles

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, alert_channel=ALERTS)


def _reply(stack, url: str, count: int = 1) -> dict:
    return stack.slack.wait_for(
        "response_url",
        count=count,
        predicate=lambda c: c.params.get("_response_url") == url,
        timeout=15,
    )[-1].params


def _status(stack, client, text: str, user: str) -> dict:
    url = stack.slack.response_url(command=True)
    assert client.command(text, user_id=user, response_url=url).status_code == 200
    return _reply(stack, url)


def _choose(stack, client, value: str, user: str) -> tuple[dict, str]:
    """Choose a key menu's option (in an ephemeral report): the HTTP answer and the
    response_url the bot answers through."""
    url = stack.slack.response_url()
    response = client.action(Action.KEY_MENU, value, user_id=user, response_url=url, overflow=True)
    assert response.status_code == 200
    return (response.json() if response.text.strip() else {}), url


def _key(stack, key_id: str) -> ApiKey:
    with Session(stack.services.engine) as session:
        key = session.get(ApiKey, key_id)
        assert key is not None
        return key


def test_thirty_keys_fit_one_page_one_line_each_without_a_red_button(stack, client):
    """Before: 8 keys a page, 4-7 lines each, a red "Compromised?" button on every key."""
    hot, _ = register_directly(
        stack, "hot-wallet-bot", purpose=KeyPurpose.TRADING, permissions=WITHDRAW
    )
    for i in range(29):
        register_directly(stack, f"reader-{i:02d}", owner=BOB if i % 2 else ALICE)
    reply = _status(stack, client, "status all", ADMIN)
    assert len(reply["blocks"]) <= 50
    assert "Page" not in all_text(reply) and "30 keys" in all_text(reply)
    rows = [b["text"]["text"] for b in reply["blocks"] if "accessory" in b]
    assert len(rows) == 30 and all("\n" not in row for row in rows)
    assert "danger" not in styles(reply)
    first = rows[0]  # the worst key first, its worst finding in words and colour
    assert first.startswith(f"🔴 *hot-wallet-bot* · owner <@{ALICE}> · Withdraw tier · ")
    assert "_critical_: Withdrawals are enabled · +" in first
    assert len(menu_choices(reply)) == 30 and hot.key_id in menu_choices(reply)


def test_menus_offer_an_owner_or_admin_more_than_a_member(stack, client):
    alices, _ = register_directly(stack, "alices-key")
    bobs, _ = register_directly(stack, "bobs-key", owner=BOB)
    everything = ["details", "rotate", "report", "remove"]
    assert menu_choices(_status(stack, client, "status all", ADMIN)) == {
        alices.key_id: everything,
        bobs.key_id: everything,
    }
    by_bob = _status(stack, client, "status all", BOB)
    assert menu_choices(by_bob) == {alices.key_id: ["details", "report"], bobs.key_id: everything}
    assert "details only for their owner and admins" in all_text(by_bob)


def test_details_shows_the_key_in_full_beside_the_report(stack, client):
    key, _ = register_directly(stack, "payout", purpose=KeyPurpose.TRADING, permissions=WITHDRAW)
    _, url = _choose(stack, client, f"details:{key.key_id}", ALICE)
    reply = _reply(stack, url)
    assert reply["replace_original"] is False  # the report stays
    text = all_text(reply)
    assert "“payout”" in text and key.masked in text and "IP whitelist" in text
    assert "Withdrawals are enabled" in text and "beyond the declared purpose" in text
    # a member gets the same summary `status payout` gives them: no details
    _, url = _choose(stack, client, f"details:{key.key_id}", BOB)
    text = all_text(_reply(stack, url))
    assert "payout" in text and key.masked not in text and "Withdrawals are enabled" not in text


def test_rotate_opens_the_rotate_form(stack, client):
    key, _ = register_directly(stack, "trader")
    _choose(stack, client, f"rotate:{key.key_id}", ALICE)
    (opened,) = stack.slack.wait_for("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == Callback.ROTATE
    assert json.loads(view["private_metadata"])["key_id"] == key.key_id


def test_report_compromised_asks_first_then_the_one_button_reports(stack, client):
    key, _ = register_directly(stack, "leaky")
    _, url = _choose(stack, client, f"report:{key.key_id}", BOB)  # anyone may report
    asked = _reply(stack, url)
    assert asked["replace_original"] is False and "as compromised?" in all_text(asked)
    (button,) = [el for b in asked["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert button["action_id"] == Action.INCIDENT_RAISE and button["style"] == "danger"
    assert "confirm" not in button  # the message is the question: one click raises it
    assert _key(stack, key.key_id).status == KeyStatus.ACTIVE  # nothing happened yet
    client.action(Action.INCIDENT_RAISE, button["value"], user_id=BOB)
    wait_until(lambda: _key(stack, key.key_id).status == KeyStatus.COMPROMISED)
    # the reporter's App Home is redrawn (a Home menu's confirmation arrives as a DM)
    stack.slack.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == BOB)
    stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params["channel"] == ALERTS and "leaky" in all_text(c.params),
    )
    # a compromised key is not offered for rotation or another report any more
    assert menu_choices(_status(stack, client, "status all", ALICE))[key.key_id] == [
        "details",
        "remove",
    ]


def test_remove_asks_the_same_question_as_the_command(stack, client):
    key, _ = register_directly(stack, "old-bot")
    _, url = _choose(stack, client, f"remove:{key.key_id}", ALICE)
    asked = _reply(stack, url)
    assert asked["replace_original"] is False and "Remove *old-bot*" in all_text(asked)
    buttons = {
        el["action_id"]: el
        for b in asked["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
    }
    assert set(buttons) == {Action.REMOVE_CONFIRM, Action.REMOVE_CANCEL}
    assert _key(stack, key.key_id).status == KeyStatus.ACTIVE
    client.action(Action.REMOVE_CONFIRM, buttons[Action.REMOVE_CONFIRM]["value"], user_id=ALICE)
    wait_until(lambda: _key(stack, key.key_id).status == KeyStatus.REMOVED)
    stack.slack.wait_for("views.publish", predicate=lambda c: c.params.get("user_id") == ALICE)
    # the same menu on an old message, once the key is gone: said at once, no question asked
    for choice in ("remove", "rotate"):
        _, url = _choose(stack, client, f"{choice}:{key.key_id}", ALICE)
        assert "no longer registered" in all_text(_reply(stack, url)), choice
    assert stack.slack.calls_to("views.open") == []


def test_an_out_of_date_or_made_up_choice_is_answered_politely(stack, client):
    key, _ = register_directly(stack, "some-key")
    for value in ("frobnicate:" + key.key_id, "details", "", "rotate:"):
        answer, url = _choose(stack, client, value, ALICE)
        said = all_text(answer) + all_text(
            [c.params for c in stack.slack.calls if c.params.get("_response_url") == url]
        )
        if "out of date" not in said:
            said += all_text(_reply(stack, url))
        assert "out of date" in said, value
    assert stack.wait_idle()
    with Session(stack.services.engine) as session:
        assert session.exec(select(Incident)).all() == []
    assert stack.slack.calls_to("views.open") == []
