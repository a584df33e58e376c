"""Withdrawal controls: a Withdraw-tier key on an account with no whitelisted saved withdrawal
address is critical in status, App Home and the drift digest; the simulator serves Binance's
withdrawal address list (fields, weight)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.binance import Credentials
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.services.oversight.drift_plan import ensure_drift_checks
from storage.models import BinanceAccount, KeyPurpose, utcnow
from tests.e2e import ALICE, all_text, bot_client, register_directly
from tests.factories import WITHDRAW, make_due

ADMIN = "U0BOSS"
ALERTS = "C0ALERTS"
ADDRESS_LIST = "/sapi/v1/capital/withdraw/address/list"
OFF = "No saved withdrawal address is whitelisted"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, alert_channel=ALERTS)


def _payout(stack, *, whitelisted: bool | None):
    """A Withdraw-tier key; its account's address book holds one address (whitelisted or
    not), or none at all (``None``)."""
    registered, key = register_directly(
        stack, "payout", purpose=KeyPurpose.WITHDRAWALS, permissions=WITHDRAW
    )
    if whitelisted is not None:
        stack.simulator.add_withdraw_address(
            "main", address="0x94df8b352de7f46f64b01d3666bf6e936e44ce60", white_status=whitelisted
        )
    return registered, key


def _status(stack, text: str = "status payout") -> str:
    url = stack.slack.response_url()
    assert bot_client(stack).command(text, user_id=ALICE, response_url=url).status_code == 200
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=15
    )
    return all_text(reply.params)


def _home(stack, user: str) -> str:
    before = len(stack.slack.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    assert bot_client(stack).event(event).status_code == 200
    return all_text(stack.slack.wait_for("views.publish", count=before + 1)[-1].params["view"])


def _drift(stack, clock: FixedClock) -> list[str]:
    engine = stack.services.engine
    ensure_drift_checks(engine, interval=timedelta(0), now=clock.now())
    make_due(engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
    stack.tick(clock)
    return [
        all_text(c.params)
        for c in stack.slack.calls_to("chat.postMessage")
        if "Daily key check" in c.params.get("text", "")
    ]


def _stored_whitelist(stack) -> bool | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(BinanceAccount)).one().withdraw_whitelist


@pytest.mark.parametrize("whitelisted", [False, None], ids=["not-whitelisted", "empty-book"])
def test_whitelist_off_is_critical_in_status_and_app_home(stack, whitelisted):
    _payout(stack, whitelisted=whitelisted)
    text = _status(stack)
    assert OFF in text and "🔴" in text
    assert _stored_whitelist(stack) is False
    assert OFF in _home(stack, ALICE)  # the owner's keys
    assert OFF in _home(stack, ADMIN)  # the team's critical findings


def test_whitelist_off_is_critical_in_the_drift_digest_once_then_on_again(stack):
    _payout(stack, whitelisted=False)
    clock = FixedClock(utcnow() + timedelta(hours=1))
    (digest,) = _drift(stack, clock)
    assert "payout" in digest and OFF in digest and "🔴" in digest
    clock.advance(timedelta(days=1))
    assert len(_drift(stack, clock)) == 1  # already told: not again
    stack.simulator.set_address_whitelisted(
        "main", "0x94df8b352de7f46f64b01d3666bf6e936e44ce60", True
    )
    clock.advance(timedelta(days=1))
    digests = _drift(stack, clock)
    assert (
        len(digests) == 2 and "withdrawal address of the account is whitelisted now" in digests[1]
    )
    assert _stored_whitelist(stack) is True


def test_whitelist_on_means_no_finding_anywhere(stack):
    _payout(stack, whitelisted=True)
    text = _status(stack)
    assert OFF not in text and "withdrawal whitelist" not in text
    assert _stored_whitelist(stack) is True
    assert OFF not in _home(stack, ADMIN)
    assert all(OFF not in d for d in _drift(stack, FixedClock(utcnow() + timedelta(hours=1))))


def test_keys_below_withdraw_tier_never_read_the_address_book(stack):
    register_directly(stack, "trader")
    _status(stack, "status trader")
    assert not [r for r in stack.simulator.request_log if r.path == ADDRESS_LIST]


def test_an_unreadable_address_book_is_unknown_not_fine(stack):
    _payout(stack, whitelisted=True)
    stack.simulator.inject_fault("503", count=5, path=ADDRESS_LIST)
    text = _status(stack)
    assert "Could not read the account's saved withdrawal addresses" in text
    assert _stored_whitelist(stack) is None  # nothing learnt, nothing stored


def test_the_simulator_serves_the_address_book_as_binance_documents_it(stack):
    """Fields and weight of https://developers.binance.com/docs/wallet/capital/fetch-withdraw-address."""
    _, key = _payout(stack, whitelisted=True)
    sim = stack.simulator
    sim.reset()
    gateway = stack.services.gateway
    (entry,) = gateway.withdraw_addresses(Credentials(key.api_key, key.secret))
    assert entry.whitelisted is True and entry.coin == "USDT" and entry.network == "BSC"
    (raw,) = [r for r in sim.request_log if r.path == ADDRESS_LIST]
    assert raw.method == "GET" and raw.status == 200 and "signature" not in raw.params
    assert sim.used_weight(ADDRESS_LIST) == 10  # Weight(IP): 10, its own /sapi budget
    body = sim._addresses["main"][0]
    assert set(body) == {
        "address",
        "addressTag",
        "coin",
        "name",
        "network",
        "origin",
        "originType",
        "whiteStatus",
    }


def test_findings_say_what_was_checked_never_that_a_switch_is_on_or_off(stack):
    """Binance's address list gives ``whiteStatus`` per saved address; the account's whitelist
    switch is not in the API (https://developers.binance.com/docs/wallet/capital/
    fetch-withdraw-address). Status, App Home and the drift digest say what was checked."""
    _payout(stack, whitelisted=False)
    clock = FixedClock(utcnow() + timedelta(hours=1))
    said = _drift(stack, clock)
    said += [_status(stack), _home(stack, ADMIN)]
    stack.simulator.set_address_whitelisted(
        "main", "0x94df8b352de7f46f64b01d3666bf6e936e44ce60", True
    )
    clock.advance(timedelta(days=1))
    said += _drift(stack, clock)[1:]
    stack.simulator.inject_fault("503", count=5, path=ADDRESS_LIST)
    said.append(_status(stack))
    assert len(said) == 5
    for text in said[:3]:
        assert "no saved withdrawal address is whitelisted" in text.lower()
    assert "a saved withdrawal address of the account is whitelisted now" in said[3].lower()
    assert "could not read the account's saved withdrawal addresses" in said[4].lower()
    for text in said:
        for claim in ("whitelist is off", "whitelist is on", "is on again", "turned off"):
            assert claim not in text.lower()
