"""Who may do what, enforced on the server: role x action, another workspace, channels."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.ids import Action
from storage.models import ApiKey, AuditEvent, KeyStatus
from tests.e2e import (
    ALICE,
    BOB,
    all_text,
    bot_client,
    register_directly,
    register_sim_key,
    wait_until,
)
from tests.factories import WITHDRAW
from tests.slack_requests import block_action, slash_command

ADMIN = "U0ADMIN"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(
        admin_user_ids=ADMIN, alert_channel="C0ALERTS", allowed_channel_ids="C0KEYS,C0GENERAL"
    )


def _command(stack, text, *, user, channel="C0GENERAL", team="T0TEST"):
    url = stack.slack.response_url()
    body = slash_command(text, user_id=user, channel_id=channel, team_id=team, response_url=url)
    reply = bot_client(stack).post(body)
    assert reply.status_code == 200
    return reply, url


def _key(stack, label="alices-key") -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


def _denials(stack) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
        )


@pytest.mark.parametrize(
    ("text", "attempted"),
    [
        ("remove alices-key", "remove"),
        ("rotate alices-key", "rotate"),
        ("rotate alices-key every 7d", "change the rotation period of"),
    ],
)
def test_a_member_cannot_manage_someone_elses_key(stack, text, attempted):
    register_directly(stack, "alices-key", owner=ALICE)
    before = _key(stack)
    reply, _ = _command(stack, text, user=BOB)
    assert "Only its owner <@U0ALICE> or an admin" in all_text(reply.json())
    after = _key(stack)
    assert (after.status, after.rotation_period_days) == (
        before.status,
        before.rotation_period_days,
    )
    assert [d.detail["attempted"] for d in _denials(stack)] == [attempted]
    assert stack.wait_idle()
    assert stack.slack.calls_to("views.open") == []


@pytest.mark.parametrize("user", [ALICE, ADMIN])
def test_the_owner_and_an_admin_can_manage_it(stack, user):
    register_directly(stack, "alices-key", owner=ALICE)
    reply, _ = _command(stack, "rotate alices-key every 7d", user=user)
    assert "every 7 days" in all_text(reply.json())
    assert _key(stack).rotation_period_days == 7
    assert _denials(stack) == []


def test_forged_remove_and_snooze_buttons_are_refused_on_the_server(stack):
    registered, _ = register_directly(stack, "alices-key", owner=ALICE)
    client = bot_client(stack)
    for action in (Action.REMOVE_CONFIRM, Action.SNOOZE, Action.ROTATE_NOW):
        url = stack.slack.response_url()
        client.post(block_action(action, registered.key_id, user_id=BOB, response_url=url))
        (reply,) = stack.slack.wait_for(
            "response_url", predicate=lambda c, u=url: c.params["_response_url"] == u
        )
        assert "Only its owner" in all_text(reply.params)
    key = _key(stack)
    assert key.status == KeyStatus.ACTIVE.value and key.secret_sealed is not None
    assert key.snoozed_until is None
    assert len(_denials(stack)) == 3


def test_status_shows_a_member_only_the_summary_of_keys_they_do_not_own(stack):
    register_directly(
        stack,
        "alices-key",
        owner=ALICE,
        permissions=WITHDRAW,
    )
    register_directly(stack, "bobs-key", owner=BOB)
    _, url = _command(stack, "status all", user=BOB)
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=15
    )
    text = all_text(reply.params)
    assert "alices-key" in text and "Withdraw tier" in text  # the summary
    assert text.count("details only for their owner and admins") == 1  # said once
    assert "Withdrawals are enabled" not in text  # not the details
    assert _key(stack).api_key_masked not in text
    for label, in_full in (("bobs-key", True), ("alices-key", False)):
        _, url = _command(stack, f"status {label}", user=BOB)  # one key: in full if his
        (reply,) = stack.slack.wait_for(
            "response_url", predicate=lambda c, url=url: c.params["_response_url"] == url
        )
        assert (_key(stack, label).api_key_masked in all_text(reply.params)) == in_full
    _, url = _command(stack, "status all", user=ADMIN)
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=15
    )
    assert "Withdrawals are enabled" in all_text(reply.params)


def test_only_admins_register_on_someone_elses_behalf(stack):
    client = bot_client(stack)
    sim_key = stack.simulator.add_key(ip_restrict=True)
    refused = register_sim_key(stack, client, sim_key, label="for-alice", owner=ALICE, user_id=BOB)
    assert (
        "Only admins can register a key on someone else's behalf"
        in refused.json()["errors"]["register_owner"]
    )
    with Session(stack.services.engine) as session:
        assert session.exec(select(ApiKey)).all() == []
    accepted = register_sim_key(
        stack, client, sim_key, label="for-alice", owner=ALICE, user_id=ADMIN
    )
    assert accepted.json().get("response_action") == "update", accepted.text
    assert _key(stack, "for-alice").owner_user_id == ALICE


def test_anyone_may_raise_compromised(stack):
    register_directly(stack, "alices-key", owner=ALICE)
    _command(stack, "compromised alices-key", user=BOB)
    wait_until(lambda: _key(stack).status == KeyStatus.COMPROMISED.value)
    assert _denials(stack) == []


def test_requests_from_another_workspace_are_refused_and_audited(stack):
    register_directly(stack, "alices-key", owner=ALICE)
    reply, _ = _command(stack, "remove alices-key", user=ALICE, team="T0OTHER")
    assert "another Slack workspace" in all_text(reply.json())
    (denial,) = _denials(stack)
    # audited where the keys are, so that this workspace's admins see it
    assert denial.team_id == "T0TEST"
    assert "T0OTHER" in denial.detail["attempted"]
    assert _key(stack).status == KeyStatus.ACTIVE.value


def test_commands_only_in_the_allowed_channels_and_direct_messages(stack):
    reply, _ = _command(stack, "list", user=ALICE, channel="C0RANDOM")
    assert "can only be used in" in all_text(reply.json())
    assert len(_denials(stack)) == 1
    for channel in ("C0KEYS", "D0ALICE"):
        reply, _ = _command(stack, "list", user=ALICE, channel=channel)
        assert "can only be used" not in all_text(reply.json())
