"""What the bot claims about a compromised key, and when an incident may close (issue 21).

- Binance's -2015 means "Invalid API-key, IP, or permissions for action"
  (https://developers.binance.com/docs/binance-spot-api-docs/errors): the key may be deleted,
  or its IP whitelist may no longer admit the bot. The bot says exactly that, never "deleted",
  leaves step 1 ("Delete the key in Binance") to a person, and keeps the key compromised (not
  revoked) and probed while the incident is open.
- "Handled" needs Binance to reject the key: while it accepts the key nobody may close so;
  while Binance could not be asked only an admin may, with a note. Probing goes on, and an
  admin's false alarm stays possible until the incident is closed for good.

Signed requests to the bot, the Slack stand-in and the Binance simulator.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.ids import Action, Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.requests import close_note_values, close_outcome_values
from storage.models import (
    ApiKey,
    AuditEvent,
    Incident,
    IncidentOutcome,
    IncidentStep,
    JobState,
    KeyStatus,
    ScheduledJob,
    utcnow,
)
from tests.e2e import ALICE, all_text, bot_client, register_directly, wait_until
from tests.slack_requests import block_action, slash_command, view_submission

ADMIN = "U0ADMIN"
CAROL = "U0CAROL"  # a member: neither the key's owner nor an admin
ALERTS = "C0ALERTS"
RESTRICTIONS = "/sapi/v1/account/apiRestrictions"
WHAT_BINANCE_SAID = "deleted, or its IP whitelist no longer admits the bot"
HANDLED = IncidentOutcome.HANDLED.value
FALSE_ALARM = IncidentOutcome.FALSE_ALARM.value


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN, users=(ALICE, CAROL))


def _raise(stack, *, by: str = CAROL) -> Incident:
    body = slash_command("compromised bot", user_id=by, response_url=stack.slack.response_url())
    assert bot_client(stack).post(body).status_code == 200
    return wait_until(lambda: (i := _incident(stack)) and len(i.messages) == 1 and i)


def _incident(stack) -> Incident | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident)).first()


def _key(stack) -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == "bot")).one()


def _steps(stack, incident_id: str) -> dict[int, IncidentStep]:
    with Session(stack.services.engine) as session:
        rows = session.exec(select(IncidentStep).where(IncidentStep.incident_id == incident_id))
        return {row.step: row for row in rows.all()}


def _pending_probes(stack) -> list[ScheduledJob]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(
                select(ScheduledJob).where(
                    ScheduledJob.kind == JobKind.INCIDENT_PROBE,
                    ScheduledJob.state == JobState.PENDING.value,
                )
            ).all()
        )


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _tick_all(stack, incident_id: str, *, by: str = CAROL) -> None:
    for step in range(1, 6):
        body = block_action(
            Action.INCIDENT_TICK,
            f"{incident_id}:{step}",
            user_id=by,
            response_url=stack.slack.response_url(),
            message_ts="1.0",
        )
        assert bot_client(stack).post(body).status_code == 200
    wait_until(lambda: len(_steps(stack, incident_id)) == 5)


def _close(stack, incident_id: str, *, by: str, outcome: str | None = None, note: str = "done"):
    values = (
        close_note_values(note=note)
        if outcome is None
        else close_outcome_values(note=note, outcome=outcome)
    )
    body = view_submission(
        Callback.INCIDENT_CLOSE.value, values, user_id=by, private_metadata=incident_id
    )
    return bot_client(stack).post(body)


def _refusal(response) -> str:
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors", answer
    return " ".join(answer["errors"].values())


def _probe(stack, *, times: int = 3) -> None:
    """Run what is due now, and the next probe too (probes back off from 30 s)."""
    clock = FixedClock(utcnow())
    stack.tick(clock, times=times)
    for job in _pending_probes(stack):
        clock.current = max(clock.current, job.due_at)
    stack.tick(clock, times=times)


def _checklist(stack) -> str:
    """The live checklist as it reads now (its last update, else its first post)."""
    updates = stack.slack.calls_to("chat.update")
    if updates:
        return all_text(updates[-1].params)
    return all_text(stack.slack.calls_to("chat.postMessage")[0].params)


# --- -2015: what Binance said, no more ----------------------------------------------------------


def test_a_whitelist_that_no_longer_admits_the_bot_is_not_called_a_deletion(stack):
    """The owner narrows the key's IP whitelist (the bot's address is no longer on it): Binance
    answers -2015 to the probe. The checklist says what that means, step 1 stays for a person
    to tick, and the key stays compromised with its secret, still probed."""
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.set_ip_allowed(sim_key.api_key, False)
    _probe(stack)
    row = _incident(stack)
    assert row.last_probe_result == "rejected" and row.key_dead_at is not None
    assert 1 not in _steps(stack, incident.id)  # nobody claimed the key was deleted
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert _pending_probes(stack)  # still asking: the whitelist may admit the bot again
    text = _checklist(stack)
    assert "rejects the key from the bot's address" in text and WHAT_BINANCE_SAID in text
    assert "done by the bot" not in text and "Verified" not in text
    (event,) = _events(stack, "incident.key_rejected")
    assert event.actor == "bot" and event.detail["binance"] == (
        "-2015 Invalid API-key, IP, or permissions for action"
    )
    # The owner puts the bot's address back: Binance accepts the key again, and it is said.
    stack.simulator.set_ip_allowed(sim_key.api_key, True)
    _probe(stack)
    row = _incident(stack)
    assert row.last_probe_result == "alive" and row.key_dead_at is None
    assert "Binance still accepts this key" in _checklist(stack)


def test_the_bot_never_ticks_key_deleted_itself(stack):
    """Even a deleted key is only "rejected" to the bot (Binance answers the same -2015): a
    person ticks step 1, and the checklist says when Binance began to reject the key."""
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.delete_key(sim_key.api_key)
    _probe(stack)
    assert 1 not in _steps(stack, incident.id)
    text = _checklist(stack)
    assert WHAT_BINANCE_SAID in text and "Mark done" in text


# --- closing as handled -------------------------------------------------------------------------


def test_a_member_cannot_close_as_handled_while_binance_accepts_the_key(stack):
    """Carol, a member, raised it on Alice's key, ticked every step and closed it "handled"
    while Binance still accepts the key: refused, nothing changes, probing goes on, and the
    admin can still call it a false alarm."""
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    _probe(stack)
    assert _incident(stack).last_probe_result == "alive"
    _tick_all(stack, incident.id)
    refused = _refusal(_close(stack, incident.id, by=CAROL))
    assert "Binance still accepts" in refused and "Nothing was changed" in refused
    assert sim_key.secret not in refused
    row = _incident(stack)
    assert row.state == "open" and row.closed_at is None
    assert _pending_probes(stack)
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert not _events(stack, "incident.close")
    # the admin's false alarm is still possible
    answer = _close(stack, incident.id, by=ADMIN, outcome=FALSE_ALARM, note="a test key")
    assert answer.status_code == 200 and answer.json()["response_action"] == "update"
    assert _incident(stack).outcome == FALSE_ALARM
    assert _key(stack).status == KeyStatus.ACTIVE.value


def test_not_even_an_admin_closes_as_handled_a_key_binance_accepts(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    _probe(stack)
    _tick_all(stack, incident.id)
    refused = _refusal(_close(stack, incident.id, by=ADMIN, outcome=HANDLED))
    assert "Binance still accepts" in refused and "false alarm" in refused
    assert _incident(stack).state == "open" and _pending_probes(stack)


def test_closing_as_handled_once_binance_rejects_the_key_retires_it(stack):
    """Binance rejects the key and every step is ticked: the close goes through; only now is
    the secret destroyed and the key revoked, and probing stops."""
    _, sim_key = register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.delete_key(sim_key.api_key)
    _probe(stack)
    _tick_all(stack, incident.id)
    answer = _close(stack, incident.id, by=CAROL, note="deleted in API Management")
    assert answer.status_code == 200 and "errors" not in answer.text
    row = _incident(stack)
    assert row.state == "closed" and row.outcome == HANDLED
    key = _key(stack)
    assert key.status == KeyStatus.REVOKED.value and key.secret_sealed is None
    assert not _pending_probes(stack)
    (event,) = _events(stack, "incident.close")
    assert event.detail["binance"] == "rejects the key" and event.detail["shredded"] is True
    summary = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Incident closed" in c.params.get("text", "")
    )
    text = all_text(summary[0].params)
    assert WHAT_BINANCE_SAID in text and "secret destroyed" in text


def test_when_binance_cannot_be_asked_only_an_admin_closes_with_a_note(stack):
    register_directly(stack, "bot")
    incident = _raise(stack)
    stack.simulator.inject_fault("503", count=50, path=RESTRICTIONS)
    _probe(stack)
    assert _incident(stack).last_probe_result == "unknown"
    _tick_all(stack, incident.id)
    refused = _refusal(_close(stack, incident.id, by=CAROL))
    assert "admin" in refused and _incident(stack).state == "open"
    answer = _close(
        stack, incident.id, by=ADMIN, outcome=HANDLED, note="Deleted it myself; Binance is down."
    )
    assert answer.status_code == 200 and "errors" not in answer.text
    row = _incident(stack)
    assert row.state == "closed" and row.key_dead_at is None
    key = _key(stack)  # out of the bot's hands, without a claim that Binance rejects it
    assert key.status == KeyStatus.REMOVED.value and key.secret_sealed is None
    assert not _pending_probes(stack)
    (event,) = _events(stack, "incident.close")
    assert event.actor == ADMIN and event.detail["binance"] == "not verified"
    summary = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: "Incident closed" in c.params.get("text", "")
    )
    assert "Binance was not seen rejecting the key" in all_text(summary[0].params)
