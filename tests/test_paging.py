"""Paging: critical events go to PagerDuty's Events API v2 (a local stand-in that checks the
documented schema) and/or a webhook, once per condition, retried, and resolved when it clears."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from bot.bootstrap import configure_logging
from bot.ids import Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.model.incidents import STEPS
from bot.sandbox.pagerduty_standin import PagerDutyStandIn, event_errors
from bot.sandbox.requests import rotate_form_values
from bot.services.access import Actor
from bot.services.custody.keys import open_credentials, remove_key
from bot.services.oversight.drift_plan import ensure_drift_checks
from bot.services.response.incident_probes import probe_compromised_key
from bot.services.response.incidents import close_incident, raise_incident, tick_step
from bot.services.response.paging import incident_page_key, old_key_page_key, withdrawals_page_key
from storage.models import (
    ApiKey,
    AuditEvent,
    Incident,
    JobState,
    KeyPurpose,
    Page,
    Rotation,
    ScheduledJob,
    utcnow,
)
from tests.e2e import ALICE, TEAM, bot_client, register_directly
from tests.factories import TRADE, WITHDRAW, make_due
from tests.slack_requests import view_submission

ROUTING_KEY = "R0UT1NGKEYF0RTHETESTS0NLY0000001"  # 32 characters, like an integration key
WEBHOOK_TOKEN = "webhook-token-for-the-tests-only"


@pytest.fixture
def pagerduty():
    with PagerDutyStandIn() as standin:
        yield standin


@pytest.fixture
def stack_settings(pagerduty) -> dict[str, object]:
    return dict(
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pagerduty.events_url,
        admin_user_ids=ALICE,
    )


def _page_jobs(stack) -> list[ScheduledJob]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(ScheduledJob).where(ScheduledJob.kind == JobKind.PAGE)))


def _audit(stack, prefix: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    return [e for e in events if e.action.startswith(prefix)]


def _raise(stack, label: str, now):
    return raise_incident(
        engine=stack.services.engine, team_id=TEAM, label=label, actor=ALICE, channel=None, now=now
    )


def _close(stack, incident_id: str, now) -> None:
    """The key deleted in Binance (as the checklist asks), the bot hears Binance reject it,
    every step ticked, and the incident closed as handled."""
    services = stack.services
    engine = services.engine
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        key = session.get(ApiKey, incident.key_id)
        assert key is not None
        api_key = open_credentials(services.ring, key).api_key
    stack.simulator.delete_key(api_key)
    probe_compromised_key(
        engine=engine,
        ring=services.ring,
        gateway=services.gateway,
        incident_id=incident_id,
        attempt=0,
        now=now,
    )
    for step in STEPS:
        tick_step(
            engine=engine,
            team_id=TEAM,
            incident_id=incident_id,
            step=step.number,
            actor=ALICE,
            now=now,
        )
    close_incident(
        engine=engine,
        actor=Actor(user_id=ALICE, team_id=TEAM),
        incident_id=incident_id,
        note="done",
        now=now,
    )


def test_the_standin_checks_the_events_v2_schema():
    good = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "d",
        "payload": {"summary": "s", "source": "h", "severity": "critical"},
    }
    assert event_errors(good) == []
    assert event_errors({**good, "routing_key": "short"})
    assert event_errors({**good, "event_action": "explode"})
    assert event_errors({**good, "payload": {"summary": "s", "source": "h", "severity": "bad"}})
    assert event_errors({**good, "payload": {"source": "h", "severity": "info"}})
    assert event_errors({**good, "dedup_key": "x" * 256})
    assert event_errors({"routing_key": ROUTING_KEY, "event_action": "resolve"})
    assert (
        event_errors({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "d"})
        == []
    )


def test_a_compromised_withdraw_key_pages_once_and_its_close_resolves(stack, pagerduty):
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    raised = _raise(stack, "vault", now)
    again = _raise(stack, "vault", now)  # already open: the same incident, no second page
    assert again.incident_id == raised.incident_id
    clock = FixedClock(now + timedelta(seconds=5))
    stack.tick(clock)
    stack.tick(clock)
    events = pagerduty.accepted_events()
    assert [e["event_action"] for e in events] == ["trigger"]
    trigger = events[0]
    assert trigger["dedup_key"] == incident_page_key(raised.incident_id)
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert "vault" in trigger["payload"]["summary"]
    assert [e.detail["dedup_key"] for e in _audit(stack, "page.sent")] == [trigger["dedup_key"]]

    _close(stack, raised.incident_id, clock.now())
    clock.advance(timedelta(seconds=5))
    stack.tick(clock)
    events = pagerduty.accepted_events()
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[1]["dedup_key"] == trigger["dedup_key"]
    assert len(_audit(stack, "page.resolved")) == 1
    with Session(stack.services.engine) as session:
        assert session.get(Page, trigger["dedup_key"]).state == "resolved"


def test_a_compromised_trade_key_pages_nobody(stack, pagerduty):
    register_directly(stack, "trader", permissions=TRADE)
    now = utcnow()
    _raise(stack, "trader", now)
    stack.tick(FixedClock(now + timedelta(seconds=5)))
    assert pagerduty.accepted_events() == []
    assert _page_jobs(stack) == []


def test_pagerduty_down_is_retried_and_the_page_delivered_once(stack, pagerduty):
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    _raise(stack, "vault", now)
    pagerduty.fail_next(1, 503)
    pagerduty.fail_next(1, 429)
    clock = FixedClock(now + timedelta(seconds=5))
    stack.tick(clock)  # 503
    assert pagerduty.accepted_events() == []
    (job,) = _page_jobs(stack)
    assert job.state == JobState.PENDING.value and "503" in job.last_error
    clock.advance(timedelta(minutes=3))  # past the queue's first backoff (2 minutes)
    stack.tick(clock)  # 429
    assert pagerduty.accepted_events() == []
    clock.advance(timedelta(minutes=5))
    stack.tick(clock)
    clock.advance(timedelta(hours=2))
    stack.tick(clock)
    assert [e["event_action"] for e in pagerduty.accepted_events()] == ["trigger"]
    assert [r.status for r in pagerduty.received()] == [503, 429, 202]
    (job,) = _page_jobs(stack)
    assert job.state == JobState.DONE.value


def test_pagerduty_unreachable_is_retried_later(make_stack):
    standin = PagerDutyStandIn().start()
    port = int(standin.url.rsplit(":", 1)[1])
    standin.stop()  # nothing listens there now
    stack = make_stack(
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=f"http://127.0.0.1:{port}/v2/enqueue",
    )
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    _raise(stack, "vault", now)
    clock = FixedClock(now + timedelta(seconds=5))
    stack.tick(clock)
    (job,) = _page_jobs(stack)
    assert job.state == JobState.PENDING.value and "not reachable" in job.last_error
    with PagerDutyStandIn(port=port) as back:
        clock.advance(timedelta(minutes=3))
        stack.tick(clock)
        assert [e["event_action"] for e in back.accepted_events()] == ["trigger"]


def test_a_refused_event_is_not_retried_but_audited(stack, pagerduty):
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    _raise(stack, "vault", now)
    pagerduty.fail_next(1, 400)
    clock = FixedClock(now + timedelta(seconds=5))
    stack.tick(clock)
    (job,) = _page_jobs(stack)
    assert job.state == JobState.DONE.value
    assert [e.detail["destinations"] for e in _audit(stack, "page.refused")] == [["pagerduty"]]
    clock.advance(timedelta(hours=3))
    stack.tick(clock)
    assert len(pagerduty.received()) == 1


def test_nothing_is_sent_when_paging_is_not_configured(make_stack, pagerduty):
    stack = make_stack()
    assert not stack.settings.paging_enabled
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    _raise(stack, "vault", now)
    stack.tick(FixedClock(now + timedelta(seconds=5)))
    assert pagerduty.received() == []
    assert all(job.state == JobState.DONE.value for job in _page_jobs(stack))
    assert _audit(stack, "page.") == []


def test_the_webhook_receives_the_same_events_without_the_routing_key(make_stack, pagerduty):
    stack = make_stack(
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pagerduty.events_url,
        paging_webhook_url=pagerduty.url + "/hooks/paging",
        paging_webhook_token=WEBHOOK_TOKEN,
    )
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    raised = _raise(stack, "vault", now)
    clock = FixedClock(now + timedelta(seconds=5))
    stack.tick(clock)
    (hook,) = pagerduty.webhook_calls()
    (event,) = pagerduty.accepted_events()
    assert hook.path == "/hooks/paging"
    assert hook.headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert "routing_key" not in hook.body
    assert hook.body == {k: v for k, v in event.items() if k != "routing_key"}
    _close(stack, raised.incident_id, clock.now())
    clock.advance(timedelta(seconds=5))
    stack.tick(clock)
    assert [c.body["event_action"] for c in pagerduty.webhook_calls()] == ["trigger", "resolve"]


def test_the_webhook_failing_does_not_send_pagerduty_twice(make_stack, pagerduty):
    stack = make_stack(
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pagerduty.events_url,
        paging_webhook_url=pagerduty.url + "/hooks/paging",
    )
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    _raise(stack, "vault", now)
    clock = FixedClock(now + timedelta(seconds=5))
    pagerduty.fail_next(1, 502, path="/hooks/paging")  # PagerDuty takes it, the webhook not
    stack.tick(clock)
    clock.advance(timedelta(minutes=3))
    stack.tick(clock)
    assert len(pagerduty.accepted_events()) == 1
    assert [c.status for c in pagerduty.received() if c.path != "/v2/enqueue"] == [502, 200]
    (sent,) = _audit(stack, "page.sent")
    assert sent.detail["destinations"] == ["pagerduty", "webhook"]


def test_withdrawals_newly_enabled_page_and_disabled_again_resolves(stack, pagerduty):
    engine = stack.services.engine
    registered, sim_key = register_directly(stack, "reader", purpose=KeyPurpose.READ_ONLY)
    key_id = registered.key_id
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=True)
    clock = FixedClock(utcnow() + timedelta(hours=1))

    def drift_check() -> None:
        ensure_drift_checks(engine, interval=timedelta(0), now=clock.now())
        make_due(engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
        stack.tick(clock)
        clock.advance(timedelta(seconds=5))
        stack.tick(clock)  # the page jobs the check planned

    drift_check()
    events = pagerduty.accepted_events()
    assert [e["event_action"] for e in events] == ["trigger"]
    assert events[0]["dedup_key"] == withdrawals_page_key(key_id)
    assert "reader" in events[0]["payload"]["summary"]
    clock.advance(timedelta(days=1))
    drift_check()  # still enabled: no second page
    assert len(pagerduty.accepted_events()) == 1
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=False)
    clock.advance(timedelta(days=1))
    drift_check()
    assert [e["event_action"] for e in pagerduty.accepted_events()] == ["trigger", "resolve"]
    # enabled again: a new alert under the same dedup key (PagerDuty opens a new one)
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=True)
    clock.advance(timedelta(days=1))
    drift_check()
    assert [e["event_action"] for e in pagerduty.accepted_events()] == [
        "trigger",
        "resolve",
        "trigger",
    ]
    # removing the key resolves it too
    from bot.services.access import Actor

    remove_key(
        engine=engine,
        actor=Actor(user_id=ALICE, team_id=TEAM, channel=None, is_admin=True),
        key_id=key_id,
    )
    clock.advance(timedelta(seconds=5))
    stack.tick(clock)
    assert [e["event_action"] for e in pagerduty.accepted_events()][-1] == "resolve"


def test_the_routing_key_never_reaches_a_log_line(stack, pagerduty):
    stream = io.StringIO()
    handler = configure_logging("DEBUG", handler=logging.StreamHandler(stream))
    try:
        register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
        now = utcnow()
        raised = _raise(stack, "vault", now)
        pagerduty.fail_next(1, 503)
        clock = FixedClock(now + timedelta(seconds=5))
        stack.tick(clock)
        clock.advance(timedelta(minutes=3))
        stack.tick(clock)
        _close(stack, raised.incident_id, clock.now())
        clock.advance(timedelta(seconds=5))
        stack.tick(clock)
    finally:
        logging.getLogger().removeHandler(handler)
    assert len(pagerduty.accepted_events()) == 2
    text = stream.getvalue()
    assert "page" in text  # the retry was logged
    assert ROUTING_KEY not in text
    with Session(stack.services.engine) as session:
        stored = " ".join(str(e.detail) for e in session.exec(select(AuditEvent)))
        stored += " ".join(str(j.payload) + str(j.last_error) for j in _page_jobs(stack))
    assert ROUTING_KEY not in stored


def test_pages_on_each_database(make_stack, pagerduty, database_url):
    stack = make_stack(
        database_url=database_url,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_events_url=pagerduty.events_url,
    )
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    now = utcnow()
    raised = _raise(stack, "vault", now)
    clock = FixedClock(now + timedelta(seconds=5))
    stack.tick(clock)
    _close(stack, raised.incident_id, clock.now())
    clock.advance(timedelta(seconds=5))
    stack.tick(clock)
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.accepted_events()] == [
        ("trigger", incident_page_key(raised.incident_id)),
        ("resolve", incident_page_key(raised.incident_id)),
    ]


def test_an_old_key_alive_after_its_grace_pages_until_the_rotation_completes(stack, pagerduty):
    registered, old = register_directly(stack, "bot")
    new = stack.simulator.add_key(ip_restrict=True)
    values = rotate_form_values(
        key_type=new.key_type, api_key=new.api_key, secret=new.secret, confirm=False
    )
    body = view_submission(
        Callback.ROTATE.value,
        values,
        user_id=ALICE,
        private_metadata=json.dumps({"key_id": registered.key_id, "channel": "C0GENERAL"}),
    )
    assert bot_client(stack).post(body).json().get("response_action") == "update"
    clock = FixedClock(utcnow() + timedelta(hours=25))  # past the 24 h grace
    for _ in range(3):  # probes: alive each time, paged once
        stack.tick(clock)
        clock.advance(timedelta(hours=2))
    stack.tick(clock)
    events = pagerduty.accepted_events()
    assert [e["event_action"] for e in events] == ["trigger"]
    with Session(stack.services.engine) as session:
        rotation = session.exec(select(Rotation)).one()
    assert events[0]["dedup_key"] == old_key_page_key(rotation.id)
    assert "still works" in events[0]["payload"]["summary"]
    stack.simulator.delete_key(old.api_key)  # someone deleted it in Binance at last
    clock.advance(timedelta(hours=2))
    stack.tick(clock)  # the probe: rejected, the rotation completes
    clock.advance(timedelta(seconds=5))
    stack.tick(clock)
    assert [e["event_action"] for e in pagerduty.accepted_events()] == ["trigger", "resolve"]


def test_a_withdrawal_to_a_new_address_found_by_the_daily_review_is_paged_once(stack, pagerduty):
    from bot.services.oversight.activity_plan import ensure_activity_reviews
    from tests.factories import make_due

    register_directly(stack, "reader", purpose=KeyPurpose.READ_ONLY, permissions={})
    clock = FixedClock(utcnow() + timedelta(days=1, hours=1))
    address = "0x3333333333333333333333333333333333333333"
    applied = int((clock.now() - timedelta(hours=2)).timestamp() * 1000)
    stack.simulator.add_withdrawal(
        "main", coin="USDT", amount="12.5", address=address, apply_time_ms=applied
    )
    for _ in range(2):  # the review, then the page job it planned
        ensure_activity_reviews(stack.services.engine, now=clock.now(), delay=timedelta(0))
        make_due(stack.services.engine, kind=JobKind.ACTIVITY_REVIEW, at=clock.now())
        stack.tick(clock)
    (event,) = pagerduty.accepted_events()
    assert event["event_action"] == "trigger"
    assert event["dedup_key"].endswith(f"/main/{address}")
    assert "12.5 USDT" in event["payload"]["summary"] and "not used" in event["payload"]["summary"]
