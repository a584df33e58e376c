"""The read-only gateway against the Binance simulator (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import http.server
import logging
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from bot.binance import (
    BadKeyFormat,
    BadSignature,
    BinanceError,
    BinanceGateway,
    BinanceUnavailable,
    ClockDrift,
    Credentials,
    ForbiddenEndpoint,
    IpBanned,
    KeyRejected,
    KeyType,
    RateLimited,
    RateLimits,
    Tier,
    WeightBudget,
    shared_limits,
)
from bot.sandbox.binance_simulator import BinanceSimulator
from tests.clocks import MovableClock
from tests.factories import TRADE, WITHDRAW

RESTRICTIONS = "/sapi/v1/account/apiRestrictions"


@pytest.fixture
def budget() -> WeightBudget:
    # Each test gets its own: a 418 or a 429 must not leak into the next test.
    return WeightBudget(max_wait=0.5)


@pytest.fixture
def gateway(sim, budget) -> Iterator[BinanceGateway]:
    with BinanceGateway(sim.url, timeout=1.0, max_workers=8, budget=budget) as gw:
        yield gw


def creds(key) -> Credentials:
    return Credentials(key.api_key, key.secret, KeyType(key.key_type))


def sent(sim, path: str = RESTRICTIONS) -> int:
    return sum(1 for r in sim.request_log if r.path == path)


# --- reading permissions ---------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["HMAC", "ED25519", "RSA"])
def test_every_key_type_reads_its_permissions(sim, gateway, key_type):
    key = sim.add_key(key_type=key_type, permissions=TRADE, ip_restrict=True)
    perms = gateway.api_restrictions(creds(key))
    assert perms.enable_spot_and_margin_trading is True
    assert perms.enable_withdrawals is False
    assert perms.ip_restrict is True
    assert perms.tier is Tier.TRADE
    assert perms.created_at is not None and perms.created_at.tzinfo is UTC
    assert sim.request_log[-1].status == 200


def test_private_key_pasted_with_crlf_and_spaces_still_signs(sim, gateway):
    key = sim.add_key(key_type="ED25519")
    mangled = "  " + key.secret.replace("\n", "\r\n") + "  "
    assert gateway.api_restrictions(Credentials(key.api_key, mangled, "ED25519")).tier is Tier.READ
    rsa = sim.add_key(key_type="RSA")
    flattened = rsa.secret.strip().replace("\n", " ")
    assert gateway.api_restrictions(Credentials(rsa.api_key, flattened, "RSA")).tier is Tier.READ


def test_tiers_transfers_and_expiry_from_binance(sim, gateway):
    reader = sim.add_key(ip_restrict=True)
    withdrawer = sim.add_key(key_type="ED25519", permissions=WITHDRAW, ip_restrict=True)
    mover = sim.add_key(permissions={"permitsUniversalTransfer": True}, ip_restrict=True)
    expiring = datetime.now(UTC) + timedelta(days=3)
    unwhitelisted = sim.add_key(
        permissions=TRADE,
        ip_restrict=False,
        trading_authority_expiration_time=int(expiring.timestamp() * 1000),
    )
    assert gateway.api_restrictions(creds(reader)).tier is Tier.READ
    assert gateway.api_restrictions(creds(withdrawer)).tier is Tier.WITHDRAW
    assert gateway.api_restrictions(creds(mover)).transfer_rights == ("permitsUniversalTransfer",)
    perms = gateway.api_restrictions(creds(unwhitelisted))
    assert perms.ip_restrict is False
    assert abs(perms.trading_expires_at - expiring) < timedelta(seconds=1)


def test_permission_change_is_seen_as_a_diff(sim, gateway):
    key = sim.add_key(ip_restrict=True)
    before = gateway.api_restrictions(creds(key))
    sim.set_permissions(key.api_key, enableFutures=True)
    after = gateway.api_restrictions(creds(key))
    assert [(c.name, c.before, c.after) for c in after.changes_since(before.to_dict())] == [
        ("enableFutures", False, True)
    ]
    assert after.tier is Tier.TRADE


def test_other_reads(sim, gateway):
    key = sim.add_key(account="ops")
    now = datetime.now(UTC)
    sim.add_withdrawal(
        "ops",
        coin="USDT",
        amount="12.5",
        address="0xabc",
        apply_time_ms=int((now - timedelta(days=2)).timestamp() * 1000),
        tx_id="0xtx",
    )
    sim.add_deposit(
        "ops",
        coin="BTC",
        amount="0.01",
        address="bc1q",
        network="BTC",
        insert_time_ms=int((now - timedelta(days=1)).timestamp() * 1000),
    )
    (withdrawal,) = gateway.withdraw_history(creds(key), start=now - timedelta(days=7))
    assert (withdrawal.coin, withdrawal.amount, withdrawal.address) == (
        "USDT",
        Decimal("12.5"),
        "0xabc",
    )
    assert withdrawal.tx_id == "0xtx" and withdrawal.status == 6 and withdrawal.network == "BSC"
    assert abs(withdrawal.time - (now - timedelta(days=2))) < timedelta(seconds=2)
    (deposit,) = gateway.deposit_history(creds(key), start=now - timedelta(days=7), end=now)
    assert (deposit.coin, deposit.amount, deposit.network) == ("BTC", Decimal("0.01"), "BTC")
    assert deposit.time.tzinfo is UTC
    assert gateway.trading_status(creds(key)).is_locked is False
    assert gateway.account_status(creds(key)).is_normal
    assert abs(gateway.server_time() - datetime.now(UTC)) < timedelta(seconds=5)


# --- read-only by construction ----------------------------------------------------------------


def test_anything_but_an_allow_listed_read_is_refused_before_sending(sim, gateway):
    key = sim.add_key(permissions=WITHDRAW, ip_restrict=True)
    client = gateway.client_for(creds(key))
    attempts = [
        lambda: client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1),
        lambda: client.order_market_buy(symbol="BTCUSDT", quantity=1),
        lambda: client.withdraw(coin="USDT", address="0xevil", amount=100),
        lambda: client.get_account(),  # a read, but not on the allow-list
        lambda: client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET"),
        lambda: client.universal_transfer(type="MAIN_UMFUTURE", asset="USDT", amount=1),
        lambda: client._request("post", sim.url + RESTRICTIONS, True, data={}),
        lambda: client.session.post(sim.url + RESTRICTIONS),
        lambda: client.session.get(sim.url + "/sapi/v1/capital/withdraw/apply"),
        lambda: client.session.send(requests.Request("DELETE", sim.url + RESTRICTIONS).prepare()),
        lambda: client.session.get("http://127.0.0.1:9" + RESTRICTIONS),  # another host
    ]
    for attempt in attempts:
        with pytest.raises(ForbiddenEndpoint):
            attempt()
    assert sim.request_log == []
    assert not isinstance(ForbiddenEndpoint("GET", "/x"), BinanceError)  # never "unreachable"


def test_python_binance_inside_a_client_cannot_send_a_write_either(sim, gateway):
    """Below the client's allow-list of reads, the python-binance Client it wraps sends through
    the gateway's gated session: its own write methods are refused there, before a byte."""
    key = sim.add_key(key_type="ED25519", permissions=WITHDRAW, ip_restrict=True)
    client = gateway.client_for(creds(key))
    library = client._binance  # the python-binance Client inside the adapter
    attempts = [
        lambda: library.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1),
        lambda: library.withdraw(coin="USDT", address="0xevil", amount=100),
        lambda: library.universal_transfer(type="MAIN_UMFUTURE", asset="USDT", amount=1),
        lambda: library.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET"),
        lambda: library.session.post(sim.url + RESTRICTIONS),
    ]
    for attempt in attempts:
        with pytest.raises(ForbiddenEndpoint):
            attempt()
    assert sim.request_log == []


def test_every_client_of_a_gateway_shares_one_session(sim, gateway):
    """No session (connection pool) per key: python-binance's own is replaced by the gateway's."""
    first = gateway.client_for(creds(sim.add_key()))
    second = gateway.client_for(creds(sim.add_key(key_type="RSA")))
    assert first.session is second.session
    assert first._binance.session is second._binance.session is first.session


def test_clients_built_on_worker_threads_leave_them_without_an_event_loop(sim, gateway):
    """python-binance's constructor wants the thread's event loop: worker threads get one idle
    loop lent for the construction, never a loop of their own kept alive with the client."""
    seen: list[object] = []

    def build() -> None:
        client = gateway.client_for(creds(sim.add_key()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                asyncio.get_event_loop()
            except RuntimeError:
                seen.append(client._binance.loop)
            else:
                seen.append("this worker thread was left with an event loop")

    workers = [threading.Thread(target=build) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(isinstance(loop, asyncio.AbstractEventLoop) for loop in seen), seen
    assert len(seen) == 2 and seen[0] is seen[1]  # the one idle loop, lent to both


def _openssh(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def _pkcs1(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(("key_type", "convert"), [("ED25519", _openssh), ("RSA", _pkcs1)])
def test_the_declared_type_decides_how_a_private_key_signs_whatever_its_form(
    sim, gateway, key_type, convert
):
    """python-binance alone would guess RSA from any PEM longer than 120 characters: an
    Ed25519 key from ssh-keygen (387) would then fail to load. The declared type decides."""
    key = sim.add_key(key_type=key_type, permissions=TRADE)
    pasted = convert(key.secret)
    assert key_type != "ED25519" or len(pasted) > 120
    perms = gateway.api_restrictions(Credentials(key.api_key, pasted, key_type))
    assert perms.tier is Tier.TRADE
    assert [(r.path, r.status) for r in sim.request_log] == [(RESTRICTIONS, 200)]


# --- classified failures --------------------------------------------------------------------


def test_deleted_key_is_rejected_with_the_three_possible_reasons(sim, gateway):
    key = sim.add_key()
    sim.delete_key(key.api_key)
    with pytest.raises(KeyRejected) as caught:
        gateway.api_restrictions(creds(key))
    assert caught.value.code == -2015 and caught.value.http_status == 401
    message = caught.value.user_message
    assert "deleted" in message and "IP" in message and "whitelist" in message
    assert "permission" in message


def test_ip_not_whitelisted_is_rejected(sim, gateway):
    key = sim.add_key(ip_restrict=True)
    sim.set_ip_allowed(key.api_key, False)
    with pytest.raises(KeyRejected) as caught:
        gateway.api_restrictions(creds(key))
    assert caught.value.code == -2015


def test_unknown_key_is_rejected(sim, gateway):
    stranger = Credentials("Q" * 64, "s" * 64, KeyType.HMAC)
    with pytest.raises(KeyRejected) as caught:
        gateway.api_restrictions(stranger)
    assert caught.value.code == -2008


def test_badly_formed_key(sim, gateway):
    with pytest.raises(BadKeyFormat) as caught:
        gateway.api_restrictions(Credentials("short", "s" * 64, KeyType.HMAC))
    assert caught.value.code == -2014
    # a key no server would accept in a header is refused locally, without sending
    before = len(sim.request_log)
    with pytest.raises(BadKeyFormat):
        gateway.api_restrictions(Credentials("abc def\n", "s", KeyType.HMAC))
    assert len(sim.request_log) == before


def test_wrong_secret_or_private_key_is_a_bad_signature(sim, gateway):
    hmac_key = sim.add_key()
    with pytest.raises(BadSignature) as caught:
        gateway.api_restrictions(Credentials(hmac_key.api_key, "wrong" * 12, KeyType.HMAC))
    assert caught.value.code == -1022
    ed_key, other = sim.add_key(key_type="ED25519"), sim.add_key(key_type="ED25519")
    with pytest.raises(BadSignature):
        gateway.api_restrictions(Credentials(ed_key.api_key, other.secret, KeyType.ED25519))


def test_unreadable_private_key_is_classified_not_a_crash(sim, gateway):
    key = sim.add_key(key_type="RSA")
    with pytest.raises(BadKeyFormat) as caught:
        gateway.api_restrictions(Credentials(key.api_key, "-----BEGIN nonsense", KeyType.RSA))
    assert caught.value.part == "secret"
    assert sim.request_log == []


def test_clock_drift_is_recovered_by_one_resync(sim, gateway):
    key = sim.add_key()
    sim.clock_skew_ms = 120_000  # Binance's clock is two minutes ahead of ours
    assert gateway.api_restrictions(creds(key)).tier is Tier.READ
    assert abs(gateway.clock_offset_ms - 120_000) < 5_000
    paths = [r.path for r in sim.request_log]
    assert paths == [RESTRICTIONS, "/api/v3/time", RESTRICTIONS]
    # the learned offset serves later calls: no second resync
    assert gateway.api_restrictions(creds(sim.add_key())).tier is Tier.READ
    assert sent(sim, "/api/v3/time") == 1


def test_clock_drift_that_persists_after_the_resync(sim, gateway):
    key = sim.add_key()
    sim.inject_fault("-1021", count=2, path=RESTRICTIONS)
    with pytest.raises(ClockDrift) as caught:
        gateway.api_restrictions(creds(key))
    assert caught.value.code == -1021
    assert sent(sim) == 2 and sent(sim, "/api/v3/time") == 1


def test_429_with_a_short_retry_after_is_retried_once(sim, gateway):
    key = sim.add_key()
    sim.retry_after_seconds = 1
    sim.inject_fault("429", path=RESTRICTIONS)
    started = time.monotonic()
    assert gateway.api_restrictions(creds(key)).tier is Tier.READ
    assert time.monotonic() - started >= 0.9  # it honoured Retry-After
    assert sent(sim) == 2


def test_429_with_a_long_retry_after_pauses_every_caller(sim, gateway):
    key = sim.add_key()
    sim.retry_after_seconds = 30
    sim.inject_fault("429", path=RESTRICTIONS)
    with pytest.raises(RateLimited) as caught:
        gateway.api_restrictions(creds(key))
    assert caught.value.retry_after == 30 and caught.value.http_status == 429
    assert "30 seconds" in caught.value.user_message
    count = len(sim.request_log)
    with pytest.raises(RateLimited):  # another key, same IP: nothing is sent during the pause
        gateway.api_restrictions(creds(sim.add_key()))
    assert len(sim.request_log) == count


def test_1003_without_retry_after_is_rate_limited(sim, gateway):
    sim.inject_fault("-1003")  # "too many requests queued": a 429 without Retry-After
    with pytest.raises(RateLimited) as caught:
        gateway.api_restrictions(creds(sim.add_key()))
    assert caught.value.code == -1003 and caught.value.retry_after == 60
    assert sent(sim) == 1


def test_418_bans_every_call_without_sending(sim, gateway):
    key = sim.add_key()
    sim.retry_after_seconds = 120
    sim.inject_fault("418")
    with pytest.raises(IpBanned) as caught:
        gateway.api_restrictions(creds(key))
    until = caught.value.until
    assert timedelta(seconds=100) < until - datetime.now(UTC) <= timedelta(seconds=121)
    count = len(sim.request_log)
    started = time.monotonic()
    for call in (lambda: gateway.api_restrictions(creds(sim.add_key())), gateway.server_time):
        with pytest.raises(IpBanned):
            call()
    assert time.monotonic() - started < 0.2  # fail fast
    assert len(sim.request_log) == count


def test_the_shared_limits_follow_an_injected_clock_so_a_ban_passes_without_waiting(sim):
    """A process's limits (one set per /api limit) take a clock when first made: tests move
    time past a ban instead of sleeping through it. The ban itself behaves as above."""
    clock = MovableClock()
    limit = 5987  # a limit of this test's own: the shared set is made here, with this clock
    limits = shared_limits(limit, clock=clock)
    assert shared_limits(limit) is limits  # later callers share it, clock and all
    key = sim.add_key()
    sim.retry_after_seconds = 600
    sim.inject_fault("418")
    with BinanceGateway(sim.url, timeout=1.0, weight_limit=limit) as gateway:
        with pytest.raises(IpBanned):
            gateway.api_restrictions(creds(key))
        clock.advance(599)
        with pytest.raises(IpBanned):
            gateway.api_restrictions(creds(key))  # not a second early
        started = time.monotonic()
        clock.advance(2)
        assert gateway.api_restrictions(creds(key)).enable_reading
    assert time.monotonic() - started < 5  # ten minutes passed in no time
    assert [r.status for r in sim.request_log if r.path == RESTRICTIONS] == [418, 200]


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_server_errors_are_unavailable(sim, gateway, kind):
    sim.inject_fault(kind)
    with pytest.raises(BinanceUnavailable) as caught:
        gateway.api_restrictions(creds(sim.add_key()))
    assert caught.value.http_status == int(kind) and caught.value.reason == "server_error"


def test_timeout_is_unavailable(sim, budget):
    sim.hang_seconds = 2.0
    sim.inject_fault("timeout")
    with BinanceGateway(sim.url, timeout=0.3, budget=budget) as gateway:
        started = time.monotonic()
        with pytest.raises(BinanceUnavailable) as caught:
            gateway.api_restrictions(creds(sim.add_key()))
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_unavailable(budget):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with BinanceGateway(f"http://127.0.0.1:{port}", timeout=1.0, budget=budget) as gateway:
        with pytest.raises(BinanceUnavailable) as caught:
            gateway.api_restrictions(Credentials("A" * 64, "s" * 64))
        assert caught.value.reason == "connection"
        results = gateway.check_many([Credentials("A" * 64, "s" * 64)] * 3)
    assert all(isinstance(r.error, BinanceUnavailable) for r in results)


def test_a_body_that_is_not_json_is_unavailable(budget):
    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html>maintenance</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        gateway = BinanceGateway(url, timeout=1.0, budget=budget)
        with gateway, pytest.raises(BinanceUnavailable) as caught:
            gateway.api_restrictions(Credentials("A" * 64, "s" * 64))
        assert caught.value.reason == "bad_response"
    finally:
        server.shutdown()
        server.server_close()


# --- many keys ----------------------------------------------------------------------------


def test_check_many_returns_one_result_per_key_in_order(sim, gateway):
    good = [
        sim.add_key(),
        sim.add_key(key_type="ED25519", permissions=TRADE),
        sim.add_key(key_type="RSA", permissions=WITHDRAW, ip_restrict=True),
    ]
    deleted = sim.add_key()
    sim.delete_key(deleted.api_key)
    wrong_secret = sim.add_key()
    batch = [
        creds(good[0]),
        creds(deleted),
        creds(good[1]),
        Credentials(wrong_secret.api_key, "x" * 64),
        Credentials("short", "s"),
        creds(good[2]),
        Credentials(good[0].api_key, "not a pem", KeyType.ED25519),
    ]
    results = gateway.check_many(batch)
    assert [r.api_key_masked for r in results] == [c.masked for c in batch]
    assert [r.permissions.tier if r.ok else type(r.error) for r in results] == [
        Tier.READ,
        KeyRejected,
        Tier.TRADE,
        BadSignature,
        BadKeyFormat,
        Tier.WITHDRAW,
        BadKeyFormat,
    ]
    assert gateway.check_many([]) == []


def test_clients_are_reused_per_credentials(sim, gateway):
    key = creds(sim.add_key(key_type="RSA"))
    assert gateway.client_for(key) is gateway.client_for(key)
    assert gateway.client_for(key) is not gateway.client_for(creds(sim.add_key()))


def test_budget_keeps_the_gateway_under_a_small_weight_limit():
    with BinanceSimulator(weight_limit=30) as sim:
        budget = WeightBudget(limit=30, max_wait=0.2)
        keys = [creds(sim.add_key()) for _ in range(60)]
        with BinanceGateway(sim.url, timeout=1.0, max_workers=16, budget=budget) as gateway:
            results = gateway.check_many(keys)
        assert sim.count_429 == 0
        assert len(sim.request_log) <= 30 and sim.used_weight() <= 30
        ok = [r for r in results if r.ok]
        refused = [r for r in results if not r.ok]
        assert len(ok) == budget.capacity == 24
        assert all(
            isinstance(r.error, RateLimited) and r.error.http_status is None for r in refused
        )
        assert budget.stats().refused == 36


def test_a_patient_check_of_more_keys_than_one_window_allows_paces_itself():
    """Background checks (drift) wait for the next window's weight instead of failing; an
    impatient check of the same keys reports the excess as rate limited, sending nothing."""
    with BinanceSimulator() as sim:
        keys = [creds(sim.add_key()) for _ in range(25)]
        clock = MovableClock()
        budget = WeightBudget(limit=10, safety=1.0, window_seconds=0.5, max_wait=0.05, clock=clock)
        with BinanceGateway(sim.url, timeout=1.0, max_workers=8, budget=budget) as gateway:
            hasty = gateway.check_many(keys)
            assert 0 < sum(r.ok for r in hasty) < len(keys)
            assert all(isinstance(r.error, RateLimited) for r in hasty if not r.ok)
            clock.advance(0.6)  # the window empties
            started = time.monotonic()
            paced = gateway.check_many(keys, patience=5.0)
            took = time.monotonic() - started
        assert all(r.ok for r in paced)
        assert took >= 1.0  # 25 checks at 10 per half second: at least two more windows
        assert sim.count_429 == 0


def test_budget_learns_weight_used_by_others_on_the_same_ip(sim, gateway, budget):
    key = creds(sim.add_key())
    other = BinanceGateway(sim.url, timeout=1.0, budget=WeightBudget())
    for _ in range(5):
        other.api_restrictions(key)  # another process on this IP, with its own budget
    gateway.api_restrictions(key)
    if sim.used_weight() == 6:  # (not when the simulator's minute rolled over in between)
        assert budget.stats().used >= 6  # 1 sent + 5 learned from X-MBX-USED-WEIGHT-1M


def test_budget_blocks_then_sends_when_weight_frees_up():
    budget = WeightBudget(limit=2, safety=1.0, window_seconds=0.3, max_wait=1.0)
    budget.acquire()
    budget.acquire()
    started = time.monotonic()
    budget.acquire()  # waits for the first booking to leave the window
    assert 0.2 < time.monotonic() - started < 0.6
    budget.acquire()  # the first two left together; the third is still in the window
    with pytest.raises(RateLimited):
        budget.acquire(max_wait=0.0)


# --- secrets ------------------------------------------------------------------------------


def test_secrets_never_appear_in_results_errors_or_logs(sim, gateway, caplog):
    caplog.set_level(logging.DEBUG, logger="bot")
    hmac_key = sim.add_key()
    ed_key = sim.add_key(key_type="ED25519")
    deleted = sim.add_key()
    sim.delete_key(deleted.api_key)
    wrong = Credentials(hmac_key.api_key, "wrong-secret-" * 4)
    batch = [creds(hmac_key), creds(ed_key), creds(deleted), wrong]
    results = gateway.check_many(batch)
    sim.inject_fault("503")
    results += gateway.check_many([creds(hmac_key)])
    secrets = [c.secret for c in batch] + [c.secret.strip().splitlines()[1] for c in batch[1:2]]
    rendered = [repr(results), str(results)] + [repr(c) + str(c) for c in batch]
    for r in results:
        if r.error is not None:
            rendered += [str(r.error), repr(r.error), r.error.user_message]
    rendered += [record.getMessage() for record in caplog.records]
    for text in rendered:
        for secret in secrets:
            assert secret not in text
        assert "signature=" not in text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert hmac_key.api_key not in logged  # only the masked form is logged
    assert f"{hmac_key.api_key[:4]}…{hmac_key.api_key[-4:]}" in logged


# --- Binance's limits, each apart (binance-spot-api-docs "LIMITS"; wallet endpoint pages) ------


def test_each_sapi_endpoint_and_api_have_their_own_budget_learned_from_their_header(sim):
    limits = RateLimits()
    with BinanceGateway(sim.url, timeout=1.0, limits=limits) as gateway:
        key = sim.add_key()
        gateway.api_restrictions(creds(key))
        gateway.api_restrictions(creds(key))
        gateway.server_time()
    named = limits.named()
    restrictions = named["sapi_ip /sapi/v1/account/apiRestrictions"]
    assert restrictions.limit == 12_000 and restrictions.stats().used == 2
    assert named["api"].limit == 6_000 and named["api"].stats().used == 1


def test_a_429_pauses_that_endpoint_only(sim):
    limits = RateLimits()
    with BinanceGateway(sim.url, timeout=1.0, limits=limits, short_retry_after=0) as gateway:
        key = sim.add_key(account="ops")
        sim.retry_after_seconds = 30
        sim.inject_fault("429", path="/sapi/v1/account/apiRestrictions")
        with pytest.raises(RateLimited):
            gateway.api_restrictions(creds(key))
        sent = len(sim.request_log)
        with pytest.raises(RateLimited):  # paused: refused without sending
            gateway.api_restrictions(creds(key))
        assert len(sim.request_log) == sent
        assert gateway.withdraw_addresses(creds(key)) == []  # another endpoint goes on


def test_a_403_from_the_firewall_pauses_every_budget_for_five_minutes(sim):
    limits = RateLimits()
    with BinanceGateway(sim.url, timeout=1.0, limits=limits) as gateway:
        key = sim.add_key()
        sim.inject_fault("403", path="/sapi/v1/account/apiRestrictions")
        with pytest.raises(BinanceUnavailable) as blocked:
            gateway.api_restrictions(creds(key))
        assert "firewall" in blocked.value.user_message
        sent = len(sim.request_log)
        with pytest.raises(RateLimited) as refused:
            gateway.server_time()  # /api too: the whole IP is blocked
        assert 290 <= refused.value.retry_after <= 300
        assert len(sim.request_log) == sent
