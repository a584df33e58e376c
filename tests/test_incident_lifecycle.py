"""An incident's commander and its close as a false alarm, through signed requests, the Slack
stand-in and the Binance simulator (issue 16, item 3)."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Block, Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.requests import close_outcome_values, commander_values
from storage.models import (
    ApiKey,
    AuditEvent,
    Incident,
    IncidentOutcome,
    JobState,
    KeyStatus,
    ScheduledJob,
    utcnow,
)
from tests.e2e import ALICE, BOB, all_text, bot_client, register_directly, wait_until
from tests.slack_requests import block_action, slash_command, view_submission

ADMIN = "U0ADMIN"
CAROL = "U0CAROL"  # a member: neither the key's owner nor an admin
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN, users=(ALICE, BOB, CAROL))


def _raise(stack, label="bot", user=ALICE) -> Incident:
    body = slash_command(
        f"compromised {label}", user_id=user, response_url=stack.slack.response_url()
    )
    assert bot_client(stack).post(body).status_code == 200
    return wait_until(lambda: (i := _incident(stack)) and len(i.messages) == 1 and i)


def _incident(stack) -> Incident | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident)).first()


def _key(stack, label="bot") -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _pending(stack, key_id: str, kind: str) -> list[ScheduledJob]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(
                select(ScheduledJob).where(
                    ScheduledJob.key_id == key_id,
                    ScheduledJob.kind == kind,
                    ScheduledJob.state == JobState.PENDING.value,
                )
            ).all()
        )


def _press(stack, action: str, value: str, *, user: str):
    """Press a button on the checklist, as Slack sends it (with a trigger for a form)."""
    body = block_action(
        action,
        value,
        user_id=user,
        response_url=stack.slack.response_url(),
        message_ts="1.0",
        trigger_id="123.456.abc",
    )
    return bot_client(stack).post(body)


def _hand_over(stack, incident_id: str, *, by: str, to: str):
    body = view_submission(
        Callback.INCIDENT_COMMANDER.value,
        commander_values(user=to),
        user_id=by,
        private_metadata=incident_id,
    )
    return bot_client(stack).post(body)


def _close(stack, incident_id: str, *, by: str = ADMIN, outcome: str, note: str = "checked"):
    body = view_submission(
        Callback.INCIDENT_CLOSE.value,
        close_outcome_values(note=note, outcome=outcome),
        user_id=by,
        private_metadata=incident_id,
    )
    return bot_client(stack).post(body)


def _refusal(response) -> str:
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors", answer
    return " ".join(answer["errors"].values())


FALSE_ALARM = IncidentOutcome.FALSE_ALARM.value


# --- the commander ----------------------------------------------------------------------------


def test_whoever_raised_it_commands_and_the_checklist_says_so(stack):
    register_directly(stack, "bot", owner=BOB)
    incident = _raise(stack, user=ALICE)
    assert incident.commander == ALICE
    (checklist,) = stack.slack.calls_to("chat.postMessage")
    assert f"*Commander:* <@{ALICE}> leads the response" in all_text(checklist.params)
    url = stack.slack.response_url()
    listed = bot_client(stack).post(slash_command("incidents", user_id=CAROL, response_url=url))
    assert f"commander <@{ALICE}>" in all_text(listed.json())


def test_the_commander_hands_over_and_everyone_sees_it(stack):
    register_directly(stack, "bot", owner=BOB)
    incident = _raise(stack, user=ALICE)
    assert _press(stack, Action.INCIDENT_COMMANDER, incident.id, user=ALICE).status_code == 200
    (opened,) = stack.slack.wait_for("views.open")
    modal = opened.params["view"]
    assert modal["callback_id"] == Callback.INCIDENT_COMMANDER
    assert f'"initial_user": "{ALICE}"' in str(modal).replace("'", '"')

    assert _hand_over(stack, incident.id, by=ALICE, to=CAROL).status_code == 200
    assert wait_until(lambda: _incident(stack).commander == CAROL)
    (update,) = stack.slack.wait_for("chat.update")
    assert f"*Commander:* <@{CAROL}>" in all_text(update.params)
    (note,) = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: c.params.get("thread_ts")
    )
    assert note.params["thread_ts"] == incident.messages[0]["ts"]
    assert f"<@{CAROL}> now leads the response" in all_text(note.params)
    (event,) = _events(stack, "incident.commander")
    assert event.actor == ALICE and event.detail["to"] == CAROL
    # The new commander may hand it on; the one who raised it no longer may (not the owner).
    refused = _refusal(_hand_over(stack, incident.id, by=ALICE, to=ALICE))
    assert "Only the incident commander" in refused and "Nothing was changed" in refused
    assert _hand_over(stack, incident.id, by=CAROL, to=BOB).status_code == 200
    assert wait_until(lambda: _incident(stack).commander == BOB)


def test_the_key_owner_and_admins_may_hand_over_a_bot_may_not_lead(stack):
    register_directly(stack, "bot", owner=BOB)
    incident = _raise(stack, user=ALICE)
    assert _hand_over(stack, incident.id, by=BOB, to=BOB).status_code == 200  # the owner
    assert wait_until(lambda: _incident(stack).commander == BOB)
    assert _hand_over(stack, incident.id, by=ADMIN, to=ADMIN).status_code == 200
    assert wait_until(lambda: _incident(stack).commander == ADMIN)
    refused = _refusal(_hand_over(stack, incident.id, by=ADMIN, to=stack.slack.bot_user_id))
    assert "not a member of this workspace who can lead an incident" in refused
    assert _incident(stack).commander == ADMIN


def test_a_closed_incident_cannot_change_hands(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    assert _close(stack, incident.id, outcome=FALSE_ALARM).status_code == 200
    wait_until(lambda: _incident(stack).state == "closed")
    refused = _refusal(_hand_over(stack, incident.id, by=ADMIN, to=BOB))
    assert "closed" in refused and _incident(stack).commander == ALICE


# --- closing as a false alarm -----------------------------------------------------------------


def test_a_false_alarm_returns_the_key_to_use_after_binance_confirms_it(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    key_id = incident.key_id
    assert _key(stack).status == KeyStatus.COMPROMISED.value
    assert not _pending(stack, key_id, JobKind.ROTATION_REMINDER)  # stopped by the report
    asked = len(stack.simulator.request_log)

    answer = _close(stack, incident.id, outcome=FALSE_ALARM, note="The paste was a test key.")
    assert answer.status_code == 200
    assert answer.json()["response_action"] == "update"
    assert "closed as a false alarm" in all_text(answer.json()["view"])
    closed = _incident(stack)
    assert closed.state == "closed" and closed.outcome == FALSE_ALARM
    assert any("apiRestrictions" in r for r in map(str, stack.simulator.request_log[asked:]))
    key = _key(stack)
    assert key.status == KeyStatus.ACTIVE.value and key.secret_sealed is not None
    assert _pending(stack, key_id, JobKind.ROTATION_REMINDER)  # reminders resume
    assert not _pending(stack, key_id, JobKind.INCIDENT_PROBE)
    summary = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "false alarm" in c.params.get("text", "")
    )
    text = all_text(summary[0].params)
    assert "closed as a false alarm" in text and "The paste was a test key." in text
    assert "same permissions and IP restriction" in text
    assert "Time to revoke" not in text
    update = stack.slack.wait_for(
        "chat.update", predicate=lambda c: "False alarm" in all_text(c.params)
    )
    redrawn = all_text(update[-1].params)
    assert "Closed as a false alarm by" in redrawn and "Mark done" not in redrawn
    (event,) = _events(stack, "incident.false_alarm")
    assert event.actor == ADMIN and event.detail["key_status"] == "active"
    # The scheduler's next probe finds the incident closed: the key keeps its secret.
    stack.tick(FixedClock(utcnow()))
    assert _key(stack).status == KeyStatus.ACTIVE.value
    url = stack.slack.response_url()
    status = bot_client(stack).post(slash_command("status bot", user_id=ALICE, response_url=url))
    assert status.status_code == 200
    (report,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url
    )
    assert report.params["text"].startswith("1 key: all fine")  # not "reported compromised"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda sim, key: sim.set_permissions(key, enableWithdrawals=True), "Withdrawals"),
        (lambda sim, key: sim.set_permissions(key, enableReading=False), "turned off"),
        (lambda sim, key: sim.set_ip_restrict(key, False), "IP restriction was removed"),
        (
            lambda sim, key: sim.set_extra_fields(key, enableStakingWithdrawals=True),
            "which it did not report before",  # a permission Binance added since
        ),
    ],
    ids=["withdrawals turned on", "reading turned off", "whitelist removed", "new flag"],
)
def test_a_changed_key_is_no_false_alarm_and_nothing_changes(stack, change, words):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    change(stack.simulator, sim_key.api_key)
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "Someone may have changed the key" in refused and words in refused
    assert sim_key.secret not in refused
    assert _incident(stack).state == "open"
    assert _key(stack).status == KeyStatus.COMPROMISED.value
    assert not _events(stack, "incident.false_alarm")
    # A sign of a real breach: audited, and said under the checklist for the team.
    (event,) = _events(stack, "incident.false_alarm_refused")
    assert event.actor == ADMIN and words in event.detail["reason"]
    (warning,) = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Not a false alarm yet" in c.params.get("text", "")
    )
    assert warning.params["thread_ts"] == incident.messages[0]["ts"]


def test_a_key_binance_rejects_is_no_false_alarm(stack):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.delete_key(sim_key.api_key)
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "Binance rejects" in refused and "close the incident as handled" in refused
    assert _incident(stack).state == "open"
    assert _key(stack).status == KeyStatus.COMPROMISED.value


def test_a_key_binance_has_rejected_cannot_return(stack):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.delete_key(sim_key.api_key)
    stack.tick(FixedClock(utcnow()), times=3)
    assert _incident(stack).key_dead_at is not None  # rejected: not known to be deleted
    assert _key(stack).status == KeyStatus.COMPROMISED.value
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "cannot return to use" in refused and _incident(stack).state == "open"
    assert "deleted, or its IP whitelist no longer admits the bot" in refused


def test_binance_unreachable_leaves_the_incident_open(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.inject_fault("503", count=20, path="/sapi/v1/account/apiRestrictions")
    answer = _close(stack, incident.id, outcome=FALSE_ALARM)
    stack.simulator.clear_faults()
    assert answer.status_code == 200
    body = answer.json()
    if body.get("response_action") == "errors":  # answered within Slack's 3 seconds
        said = " ".join(body["errors"].values())
    else:  # the modal said "checking", then the outcome
        said = all_text(wait_until(lambda: stack.slack.calls_to("views.update"))[-1].params)
    assert "could not ask Binance" in said and "try again" in said
    assert _incident(stack).state == "open"
    assert _key(stack).status == KeyStatus.COMPROMISED.value


def test_only_admins_may_call_a_false_alarm_even_with_a_forged_form(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    _press(stack, Action.INCIDENT_CLOSE, incident.id, user=ALICE)
    (opened,) = stack.slack.wait_for("views.open")
    assert Block.CLOSE_OUTCOME not in str(opened.params["view"])  # not offered to the owner
    asked = len(stack.simulator.request_log)
    refused = _refusal(_close(stack, incident.id, by=ALICE, outcome=FALSE_ALARM))
    assert "Only admins can close an incident as a false alarm" in refused
    assert len(stack.simulator.request_log) == asked  # Binance not even asked
    (denial,) = _events(stack, "access.denied")
    assert denial.actor == ALICE
    assert _incident(stack).state == "open"
    # An admin is offered the choice.
    _press(stack, Action.INCIDENT_CLOSE, incident.id, user=ADMIN)
    opened = stack.slack.wait_for("views.open", count=2)[-1]
    assert Block.CLOSE_OUTCOME in str(opened.params["view"])


def test_a_false_alarm_during_a_rotation_lets_the_rotation_go_on(stack):
    from bot.services.rotation.rotate import RotationForm, start_rotation
    from storage.models import KeyType

    registered, old = register_directly(stack, "bot")
    new = stack.simulator.add_key(account="main", ip_restrict=True)
    start_rotation(
        engine=stack.services.engine,
        ring=stack.services.ring,
        gateway=stack.services.gateway,
        settings=stack.services.settings,
        form=RotationForm(
            team_id="T0TEST",
            actor=ALICE,
            actor_is_admin=False,
            key_id=registered.key_id,
            key_type=KeyType.HMAC,
            api_key=new.api_key,
            secret=new.secret,
            confirm_more_permissions=True,
        ),
        now=utcnow(),
    )
    assert _key(stack).status == KeyStatus.ROTATING.value
    incident = _raise(stack)
    assert not _pending(stack, registered.key_id, JobKind.ROTATION_PROBE)
    assert _close(stack, incident.id, outcome=FALSE_ALARM).status_code == 200
    assert _key(stack).status == KeyStatus.ROTATING.value
    assert _pending(stack, registered.key_id, JobKind.ROTATION_PROBE)  # goes on
    stack.simulator.delete_key(old.api_key)
    stack.tick(FixedClock(utcnow()))
    assert wait_until(lambda: _key(stack).status == KeyStatus.ACTIVE.value)


def test_a_change_a_later_check_recorded_still_counts(stack):
    """The comparison is with what the bot knew when the key was reported: a status check
    after the report records the changed permissions on the key, not on the incident."""
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=True)
    url = stack.slack.response_url()
    bot_client(stack).post(slash_command("status bot", user_id=ALICE, response_url=url))
    stack.slack.wait_for("response_url", predicate=lambda c: c.params["_response_url"] == url)
    assert wait_until(lambda: _key(stack).permissions_json.get("enableWithdrawals") is True)
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "Withdrawals permission was turned on" in refused
    assert _key(stack).status == KeyStatus.COMPROMISED.value


def test_an_incident_raised_before_permissions_were_kept_cannot_be_a_false_alarm(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    with Session(stack.services.engine) as session:  # as an incident from before revision 0017
        row = session.get(Incident, incident.id)
        row.permissions_at_raise = None
        session.add(row)
        session.commit()
    asked = len(stack.simulator.request_log)
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "had not learnt what “bot” could do" in refused
    assert len(stack.simulator.request_log) == asked and _incident(stack).state == "open"


def test_withdrawals_to_new_addresses_keep_the_incident_open(stack):
    import time

    register_directly(stack, "bot")
    now_ms = int(time.time() * 1000)
    stack.simulator.add_withdrawal(
        "main", coin="BTC", amount="1.5", address="bc1qATTACKER", apply_time_ms=now_ms - 60_000
    )
    incident = _raise(stack)
    stack.tick(FixedClock(utcnow()))  # the activity review (step 3)
    assert wait_until(lambda: (_incident(stack).activity or {}).get("rows"))
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "1 withdrawal to addresses never used before" in refused
    assert _incident(stack).state == "open"
    (event,) = _events(stack, "incident.false_alarm_refused")
    assert "never used before" in event.detail["reason"]


def test_a_key_removed_while_binance_is_asked_does_not_come_back(stack):
    import threading

    from bot.services.access import Actor
    from bot.services.custody.keys import remove_key

    register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.latency = 2.5  # Binance slow: the modal shows "checking" first
    asked_before = len(stack.simulator.request_log)
    answer = {}
    closing = threading.Thread(
        target=lambda: answer.update(r=_close(stack, incident.id, outcome=FALSE_ALARM))
    )
    closing.start()
    # Remove the key while Binance is being asked: once the question has reached the simulator,
    # whose latency holds the answer back (no fixed sleep that may end before or after it).
    stack.simulator.wait_for_request(after=asked_before, timeout=15)
    remove_key(
        engine=stack.services.engine,
        actor=Actor(user_id=ADMIN, team_id="T0TEST", is_admin=True),
        key_id=incident.key_id,
    )
    closing.join()
    stack.simulator.latency = 0.0
    assert answer["r"].json()["response_action"] == "update"  # "checking…"
    (update,) = stack.slack.wait_for("views.update", timeout=15)
    assert "changed while Binance was being asked" in all_text(update.params)
    key = _key(stack)
    assert key.status == KeyStatus.REMOVED.value and key.secret_sealed is None
    assert not _pending(stack, key.id, JobKind.ROTATION_REMINDER)
    assert _incident(stack).state == "open"


def test_the_outcome_reaches_an_admin_who_closed_the_checking_window(stack):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=True)
    stack.simulator.latency = 2.5
    stack.slack.inject_fault("views.update", status=200, error="not_found")  # window closed
    try:
        answer = _close(stack, incident.id, outcome=FALSE_ALARM)
    finally:
        stack.simulator.latency = 0.0
    assert answer.json()["response_action"] == "update"
    told = stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: (
            "differently than when it was reported" in all_text(c.params)
            and not c.params.get("thread_ts")
        ),
        timeout=15,
    )
    assert told  # a direct message to the admin
    assert _incident(stack).state == "open"


def test_two_admins_closing_at_once_close_it_once(stack):
    from concurrent.futures import ThreadPoolExecutor

    from bot.services.access import Actor
    from bot.services.errors import DomainError
    from bot.services.response.false_alarm import close_as_false_alarm
    from bot.services.response.incidents import close_incident

    register_directly(stack, "bot")
    incident = _raise(stack)
    services = stack.services
    for step in range(1, 6):  # every step done, so a close as handled may race too
        body = block_action(
            Action.INCIDENT_TICK, f"{incident.id}:{step}", user_id=ALICE, response_url=None
        )
        bot_client(stack).post(body)
    assert wait_until(lambda: len(_events(stack, "incident.tick")) == 5)

    def false_alarm():
        return close_as_false_alarm(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            settings=services.settings,
            actor=Actor(user_id=ADMIN, team_id="T0TEST", is_admin=True),
            incident_id=incident.id,
            note="test key",
            now=utcnow(),
        )

    def handled():  # by an admin: Binance has not been asked yet, so only an admin may
        return close_incident(
            engine=services.engine,
            actor=Actor(user_id=ADMIN, team_id="T0TEST", is_admin=True),
            incident_id=incident.id,
            note="deleted",
            now=utcnow(),
        )

    def attempt(work):
        try:
            work()
            return "closed"
        except DomainError as exc:
            return exc.user_message

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(attempt, [false_alarm, handled, false_alarm, handled]))
    assert outcomes.count("closed") == 1, outcomes
    assert all("closed" in o for o in outcomes), outcomes
    closes = _events(stack, "incident.false_alarm") + _events(stack, "incident.close")
    assert len(closes) == 1


def test_a_flag_binance_stops_reporting_is_not_taken_as_unchanged():
    from bot.binance import KeyPermissions
    from bot.services.response.false_alarm import permission_changes

    before = {"enableReading": True, "ipRestrict": True, "enableWithdrawals": False}
    now = KeyPermissions.from_api({"enableReading": True, "enableWithdrawals": False})
    assert permission_changes(before, now) == ["Binance no longer reports IP restriction"]
    same = KeyPermissions.from_api(before)
    assert permission_changes(before, same) == []
