"""An incident's commander and its close as a false alarm, through signed requests, the Slack
stand-in and the Binance simulator (issue 16, item 3)."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Block, Callback
from bot.jobs.kinds import JobKind
from bot.jobs.scheduler import FixedClock
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
def stack(make_stack):
    return make_stack(alert_channel=ALERTS, admin_user_ids=ADMIN, users=(ALICE, BOB, CAROL))


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
    button = block_action(
        Action.INCIDENT_COMMANDER,
        incident.id,
        user_id=ALICE,
        response_url=stack.slack.response_url(),
        message_ts="1.0",
        trigger_id="123.456.abc",
    )
    assert bot_client(stack).post(button).status_code == 200
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
    assert "did not leak" in text and "The paste was a test key." in text
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
        (lambda sim, key: sim.set_ip_restrict(key, False), "IP whitelist was removed"),
    ],
    ids=["withdrawals turned on", "reading turned off", "whitelist removed"],
)
def test_a_changed_key_is_no_false_alarm_and_nothing_changes(stack, change, words):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    change(stack.simulator, sim_key.api_key)
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "Someone changed the key" in refused and words in refused
    assert sim_key.secret not in refused
    assert _incident(stack).state == "open"
    assert _key(stack).status == KeyStatus.COMPROMISED.value
    assert not _events(stack, "incident.false_alarm")


def test_a_key_binance_rejects_is_no_false_alarm(stack):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.delete_key(sim_key.api_key)
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "Binance rejects" in refused and "close the incident as handled" in refused
    assert _incident(stack).state == "open"
    assert _key(stack).status == KeyStatus.COMPROMISED.value


def test_a_key_verified_dead_cannot_return(stack):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.delete_key(sim_key.api_key)
    stack.tick(FixedClock(utcnow()), times=3)
    assert _key(stack).status == KeyStatus.REVOKED.value
    refused = _refusal(_close(stack, incident.id, outcome=FALSE_ALARM))
    assert "cannot return to use" in refused and _incident(stack).state == "open"


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
    button = block_action(
        Action.INCIDENT_CLOSE,
        incident.id,
        user_id=ALICE,
        response_url=stack.slack.response_url(),
        message_ts="1.0",
        trigger_id="123.456.abc",
    )
    bot_client(stack).post(button)
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
    bot_client(stack).post(
        block_action(
            Action.INCIDENT_CLOSE,
            incident.id,
            user_id=ADMIN,
            response_url=stack.slack.response_url(),
            message_ts="1.0",
            trigger_id="123.456.abc",
        )
    )
    opened = stack.slack.wait_for("views.open", count=2)[-1]
    assert Block.CLOSE_OUTCOME in str(opened.params["view"])


def test_a_false_alarm_during_a_rotation_lets_the_rotation_go_on(stack):
    from bot.services.rotate import RotationForm, start_rotation
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
