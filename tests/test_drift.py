"""The drift monitor: one digest per run for each kind of change, silence when nothing
changed, Binance failures reported as "could not check"."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.services.oversight.drift_plan import ensure_drift_checks
from storage.models import KeyPurpose, ScheduledJob, utcnow
from tests.e2e import all_text, register_directly
from tests.factories import TRADE, make_due

ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS)


def _run(stack, clock: FixedClock):
    """Make this team's planned check due now and run the scheduler once."""
    engine = stack.services.engine
    ensure_drift_checks(engine, interval=timedelta(0), now=clock.now())
    make_due(engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
    stack.tick(clock)
    return [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if "Daily key check" in c.params.get("text", "")
    ]


def test_nothing_changed_means_no_message(stack):
    register_directly(stack, "bot")
    clock = FixedClock(utcnow() + timedelta(hours=1))
    assert _run(stack, clock) == []
    clock.advance(timedelta(days=1))
    assert _run(stack, clock) == []


def test_each_kind_of_change_in_one_digest(stack):
    sim = stack.simulator
    _, reader = register_directly(stack, "reader", purpose=KeyPurpose.READ_ONLY)
    _, trader = register_directly(stack, "trader", permissions=TRADE)
    _, gone = register_directly(stack, "gone")
    register_directly(stack, "quiet")
    sim.set_permissions(reader.api_key, enableWithdrawals=True)
    sim.set_ip_restrict(trader.api_key, False)
    sim.set_permissions(trader.api_key, enableFutures=True)
    sim.delete_key(gone.api_key)
    digests = _run(stack, FixedClock(utcnow() + timedelta(hours=1)))
    assert len(digests) == 1
    text = all_text(digests[0].params)
    assert digests[0].params["channel"] == ALERTS
    assert (
        "reader" in text
        and "Withdrawals permission was turned on" in text
        and "beyond its declared purpose" in text
    )
    assert (
        "trader" in text
        and "The IP whitelist was removed" in text
        and "Futures permission was turned on" in text
    )
    assert "gone" in text and "Binance now rejects this key" in text
    assert "quiet" not in text
    # the next run: everything already reported, nothing new → silence
    assert len(_run(stack, FixedClock(utcnow() + timedelta(days=1, hours=1)))) == 1


def test_trading_permission_about_to_expire_then_expired_is_reported_once_each(stack):
    _, key = register_directly(stack, "bot", permissions=TRADE)
    in_ten_days = int((utcnow() + timedelta(days=10)).timestamp() * 1000)
    stack.simulator.get_key(key.api_key).trading_authority_expiration_time = in_ten_days
    clock = FixedClock(utcnow() + timedelta(hours=1))
    first = _run(stack, clock)
    assert len(first) == 1 and "Trading permission expires on" in all_text(first[0].params)
    clock.advance(timedelta(days=1))
    assert len(_run(stack, clock)) == 1  # not again
    clock.advance(timedelta(days=10))  # past the expiry
    expired = _run(stack, clock)
    assert len(expired) == 2 and "Trading permission expired on" in all_text(expired[1].params)
    clock.advance(timedelta(days=1))
    assert len(_run(stack, clock)) == 2  # not again


def test_binance_failures_are_could_not_check_never_changes(stack):
    register_directly(stack, "bot")
    stack.simulator.inject_fault("503", count=100)
    digests = _run(stack, FixedClock(utcnow() + timedelta(hours=1)))
    text = all_text(digests[0].params)
    assert "0 changes" in text and "Could not check" in text and "not a change" in text


def test_every_team_with_keys_gets_one_planned_check(stack):
    register_directly(stack, "bot")
    for _ in range(2):  # two replicas starting
        ensure_drift_checks(stack.services.engine, interval=timedelta(hours=24), now=utcnow())
    with stack.services.engine.connect() as connection:
        count = connection.execute(
            sa.text("SELECT COUNT(*) FROM scheduled_jobs WHERE kind = :k"),
            {"k": JobKind.DRIFT_CHECK},
        ).scalar()
    assert count == 1


def test_the_first_key_of_a_new_install_plans_the_daily_check_without_a_restart(stack):
    """The bot started with no keys (nothing to plan at start-up); the first registration
    plans the team's check, the next ones do not add another."""

    def planned() -> list[ScheduledJob]:
        with Session(stack.services.engine) as session:
            return list(
                session.exec(select(ScheduledJob).where(ScheduledJob.kind == JobKind.DRIFT_CHECK))
            )

    assert planned() == []
    before = utcnow()
    register_directly(stack, "bot")
    (job,) = planned()
    assert before + timedelta(hours=23) < job.due_at <= utcnow() + timedelta(hours=24)
    register_directly(stack, "bot-2")
    assert [j.id for j in planned()] == [job.id]


def test_more_keys_than_binance_allows_per_minute_are_checked_at_that_pace(stack):
    """A team with more keys than one window of request weight: the daily check waits for
    the next window instead of reporting the rest as "could not check"."""
    from bot.binance import BinanceGateway, WeightBudget
    from bot.services.oversight.drift import check_team
    from tests.e2e import TEAM

    for i in range(12):
        register_directly(stack, f"bot-{i}")
    # 5 weight per half second: 12 keys need three windows
    budget = WeightBudget(limit=5, safety=1.0, window_seconds=0.5, max_wait=0.05)
    with BinanceGateway(stack.simulator.url, timeout=1.0, budget=budget) as gateway:
        digest = check_team(
            engine=stack.services.engine,
            ring=stack.services.ring,
            gateway=gateway,
            team_id=TEAM,
            now=utcnow(),
        )
    assert digest.checked == 12
    assert digest.could_not_check == []
    assert budget.stats().waited_seconds > 0
