"""The governor gateway (issue 23) against the Binance simulator: every sub-account key call,
its allow-list refusing everything else before a byte leaves, signatures, classified refusals,
and no secret in any exception or log line."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bot.binance import (
    GOVERNOR_ENDPOINTS,
    BadSignature,
    BinanceGateway,
    BinanceUnavailable,
    CreatedSubAccountKey,
    Credentials,
    ForbiddenEndpoint,
    GovernorCall,
    GovernorGateway,
    GovernorRefused,
    KeyRejected,
    KeyType,
    LimitKind,
    RateLimited,
    RateLimits,
    SubAccountGrant,
)
from bot.binance.governor import uid_account_of
from bot.binance.permissions import KeyPermissions
from bot.log_redaction import redact
from bot.sandbox.binance_simulator import BinanceSimulator

CREATE = "/sapi/v2/sub-account/subAccountApi"
EMAIL = "bot1@example.com"


def key_pair(kind: str = "ED25519") -> tuple[str, str]:
    """(private PEM, public PEM), as the bot's generated pairs are."""
    private: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ED25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
def calls() -> list[GovernorCall]:
    return []


@pytest.fixture
def governor(sim: BinanceSimulator) -> Credentials:
    """The master account's governor key: Ed25519 made from the bot's pair, spot trading on
    (the IP-list endpoints require it), restricted to the bot's own address."""
    private_pem, public_pem = key_pair()
    key = sim.add_self_generated_key(
        public_pem,
        account="master",
        permissions={"enableSpotAndMarginTrading": True},
        ip_restrict=True,
    )
    key.ip_list = ["127.0.0.1"]
    return Credentials(key.api_key, private_pem, KeyType.ED25519)


@pytest.fixture
def gateway(sim: BinanceSimulator, calls: list[GovernorCall]) -> Iterator[GovernorGateway]:
    with GovernorGateway(sim.url, limits=RateLimits(), on_call=calls.append) as gw:
        yield gw


def create(
    gateway: GovernorGateway,
    governor: Credentials,
    *,
    public_pem: str,
    grant: SubAccountGrant | None = None,
    ips: list[str] | None = None,
    email: str = EMAIL,
) -> CreatedSubAccountKey:
    return gateway.create_sub_account_key(
        governor,
        email=email,
        api_name="trading-bot",
        public_key_pem=public_pem,
        grant=grant or SubAccountGrant(can_trade=True),
        ip_addresses=ips,
    )


# --- each endpoint ---------------------------------------------------------------------------


def test_own_permissions_are_the_governor_keys_api_restrictions(sim, gateway, governor):
    permissions = gateway.own_permissions(governor)
    assert permissions.ip_restrict is True
    assert permissions.enable_spot_and_margin_trading is True
    assert permissions.enable_withdrawals is False


def test_sub_accounts_reads_every_page(sim, gateway, governor):
    for n in range(205):  # more than one page of Binance's 200
        sim.add_sub_account(master="master", email=f"bot{n:03}@example.com")
    sim.add_sub_account(master="master", email="vault@example.com", asset_management=True)
    sim.add_sub_account(master="someone-else", email="not-ours@example.com")
    accounts = gateway.sub_accounts(governor)
    assert len(accounts) == 206
    assert accounts[0].email == "bot000@example.com" and accounts[0].is_freeze is False
    assert [a.email for a in accounts if a.is_asset_management_sub_account] == ["vault@example.com"]
    assert all(isinstance(a.create_time, int) for a in accounts)
    pages = [r for r in sim.request_log if r.path == "/sapi/v1/sub-account/list"]
    assert len(pages) == 2


def test_create_restricted_key_sends_the_public_key_in_the_body_only(sim, gateway, governor, calls):
    email = sim.add_sub_account(master="master", email=EMAIL)
    private_pem, public_pem = key_pair()
    created = create(gateway, governor, public_pem=public_pem, ips=["127.0.0.1"])

    assert created.email == email and created.can_trade is True
    assert created.can_futures_trade is False and created.ip_restricted is True
    assert created.ip_list == ("127.0.0.1",)
    sim_key = sim.get_key(created.api_key)
    assert sim_key.account == email and sim_key.ip_list == ["127.0.0.1"]
    assert sim_key.permissions["enableSpotAndMarginTrading"] is True
    sent = next(r for r in sim.request_log if r.path == CREATE)
    assert sent.method == "POST" and sent.query == {}
    assert sent.body["publicKey"].strip() == public_pem.strip()
    assert sent.body["status"] == "2" and sent.body["ipAddress"] == "127.0.0.1"
    assert calls[-1].endpoint == CREATE and calls[-1].outcome == "ok"
    assert (
        calls[-1].sub_account == email
        and calls[-1].api_key_masked == created.api_key[:4] + "…" + created.api_key[-4:]
    )
    assert calls[-1].governor_masked == governor.masked

    # The new key works for the bot, from the bot's address, signed with the bot's pair.
    with BinanceGateway(sim.url, limits=RateLimits()) as reader:
        permissions = reader.api_restrictions(
            Credentials(created.api_key, private_pem, KeyType.ED25519)
        )
    assert permissions.enable_spot_and_margin_trading is True and permissions.ip_restrict is True


def test_create_unrestricted_key_asks_status_1(sim, gateway, governor):
    sim.add_sub_account(master="master", email=EMAIL)
    created = create(gateway, governor, public_pem=key_pair()[1], ips=None)
    assert created.ip_restricted is False and created.ip_list == ()
    sent = next(r for r in sim.request_log if r.path == CREATE)
    assert sent.body["status"] == "1" and "ipAddress" not in sent.body


def test_delete_kills_the_key(sim, gateway, governor, calls):
    sim.add_sub_account(master="master", email=EMAIL)
    private_pem, public_pem = key_pair()
    created = create(gateway, governor, public_pem=public_pem, ips=["127.0.0.1"])
    gateway.delete_sub_account_key(governor, email=EMAIL, api_key=created.api_key)
    assert sim.get_key(created.api_key).deleted
    assert calls[-1].method == "DELETE" and calls[-1].outcome == "ok"
    with BinanceGateway(sim.url, limits=RateLimits()) as reader, pytest.raises(KeyRejected):
        reader.api_restrictions(Credentials(created.api_key, private_pem, KeyType.ED25519))


def test_permissions_change_and_round_trip_through_api_restrictions(sim, gateway, governor):
    sim.add_sub_account(master="master", email=EMAIL)
    created = create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    grant = SubAccountGrant(can_trade=True, can_futures_trade=True)
    gateway.set_sub_account_key_permissions(
        governor, email=EMAIL, api_key=created.api_key, grant=grant
    )
    flags = sim.get_key(created.api_key).restrictions()
    assert SubAccountGrant.from_permissions(KeyPermissions.from_api(flags)) == grant


def test_grant_maps_to_binance_parameters():
    grant = SubAccountGrant(can_trade=True, can_fix_api_reading=True)
    assert grant.to_params() == {
        "canTrade": "true",
        "canMarginLoanRepay": "false",
        "canFuturesTrade": "false",
        "canUniversalTransfer": "false",
        "canVanillaOptions": "false",
        "canFixApiTrading": "false",
        "canFixApiReading": "true",
    }
    permissions = KeyPermissions(enable_margin=True, permits_universal_transfer=True)
    assert SubAccountGrant.from_permissions(permissions) == SubAccountGrant(
        can_margin_loan_repay=True, can_universal_transfer=True
    )


def test_ip_list_read_add_and_remove(sim, gateway, governor):
    sim.add_sub_account(master="master", email=EMAIL)
    created = create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    ident = {"email": EMAIL, "api_key": created.api_key}
    assert gateway.ip_restriction(governor, **ident).ip_list == ("127.0.0.1",)
    after_add = gateway.restrict_ips(governor, **ident, ip_addresses=["10.0.0.1", "10.0.0.2"])
    assert after_add.restricted and after_add.ip_list == ("127.0.0.1", "10.0.0.1", "10.0.0.2")
    after_remove = gateway.remove_ips(governor, **ident, ip_addresses=["10.0.0.1", "10.0.0.2"])
    assert after_remove.ip_list == ("127.0.0.1",)
    assert sim.get_key(created.api_key).ip_list == ["127.0.0.1"]


# --- Binance refusing --------------------------------------------------------------------------


def test_fix_flags_on_an_rsa_key_are_refused_9000(sim, gateway, governor, calls):
    sim.add_sub_account(master="master", email=EMAIL)
    grant = SubAccountGrant(can_trade=True, can_fix_api_trading=True)
    with pytest.raises(GovernorRefused) as refused:
        create(gateway, governor, public_pem=key_pair("RSA")[1], grant=grant, ips=["127.0.0.1"])
    assert refused.value.code == -9000 and "Ed25519" in refused.value.user_message
    assert sim.keys_of(EMAIL) == []
    assert calls[-1].outcome == "GovernorRefused:-9000"


def test_asset_management_sub_account_is_refused(sim, gateway, governor):
    sim.add_sub_account(master="master", email=EMAIL, asset_management=True)
    with pytest.raises(GovernorRefused) as refused:
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    assert "asset-management" in refused.value.user_message


def test_the_kyc_ip_check_refusal_is_explained(sim, gateway, governor, calls):
    sim.add_sub_account(master="master", email=EMAIL)
    sim.fail_kyc_ip_check = True
    with pytest.raises(GovernorRefused) as refused:
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    assert refused.value.code == -1002 and "KYC" in refused.value.user_message
    assert calls[-1].outcome == "GovernorRefused:-1002"


def test_someone_elses_sub_account_is_refused(sim, gateway, governor):
    sim.add_sub_account(master="another-master", email=EMAIL)
    with pytest.raises(GovernorRefused) as refused:
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    assert refused.value.code == -1130
    assert "sub-account" in refused.value.user_message


def test_429_with_retry_after_is_rate_limited(sim, gateway, governor, calls):
    sim.add_sub_account(master="master", email=EMAIL)
    sim.inject_fault("429", path=CREATE)
    with pytest.raises(RateLimited) as limited:
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    assert limited.value.http_status == 429 and limited.value.retry_after == 2
    assert calls[-1].outcome == "RateLimited:-1003"


def test_uid_weight_is_booked_and_learned_from_binances_header(sim, governor, calls):
    limits = RateLimits()
    with GovernorGateway(sim.url, limits=limits) as gateway:
        sim.add_sub_account(master="master", email=EMAIL)
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    budget = limits.budget_for(LimitKind.SAPI_UID, CREATE, uid_account_of(governor))
    assert budget.stats().used == 6000 and budget.stats().sent == 2


def test_each_governor_has_its_own_uid_allowance(sim, governor, calls):
    """Binance limits sub-account key management per master account (UID): a second master
    account's governor does not wait for the first's."""
    other_key = sim.add_key(account="other-master", key_type="ED25519")
    other = Credentials(other_key.api_key, other_key.secret, KeyType.ED25519)
    limits = RateLimits()
    with GovernorGateway(sim.url, limits=limits) as gateway:
        sim.add_sub_account(master="master", email=EMAIL)
        sim.add_sub_account(master="other-master", email="other@example.com")
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
        gateway.create_sub_account_key(
            other,
            email="other@example.com",
            api_name="other",
            public_key_pem=key_pair()[1],
            grant=SubAccountGrant(),
            ip_addresses=["127.0.0.1"],
        )
    mine = limits.budget_for(LimitKind.SAPI_UID, CREATE, uid_account_of(governor))
    theirs = limits.budget_for(LimitKind.SAPI_UID, CREATE, uid_account_of(other))
    assert mine.stats().sent == 1 and theirs.stats().sent == 1
    assert uid_account_of(governor) != uid_account_of(other)
    assert governor.api_key not in uid_account_of(governor)


def test_a_tampered_body_is_refused_1022(sim, gateway, governor):
    sim.add_sub_account(master="master", email=EMAIL)
    created = create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    path = "/sapi/v1/sub-account/subAccountApiPermission"
    params = {"email": EMAIL, "subAccountApiKey": created.api_key, "canFuturesTrade": "false"}
    prepared = gateway.prepare(governor, "POST", path, params)
    tampered = prepared.body.replace("canFuturesTrade=false", "canFuturesTrade=true")
    answer = requests.post(sim.url + path, data=tampered, headers=prepared.headers, timeout=5)
    assert answer.json()["code"] == -1022
    assert sim.get_key(created.api_key).permissions["enableFutures"] is False
    genuine = requests.post(sim.url + path, data=prepared.body, headers=prepared.headers, timeout=5)
    assert genuine.status_code == 200


@pytest.mark.parametrize("key_type", ["HMAC", "RSA"])
def test_hmac_and_rsa_governor_keys_sign_too(sim, key_type):
    key = sim.add_key(account="master", key_type=key_type)
    with GovernorGateway(sim.url, limits=RateLimits()) as gateway:
        creds = Credentials(key.api_key, key.secret, KeyType(key_type))
        assert gateway.own_permissions(creds).enable_reading is True
        sim.add_sub_account(master="master", email=EMAIL)
        assert [a.email for a in gateway.sub_accounts(creds)] == [EMAIL]


# --- the allow-list ---------------------------------------------------------------------------

FORBIDDEN = [
    ("POST", "/api/v3/order"),  # an order
    ("DELETE", "/api/v3/order"),  # cancel
    ("DELETE", "/api/v3/openOrders"),
    ("POST", "/sapi/v1/capital/withdraw/apply"),  # a withdrawal
    ("POST", "/sapi/v1/asset/transfer"),  # universal transfer
    ("POST", "/sapi/v1/sub-account/universalTransfer"),
    ("POST", "/sapi/v1/sub-account/transfer/subToMaster"),  # a sub-account transfer
    ("POST", "/sapi/v1/sub-account/transfer/subToSub"),
    ("POST", "/sapi/v1/margin/loan"),  # margin borrow
    ("POST", "/sapi/v1/futures/transfer"),  # futures transfer
    ("GET", "/sapi/v2/sub-account/subAccountApi"),  # a listed path, the wrong method
    ("POST", "/sapi/v1/sub-account/list"),
    ("POST", "/sapi/v1/sub-account/subAccountApi"),  # the v1 create: not the documented v2
    ("GET", "/sapi/v1/capital/withdraw/history"),  # a GET that is not listed
    ("GET", "/api/v3/account"),
]


@pytest.mark.parametrize(("method", "path"), FORBIDDEN)
def test_everything_else_is_refused_before_a_byte_leaves(
    sim, gateway, governor, calls, method, path
):
    with pytest.raises(ForbiddenEndpoint):
        gateway.request(governor, method, path, {"symbol": "BTCUSDT", "amount": "1"})
    assert sim.request_log == []
    assert calls[-1].outcome == "forbidden" and calls[-1].endpoint == path
    with pytest.raises(ForbiddenEndpoint):
        gateway.session.request(method, sim.url + path)
    with pytest.raises(ForbiddenEndpoint):
        gateway.session.send(requests.Request(method, sim.url + path).prepare())
    assert sim.request_log == []


def test_another_host_is_refused(sim, gateway, governor, calls):
    other = sim.url.replace("127.0.0.1", "localhost")
    with pytest.raises(ForbiddenEndpoint):
        gateway.session.get(other + "/api/v3/time")
    assert sim.request_log == [] and calls[-1].outcome == "forbidden"


class _Redirector(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_redirect_is_refused_and_not_followed(sim, governor, calls):
    handler = type("Redirect", (_Redirector,), {"target": sim.url + "/api/v3/order"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        gateway = GovernorGateway(base, limits=RateLimits(), on_call=calls.append)
        with gateway, pytest.raises(ForbiddenEndpoint):
            gateway.own_permissions(governor)
    finally:
        server.shutdown()
        server.server_close()
    assert sim.request_log == [] and calls[-1].outcome == "forbidden"


def test_the_read_only_gateway_stays_read_only(sim):
    reader = BinanceGateway(sim.url, limits=RateLimits())
    with reader, pytest.raises(ForbiddenEndpoint):
        reader._transport.session.post(sim.url + CREATE)
    assert sim.request_log == []


# --- no secret anywhere --------------------------------------------------------------------------


def test_no_secret_in_exceptions_or_logs(sim, gateway, governor, caplog):
    caplog.set_level(logging.DEBUG)
    sim.add_sub_account(master="master", email=EMAIL)
    hmac_key = sim.add_key(account="master")
    wrong_private, _ = key_pair()
    impostor = Credentials(governor.api_key, wrong_private, KeyType.ED25519)
    bad_hmac = Credentials(hmac_key.api_key, "not-the-secret-" + "x" * 49, KeyType.HMAC)
    errors: list[Exception] = []
    for creds in (impostor, bad_hmac):
        with pytest.raises(BadSignature) as failure:
            gateway.sub_accounts(creds)
        errors.append(failure.value)
    sim.fail_kyc_ip_check = True
    with pytest.raises(GovernorRefused) as refused:
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    errors.append(refused.value)
    secrets = [
        *(line for line in wrong_private.splitlines() if "-----" not in line),
        *(line for line in governor.secret.splitlines() if "-----" not in line),
        bad_hmac.secret,
        hmac_key.secret,
    ]
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    # The bot's own records as they are; a library's (urllib3 logs a GET's signed URL at
    # DEBUG) as the handlers' redaction filter leaves them.
    texts += [
        record.getMessage() if record.name.startswith("bot.") else redact(record.getMessage())
        for record in caplog.records
    ]
    assert any(record.name.startswith("bot.binance") for record in caplog.records)
    for text in texts:
        assert "signature=" not in text
        for secret in secrets:
            assert secret not in text


def test_the_allow_list_is_exactly_the_documented_endpoints():
    assert set(GOVERNOR_ENDPOINTS) == {
        ("GET", "/api/v3/time"),
        ("GET", "/sapi/v1/account/apiRestrictions"),
        ("GET", "/sapi/v1/sub-account/list"),
        ("POST", "/sapi/v2/sub-account/subAccountApi"),
        ("DELETE", "/sapi/v1/sub-account/subAccountApi"),
        ("POST", "/sapi/v1/sub-account/subAccountApiPermission"),
        ("POST", "/sapi/v2/sub-account/subAccountApi/ipRestriction"),
        ("GET", "/sapi/v1/sub-account/subAccountApi/ipRestriction"),
        ("DELETE", "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList"),
    }
    assert {
        weight for (_, path), (_, weight) in GOVERNOR_ENDPOINTS.items() if "subAccountApi" in path
    } == {3000}


# --- bad input changes nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_pem", "ips"),
    [
        ("private", ["127.0.0.1"]),  # the private half offered as the public key
        ("not a key", ["127.0.0.1"]),
        ("public", ["127.0.0.1", "not-an-ip"]),
        ("public", []),
        ("public", [f"10.0.{n // 256}.{n % 256}" for n in range(60)]),  # over 500 characters
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    sim, gateway, governor, calls, public_pem, ips
):
    sim.add_sub_account(master="master", email=EMAIL)
    private, public = key_pair()
    pem = {"private": private, "public": public}.get(public_pem, public_pem)
    with pytest.raises(GovernorRefused) as refused:
        create(gateway, governor, public_pem=pem, ips=ips)
    assert refused.value.code is None and refused.value.user_message
    assert private not in str(refused.value)
    assert sim.request_log == []
    assert calls[-1].outcome == "GovernorRefused" and calls[-1].endpoint == CREATE


def test_fix_permissions_cannot_be_changed_after_creation(sim, gateway, governor):
    with pytest.raises(GovernorRefused):
        gateway.set_sub_account_key_permissions(
            governor,
            email=EMAIL,
            api_key="x" * 64,
            grant=SubAccountGrant(can_fix_api_reading=True),
        )
    assert sim.request_log == []


# --- recovery and uncertainty --------------------------------------------------------------------


def test_a_clock_behind_binance_is_resynced_once(sim, gateway, governor):
    sim.clock_skew_ms = 60_000  # Binance's clock a minute ahead: the first request is too old
    assert gateway.own_permissions(governor).enable_reading is True
    assert [r.code for r in sim.request_log] == [-1021, None, None]
    assert sim.request_log[1].path == "/api/v3/time"


def test_a_write_binance_fails_to_confirm_says_it_may_have_happened(sim, gateway, governor, calls):
    sim.add_sub_account(master="master", email=EMAIL)
    sim.inject_fault("502", path=CREATE)
    with pytest.raises(BinanceUnavailable) as unavailable:
        create(gateway, governor, public_pem=key_pair()[1], ips=["127.0.0.1"])
    assert "may or may not" in unavailable.value.user_message
    assert calls[-1].outcome == "BinanceUnavailable"
