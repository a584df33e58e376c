"""The simulator's sub-account API management (issue 23), driven by raw signed HTTP requests:
signatures over query string + body, body-only publicKey, UID weights and their header, the
documented refusals, and IP lists enforced on the TCP peer address."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bot.sandbox.binance_simulator import BinanceSimulator, SimKey

CREATE = "/sapi/v2/sub-account/subAccountApi"
DELETE = "/sapi/v1/sub-account/subAccountApi"
PERMISSION = "/sapi/v1/sub-account/subAccountApiPermission"
ADD_IPS = "/sapi/v2/sub-account/subAccountApi/ipRestriction"
GET_IPS = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
DELETE_IPS = "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList"
LIST = "/sapi/v1/sub-account/list"


def ed25519_public_pem() -> str:
    private = ed25519.Ed25519PrivateKey.generate()
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def call(
    sim: BinanceSimulator,
    key: SimKey,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    query: dict[str, Any] | None = None,
) -> requests.Response:
    """A request signed as Binance says: HMAC of totalParams, the query string concatenated
    with the request body (the signature goes at the end of the body, or of the query string
    when there is no body)."""
    query = {**(query or {})}
    body = dict(body or {})
    target = body if method != "GET" else query
    target.update(timestamp=sim.server_time_ms(), recvWindow=5000)
    query_text, body_text = urlencode(query), urlencode(body)
    signature = hmac.new(
        key.secret.encode(), (query_text + body_text).encode(), hashlib.sha256
    ).hexdigest()
    if method == "GET":
        query_text += f"&signature={signature}"
    else:
        body_text += f"&signature={signature}"
    url = sim.url + path + (f"?{query_text}" if query_text else "")
    return requests.request(
        method,
        url,
        data=body_text or None,
        headers={
            "X-MBX-APIKEY": key.api_key,
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=5,
    )


@pytest.fixture
def master(sim: BinanceSimulator) -> SimKey:
    """The master account's governor key: HMAC, with spot trading (the IP-list endpoints ask
    for it), restricted to nothing in particular."""
    return sim.add_key(account="master", permissions={"enableSpotAndMarginTrading": True})


def create(sim: BinanceSimulator, master: SimKey, email: str, **extra: Any) -> requests.Response:
    body = {"email": email, "apiName": "bot", "status": 2, "ipAddress": "127.0.0.1"}
    body.update(publicKey=ed25519_public_pem(), canTrade="true")
    body.update(extra)
    return call(sim, master, "POST", CREATE, body)


def test_create_makes_a_key_of_the_sub_account_verified_by_the_uploaded_key(sim, master):
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    answer = create(sim, master, email)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["canTrade"] is True and body["canFuturesTrade"] is False
    assert body["status"] == 2 and body["ipList"] == ["127.0.0.1"]
    assert "secretKey" not in body  # Binance never sees a self-generated key's private half
    key = sim.get_key(body["apiKey"])
    assert key.account == email and key.key_type == "ED25519"
    assert key.permissions["enableSpotAndMarginTrading"] is True
    assert key.ip_restrict is True and key.ip_list == ["127.0.0.1"]
    # UID weight 3000 of the endpoint's own 180,000 a minute, in Binance's header.
    assert answer.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "3000"


def test_a_tampered_body_fails_the_signature(sim, master):
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    body = {"email": email, "apiName": "bot", "status": 1, "canTrade": "false"}
    body.update(timestamp=sim.server_time_ms())
    text = urlencode(body)
    signature = hmac.new(master.secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    tampered = text.replace("canTrade=false", "canTrade=true") + f"&signature={signature}"
    answer = requests.post(
        sim.url + CREATE,
        data=tampered,
        headers={"X-MBX-APIKEY": master.api_key},
        timeout=5,
    )
    assert answer.json()["code"] == -1022
    assert sim.keys_of(email) == []


def test_public_key_in_the_query_string_is_refused(sim, master):
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    body = {"email": email, "apiName": "bot", "status": 1}
    answer = call(sim, master, "POST", CREATE, body, query={"publicKey": ed25519_public_pem()})
    assert answer.status_code == 400
    assert answer.json()["code"] == -1130
    assert sim.keys_of(email) == []


def test_fix_permissions_need_an_ed25519_key(sim, master):
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    body = {"email": email, "apiName": "bot", "status": 1, "canFixApiTrading": "true"}
    answer = call(sim, master, "POST", CREATE, body)  # no publicKey: an HMAC key
    assert answer.json() == {"code": -9000, "msg": "Unsupported operation"}
    assert sim.keys_of(email) == []


def test_asset_management_sub_accounts_are_not_supported(sim, master):
    email = sim.add_sub_account(master="master", email="asset@example.com", asset_management=True)
    assert create(sim, master, email).json()["code"] == -9000
    assert sim.keys_of(email) == []


def test_only_the_callers_own_sub_accounts(sim, master):
    sim.add_sub_account(master="other-master", email="theirs@example.com")
    answer = create(sim, master, "theirs@example.com")
    assert answer.status_code == 400 and answer.json()["code"] == -1130
    assert sim.keys_of("theirs@example.com") == []
    mine = sim.add_sub_account(master="master", email="mine@example.com")
    stranger = sim.add_key(account="someone-else")
    answer = call(
        sim, master, "DELETE", DELETE, {"email": mine, "subAccountApiKey": stranger.api_key}
    )
    assert answer.json()["code"] == -1130
    assert not sim.get_key(stranger.api_key).deleted


def test_the_kyc_ip_check_fault(sim, master):
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    sim.fail_kyc_ip_check = True
    answer = create(sim, master, email)
    assert answer.status_code == 400 and answer.json()["code"] == -1002
    assert sim.keys_of(email) == []


def test_uid_weight_past_the_minute_limit_is_429_with_retry_after(sim, master):
    sim.sapi_uid_limit = 6_000  # two calls a minute instead of sixty
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    assert create(sim, master, email).status_code == 200
    assert create(sim, master, email).status_code == 200
    third = create(sim, master, email)
    assert third.status_code == 429 and third.json()["code"] == -1003
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert len(sim.keys_of(email)) == 2


def test_delete_permission_and_ip_list_round_trip(sim, master):
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    api_key = create(sim, master, email).json()["apiKey"]
    ident = {"email": email, "subAccountApiKey": api_key}

    changed = call(sim, master, "POST", PERMISSION, {**ident, "canFuturesTrade": "true"})
    assert changed.json()["canFuturesTrade"] is True and changed.json()["canTrade"] is True
    assert sim.get_key(api_key).permissions["enableFutures"] is True

    added = call(sim, master, "POST", ADD_IPS, {**ident, "status": "2", "ipAddress": "10.0.0.1"})
    assert added.json()["status"] == "2"
    assert added.json()["ipList"] == ["127.0.0.1", "10.0.0.1"]
    listed = call(sim, master, "GET", GET_IPS, query=ident).json()
    assert listed["ipRestrict"] == "true" and listed["ipList"] == ["127.0.0.1", "10.0.0.1"]
    removed = call(sim, master, "DELETE", DELETE_IPS, {**ident, "ipAddress": "127.0.0.1"})
    assert removed.json()["ipList"] == ["10.0.0.1"]

    assert call(sim, master, "DELETE", DELETE, ident).json() == {}
    assert sim.get_key(api_key).deleted


def test_ip_list_endpoints_need_spot_trading_on_the_callers_key(sim):
    reader = sim.add_key(account="master")  # read-only governor
    email = sim.add_sub_account(master="master", email="bot1@example.com")
    api_key = sim.add_key(account=email).api_key
    ident = {"email": email, "subAccountApiKey": api_key}
    answer = call(sim, reader, "POST", ADD_IPS, {**ident, "status": "2", "ipAddress": "10.0.0.1"})
    assert answer.status_code == 401 and answer.json()["code"] == -2015


def test_sub_account_list_pages(sim, master):
    for n in range(3):
        sim.add_sub_account(master="master", email=f"bot{n}@example.com")
    sim.add_sub_account(master="other", email="not-mine@example.com")
    first = call(sim, master, "GET", LIST, query={}).json()["subAccounts"]
    assert [row["email"] for row in first] == ["bot0@example.com"]  # limit defaults to 1
    page = call(sim, master, "GET", LIST, query={"page": 2, "limit": 2}).json()["subAccounts"]
    assert [row["email"] for row in page] == ["bot2@example.com"]
    assert set(page[0]) >= {"email", "isFreeze", "createTime", "isManagedSubAccount"}
    assert page[0]["isAssetManagementSubAccount"] is False


def _restrictions_from(sim: BinanceSimulator, key: SimKey, source_ip: str) -> dict[str, Any]:
    """GET apiRestrictions signed with ``key`` (HMAC), sent from ``source_ip``."""
    query = urlencode({"timestamp": sim.server_time_ms()})
    signature = hmac.new(key.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    parts = urlsplit(sim.url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=5, source_address=(source_ip, 0)
    )
    try:
        connection.request(
            "GET",
            f"/sapi/v1/account/apiRestrictions?{query}&signature={signature}",
            headers={"X-MBX-APIKEY": key.api_key},
        )
        answer: dict[str, Any] = json.loads(connection.getresponse().read())
        return answer
    finally:
        connection.close()


def test_an_ip_list_admits_only_its_addresses_by_tcp_peer(sim):
    key = sim.add_key(account="bot1@example.com", ip_restrict=True)
    key.ip_list = ["127.0.0.1"]
    assert "ipRestrict" in _restrictions_from(sim, key, "127.0.0.1")
    assert _restrictions_from(sim, key, "127.0.0.2")["code"] == -2015  # the thief
