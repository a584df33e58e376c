"""The withdraw history's own limit, as Binance documents it, end to end: per SECOND and per
account (UID), not per minute (issue 21). Two incidents on two Withdraw-tier accounts and the
daily activity review, all in one minute, each read the withdrawals they need; the gateway and
the simulator keep the same per-second, per-account count."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot import binance
from bot.binance.transport import WITHDRAW_HISTORY_PATH
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.services.oversight.activity_plan import ensure_activity_reviews
from storage.models import AuditEvent, Incident, utcnow
from tests.e2e import ALICE, BOB, bot_client, register_directly, wait_until
from tests.factories import WITHDRAW, make_due
from tests.slack_requests import slash_command
from tests.test_binance_simulator import api_error, make_client

ALERTS = "C0ALERTS"
ADMIN = "U0ADMIN"
ACCOUNTS = ("treasury", "market-maker")
PER_SECOND = "X-SAPI-USED-UID-WEIGHT-1S"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN)


def _start_of_a_second(sim: BinanceSimulator) -> None:
    """Move the simulator's clock to the start of its next second (Binance counts per second,
    as the simulator does) instead of waiting for it. Well within recvWindow: requests signed
    with this machine's time stay valid."""
    sim.clock_skew_ms += 1000 - sim.server_time_ms() % 1000 + 10


def _incidents(stack) -> list[Incident]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(Incident)).all())


def _daily_review(stack, clock: FixedClock) -> dict:
    engine = stack.services.engine
    ensure_activity_reviews(engine, now=clock.now(), delay=timedelta(0))
    make_due(engine, kind=JobKind.ACTIVITY_REVIEW, at=clock.now())
    scheduler = stack.scheduler(clock)
    try:
        scheduler.tick()
    finally:
        scheduler.close()
    with Session(engine) as session:
        (review,) = session.exec(
            select(AuditEvent).where(AuditEvent.action == "activity.review")
        ).all()
        return review.detail


def test_two_incidents_and_the_daily_review_in_one_minute_all_read_the_withdrawals(stack):
    """The daily review reads both accounts, then both accounts' keys are reported
    compromised in the same minute, leaked 200 days ago: each incident's step 3 reads its
    account's withdrawals since then and the 90 days before (four requests, each window under
    Binance's 90 days). Binance allows 10 a second per account; the bot's old count, 8 a
    minute for all accounts together, refused the last ones ("the limit for this minute is
    used up")."""
    sim = stack.simulator
    for account in ACCOUNTS:
        register_directly(stack, f"{account}-bot", account=account, permissions=WITHDRAW)
        sim.add_withdrawal(
            account,
            coin="USDT",
            amount="5",
            address=f"0x{account}",
            apply_time_ms=int((utcnow() - timedelta(days=2)).timestamp() * 1000),
        )
    sim.reset()
    clock = FixedClock(utcnow())
    review = _daily_review(stack, clock)
    assert review["accounts_checked"] == 2 and review["could_not_check"] == []

    for account, user in zip(ACCOUNTS, (ALICE, BOB), strict=True):
        body = slash_command(
            f"compromised {account}-bot since 200d",
            user_id=user,
            response_url=stack.slack.response_url(),
        )
        assert bot_client(stack).post(body).status_code == 200
    wait_until(
        lambda: (
            len(incidents := _incidents(stack)) == 2
            and all(len(i.messages) == 1 for i in incidents)
        )
    )
    clock.current = utcnow()  # still the same minute: the review ran moments ago
    stack.tick(clock, times=4)  # probes and both activity reviews

    incidents = _incidents(stack)
    for incident in incidents:
        activity = incident.activity
        assert activity is not None, incident.label
        assert activity["error"] is None, activity["error"]
        assert activity["source"] == incident.label
        assert [r["address"] for r in activity["rows"]] == [f"0x{incident.account_alias}"]
    history = [r for r in sim.request_log if r.path == WITHDRAW_HISTORY_PATH]
    assert len(history) == 2 + 2 * 4  # the review's one an account, then four per incident
    assert all(r.status == 200 for r in history) and sim.count_429 == 0


def test_many_reads_of_one_account_are_paced_per_second_never_refused(stack):
    """Thirty reads of one account from ten threads at once: the gateway spaces them at most
    eight a second (80 % of Binance's 10), so Binance (the simulator) never refuses one, and
    the whole takes seconds, not minutes."""
    _, sim_key = register_directly(stack, "reader", account="treasury")
    creds = binance.Credentials(sim_key.api_key, sim_key.secret)
    gateway = stack.services.gateway
    stack.simulator.reset()
    failures: list[BaseException] = []

    def read() -> None:
        for _ in range(3):
            try:
                gateway.withdraw_history(creds, start=utcnow() - timedelta(days=1))
            except binance.BinanceError as error:  # pragma: no cover - the failure is reported
                failures.append(error)

    threads = [threading.Thread(target=read) for _ in range(10)]
    started = utcnow()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = (utcnow() - started).total_seconds()
    assert failures == []
    history = [r for r in stack.simulator.request_log if r.path == WITHDRAW_HISTORY_PATH]
    assert len(history) == 30 and stack.simulator.count_429 == 0
    arrivals = sorted(r.at for r in history)
    # 8 at most in any second (the 9th leaves a second after the 1st; arrival times jitter)
    assert all(later - first >= 0.9 for first, later in zip(arrivals, arrivals[8:], strict=False))
    assert 2.5 < took < 15


def test_the_simulator_counts_the_withdraw_history_per_second_and_per_account():
    """https://developers.binance.com/docs/wallet/capital/withdraw-history: "Weight(UID): 18000,
    Request limit: 10 requests per second"; its per-second UID limit is 180,000 and answers
    carry X-SAPI-USED-UID-WEIGHT-1S."""
    with BinanceSimulator() as sim:
        mine = make_client(sim, sim.add_key(account="treasury"))
        other = make_client(sim, sim.add_key(account="market-maker"))
        _start_of_a_second(sim)
        used = []
        for _ in range(10):
            mine.get_withdraw_history()
            used.append(mine.response.headers[PER_SECOND])
            assert "X-SAPI-USED-UID-WEIGHT-1M" not in mine.response.headers
        refused = api_error(mine.get_withdraw_history)
        retry_after = refused.response.headers["Retry-After"]
        other.get_withdraw_history()  # another account (UID) counts apart
        assert other.response.headers[PER_SECOND] == "18000"
        _start_of_a_second(sim)
        mine.get_withdraw_history()  # a new second: a new count
        assert mine.response.headers[PER_SECOND] == "18000"
    assert used == [str(18_000 * n) for n in range(1, 11)]
    assert (refused.status_code, refused.code, retry_after) == (429, -1003, "1")


def test_the_gateway_learns_the_accounts_weight_this_second_from_binance():
    """Another process read the account's history seven times this second: Binance's
    X-SAPI-USED-UID-WEIGHT-1S says so, and the gateway books it, so its next read of that
    account waits for the next second (refused here, since it may not wait), sending nothing;
    another account is read at once."""
    with BinanceSimulator() as sim:
        key = sim.add_key(account="treasury")
        elsewhere = make_client(sim, key)
        gateway = binance.BinanceGateway(sim.url, limits=binance.RateLimits(max_wait=0))
        with gateway:
            _start_of_a_second(sim)
            for _ in range(7):
                elsewhere.get_withdraw_history()
            creds = binance.Credentials(key.api_key, key.secret)
            start = utcnow() - timedelta(days=1)
            gateway.withdraw_history(creds, start=start, account="treasury")
            sent = len(sim.request_log)
            with pytest.raises(binance.RateLimited) as refused:
                gateway.withdraw_history(creds, start=start, account="treasury")
            assert len(sim.request_log) == sent
            other = sim.add_key(account="market-maker")
            gateway.withdraw_history(
                binance.Credentials(other.api_key, other.secret), start=start, account="mm"
            )
    assert "second" in refused.value.user_message and "minute" not in refused.value.user_message
    assert sim.count_429 == 0
