"""Fault injection end to end: Binance, Slack and the database failing mid-action.

Every test asserts two things: what the person in Slack sees (a clear, polite message; never a
stack trace; never "fine" when the truth is unknown) and what the database holds afterwards
(nothing half-written, nothing lost: a job whose message did not go out is still pending and
is delivered, once, on a later tick).

Faults are real: the Binance simulator and the Slack stand-in answer with timeouts, 5xx, 429
(with Retry-After) and 418; the database refuses writes through SQLite triggers or a missing
table. Time is a FixedClock ticked by hand.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.binance import shared_limits
from bot.ids import Action, Block, Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.requests import rotate_form_values
from bot.sandbox.stack import LocalStack
from bot.services.oversight.drift_plan import ensure_drift_checks
from storage.models import (
    ApiKey,
    AuditEvent,
    BinanceAccount,
    Incident,
    IncidentStep,
    JobState,
    KeyStatus,
    Rotation,
    ScheduledJob,
    StatusReportRecord,
    utcnow,
)
from tests.clocks import MovableClock
from tests.e2e import (
    ALICE,
    TEAM,
    all_text,
    bot_client,
    register_directly,
    submit_registration,
    wait_until,
)
from tests.factories import make_due
from tests.slack_requests import view_submission

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
RAISED_IN = "C0GENERAL"
RESTRICTIONS = "/sapi/v1/account/apiRestrictions"
# What must never reach a person: internals of a failure.
LEAKS = ("Traceback", "IntegrityError", "OperationalError", "sqlite3", "Exception", 'File "')

# Binance limits are per IP and the gateway's weight budget is shared per process and limit:
# each stack gets a limit of its own, so a 429 pause or a 418 ban never leaks into another test.
_weight_limits = itertools.count(7001)


@pytest.fixture
def budget_clock() -> MovableClock:
    """The clock of the Binance budgets of this test's stacks: a ban or a 429 pause passes
    when the test moves it (``_wait_unbanned``), not after seconds of real waiting."""
    return MovableClock()


@pytest.fixture
def start(make_stack, budget_clock):
    """``start(**overrides)``: a stack with this file's settings and fault timings."""

    def start(**overrides) -> LocalStack:
        weight_limit = next(_weight_limits)
        shared_limits(weight_limit, clock=budget_clock)  # the stack's gateway takes these
        settings = {
            "alert_channel": ALERTS,
            "admin_user_ids": ADMIN,
            "binance_timeout_seconds": 0.5,
            "binance_weight_limit": weight_limit,
            "default_rotation_days": 30,
            # Registering plans the daily drift check a day ahead; tests here that move the
            # clock past a day must not have it run (and meet their injected Binance fault)
            # unasked. The drift tests below make it due themselves.
            "drift_check_hours": 24 * 30,
        }
        stack = make_stack(**{**settings, **overrides})
        stack.simulator.hang_seconds = 1.0  # an injected timeout holds its connection this long
        stack.simulator.retry_after_seconds = 1
        return stack

    return start


@pytest.fixture
def stack(start):
    return start()


# --- helpers ------------------------------------------------------------------------------


def _command(stack, text: str, user: str = ALICE):
    url = stack.slack.response_url()
    ack = bot_client(stack).command(text, user_id=user, response_url=url)
    assert ack.status_code == 200
    return ack, url


def _reply(stack, url: str, *, ok: bool = True, timeout: float = 10.0) -> dict:
    """The (first successfully delivered) message posted to ``url``."""
    (call,) = stack.slack.wait_for(
        "response_url",
        timeout=timeout,
        predicate=lambda c: c.params["_response_url"] == url and (c.ok or not ok),
    )
    return call.params


def _clean(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} reached the user: {text[:500]}"


def _key(stack, label: str = "bot") -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


def _api_key_of(stack, key: ApiKey) -> str:
    return stack.services.ring.open_text(key.api_key_sealed, context=key.api_key_context())


def _jobs(stack, kind: str, state: str | None = None) -> list[ScheduledJob]:
    with Session(stack.services.engine) as session:
        query = select(ScheduledJob).where(ScheduledJob.kind == kind)
        if state is not None:
            query = query.where(ScheduledJob.state == state)
        return list(session.exec(query).all())


def _audit(stack, action: str) -> int:
    with Session(stack.services.engine) as session:
        return len(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def _count(stack, model) -> int:
    with Session(stack.services.engine) as session:
        return len(session.exec(select(model)).all())


def _refuse(stack, name: str, table: str, *, when: str = "", event: str = "INSERT") -> None:
    """A real write failure: the table refuses the statement, as a full disk would."""
    condition = f"WHEN {when} " if when else ""
    with stack.services.engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} {condition}"
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )


def _allow(stack, name: str) -> None:
    with stack.services.engine.begin() as connection:
        connection.execute(sa.text(f"DROP TRIGGER {name}"))


def _posts(stack, fragment: str = "", *, ok: bool = True) -> list:
    return [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if fragment in all_text(c.params) and (c.ok or not ok)
    ]


def _wait_unbanned(stack, budget_clock: MovableClock) -> None:
    """Move the budgets' clock past any ban or 429 pause (the simulator's Retry-After)."""
    budget = stack.services.gateway.budget
    budget_clock.advance(stack.simulator.retry_after_seconds + 1)
    assert budget.banned_until is None and budget.wait_for_pause(0), "the ban did not lift"


# Faults of one request. A 418 is different: it bans the whole IP (see the ban test below).
BINANCE_FAULTS = ["timeout", "500", "502", "503"]


# --- Binance failing during `/apikey status` ------------------------------------------------


@pytest.mark.parametrize("kind", BINANCE_FAULTS)
def test_status_with_one_key_failing_reports_it_unknown_and_still_reports_the_other(stack, kind):
    register_directly(stack, "alpha")
    register_directly(stack, "bravo")
    before = {k: _key(stack, k).permissions_checked_at for k in ("alpha", "bravo")}
    stack.simulator.inject_fault(kind, count=1, path=RESTRICTIONS)
    ack, url = _command(stack, "status all")
    assert ack.status_code == 200 and not ack.text  # no placeholder: the report is the message
    text = all_text(_reply(stack, url))
    _clean(text)
    assert "2 keys: 1 unknown" in text and "all fine" not in text
    assert "Could not check with Binance" in text and "unknown tier" in text
    reason = {"timeout": "did not answer in time"}.get(
        kind, "could not be reached or did not answer properly"
    )
    assert reason in text
    assert "alpha" in text and "bravo" in text
    with Session(stack.services.engine) as session:
        (record,) = session.exec(select(StatusReportRecord)).all()
    checked = {k["label"]: k["checked"] for k in record.payload["keys"]}
    assert sorted(checked.values()) == [False, True]
    # the key Binance did not answer about keeps its last observation; the other is refreshed
    for label, was_checked in checked.items():
        key = _key(stack, label)
        assert key.permissions_json is not None
        if was_checked:
            assert key.permissions_checked_at > before[label]
        else:
            assert key.permissions_checked_at == before[label]
    assert _audit(stack, "key.status") == 1


def test_status_429_with_a_short_retry_after_waits_then_reports_the_key(stack):
    register_directly(stack, "bot")
    stack.simulator.inject_fault("429", count=1, path=RESTRICTIONS)
    _, url = _command(stack, "status bot")
    text = all_text(_reply(stack, url))
    assert "1 key:" in text and "unknown" not in text and "Could not check" not in text
    asked = [r for r in stack.simulator.request_log if r.path == RESTRICTIONS]
    assert [r.status for r in asked[-2:]] == [429, 200]
    assert asked[-1].at - asked[-2].at >= 0.95  # Retry-After: 1 was honoured


def test_status_429_with_a_long_retry_after_is_unknown_and_says_when_to_retry(stack):
    register_directly(stack, "bot")
    register_directly(stack, "other")
    stack.simulator.retry_after_seconds = 30
    stack.simulator.inject_fault("429", count=2, path=RESTRICTIONS)
    _, url = _command(stack, "status all")
    text = all_text(_reply(stack, url))
    _clean(text)
    assert "2 keys: 2 unknown" in text and "in about 30 seconds" in text
    assert "Not checked yet" in text and "it can be checked from" in text  # says when
    sent = len(stack.simulator.request_log)
    # during the pause nothing is sent to Binance, and the answer is still "unknown"
    _, url = _command(stack, "status bot")
    assert "1 key: 1 unknown" in all_text(_reply(stack, url))
    assert len(stack.simulator.request_log) == sent


def test_status_during_an_ip_ban_sends_nothing_and_recovers_when_it_lifts(stack, budget_clock):
    register_directly(stack, "bot")
    register_directly(stack, "other")
    stack.simulator.retry_after_seconds = 3
    stack.simulator.inject_fault("418", count=1, path=RESTRICTIONS)
    _, url = _command(stack, "status bot")
    assert "1 key: 1 unknown" in all_text(_reply(stack, url))
    sent = len(stack.simulator.request_log)
    _, url = _command(stack, "status all")
    text = all_text(_reply(stack, url))
    _clean(text)
    assert "2 keys: 2 unknown" in text and "temporarily banned" in text and "other" in text
    assert len(stack.simulator.request_log) == sent  # banned: not a byte sent
    _wait_unbanned(stack, budget_clock)
    _, url = _command(stack, "status all")
    assert "unknown" not in all_text(_reply(stack, url))


def test_status_report_whose_response_url_fails_is_delivered_after_a_retry(stack):
    register_directly(stack, "bot")
    stack.slack.inject_fault("response_url", status=503, count=1)
    _, url = _command(stack, "status bot")
    text = all_text(_reply(stack, url))
    assert "1 key:" in text
    calls = [c for c in stack.slack.calls_to("response_url") if c.params["_response_url"] == url]
    assert [c.status for c in calls] == [503, 200]  # delivered once, after the failure


def test_status_report_whose_response_url_keeps_failing_reaches_the_person_another_way(stack):
    register_directly(stack, "bot")
    stack.slack.inject_fault("response_url", status=500, count=20)
    _, url = _command(stack, "status bot")
    (private,) = stack.slack.wait_for("chat.postEphemeral", timeout=15)
    assert private.params["user"] == ALICE and private.params["channel"] == RAISED_IN
    assert "1 key:" in all_text(private.params)
    tried = [c for c in stack.slack.calls_to("response_url") if c.params["_response_url"] == url]
    assert len(tried) == 3 and not any(c.ok for c in tried)  # tried, then went another way
    assert len(stack.slack.calls_to("chat.postEphemeral")) == 1


# --- Binance failing during a rotation -----------------------------------------------------


def _submit_rotation(stack, key_id: str, sim_key):
    values = rotate_form_values(
        key_type=sim_key.key_type, api_key=sim_key.api_key, secret=sim_key.secret
    )
    body = view_submission(
        Callback.ROTATE.value,
        values,
        user_id=ALICE,
        private_metadata=json.dumps({"key_id": key_id, "channel": RAISED_IN}),
    )
    return bot_client(stack).post(body)


def _assert_untouched(stack, old_api_key: str) -> None:
    key = _key(stack)
    assert key.status == KeyStatus.ACTIVE.value
    assert _api_key_of(stack, key) == old_api_key
    assert _count(stack, Rotation) == 0
    assert _jobs(stack, JobKind.ROTATION_PROBE) == []
    assert _jobs(
        stack, JobKind.ROTATION_REMINDER, JobState.PENDING.value
    )  # reminders still planned
    assert _audit(stack, "key.rotate_start") == 0


@pytest.mark.parametrize(
    ("kind", "count", "reason"),
    [
        ("timeout", 1, "did not answer in time"),
        ("502", 1, "could not be reached"),
        ("429", 2, "request limit"),  # the retry after Retry-After is refused again
        ("418", 1, "temporarily banned"),
    ],
)
def test_rotation_whose_new_key_cannot_be_checked_stores_nothing(
    stack, kind, count, reason, budget_clock
):
    registered, old = register_directly(stack, "bot")
    new = stack.simulator.add_key(ip_restrict=True)
    stack.simulator.inject_fault(kind, count=count, path=RESTRICTIONS)
    response = _submit_rotation(stack, registered.key_id, new)
    assert response.status_code == 200
    answer = response.json()
    assert answer.get("response_action") == "errors", answer
    message = answer["errors"][Block.API_KEY]
    _clean(message)
    assert reason in message and "Nothing was stored" in message
    _assert_untouched(stack, old.api_key)
    assert stack.wait_idle()
    assert _posts(stack) == []
    _wait_unbanned(stack, budget_clock)
    # nothing half-written stands in the way: the same new key is accepted once Binance answers
    again = _submit_rotation(stack, registered.key_id, new)
    assert again.json().get("response_action") == "update", again.text
    assert _key(stack).status == KeyStatus.ROTATING.value


@pytest.mark.parametrize("kind", ["timeout", "503", "418"])
def test_old_key_probe_failing_keeps_the_rotation_in_progress_and_probes_again(
    stack, kind, budget_clock
):
    registered, old = register_directly(stack, "bot")
    new = stack.simulator.add_key(ip_restrict=True)
    assert _submit_rotation(stack, registered.key_id, new).json()["response_action"] == "update"
    # the new key is checked after the answer: the fault must not meet that check
    wait_until(lambda: _key(stack).status == KeyStatus.ROTATING.value)
    stack.simulator.delete_key(old.api_key)  # Binance would reject it: but it cannot be asked
    stack.simulator.inject_fault(kind, count=1, path=RESTRICTIONS)
    # past the grace period too: an unknown answer is neither "deleted" nor "still alive"
    clock = FixedClock(utcnow() + timedelta(hours=25))
    stack.tick(clock, times=2)
    with Session(stack.services.engine) as session:
        rotation = session.exec(select(Rotation)).one()
    assert rotation.state == "probing" and rotation.last_probe_result.startswith("unknown")
    assert rotation.old_api_key_sealed is not None and rotation.stale_alerted_at is None
    assert _key(stack).status == KeyStatus.ROTATING.value
    (pending,) = _jobs(stack, JobKind.ROTATION_PROBE, JobState.PENDING.value)
    assert pending.due_at > clock.now() and pending.payload["attempt"] == 1
    assert _posts(stack, "Rotation of") == [] and _posts(stack, "still works") == []
    assert _audit(stack, "key.rotate_complete") == 0
    _wait_unbanned(stack, budget_clock)
    clock.current = pending.due_at
    stack.tick(clock, times=3)
    assert _key(stack).status == KeyStatus.ACTIVE.value
    (announced,) = _posts(stack, "Rotation of")
    assert announced.params["channel"] == ALERTS
    assert _posts(stack, "still works") == []


# --- Binance failing during incident probes ---------------------------------------------------


def _raise_incident(stack, label: str = "bot") -> Incident:
    _, url = _command(stack, f"compromised {label}")
    _reply(stack, url)

    def raised():
        with Session(stack.services.engine) as session:
            incident = session.exec(select(Incident)).first()
        return incident if incident is not None and len(incident.messages) == 1 else None

    deadline = time.monotonic() + 10
    while (incident := raised()) is None:
        assert time.monotonic() < deadline, "the checklist was not posted"
        time.sleep(0.02)
    return incident


def _incident(stack) -> Incident:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident)).one()


@pytest.mark.parametrize("kind", ["timeout", "503", "418"])
def test_failing_incident_probe_is_not_a_rejection_and_shreds_nothing(stack, kind, budget_clock):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise_incident(stack)
    stack.simulator.inject_fault(kind, count=1, path=RESTRICTIONS)
    clock = FixedClock(utcnow())
    stack.tick(clock, times=2)
    incident = _incident(stack)
    assert incident.last_probe_result == "unknown" and incident.key_dead_at is None
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    with Session(stack.services.engine) as session:
        assert session.get(IncidentStep, (incident.id, 1)) is None
    (pending,) = _jobs(stack, JobKind.INCIDENT_PROBE, JobState.PENDING.value)
    assert pending.payload["attempt"] == 1 and pending.due_at > clock.now()
    assert _audit(stack, "incident.key_rejected") == 0
    updates = [all_text(c.params) for c in stack.slack.calls_to("chat.update")]
    assert updates and "Checking with Binance" in updates[-1]
    assert not any("rejects the key from" in u or "still accepts" in u for u in updates)
    # once Binance answers again, the rejection is recorded (the secret stays until the close)
    stack.simulator.delete_key(sim_key.api_key)
    _wait_unbanned(stack, budget_clock)
    clock.current = pending.due_at
    stack.tick(clock, times=2)
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert _incident(stack).key_dead_at is not None
    assert _audit(stack, "incident.key_rejected") == 1


def test_a_close_whose_write_fails_destroys_nothing_and_leaves_the_incident_open(stack):
    """Closing as handled retires the key (secret destroyed, revoked) in the transaction that
    closes the incident and audits it: a failed write leaves all of it as it was."""
    from bot.model.incidents import STEPS
    from bot.services.access import Actor
    from bot.services.response.incidents import close_incident, tick_step

    _, sim_key = register_directly(stack, "bot")
    incident = _raise_incident(stack)
    stack.simulator.delete_key(sim_key.api_key)
    stack.tick(FixedClock(utcnow()), times=2)
    assert _incident(stack).key_dead_at is not None
    engine = stack.services.engine
    for step in STEPS:
        tick_step(
            engine=engine,
            team_id=TEAM,
            incident_id=incident.id,
            step=step.number,
            actor=ALICE,
            now=utcnow(),
        )

    def close() -> None:
        close_incident(
            engine=engine,
            actor=Actor(user_id=ALICE, team_id=TEAM),
            incident_id=incident.id,
            note="deleted in API Management",
            now=utcnow(),
        )

    _refuse(stack, "refuse_close", "audit_events", when="NEW.action = 'incident.close'")
    with pytest.raises(sa.exc.SQLAlchemyError):
        close()
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert _incident(stack).state == "open"
    assert _jobs(stack, JobKind.INCIDENT_PROBE, JobState.PENDING.value)
    _allow(stack, "refuse_close")
    close()
    key = _key(stack)
    assert key.status == KeyStatus.REVOKED.value and key.secret_sealed is None
    assert _incident(stack).state == "closed"
    assert not _jobs(stack, JobKind.INCIDENT_PROBE, JobState.PENDING.value)


# --- Slack failing while the scheduler posts ------------------------------------------------


def _reminder_due(stack):
    """A key whose first reminder (a DM to its owner) is due at the returned clock."""
    t0 = utcnow()
    register_directly(stack, "bot", now=t0)
    return FixedClock(t0 + timedelta(days=16, minutes=1))


def _reminders(stack, *, ok: bool = True) -> list:
    return _posts(stack, "Rotation reminder", ok=ok)


def test_reminder_rate_limited_by_slack_is_delivered_after_retry_after_exactly_once(stack):
    clock = _reminder_due(stack)
    stack.slack.inject_fault("chat.postMessage", status=429, retry_after=1)
    stack.tick(clock)
    attempts = _reminders(stack, ok=False)
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0  # Retry-After honoured
    assert len(_jobs(stack, JobKind.ROTATION_REMINDER, JobState.DONE.value)) == 1
    assert _audit(stack, "rotation.reminder") == 1
    clock.advance(timedelta(hours=1))
    stack.tick(clock)
    assert len(_reminders(stack)) == 1


@pytest.mark.parametrize(("status", "count"), [(502, 1), (503, 3)])
def test_reminder_that_slack_fails_to_take_stays_pending_and_goes_out_once_later(
    stack, status, count
):
    clock = _reminder_due(stack)
    stack.slack.inject_fault("chat.postMessage", status=status, count=count)
    stack.tick(clock)
    assert _reminders(stack) == [] and len(_reminders(stack, ok=False)) == count
    (job,) = [j for j in _jobs(stack, JobKind.ROTATION_REMINDER) if j.attempts]
    assert job.state == JobState.PENDING.value and job.last_error and job.due_at > clock.now()
    assert _audit(stack, "rotation.reminder") == 0
    stack.tick(clock)  # not due again yet: nothing is hammered
    assert len(_reminders(stack, ok=False)) == count
    clock.current = job.due_at
    stack.tick(clock)
    (delivered,) = _reminders(stack)
    assert "bot" in all_text(delivered.params)
    assert _jobs(stack, JobKind.ROTATION_REMINDER, JobState.DONE.value)[0].id == job.id
    assert _audit(stack, "rotation.reminder") == 1
    clock.advance(timedelta(hours=1))
    stack.tick(clock, times=2)
    assert len(_reminders(stack)) == 1


def test_reminder_dm_that_fails_for_one_of_several_admins_is_not_sent_twice_to_the_others(
    start,
):
    """The owner left, so the reminder goes to each admin by DM; Slack refuses the second DM.
    The retry sends it to the admin who did not get it, not again to the one who did."""
    second = "U0ADMIN2"
    stack = start(admin_user_ids=f"{ADMIN},{second}")  # the factory adds both to Slack
    stack.slack.add_user(ALICE, name="alice", deleted=True)
    clock = _reminder_due(stack)
    stack.slack.inject_fault("chat.postMessage", status=502, where={"channel": "D0ADMIN2"})
    stack.tick(clock)

    def dms_to(user: str) -> list:
        return [c for c in _reminders(stack) if c.params["channel"] == "D" + user[1:]]

    assert len(dms_to(ADMIN)) == 1 and dms_to(second) == []
    (job,) = [
        j for j in _jobs(stack, JobKind.ROTATION_REMINDER, JobState.PENDING.value) if j.attempts
    ]
    assert job.payload["delivered_to"] == [ADMIN] and job.due_at > clock.now()
    assert _audit(stack, "rotation.reminder") == 0
    clock.current = job.due_at
    stack.tick(clock)
    assert len(dms_to(ADMIN)) == 1 and len(dms_to(second)) == 1
    assert [j.id for j in _jobs(stack, JobKind.ROTATION_REMINDER, JobState.DONE.value)] == [job.id]
    assert _audit(stack, "rotation.reminder") == 1


def _drift_due(stack, clock: FixedClock) -> None:
    engine = stack.services.engine
    ensure_drift_checks(engine, interval=timedelta(0), now=clock.now())
    make_due(engine, kind=JobKind.DRIFT_CHECK, at=clock.now())


@pytest.mark.parametrize("status", [502, 429])
def test_drift_digest_that_slack_fails_to_take_is_posted_later_not_lost(stack, status):
    _, sim_key = register_directly(stack, "bot")
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=True)
    clock = FixedClock(utcnow() + timedelta(hours=1))
    _drift_due(stack, clock)
    # 429: more refusals than the client's retries; 5xx: one is enough (502 is not retried)
    stack.slack.inject_fault("chat.postMessage", status=status, count=4, retry_after=0)
    stack.tick(clock)
    assert _posts(stack, "Daily key check") == []
    (job,) = _jobs(stack, JobKind.DRIFT_CHECK, JobState.PENDING.value)
    assert job.attempts == 1 and job.last_error and job.due_at > clock.now()
    stack.slack.clear_faults()
    clock.current = job.due_at
    stack.tick(clock)
    (digest,) = _posts(stack, "Daily key check")
    assert "Withdrawals permission was turned on" in all_text(digest.params)
    assert digest.params["channel"] == ALERTS
    # the next day's check is planned exactly once, and the same change is not reported again
    (planned,) = _jobs(stack, JobKind.DRIFT_CHECK, JobState.PENDING.value)
    clock.current = planned.due_at
    stack.tick(clock)
    assert len(_posts(stack, "Daily key check")) == 1


def test_checklist_rate_limited_by_slack_is_posted_once(stack):
    register_directly(stack, "bot")
    stack.slack.inject_fault("chat.postMessage", status=429, retry_after=1)
    incident = _raise_incident(stack)
    checklists = _posts(stack, "Compromised key")
    assert [c.params["channel"] for c in checklists] == [ALERTS]  # once: the one live copy
    assert len(_posts(stack, "Compromised key", ok=False)) >= 1
    assert [m["channel"] for m in incident.messages] == [ALERTS]


def test_checklist_that_slack_fails_to_take_is_posted_on_a_later_tick(stack):
    register_directly(stack, "bot")
    stack.slack.inject_fault("chat.postMessage", status=502)  # the alert channel's post
    _, url = _command(stack, "compromised bot")
    _reply(stack, url)
    (posted,) = stack.slack.wait_for(
        "chat.postMessage", predicate=lambda c: c.ok and "Compromised key" in all_text(c.params)
    )
    assert posted.params["channel"] == RAISED_IN
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    (later,) = _jobs(stack, JobKind.INCIDENT_CHECKLIST, JobState.PENDING.value)
    assert later.payload["channel"] == ALERTS
    clock = FixedClock(utcnow())
    stack.tick(clock, times=2)  # the probe and the activity review; the retry is not due yet
    assert len(_posts(stack, "Compromised key")) == 1
    clock.current = later.due_at
    stack.tick(clock, times=2)
    checklists = _posts(stack, "Compromised key")
    assert sorted(c.params["channel"] for c in checklists) == sorted([ALERTS, RAISED_IN])
    assert {m["channel"] for m in _incident(stack).messages} == {ALERTS, RAISED_IN}
    # the activity table, reviewed meanwhile, follows the late checklist into its thread
    tables = _posts(stack, "Step 3")
    assert sorted(t.params["channel"] for t in tables) == sorted([ALERTS, RAISED_IN])
    clock.advance(timedelta(minutes=5))
    stack.tick(clock, times=2)
    assert len(_posts(stack, "Compromised key")) == 2  # no duplicate
    assert len(_posts(stack, "Step 3")) == 2


def test_checklist_update_that_slack_fails_to_take_is_retried_later(stack):
    _, sim_key = register_directly(stack, "bot")
    _raise_incident(stack)
    stack.simulator.delete_key(sim_key.api_key)
    stack.slack.inject_fault("chat.update", status=502)
    clock = FixedClock(utcnow())
    stack.tick(clock, times=3)  # probe: rejected; then the refresh, one update refused
    assert _incident(stack).key_dead_at is not None
    clock.advance(timedelta(minutes=5))
    stack.tick(clock, times=2)
    updates = [
        c for c in stack.slack.calls_to("chat.update") if c.ok and c.params["channel"] == ALERTS
    ]  # the one live checklist
    assert updates and "Binance rejects the key" in all_text(updates[-1].params)


def test_activity_table_that_slack_fails_to_take_is_posted_later_once(stack):
    register_directly(stack, "bot")
    _raise_incident(stack)
    stack.slack.inject_fault("chat.postMessage", status=502)
    clock = FixedClock(utcnow())
    stack.tick(clock, times=2)
    clock.advance(timedelta(minutes=5))
    stack.tick(clock, times=2)
    tables = _posts(stack, "Step 3")
    assert [t.params["channel"] for t in tables] == [ALERTS]  # once, in the checklist's thread
    assert all(t.params.get("thread_ts") for t in tables)


def test_checklist_that_can_be_posted_nowhere_does_not_make_the_review_ask_binance_forever(
    stack,
):
    """The bot is in neither channel: the checklist cannot be posted and no job will post it.
    The activity review waits for it briefly, then asks Binance once and keeps the result."""
    register_directly(stack, "bot")
    stack.slack.inject_fault("chat.postMessage", status=200, error="not_in_channel", count=2)
    _, url = _command(stack, "compromised bot")
    _reply(stack, url)
    stack.slack.wait_for("chat.postMessage", count=2, predicate=lambda c: not c.ok)
    assert _jobs(stack, JobKind.INCIDENT_CHECKLIST) == []

    def history_calls() -> int:
        return sum("history" in r.path.lower() for r in stack.simulator.request_log)

    clock = FixedClock(utcnow())
    stack.tick(clock, times=2)  # moments after raising: the checklist may still be coming
    assert history_calls() == 0
    (waiting,) = _jobs(stack, JobKind.INCIDENT_ACTIVITY, JobState.PENDING.value)
    assert waiting.due_at <= clock.now() + timedelta(seconds=31)
    clock.advance(timedelta(minutes=3))
    stack.tick(clock, times=2)
    assert history_calls() == 2  # withdrawals and deposits, once
    assert _incident(stack).activity is not None
    assert _jobs(stack, JobKind.INCIDENT_ACTIVITY, JobState.PENDING.value) == []
    clock.advance(timedelta(minutes=30))
    stack.tick(clock, times=3)
    assert history_calls() == 2
    assert _posts(stack, "Step 3", ok=False) == []


# --- the database failing mid-action ----------------------------------------------------------


def _register_form(stack, sim_key, label: str = "bot"):
    return submit_registration(
        bot_client(stack),
        label=label,
        api_key=sim_key.api_key,
        secret=sim_key.secret,
        key_type=sim_key.key_type,
        channel=RAISED_IN,
    )


@pytest.mark.parametrize(
    "fault",
    [
        "reminder_plan_refused",
        "audit_table_missing",
    ],
)
def test_registration_whose_write_fails_midway_stores_nothing_and_says_so(stack, fault):
    sim_key = stack.simulator.add_key(ip_restrict=True)
    if fault == "reminder_plan_refused":  # the key row is written, then the plan is refused
        _refuse(stack, "refuse_jobs", "scheduled_jobs")
    else:
        with stack.services.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE audit_events RENAME TO audit_offline"))
    response = _register_form(stack, sim_key)
    answer = response.json()
    assert answer.get("response_action") == "errors", answer
    message = " ".join(answer["errors"].values())
    _clean(message)
    assert "went wrong on our side" in message and "nothing was changed" in message
    assert "already" not in message and "a moment ago" not in message  # not a label problem
    assert _count(stack, ApiKey) == 0 and _count(stack, BinanceAccount) == 0
    assert _count(stack, ScheduledJob) == 0
    assert stack.wait_idle()
    assert stack.slack.calls_to("chat.postEphemeral") == []  # no "registered" summary
    if fault == "reminder_plan_refused":
        _allow(stack, "refuse_jobs")
    else:
        with stack.services.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE audit_offline RENAME TO audit_events"))
    again = _register_form(stack, sim_key)
    assert again.json().get("response_action") == "update", again.text
    assert _key(stack).status == KeyStatus.ACTIVE.value
    assert _audit(stack, "key.register") == 1


def test_remove_whose_job_cancelling_fails_keeps_the_secret_and_the_status(stack):
    registered, _ = register_directly(stack, "bot")
    planned = len(_jobs(stack, JobKind.ROTATION_REMINDER, JobState.PENDING.value))
    _refuse(stack, "refuse_cancel", "scheduled_jobs", event="UPDATE")
    url = stack.slack.response_url()
    bot_client(stack).action(Action.REMOVE_CONFIRM, registered.key_id, response_url=url)
    text = all_text(_reply(stack, url))
    _clean(text)
    assert "nothing was changed" in text
    key = _key(stack)
    assert key.status == KeyStatus.ACTIVE.value and key.secret_sealed is not None
    assert key.api_key_sealed is not None
    assert len(_jobs(stack, JobKind.ROTATION_REMINDER, JobState.PENDING.value)) == planned
    assert _audit(stack, "key.remove") == 0


def test_compromised_whose_write_fails_leaves_no_half_open_incident(stack):
    register_directly(stack, "bot")
    planned = len(_jobs(stack, JobKind.ROTATION_REMINDER, JobState.PENDING.value))
    _refuse(stack, "refuse_raise", "audit_events", when="NEW.action = 'incident.raise'")
    _, url = _command(stack, "compromised bot")
    text = all_text(_reply(stack, url))
    _clean(text)
    assert "went wrong on our side" in text and "nothing was changed" in text
    assert _count(stack, Incident) == 0
    key = _key(stack)
    assert key.status == KeyStatus.ACTIVE.value and key.secret_sealed is not None
    assert len(_jobs(stack, JobKind.ROTATION_REMINDER, JobState.PENDING.value)) == planned
    assert _jobs(stack, JobKind.INCIDENT_PROBE) == []
    assert _posts(stack, "Compromised key", ok=False) == []
    _allow(stack, "refuse_raise")
    _raise_incident(stack)  # and it can be raised properly afterwards
    assert _key(stack).status == KeyStatus.COMPROMISED.value


def test_incident_probe_whose_write_fails_records_nothing_and_is_retried(stack):
    _, sim_key = register_directly(stack, "bot")
    incident = _raise_incident(stack)
    stack.simulator.delete_key(sim_key.api_key)
    _refuse(stack, "refuse_dead", "audit_events", when="NEW.action = 'incident.key_rejected'")
    clock = FixedClock(utcnow())
    stack.tick(clock)
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert _incident(stack).key_dead_at is None
    with Session(stack.services.engine) as session:
        assert session.get(IncidentStep, (incident.id, 1)) is None
    (job,) = _jobs(stack, JobKind.INCIDENT_PROBE, JobState.PENDING.value)
    assert job.attempts == 1 and job.last_error and job.due_at > clock.now()
    _allow(stack, "refuse_dead")
    clock.current = job.due_at
    stack.tick(clock)
    key = _key(stack)
    assert key.status == KeyStatus.COMPROMISED.value and key.secret_sealed is not None
    assert _incident(stack).key_dead_at is not None
    assert _audit(stack, "incident.key_rejected") == 1


def test_rotation_whose_write_fails_keeps_the_old_key_and_says_so(stack):
    registered, old = register_directly(stack, "bot")
    new = stack.simulator.add_key(ip_restrict=True)
    _refuse(stack, "refuse_rotation", "rotations")
    answer = _submit_rotation(stack, registered.key_id, new).json()
    assert answer.get("response_action") == "errors", answer
    message = answer["errors"][Block.API_KEY]
    _clean(message)
    assert "went wrong on our side" in message and "nothing was changed" in message
    _assert_untouched(stack, old.api_key)
