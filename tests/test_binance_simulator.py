"""The Binance simulator, driven by the real python-binance ``Client`` (no mocks): signatures of
all three key types, Binance's error codes, recvWindow, rate limits, faults and latency."""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

from bot.sandbox.binance_simulator import (
    KEY_TYPES,
    PERMISSION_FIELDS,
    BinanceSimulator,
    SimKey,
    seed_demo,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DAY_MS = 86_400_000
WITHDRAW_FIELDS = (
    *("id", "amount", "transactionFee", "coin", "status", "address", "txId", "applyTime"),
    *("network", "transferType", "info", "confirmNo", "walletType", "txKey", "completeTime"),
)
DEPOSIT_FIELDS = (
    *("id", "amount", "coin", "network", "status", "address", "addressTag", "txId"),
    *("insertTime", "transferType", "confirmTimes", "unlockConfirm", "walletType"),
)


def make_client(
    sim: BinanceSimulator,
    key: SimKey | None = None,
    *,
    api_key: str | None = None,
    secret: str | None = None,
    timeout: float = 5,
) -> Client:
    """A python-binance client pointed at the simulator, signing with ``key`` (or the overrides)."""
    api_key = api_key if api_key is not None else (key.api_key if key else None)
    private_key = None
    if secret is None and key is not None:
        secret = key.secret
    if key is not None and key.key_type != "HMAC":
        secret, private_key = None, secret
    client = Client(api_key, secret, private_key=private_key, ping=False)
    client.API_URL = sim.url + "/api"
    client.MARGIN_API_URL = sim.url + "/sapi"
    client.REQUEST_TIMEOUT = timeout
    return client


def api_error(call) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as info:
        call()
    return info.value


# ---------------------------------------------------------------- signatures and permissions
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_each_key_type_signs_and_reads_its_permissions(sim, key_type):
    key = sim.add_key(
        key_type=key_type,
        permissions={"enableSpotAndMarginTrading": True, "enableFutures": True},
        ip_restrict=True,
        create_time=1_623_840_271_000,
    )
    client = make_client(sim, key)

    body = client.get_account_api_permissions()

    assert body["ipRestrict"] is True
    assert body["createTime"] == 1_623_840_271_000
    assert set(PERMISSION_FIELDS) <= set(body)
    enabled = {name for name in PERMISSION_FIELDS if body[name]}
    assert enabled == {"enableReading", "enableSpotAndMarginTrading", "enableFutures"}
    assert "tradingAuthorityExpirationTime" not in body
    assert client.get_account_api_trading_status()["data"]["isLocked"] is False
    assert client.get_account_status() == {"data": "Normal"}


def test_key_material_is_what_a_user_pastes(sim):
    hmac_key = sim.add_key()
    ed_key = sim.add_key(key_type="ED25519")
    rsa_key = sim.add_key(key_type="RSA")
    for key in (hmac_key, ed_key, rsa_key):
        assert len(key.api_key) == 64 and key.api_key.isalnum()
    assert len(hmac_key.secret) == 64 and hmac_key.secret.isalnum()
    for key in (ed_key, rsa_key):
        assert key.secret.startswith("-----BEGIN PRIVATE KEY-----")
    assert hmac_key.secret not in repr(hmac_key)
    assert sim.get_key(ed_key.api_key) is ed_key


def test_permission_changes_and_trading_expiry_are_visible(sim):
    expiry = sim.server_time_ms() + 10 * DAY_MS
    key = sim.add_key(key_type="ED25519", trading_authority_expiration_time=expiry)
    client = make_client(sim, key)
    assert client.get_account_api_permissions()["tradingAuthorityExpirationTime"] == expiry

    sim.set_permissions(key.api_key, enableWithdrawals=True, enableReading=True)
    sim.set_ip_restrict(key.api_key, True)
    body = client.get_account_api_permissions()
    assert body["enableWithdrawals"] is True and body["ipRestrict"] is True
    with pytest.raises(ValueError, match="unknown permission"):
        sim.set_permissions(key.api_key, enableWithdrawal=True)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_signature_with_the_wrong_secret_is_rejected(sim, key_type):
    key = sim.add_key(key_type=key_type)
    other = sim.add_key(key_type=key_type)
    client = make_client(sim, key, secret=other.secret)  # signs with the other key's secret

    error = api_error(client.get_account_api_permissions)

    assert (error.status_code, error.code) == (400, -1022)
    assert error.message == "Signature for this request is not valid."


def test_tampered_query_is_rejected(sim):
    key = sim.add_key()
    client = make_client(sim, key)
    client.get_account_api_permissions()
    signed = sim.request_log[-1]
    # Replay the same signature with another recvWindow: the payload no longer matches.
    query = f"recvWindow=20000&timestamp={signed.params['timestamp']}&signature={'0' * 64}"
    response = requests.get(
        f"{sim.url}/sapi/v1/account/apiRestrictions?{query}",
        headers={"X-MBX-APIKEY": key.api_key},
        timeout=5,
    )
    assert response.status_code == 400 and response.json()["code"] == -1022


# ---------------------------------------------------------------- key errors, in Binance's order
def test_deleted_key_is_rejected_with_2015(sim):
    key = sim.add_key(key_type="ED25519")
    client = make_client(sim, key)
    client.get_account_api_permissions()
    sim.delete_key(key.api_key)

    error = api_error(client.get_account_api_permissions)

    assert (error.status_code, error.code) == (401, -2015)
    assert error.message == "Invalid API-key, IP, or permissions for action."


def test_ip_not_whitelisted_is_rejected_with_2015(sim):
    key = sim.add_key(ip_restrict=True)
    client = make_client(sim, key)
    sim.set_ip_allowed(key.api_key, False)
    assert api_error(client.get_account_api_permissions).code == -2015
    sim.set_ip_allowed(key.api_key, True)
    assert client.get_account_api_permissions()["ipRestrict"] is True


def test_unknown_key_is_rejected_with_2008(sim):
    client = make_client(sim, api_key="A" * 64, secret="s" * 64)
    error = api_error(client.get_account_api_permissions)
    assert (error.status_code, error.code, error.message) == (401, -2008, "Invalid Api-Key ID.")


@pytest.mark.parametrize("bad_key", ["short", "x" * 63 + "!", "y" * 65])
def test_malformed_key_is_rejected_with_2014(sim, bad_key):
    client = make_client(sim, api_key=bad_key, secret="s" * 64)
    error = api_error(client.get_account_api_permissions)
    assert (error.status_code, error.code, error.message) == (401, -2014, "API-key format invalid.")


def test_missing_key_header_is_rejected_with_2014(sim):
    client = make_client(sim, api_key="", secret="s" * 64)  # python-binance omits the header
    assert api_error(client.get_account_api_permissions).code == -2014
    assert sim.request_log[-1].api_key is None


def test_missing_timestamp_is_rejected_with_1102(sim):
    key = sim.add_key()
    response = requests.get(
        f"{sim.url}/sapi/v1/account/apiRestrictions?recvWindow=5000&signature=abc",
        headers={"X-MBX-APIKEY": key.api_key},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
    }


# ---------------------------------------------------------------- clock and recvWindow
@pytest.mark.parametrize("skew_ms", [120_000, -120_000])
def test_skewed_clock_gives_1021_until_the_client_syncs(sim, skew_ms):
    key = sim.add_key(key_type="ED25519")
    client = make_client(sim, key)
    sim.clock_skew_ms = skew_ms

    error = api_error(client.get_account_api_permissions)
    assert (error.status_code, error.code) == (400, -1021)
    assert error.message == "Timestamp for this request is outside of the recvWindow."

    server_time = client.get_server_time()["serverTime"]
    assert abs(server_time - (time.time() * 1000 + skew_ms)) < 5_000
    client.timestamp_offset = server_time - int(time.time() * 1000)
    assert client.get_account_api_permissions()["enableReading"] is True


def test_recv_window_is_honoured(sim):
    key = sim.add_key()
    client = make_client(sim, key)
    sim.clock_skew_ms = 8_000  # the client is 8 s behind
    assert client.get_account_api_permissions(recvWindow=10_000)["enableReading"] is True
    client.REQUEST_RECVWINDOW = None  # Binance's default window: 5 s
    assert api_error(client.get_account_api_permissions).code == -1021
    assert api_error(lambda: client.get_account_api_permissions(recvWindow=70_000)).code == -1131


# ---------------------------------------------------------------- weight and rate limits
def test_every_response_carries_the_weight_of_its_own_limit(sim):
    """Binance: /api endpoints share one budget (X-MBX-USED-WEIGHT-1M); each IP-limited /sapi
    endpoint has its own (X-SAPI-USED-IP-WEIGHT-1M)."""
    key = sim.add_key()
    client = make_client(sim, key)
    client.ping()
    assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert client.response.headers["Content-Type"].startswith("application/json")
    client.get_server_time()
    assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "2"
    client.get_account_api_permissions()
    assert client.response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"
    assert "X-MBX-USED-WEIGHT-1M" not in client.response.headers
    api_error(make_client(sim, api_key="B" * 64, secret="x").get_account_status)
    assert sim.used_weight() == 2  # /api, untouched by /sapi calls
    assert sim.used_weight("/sapi/v1/account/apiRestrictions") == 1
    assert sim.used_weight("/sapi/v1/account/status") == 1


def test_each_sapi_endpoint_has_its_own_12000_a_minute(sim):
    sim.sapi_ip_limit = 3
    now_ms = int(time.time() * 1000)
    sim.clock_skew_ms = (now_ms // 60_000 + 1) * 60_000 + 1_000 - now_ms
    client = make_client(sim, sim.add_key())
    client.timestamp_offset = sim.clock_skew_ms  # signed requests follow the server's clock
    for _ in range(3):
        client.get_account_api_permissions()
    error = api_error(client.get_account_api_permissions)
    assert (error.status_code, error.code) == (429, -1003)
    assert "current limit is 3 request weight" in error.message
    client.get_account_status()  # another endpoint: another budget
    client.ping()  # and /api is apart from both
    assert sim.used_weight() == 1


def test_weight_limit_answers_429_with_retry_after(sim):
    sim.weight_limit = 5
    # Put the server clock one second into a fresh minute, so the window cannot roll over here.
    now_ms = int(time.time() * 1000)
    sim.clock_skew_ms = (now_ms // 60_000 + 1) * 60_000 + 1_000 - now_ms
    client = make_client(sim)
    for _ in range(5):
        client.ping()

    error = api_error(client.ping)

    assert (error.status_code, error.code) == (429, -1003)
    assert "current limit is 5 request weight per 1 MINUTE" in error.message
    retry_after = int(client.response.headers["Retry-After"])
    assert 50 <= retry_after <= 60
    assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "6"
    assert sim.count_429 == 1
    assert sim.used_weight() == 6
    assert [entry.status for entry in sim.request_log] == [200] * 5 + [429]

    sim.reset()
    assert sim.used_weight() == 0 and sim.count_429 == 0 and sim.request_log == []
    assert client.ping() == {}


# ---------------------------------------------------------------- injected faults
def test_injected_418_and_429_carry_retry_after(sim):
    key = sim.add_key()
    client = make_client(sim, key)
    sim.retry_after_seconds = 7
    sim.inject_fault("418")
    error = api_error(client.get_account_api_permissions)
    assert (error.status_code, error.code) == (418, -1003)
    assert error.message.startswith("Way too much request weight used; IP banned until ")
    assert client.response.headers["Retry-After"] == "7"

    sim.inject_fault("429", count=2)
    for _ in range(2):
        error = api_error(client.get_account_api_permissions)
        assert (error.status_code, error.code) == (429, -1003)
        assert client.response.headers["Retry-After"] == "7"
    sim.inject_fault("-1003")
    assert api_error(client.get_account_api_permissions).status_code == 429
    assert "Retry-After" not in client.response.headers
    assert sim.count_429 == 3
    assert client.get_account_api_permissions()["enableReading"] is True


@pytest.mark.parametrize("status", [500, 502, 503])
def test_injected_gateway_errors(sim, status):
    key = sim.add_key()
    client = make_client(sim, key)
    sim.inject_fault(str(status), count=2)
    assert client.get_server_time()["serverTime"] > 0  # faults skip /api/v3/time by default
    for _ in range(2):
        error = api_error(client.get_account_status)
        assert error.status_code == status and error.code == 0  # not JSON: a gateway page
        assert client.response.headers["Content-Type"].startswith("text/html")
    assert client.get_account_status() == {"data": "Normal"}


def test_faults_can_target_a_path(sim):
    key = sim.add_key()
    client = make_client(sim, key)
    sim.inject_fault("503", path="/api/v3/time")
    sim.inject_fault("-1021", path="apiRestrictions")
    assert client.get_account_status() == {"data": "Normal"}
    assert api_error(client.get_server_time).status_code == 503
    assert api_error(client.get_account_api_permissions).code == -1021
    assert client.get_account_api_permissions()["enableReading"] is True
    sim.inject_fault("500", count=10)
    sim.clear_faults()
    assert client.ping() == {}
    with pytest.raises(ValueError):
        sim.inject_fault("504")


def test_injected_timeout_hangs_until_the_client_gives_up(sim):
    key = sim.add_key()
    client = make_client(sim, key, timeout=0.3)
    sim.inject_fault("timeout")
    with pytest.raises(requests.exceptions.Timeout):
        client.get_account_api_permissions()
    assert sim.request_log[-1].status == 0
    assert client.get_account_api_permissions()["enableReading"] is True


def test_stop_does_not_wait_for_hanging_requests():
    simulator = BinanceSimulator().start()
    client = make_client(simulator, timeout=10)
    simulator.inject_fault("timeout", path="/ping")
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.ping()
        except Exception as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 5
    while not simulator.request_log and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 2
    caller.join(timeout=5)
    assert not caller.is_alive()
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)  # dropped, not answered


# ---------------------------------------------------------------- latency and connections
def test_latency_is_applied_concurrently(sim):
    key = sim.add_key()
    sim.latency = 0.2
    clients = [make_client(sim, key) for _ in range(10)]

    def timed(client: Client) -> float:
        started = time.monotonic()
        client.get_account_api_permissions()
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        durations = list(pool.map(timed, clients))
    elapsed = time.monotonic() - started

    assert min(durations) >= 0.2
    assert elapsed < 1.5  # one after the other would take at least 2 s


def test_a_request_can_be_awaited_while_latency_holds_its_answer(sim):
    """Tests wait for the request itself instead of sleeping against a latency: a request is
    logged (and ``wait_for_request`` returns) when it arrives, before the latency delays it."""
    key = sim.add_key()
    sim.latency = 3.0
    already = len(sim.request_log)
    client = make_client(sim, key)

    def ask() -> None:
        with contextlib.suppress(requests.exceptions.RequestException):
            client.get_account_api_permissions()  # cut short by stop() below

    caller = threading.Thread(target=ask)
    started = time.monotonic()
    caller.start()
    try:
        arrived = sim.wait_for_request(
            lambda r: r.path == "/sapi/v1/account/apiRestrictions", after=already, timeout=10
        )
        assert time.monotonic() - started < 2.5  # seen on arrival, not after the latency
        assert arrived.api_key == key.api_key and arrived.status == 200
        assert caller.is_alive()  # its answer is still being held back
    finally:
        sim.latency = 0.0
        sim.stop()  # wakes the request sleeping in its latency
        caller.join(10)


def test_waiting_for_a_request_that_never_comes_says_what_did(sim):
    make_client(sim).ping()
    with pytest.raises(AssertionError, match="/api/v3/ping"):
        sim.wait_for_request(lambda r: r.path == "/never", timeout=0.2)


def test_keep_alive_serves_several_requests_on_one_connection(sim):
    host, port = sim.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/api/v3/ping")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b"{}"
            assert response.getheader("Connection") != "close"
    finally:
        connection.close()


# ---------------------------------------------------------------- request log
def test_unknown_paths_and_methods_are_404_and_recorded(sim):
    key = sim.add_key()
    client = make_client(sim, key)
    error = api_error(client.get_account)  # GET /api/v3/account: not simulated
    assert error.status_code == 404
    response = requests.post(f"{sim.url}/sapi/v1/capital/withdraw/apply?coin=BTC", timeout=5)
    assert response.status_code == 404
    response = requests.post(f"{sim.url}/sapi/v1/account/apiRestrictions", timeout=5)
    assert response.status_code == 404

    log = [(entry.method, entry.path, entry.status) for entry in sim.request_log]
    assert log == [
        ("GET", "/api/v3/account", 404),
        ("POST", "/sapi/v1/capital/withdraw/apply", 404),
        ("POST", "/sapi/v1/account/apiRestrictions", 404),
    ]
    assert sim.request_log[0].api_key == key.api_key
    assert "signature" not in sim.request_log[0].params
    assert sim.request_log[1].params == {"coin": "BTC"}


def test_request_log_records_signed_calls_without_signature(sim):
    key = sim.add_key()
    client = make_client(sim, key)
    client.get_account_api_permissions()
    entry = sim.request_log[-1]
    assert entry.method == "GET" and entry.path == "/sapi/v1/account/apiRestrictions"
    assert set(entry.params) == {"recvWindow", "timestamp"}
    assert (entry.api_key, entry.status, entry.code) == (key.api_key, 200, None)
    assert abs(entry.at - time.time()) < 5


# ---------------------------------------------------------------- withdrawal and deposit history
def test_withdraw_history_is_filtered_and_newest_first(sim):
    key = sim.add_key(account="alice")
    now = sim.server_time_ms()
    old = sim.add_withdrawal(
        "alice", coin="USDT", amount="10", address="0xold", apply_time_ms=now - 5 * DAY_MS
    )
    mid = sim.add_withdrawal(
        "alice", coin="BTC", amount="0.1", address="0xmid", apply_time_ms=now - 2 * DAY_MS
    )
    new = sim.add_withdrawal(
        "alice", coin="USDT", amount="99", address="0xnew", apply_time_ms=now - 3_600_000
    )
    sim.add_withdrawal("bob", coin="USDT", amount="1", address="0xbob", apply_time_ms=now)
    client = make_client(sim, key)

    everything = client.get_withdraw_history()
    assert [w["id"] for w in everything] == [new["id"], mid["id"], old["id"]]
    recent = client.get_withdraw_history(startTime=now - 3 * DAY_MS)
    assert [w["address"] for w in recent] == ["0xnew", "0xmid"]
    window = client.get_withdraw_history(startTime=now - 3 * DAY_MS, endTime=now - DAY_MS)
    assert [w["address"] for w in window] == ["0xmid"]
    assert [w["coin"] for w in client.get_withdraw_history(coin="BTC")] == ["BTC"]

    first = everything[0]
    assert set(WITHDRAW_FIELDS) <= set(first)
    assert first["status"] == 6 and first["network"] == "BSC"
    assert (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((now - 3_600_000) / 1000))
        == (first["applyTime"])
    )


def test_deposit_history_is_filtered_and_newest_first(sim):
    key = sim.add_key(account="alice", key_type="ED25519")
    now = sim.server_time_ms()
    sim.add_deposit("alice", coin="BNB", amount="1", address="0xa", insert_time_ms=now - 4 * DAY_MS)
    sim.add_deposit(
        "alice", coin="ETH", amount="2", address="0xb", insert_time_ms=now - DAY_MS, tx_id="0xt"
    )
    client = make_client(sim, key)

    deposits = client.get_deposit_history()
    assert [d["coin"] for d in deposits] == ["ETH", "BNB"]
    recent = client.get_deposit_history(startTime=now - 2 * DAY_MS)
    assert len(recent) == 1
    deposit = recent[0]
    assert deposit["txId"] == "0xt" and deposit["insertTime"] == now - DAY_MS
    assert set(DEPOSIT_FIELDS) <= set(deposit)
    assert make_client(sim, sim.add_key(account="bob")).get_deposit_history() == []


# ---------------------------------------------------------------- demo and command line
def test_seed_demo_keys_behave_as_labelled(sim):
    keys = seed_demo(sim)
    assert set(keys) == {"healthy-reader", "withdrawer", "no-whitelist", "deleted"}
    assert {key.key_type for key in keys.values()} == {"HMAC", "ED25519"}
    assert all(key.account == "demo" for key in keys.values())

    reader = make_client(sim, keys["healthy-reader"]).get_account_api_permissions()
    assert reader["ipRestrict"] is True and not reader["enableSpotAndMarginTrading"]
    withdrawer = make_client(sim, keys["withdrawer"]).get_account_api_permissions()
    assert withdrawer["enableWithdrawals"] and withdrawer["ipRestrict"]
    loose = make_client(sim, keys["no-whitelist"]).get_account_api_permissions()
    assert loose["ipRestrict"] is False and loose["enableSpotAndMarginTrading"]
    days_left = (loose["tradingAuthorityExpirationTime"] - sim.server_time_ms()) / DAY_MS
    assert math.isclose(days_left, 10, abs_tol=0.1)
    error = api_error(make_client(sim, keys["deleted"]).get_account_api_permissions)
    assert error.code == -2015


def test_command_line_serves_the_demo_until_interrupted():
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox.binance_simulator", "--port", "0", "--demo"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first_line = process.stdout.readline()
        url = first_line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/api/v3/ping", timeout=5).json() == {}
        output = []
        while "deleted" not in "".join(output):
            line = process.stdout.readline()
            assert line, "the simulator exited early"
            output.append(line)
        assert "healthy-reader" in "".join(output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, process.stderr.read()


def test_each_documented_flag_and_fields_binance_adds_later_are_answered(sim):
    """apiRestrictions answers every documented permission, and the simulator can add fields
    Binance does not document yet (https://developers.binance.com/docs/wallet/account/api-key-permission)."""
    flags = {
        "enableFutures": True,
        "enablePortfolioMarginTrading": True,
        "enableFixApiTrade": True,
        "enableFixReadOnly": True,
        "permitsUniversalTransfer": True,
    }
    key = sim.add_key(permissions=flags, extra_fields={"enableCopyTrading": True})
    client = make_client(sim, key)
    answer = client.get_account_api_permissions()
    assert {name: answer[name] for name in flags} == flags
    assert answer["enableCopyTrading"] is True and answer["enableWithdrawals"] is False
    sim.set_extra_fields(key.api_key, enableCopyTrading=False, permitsStaking=True)
    answer = client.get_account_api_permissions()
    assert answer["enableCopyTrading"] is False and answer["permitsStaking"] is True
    with pytest.raises(ValueError, match="documented"):
        sim.set_extra_fields(key.api_key, enableFutures=False)  # set with permissions=
