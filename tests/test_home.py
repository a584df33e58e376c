"""The App Home tab through signed events and clicks: an owner sees their own keys, an admin
also sees the team's picture; the tab's buttons work without a response_url."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.ids import Action
from storage.models import KeyPurpose, utcnow
from tests.e2e import ALICE, BOB, all_text, bot_client, register_directly
from tests.factories import WITHDRAW
from tests.payloads import menu_choices, styles
from tests.slack_requests import block_action

ADMIN = "U0BOSS"
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, alert_channel=ALERTS)


@pytest.fixture
def team(stack):
    """Alice: a trading key that can withdraw (critical) and an overdue trading key; Bob: a
    dashboard key with an open incident."""
    register_directly(
        stack,
        "payout",
        purpose=KeyPurpose.TRADING,
        permissions=WITHDRAW,
    )
    register_directly(stack, "old-bot", now=utcnow() - timedelta(days=120))
    register_directly(stack, "bob-dashboard", owner=BOB)
    client = bot_client(stack)
    assert client.command("compromised bob-dashboard", user_id=BOB).status_code == 200
    stack.slack.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == ALERTS)
    return stack


def _open_home(stack, user: str) -> dict:
    before = len(stack.slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    assert bot_client(stack).event(event).status_code == 200
    call = stack.slack.wait_for("views.publish", count=before + 1)[-1]
    assert call.params["user_id"] == user
    return call.params["view"]


def _buttons(view: dict) -> list[tuple[str, str | None]]:
    return [
        (el["action_id"], el.get("value"))
        for block in view["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
    ]


def _key_id(stack, label: str) -> str:
    with stack.services.engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT id FROM api_keys WHERE label = :l"), {"l": label}
        ).scalar_one()


def test_an_owner_sees_their_keys_with_tier_findings_rotation_and_buttons(team):
    view = _open_home(team, ALICE)
    text = all_text(view)
    assert view["type"] == "home"
    assert "payout" in text and "Withdraw tier" in text and "Withdrawals are enabled" in text
    assert "old-bot" in text and "overdue" in text
    assert "bob-dashboard" not in text  # not hers, and she is not an admin
    assert "admin view" not in text
    buttons = _buttons(view)
    payout, old_bot = _key_id(team, "payout"), _key_id(team, "old-bot")
    assert (Action.HOME_CHECK, None) in buttons and (Action.HOME_CHECK_ALL, None) not in buttons
    # one line a key, each with its menu; no red button on the tab
    assert menu_choices(view) == {
        payout: ["details", "rotate", "report", "remove"],
        old_bot: ["details", "rotate", "report", "remove"],
    }
    assert "danger" not in styles(view)
    rows = [b["text"]["text"] for b in view["blocks"] if "accessory" in b]
    assert len(rows) == 2 and all("\n" not in row for row in rows)


def test_an_owner_sees_the_incident_on_their_key(team):
    text = all_text(_open_home(team, BOB))
    assert "bob-dashboard" in text and "Open incidents on your keys" in text
    assert "payout" not in text


def test_an_admin_sees_the_whole_team(team):
    view = _open_home(team, ADMIN)
    text = all_text(view)
    assert "admin view" in text and "3 keys" in text
    assert "Withdraw *1* · Read *2*" in text
    assert "Keys with critical findings* (1)" in text and "payout" in text
    assert "Overdue rotations* (1)" in text and "old-bot" in text
    assert "Open incidents* (1)" in text and "bob-dashboard" in text
    assert (Action.HOME_CHECK_ALL, None) in _buttons(view)
    assert "danger" not in styles(view)
    # the critical key has its menu in the admin view; the admin may rotate and remove it
    payout = _key_id(team, "payout")
    assert menu_choices(view) == {payout: ["details", "rotate", "report", "remove"]}


def _click_on_home(stack, action_id: str, value: str | None, user: str):
    body = block_action(
        action_id,
        value,
        response_url=None,
        user_id=user,
        view={"id": "V0HOME", "type": "home", "blocks": []},
    )
    assert bot_client(stack).post(body).status_code == 200


def test_check_my_keys_now_sends_the_report_by_direct_message_and_refreshes_the_tab(team):
    before = len(team.slack.calls_to("views.publish"))
    _click_on_home(team, Action.HOME_CHECK, None, ALICE)
    report = team.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: "keys:" in c.params.get("text", "") and c.params["channel"] != ALERTS,
    )[0]
    text = all_text(report.params)
    assert "payout" in text and "old-bot" in text and "bob-dashboard" not in text
    refreshed = team.slack.wait_for("views.publish", count=before + 1)[-1]
    assert refreshed.params["user_id"] == ALICE


def test_reporting_a_key_compromised_from_the_tab_answers_by_direct_message(team):
    old_bot = _key_id(team, "old-bot")
    _click_on_home(team, Action.INCIDENT_RAISE, old_bot, ALICE)
    team.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: c.params["channel"] == ALERTS and "old-bot" in all_text(c.params),
    )
    view = team.slack.wait_for(
        "views.publish", predicate=lambda c: "old-bot" in all_text(c.params)
    )[-1].params["view"]
    assert menu_choices(view)[old_bot] == ["details", "incident", "remove"]  # an incident is open


def test_a_member_cannot_rotate_someone_elses_key_from_the_tab(team):
    payout = _key_id(team, "payout")
    _click_on_home(team, Action.ROTATE_NOW, payout, BOB)
    denial = team.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: "Nothing was changed" in all_text(c.params),
    )[0]
    assert denial.params["channel"].startswith("D")
    assert not team.slack.calls_to("views.open")


def _choose_on_home(stack, value: str, user: str):
    body = block_action(
        Action.KEY_MENU,
        value,
        response_url=None,
        user_id=user,
        view={"id": "V0HOME", "type": "home", "blocks": []},
        overflow=True,
    )
    assert bot_client(stack).post(body).status_code == 200


def test_the_tabs_menu_answers_by_direct_message(team):
    """Details, Report compromised, Show the incident: the tab has no response_url, so the
    answers go to the chooser's direct messages."""
    payout, dashboard = _key_id(team, "payout"), _key_id(team, "bob-dashboard")
    _choose_on_home(team, f"details:{payout}", ALICE)
    details = team.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "“payout”" in all_text(c.params)
    )[0]
    assert details.params["channel"].startswith("D")
    text = all_text(details.params)
    assert "Withdrawals are enabled" in text and "beyond the declared purpose" in text
    _choose_on_home(team, f"report:{payout}", ALICE)
    asked = team.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "as compromised?" in all_text(c.params)
    )[0]
    assert asked.params["channel"].startswith("D")
    _choose_on_home(team, f"incident:{dashboard}", BOB)
    team.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "is already open" in all_text(c.params)
    )
    assert team.wait_idle()
    with team.services.engine.connect() as connection:
        incidents = connection.execute(sa.text("SELECT COUNT(*) FROM incidents")).scalar_one()
    assert incidents == 1  # only Bob's, raised before: asking and showing raise nothing
