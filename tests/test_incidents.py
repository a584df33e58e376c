"""The emergency playbook end to end: signed requests, the Slack stand-in, the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Block, Callback
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.requests import close_note_values
from bot.sandbox.slack_standin import SlackStandIn
from storage.crypto import generate_master_key
from storage.models import ApiKey, Incident, IncidentStep, KeyPurpose, KeyStatus, utcnow
from tests.e2e import ALICE, BOB, all_text, bot_client, register_directly, wait_until
from tests.slack_requests import block_action, slash_command, view_submission

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
RAISED_IN = "C0GENERAL"


@pytest.fixture
def world():
    """Simulator and Slack outlive the bot, so a test can restart the bot in between."""
    with BinanceSimulator() as sim, SlackStandIn() as slack:
        yield sim, slack


@pytest.fixture
def start(world, make_stack):
    """``start()``: a bot on this test's simulator, Slack, database and master key."""
    sim, slack = world
    master = generate_master_key("k1").encoded()
    return lambda: make_stack(
        simulator=sim, slack=slack, master_keys=master, alert_channel=ALERTS, admin_user_ids=ADMIN
    )


@pytest.fixture
def stack(start):
    return start()


def _raise(stack, label="bot", user=ALICE):
    url = stack.slack.response_url()
    reply = bot_client(stack).post(
        slash_command(f"compromised {label}", user_id=user, response_url=url)
    )
    assert reply.status_code == 200
    return url


def _raised(stack) -> Incident:
    """Wait until the one live checklist is posted and remembered."""
    return wait_until(lambda: (i := _incident_or_none(stack)) and len(i.messages) == 1 and i)


def _incident_or_none(stack) -> Incident | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident)).first()


def _all_incidents(stack) -> list[Incident]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(Incident)).all())


def _incident(stack) -> Incident:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident)).one()


def _checklists(stack):
    return [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if "Compromised key" in c.params.get("text", "")
    ]


def _tick(stack, step: int, user: str, incident_id: str, *, wait: bool = True):
    """Click "Mark done" on a step; by default wait until the tick is recorded."""
    url = stack.slack.response_url()
    body = block_action(
        Action.INCIDENT_TICK,
        f"{incident_id}:{step}",
        user_id=user,
        response_url=url,
        message_ts="1.0",
    )
    assert bot_client(stack).post(body).status_code == 200
    if wait:
        wait_until(lambda: _ticked(stack, incident_id, step))
    return url


def _ticked(stack, incident_id: str, step: int) -> bool:
    with Session(stack.services.engine) as session:
        return session.get(IncidentStep, (incident_id, step)) is not None


def _updates_after(stack, count: int, timeout: float = 10):
    return stack.slack.wait_for("chat.update", count=count, timeout=timeout)


def test_raise_posts_one_live_checklist_and_links_it_where_raised(stack):
    register_directly(stack, "bot")
    register_directly(stack, "sibling", purpose=KeyPurpose.READ_ONLY)
    url = _raise(stack)
    (post,) = stack.slack.wait_for("chat.postMessage", count=1)
    assert post.params["channel"] == ALERTS  # one live checklist, in the alert channel
    (pointer,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    said = all_text(pointer.params)  # where it was raised: a link to it, for everyone there
    assert pointer.params.get("response_type") == "in_channel"
    assert f"<#{ALERTS}>" in said and "|open it>" in said and "/archives/" in said
    text = all_text(post.params)
    for title in (
        "Delete the compromised key",
        "Change the Binance account password",
        "abnormal trades and withdrawals",
        "Contact Binance support",
        "leak source",
    ):
        assert title in text
    assert f"<@{ALICE}>" in text and f"<@{ADMIN}>" in text
    assert "sibling" in text and "Read" in text  # the account's other keys, with their tier
    with Session(stack.services.engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.label == "bot")).one()
    assert key.status == KeyStatus.COMPROMISED.value
    wait_until(lambda: len(_incident(stack).messages) == 1)


def test_raising_the_same_key_again_links_to_the_open_incident(stack):
    register_directly(stack, "bot")
    _raise(stack)
    _raised(stack)
    url = _raise(stack, user=BOB)
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "already open" in all_text(reply.params)
    with Session(stack.services.engine) as session:
        assert len(session.exec(select(Incident)).all()) == 1
    assert len(_checklists(stack)) == 1


def test_compromised_button_of_a_removed_key_says_so_and_changes_nothing(stack):
    """An old status report or App Home still carries the button of a key removed since."""
    from bot.services.access import Actor
    from bot.services.custody.keys import remove_key

    registered, _ = register_directly(stack, "gone")
    remove_key(
        engine=stack.services.engine,
        actor=Actor(user_id=ALICE, team_id="T0TEST"),
        key_id=registered.key_id,
    )
    url = stack.slack.response_url()
    bot_client(stack).post(
        block_action(Action.INCIDENT_RAISE, registered.key_id, response_url=url, user_id=BOB)
    )
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "was removed from the bot" in all_text(reply.params)
    with Session(stack.services.engine) as session:
        assert session.exec(select(Incident)).all() == []
        assert session.get(ApiKey, registered.key_id).status == KeyStatus.REMOVED.value
    assert not [
        c for c in stack.slack.calls_to("chat.postMessage") if "Compromised" in all_text(c.params)
    ]


def test_status_of_a_compromised_key_is_critical_never_all_fine(stack):
    register_directly(stack, "bot")
    _raise(stack)
    _raised(stack)
    url = stack.slack.response_url()
    bot_client(stack).post(slash_command("status bot", user_id=ALICE, response_url=url))
    report = wait_until(
        lambda: [
            c
            for c in stack.slack.calls_to("response_url")
            if c.params["_response_url"] == url and "critical" in all_text(c.params)
        ]
    )
    text = all_text(report[-1].params)
    assert "1 key: 1 critical" in text and "Reported compromised" in text
    assert "all fine" not in text and "No least-privilege findings" not in text


def test_a_review_start_in_the_future_is_refused_and_nothing_is_marked(stack):
    register_directly(stack, "bot")
    url = _raise(stack, label="bot since 2099-01-01")
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "cannot start in the future (2099-01-01)" in all_text(reply.params)
    assert _incident_or_none(stack) is None
    with Session(stack.services.engine) as session:
        assert session.exec(select(ApiKey)).one().status == KeyStatus.ACTIVE.value


def test_compromised_button_naming_an_unknown_key_says_so(stack):
    url = stack.slack.response_url()
    bot_client(stack).post(
        block_action(Action.INCIDENT_RAISE, "nosuchkeyid", response_url=url, user_id=BOB)
    )
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    text = all_text(reply.params)
    assert "That key is not registered (any more)" in text and "None" not in text
    assert _incident_or_none(stack) is None


def test_steps_ticked_by_two_people_are_recorded_and_shown(stack):
    register_directly(stack, "bot")
    _raise(stack)
    _raised(stack)
    incident = _incident(stack)
    _tick(stack, 2, ALICE, incident.id)
    _tick(stack, 4, BOB, incident.id)
    with Session(stack.services.engine) as session:
        ticks = {t.step: t.ticked_by for t in session.exec(select(IncidentStep)).all()}
    assert ticks == {2: ALICE, 4: BOB}
    updates = _updates_after(stack, 2)  # the one live checklist, updated per tick
    assert f"done by <@{BOB}>" in all_text(updates[-1].params)


def test_a_premature_tick_of_step_one_warns_that_binance_still_accepts_the_key(stack):
    register_directly(stack, "bot")
    _raise(stack)
    _raised(stack)
    url = _tick(stack, 1, BOB, _incident(stack).id)
    (warning,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "still accepts" in all_text(warning.params)
    assert warning.params.get("replace_original") is False


def test_the_bot_says_when_binance_rejects_the_key_and_leaves_step_one_to_a_person(stack):
    """Binance's -2015 does not say the key was deleted (its IP whitelist may no longer admit
    the bot): the bot says what it heard, ticks nothing, and keeps the secret until the
    incident is closed."""
    _, sim_key = register_directly(stack, "bot")
    _raise(stack)
    _raised(stack)
    clock = FixedClock(utcnow())
    stack.tick(clock, times=3)
    assert _incident(stack).last_probe_result == "alive"
    stack.simulator.delete_key(sim_key.api_key)
    clock.advance(timedelta(seconds=31))  # within the first probe interval
    stack.tick(clock, times=3)
    incident = _incident(stack)
    assert incident.key_dead_at is not None and incident.last_probe_result == "rejected"
    with Session(stack.services.engine) as session:
        key = session.exec(select(ApiKey).where(ApiKey.label == "bot")).one()
        tick = session.get(IncidentStep, (incident.id, 1))
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert tick is None
    last = all_text(stack.slack.calls_to("chat.update")[-1].params)
    assert "Binance rejects the key from the bot's address" in last
    assert "deleted, or its IP whitelist no longer admits the bot" in last
    assert "Verified" not in last


def test_activity_table_flags_withdrawals_to_new_addresses(stack):
    register_directly(stack, "bot")
    register_directly(stack, "reader")  # a still-working key of the same account reads the history
    now_ms = int(utcnow().timestamp() * 1000)
    day = 86_400_000
    sim = stack.simulator
    sim.add_withdrawal(
        "main", coin="USDT", amount="100", address="0xKNOWNADDRESS", apply_time_ms=now_ms - 40 * day
    )
    sim.add_withdrawal(
        "main", coin="USDT", amount="250", address="0xKNOWNADDRESS", apply_time_ms=now_ms - 2 * day
    )
    sim.add_withdrawal(
        "main", coin="BTC", amount="1.5", address="bc1qATTACKER", apply_time_ms=now_ms - day
    )
    sim.add_deposit(
        "main", coin="ETH", amount="3", address="0xDEPOSIT", insert_time_ms=now_ms - day
    )
    _raise(stack)
    _raised(stack)
    stack.tick(FixedClock(utcnow()), times=3)
    tables = [
        c for c in stack.slack.calls_to("chat.postMessage") if "Step 3" in c.params.get("text", "")
    ]
    assert tables and all(t.params.get("thread_ts") for t in tables)
    text = all_text(tables[0].params)
    assert "1 withdrawal to addresses never used before" in text
    # one entry per movement: its amount line (with the flag), then its address line
    lines = text.split("\\n")
    entry = {line: lines[i - 1] + line for i, line in enumerate(lines) if i}
    attacker = next(both for line, both in entry.items() if "bc1qATTACKER" in line)
    assert "new address" in attacker
    known = next(both for line, both in entry.items() if "0xKNOWNADDRESS" in line)
    assert "new address" not in known
    assert "```" not in text  # a list, not a wide code block that wraps on a phone
    assert "0xDEPOSIT" in text
    assert _incident(stack).activity["source"] == "reader"


def test_without_a_working_key_the_activity_review_says_so(stack):
    _, sim_key = register_directly(stack, "bot")
    stack.simulator.delete_key(sim_key.api_key)
    _raise(stack)
    _raised(stack)
    stack.tick(FixedClock(utcnow()), times=3)
    tables = [
        c for c in stack.slack.calls_to("chat.postMessage") if "Step 3" in c.params.get("text", "")
    ]
    assert "could not read" in all_text(tables[0].params)


def test_a_rate_limited_history_is_said_and_the_other_keys_are_not_tried(stack):
    """The withdraw history's own limit (the account's, per second) is spent: the review says
    so once, and does not queue every other key of the account behind it."""
    from bot import binance
    from bot.binance.transport import WITHDRAW_HISTORY_PATH

    registered, _ = register_directly(stack, "bot")
    register_directly(stack, "reader")
    register_directly(stack, "another")
    with Session(stack.services.engine) as session:
        account_id = session.get(ApiKey, registered.key_id).account_id
    spent = binance.WeightBudget(
        18_000, safety=1.0, window_seconds=3600, max_wait=0, period="second"
    )
    spent.acquire(18_000)
    stack.services.gateway.limits.use(
        binance.LimitKind.SAPI_UID_PER_SECOND, WITHDRAW_HISTORY_PATH, spent, account=account_id
    )
    _raise(stack)
    _raised(stack)
    stack.tick(FixedClock(utcnow()), times=3)
    activity = _incident(stack).activity
    assert activity["source"] is None
    assert "request limit for this second is used up" in activity["error"]
    assert not [r for r in stack.simulator.request_log if r.path == WITHDRAW_HISTORY_PATH]


def test_everything_survives_a_restart_mid_incident(world, start):
    sim, _ = world
    with start() as first:
        _, sim_key = register_directly(first, "bot")
        _raise(first)
        _raised(first)
        incident_id = _incident(first).id
        _tick(first, 2, ALICE, incident_id)
    # a new process on the same database: old buttons work, probes continue
    with start() as second:
        _tick(second, 5, BOB, incident_id)
        sim.delete_key(sim_key.api_key)
        second.tick(FixedClock(utcnow() + timedelta(minutes=1)), times=3)
        incident = _incident(second)
        with Session(second.services.engine) as session:
            steps = {t.step for t in session.exec(select(IncidentStep)).all()}
    assert steps == {2, 5}  # step 1 is a person's to tick: Binance only rejects the key
    assert incident.key_dead_at is not None


def test_close_needs_every_step_then_posts_a_summary_and_later_clicks_change_nothing(stack):
    _, sim_key = register_directly(stack, "bot")
    _raise(stack)
    _raised(stack)
    incident_id = _incident(stack).id
    client = bot_client(stack)

    def close(note: str):
        return client.post(
            view_submission(
                Callback.INCIDENT_CLOSE.value,
                close_note_values(note=note),
                private_metadata=incident_id,
            )
        )

    refused = close("done")
    assert "Still open" in refused.json()["errors"][Block.CLOSE_NOTE]
    client.post(
        block_action(
            Action.INCIDENT_CLOSE,
            incident_id,
            response_url=stack.slack.response_url(),
            message_ts="1.0",
        )
    )
    assert (
        stack.slack.wait_for("views.open")[0].params["view"]["callback_id"]
        == Callback.INCIDENT_CLOSE
    )
    stack.simulator.delete_key(sim_key.api_key)
    stack.tick(FixedClock(utcnow()), times=3)  # the bot hears Binance reject the key
    assert _incident(stack).key_dead_at is not None and not _ticked(stack, incident_id, 1)
    for step in (1, 2, 3, 4, 5):
        _tick(stack, step, ALICE, incident_id)
    assert close("Key was in a public gist; rotated all keys.").status_code == 200
    summary = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Incident closed" in c.params.get("text", "")
    )
    text = all_text(summary[0].params)
    assert "Timeline" in text and "public gist" in text
    assert "Time until Binance rejected the key" in text
    assert _incident(stack).state == "closed"
    # a click on the closed incident's old buttons: polite, nothing changes
    url = _tick(stack, 3, BOB, incident_id, wait=False)
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "closed" in all_text(reply.params)
    with Session(stack.services.engine) as session:
        assert session.get(IncidentStep, (incident_id, 3)).ticked_by == ALICE


def test_incidents_command_lists_open_and_recent_incidents(stack):
    register_directly(stack, "bot")
    register_directly(stack, "other")
    _raise(stack)
    _raise(stack, "other")
    # both raised, and both checklists posted (their messages are remembered after posting)
    wait_until(lambda: len(all_ := _all_incidents(stack)) == 2 and all(i.messages for i in all_))
    reply = bot_client(stack).post(
        slash_command("incidents", response_url=stack.slack.response_url())
    )
    text = all_text(reply.json())
    assert "bot" in text and "other" in text and "0/5 steps" in text and "open" in text
    # each incident links its live checklist (Slack's chat.getPermalink)
    for incident in _all_incidents(stack):
        channel, ts = incident.messages[0]["channel"], incident.messages[0]["ts"]
        assert f"/archives/{channel}/p{ts.replace('.', '')}|checklist>" in text


def test_raising_an_unknown_label_is_polite_and_changes_nothing(stack):
    url = _raise(stack, "ghost")
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert "No registered key is labelled “ghost”" in all_text(reply.params)
    with Session(stack.services.engine) as session:
        assert session.exec(select(Incident)).all() == []


def test_a_chosen_review_start_and_the_other_keys_current_tier(stack):
    register_directly(stack, "bot")
    _, sibling = register_directly(stack, "sibling", purpose=KeyPurpose.READ_ONLY)
    # after registration the sibling gained withdrawals: the incident must show it as it is now
    stack.simulator.set_permissions(sibling.api_key, enableWithdrawals=True)
    url = stack.slack.response_url()
    bot_client(stack).post(slash_command("compromised bot since 60d", response_url=url))
    incident = _raised(stack)
    assert (incident.raised_at - incident.activity_since).days == 60
    stack.tick(FixedClock(utcnow()), times=3)
    (other,) = _incident(stack).other_keys
    assert other == {"label": "sibling", "tier": "Withdraw", "status": "active", "checked": True}
    assert "sibling* · Withdraw" in all_text(stack.slack.calls_to("chat.update")[-1].params)
