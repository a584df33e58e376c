"""A local Binance REST API that python-binance talks to unchanged.

A real HTTP/1.1 server on 127.0.0.1 (keep-alive, one daemon thread per connection) holding accounts
and API keys with permissions. Like Binance it verifies ``X-MBX-APIKEY``, ``timestamp`` /
``recvWindow`` and the signature of the raw query string (HMAC-SHA256 hex, Ed25519 and RSA
PKCS#1 v1.5 SHA-256 base64), answers Binance's error bodies, counts request weight per minute
(``X-MBX-USED-WEIGHT-1M``, 429 + ``Retry-After``) and can add latency and inject faults. Every
request, including ones to unknown paths, lands in ``request_log``.

Used by the tests, the benchmarks and the offline sandbox::

    with BinanceSimulator() as sim:
        key = sim.add_key(key_type="ED25519", permissions={"enableSpotAndMarginTrading": True})
        client = Client(key.api_key, private_key=key.secret, ping=False)
        client.API_URL, client.MARGIN_API_URL = sim.url + "/api", sim.url + "/sapi"
        client.get_account_api_permissions()

Run it alone with ``python -m bot.sandbox.binance_simulator --demo``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import math
import secrets
import string
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from bot.sandbox import binance_subaccounts as subaccounts
from bot.sandbox.binance_reply import MSG_REJECTED, MSG_TOO_MUCH
from bot.sandbox.binance_reply import Reply as _Reply
from bot.sandbox.binance_subaccounts import SimSubAccount
from bot.sandbox.local_server import LocalServer, LocalService, TrackedHandler

KEY_TYPES = ("HMAC", "ED25519", "RSA")
PERMISSION_FIELDS = (
    "enableReading",
    "enableSpotAndMarginTrading",
    "enableWithdrawals",
    "enableInternalTransfer",
    "permitsUniversalTransfer",
    "enableMargin",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
    "enableFixReadOnly",
)
FAULT_KINDS = ("timeout", "500", "502", "503", "403", "429", "418", "-1021", "-1003")
TIME_PATH = "/api/v3/time"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
WINDOW_MS = 60_000
# Binance's request limits, from its docs (developers.binance.com/docs/products/caas/basics/
# 4.rate-limits, and each endpoint's page for its weight):
#   /api/*  every endpoint shares 6,000 weight a minute per IP: X-MBX-USED-WEIGHT-1M;
#   /sapi/* each IP-limited endpoint has its own 12,000 a minute: X-SAPI-USED-IP-WEIGHT-1M;
#           the withdraw history, UID-limited, its own 180,000 a SECOND per account:
#           X-SAPI-USED-UID-WEIGHT-1S (counted in ``_withdraw_history``).
# Past a limit the answer is 429 with Retry-After (the minute's, or the second's, end).
API_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
SAPI_IP_WEIGHT_HEADER = "X-SAPI-USED-IP-WEIGHT-1M"
API_WEIGHT_LIMIT = 6_000
SAPI_IP_WEIGHT_LIMIT = 12_000

# Binance's own error bodies.
MSG_BAD_FORMAT = "API-key format invalid."
MSG_INVALID_ID = "Invalid Api-Key ID."
MSG_NO_TIMESTAMP = "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
MSG_RECV_WINDOW = "Timestamp for this request is outside of the recvWindow."
MSG_BAD_RECV_WINDOW = "recvWindow must be less than 60000."
MSG_SIGNATURE = "Signature for this request is not valid."
MSG_ILLEGAL = "Illegal characters found in a parameter."
MSG_UNKNOWN_PATH = "An unknown error occurred while processing the request."
MSG_BANNED = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)
MSG_QUEUED = "Too many requests queued."
# Spot error -1127 INVALID_INTERVAL, as Binance words it for a too wide startTime..endTime
# (https://developers.binance.com/docs/binance-spot-api-docs/errors).
MSG_INTERVAL = "More than {hours} hours between startTime and endTime."

# The withdraw history (https://developers.binance.com/docs/wallet/capital/withdraw-history):
# "Weight(UID): 18000, Request limit: 10 requests per second. This endpoint specifically uses
# per second UID rate limit, user's total second level UID rate limit is 180000/second.
# Response from the endpoint contains header key X-SAPI-USED-UID-WEIGHT-1S, which defines
# weight used by the current UID." (10 requests a second is the same count: 180,000 / 18,000.)
# startTime..endTime "must be less than 90 days".
WITHDRAW_HISTORY_PATH = "/sapi/v1/capital/withdraw/history"
WITHDRAW_HISTORY_UID_WEIGHT = 18_000
UID_WEIGHT_PER_SECOND = 180_000
SECOND_MS = 1000
HISTORY_SPAN_MS = 90 * 24 * 3600 * 1000
UID_WEIGHT_HEADER = "X-SAPI-USED-UID-WEIGHT-1S"
GATEWAY_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

_ALNUM = string.ascii_letters + string.digits

# A request's headers: http.server's (looked up in any case), or a plain mapping.
Headers: TypeAlias = "Mapping[str, str] | Message[str, str]"


def _random_alnum(n: int = 64) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _is_api_key_format(value: str) -> bool:
    return len(value) == 64 and all(ch in _ALNUM for ch in value)


def _utc_string(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class SimKey:
    """One API key as the simulator holds it. ``secret`` is what a user would paste into the bot:
    the HMAC secret, or for Ed25519/RSA the private key (PKCS8 PEM, unencrypted)."""

    api_key: str
    secret: str = field(repr=False)
    key_type: str
    account: str
    permissions: dict[str, bool]
    ip_restrict: bool
    create_time: int
    trading_authority_expiration_time: int | None
    deleted: bool = False
    ip_allowed: bool = True
    # The key's trusted IPs, when Binance knows them (keys made through the sub-account API):
    # with ``ip_restrict`` on, a request from any other TCP peer address is rejected -2015.
    ip_list: list[str] | None = None
    # Fields Binance may add to apiRestrictions later (e.g. a new ``enable…`` permission), sent
    # verbatim after the documented ones. Binance has grown this object over time: the current
    # "Get API Key Permission (USER_DATA)" page lists enableFixApiTrade, enableFixReadOnly and
    # enablePortfolioMarginTrading, which older versions of the same page did not
    # (https://developers.binance.com/docs/wallet/account/api-key-permission).
    extra_fields: dict[str, Any] = field(default_factory=dict)
    _public_key: Any = field(default=None, repr=False, compare=False)

    def restrictions(self) -> dict[str, Any]:
        """The body of ``GET /sapi/v1/account/apiRestrictions`` for this key."""
        body: dict[str, Any] = {"ipRestrict": self.ip_restrict, "createTime": self.create_time}
        body.update(self.permissions)
        for name, value in self.extra_fields.items():
            body.setdefault(name, value)
        if self.trading_authority_expiration_time is not None:
            body["tradingAuthorityExpirationTime"] = self.trading_authority_expiration_time
        return body

    def verify(self, payload: str, signature: str) -> bool:
        """Does ``signature`` (URL-decoded query value) sign ``payload`` with this key?"""
        if self.key_type == "HMAC":
            expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected.encode(), signature.lower().encode())
        try:
            raw = base64.b64decode(signature.replace(" ", "+"), validate=True)
            if self.key_type == "ED25519":
                self._public_key.verify(raw, payload.encode())
            else:
                self._public_key.verify(raw, payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SimRequest:
    method: str
    path: str
    params: dict[str, str]  # query string and body parameters, without ``signature``
    api_key: str | None  # the X-MBX-APIKEY header as received
    status: int  # HTTP status answered; 0 when an injected "timeout" never answered
    code: int | None  # Binance error code of the body, if any
    at: float  # time.time() when the request arrived
    query: dict[str, str] = field(default_factory=dict)  # the query string's, alone
    body: dict[str, str] = field(default_factory=dict)  # the form body's, alone
    client_ip: str = ""  # the TCP peer address


@dataclass
class _Fault:
    kind: str
    remaining: int
    path: str | None

    def matches(self, path: str) -> bool:
        if self.path is not None:
            return path.endswith(self.path)
        return path != TIME_PATH


def _generate_key_material(key_type: str) -> tuple[str, Any]:
    """(secret as the user holds it, public key object for verification)."""
    if key_type == "HMAC":
        return _random_alnum(64), None
    if key_type == "ED25519":
        private: Any = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "RSA":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"key_type must be one of {KEY_TYPES}, not {key_type!r}")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, private.public_key()


class BinanceSimulator(LocalService):
    """See the module docstring. All public methods are thread-safe."""

    thread_name = "binance-simulator"
    service_name = "the simulator"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        weight_limit: int = API_WEIGHT_LIMIT,
        sapi_ip_limit: int = SAPI_IP_WEIGHT_LIMIT,
        latency: float = 0.0,
        clock_skew_ms: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.weight_limit = weight_limit  # the /api budget shared by every /api endpoint
        self.sapi_ip_limit = sapi_ip_limit  # each IP-limited /sapi endpoint's own budget
        self.latency = latency
        self.clock_skew_ms = clock_skew_ms
        self.hang_seconds: float = 30.0
        self.retry_after_seconds: int = 2
        self.request_log: list[SimRequest] = []
        self.count_429 = 0
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)  # notified as each request is logged
        self._keys: dict[str, SimKey] = {}
        self._withdrawals: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._deposits: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._addresses: dict[str, list[dict[str, Any]]] = {}
        # Per account (Binance's UID): (second, UID weight used in it).
        self._uid_weight: dict[str, tuple[int, int]] = {}
        self._faults: list[_Fault] = []
        # IP weight counted per limit ("/api" shared, or a /sapi path): (minute index, weight).
        self._ip_weight: dict[str, tuple[int, int]] = {}
        # Master accounts' sub-accounts, by email (bot.sandbox.binance_subaccounts).
        self.sub_accounts: dict[str, SimSubAccount] = {}
        # UID weight of each (account, UID-limited endpoint) per minute: (minute, weight).
        self.uid_minute_weight: dict[tuple[str, str], tuple[int, int]] = {}
        self.sapi_uid_limit = subaccounts.UID_LIMIT_PER_MINUTE
        # A switchable fault: the caller fails Binance's KYC IP restriction check.
        self.fail_kyc_ip_check = False

    # ------------------------------------------------------------------ lifecycle
    # start() / stop() / with: LocalService; stop() also wakes requests sleeping in latency or
    # hanging in a "timeout".
    @property
    def url(self) -> str:
        return self._base_url()

    def server_time_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    # ------------------------------------------------------------------ keys
    def add_key(
        self,
        *,
        account: str = "main",
        key_type: str = "HMAC",
        permissions: Mapping[str, bool] | None = None,
        ip_restrict: bool = False,
        create_time: int | None = None,
        trading_authority_expiration_time: int | None = None,
        extra_fields: Mapping[str, Any] | None = None,
    ) -> SimKey:
        """A key Binance would answer for. ``permissions``: the documented flags to switch on
        (or off); ``extra_fields``: fields Binance does not document (yet), e.g. a permission it
        adds later, returned as given."""
        flags = dict.fromkeys(PERMISSION_FIELDS, False)
        flags["enableReading"] = True
        flags.update(_checked_flags(permissions or {}))
        key_type = key_type.upper()
        secret, public_key = _generate_key_material(key_type)
        key = SimKey(
            api_key=_random_alnum(64),
            secret=secret,
            key_type=key_type,
            account=account,
            permissions=flags,
            ip_restrict=ip_restrict,
            create_time=self.server_time_ms() if create_time is None else create_time,
            trading_authority_expiration_time=trading_authority_expiration_time,
            extra_fields=_checked_extra(extra_fields or {}),
            _public_key=public_key,
        )
        with self._lock:
            self._keys[key.api_key] = key
        return key

    def add_self_generated_key(
        self,
        public_key_pem: str,
        *,
        account: str = "main",
        permissions: Mapping[str, bool] | None = None,
        ip_restrict: bool = False,
        extra_fields: Mapping[str, Any] | None = None,
    ) -> SimKey:
        """A "self-generated" key, as Binance's API management makes one from an uploaded
        public key: Ed25519, or RSA of 2048 or 4096 bits
        (https://developers.binance.com/docs/binance-spot-api-docs/faqs/api_key_types).
        Binance never sees the private key, so neither does the simulator: ``secret`` is empty
        and signatures are verified with the uploaded public key."""
        public_key = serialization.load_pem_public_key(public_key_pem.strip().encode())
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            key_type = "ED25519"
        elif isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size in (2048, 4096):
            key_type = "RSA"
        else:
            raise ValueError("Binance takes Ed25519 or RSA 2048/4096 public keys only")
        flags = dict.fromkeys(PERMISSION_FIELDS, False)
        flags["enableReading"] = True
        flags.update(_checked_flags(permissions or {}))
        key = SimKey(
            api_key=_random_alnum(64),
            secret="",
            key_type=key_type,
            account=account,
            permissions=flags,
            ip_restrict=ip_restrict,
            create_time=self.server_time_ms(),
            trading_authority_expiration_time=None,
            extra_fields=_checked_extra(extra_fields or {}),
            _public_key=public_key,
        )
        with self._lock:
            self._keys[key.api_key] = key
        return key

    def get_key(self, api_key: str) -> SimKey:
        with self._lock:
            try:
                return self._keys[api_key]
            except KeyError:
                raise KeyError(f"no such simulator key: {api_key[:8]}...") from None

    def delete_key(self, api_key: str) -> None:
        with self._lock:
            self.get_key(api_key).deleted = True

    def set_permissions(self, api_key: str, **flags: bool) -> None:
        checked = _checked_flags(flags)
        with self._lock:
            self.get_key(api_key).permissions.update(checked)

    def set_extra_fields(self, api_key: str, **fields: Any) -> None:
        """Fields Binance may add to the key's apiRestrictions answer later (see SimKey)."""
        checked = _checked_extra(fields)
        with self._lock:
            self.get_key(api_key).extra_fields.update(checked)

    def set_ip_restrict(self, api_key: str, value: bool) -> None:
        with self._lock:
            self.get_key(api_key).ip_restrict = bool(value)

    def set_ip_allowed(self, api_key: str, value: bool) -> None:
        with self._lock:
            self.get_key(api_key).ip_allowed = bool(value)

    # ------------------------------------------------------------------ sub-accounts
    def add_sub_account(
        self, *, master: str = "master", email: str, asset_management: bool = False
    ) -> str:
        """A sub-account of ``master`` (the ``account`` of the master's keys); its email."""
        with self._lock:
            self.sub_accounts[email] = SimSubAccount(
                master=master,
                email=email,
                sub_user_id=len(self.sub_accounts) + 1,
                create_time=self.server_time_ms(),
                asset_management=asset_management,
            )
        return email

    def keys_of(self, account: str) -> list[SimKey]:
        """Every key of ``account`` (a sub-account's email, for keys made through the API)."""
        with self._lock:
            return [key for key in self._keys.values() if key.account == account]

    # ------------------------------------------------------------------ history
    def add_withdrawal(
        self,
        account: str,
        *,
        coin: str,
        amount: str,
        address: str,
        network: str = "BSC",
        status: int = 6,
        apply_time_ms: int,
        tx_id: str | None = None,
        id: str | None = None,
    ) -> dict[str, Any]:
        record = {
            "id": id or secrets.token_hex(16),
            "amount": amount,
            "transactionFee": "0",
            "coin": coin,
            "status": status,
            "address": address,
            "txId": tx_id if tx_id is not None else "0x" + secrets.token_hex(32),
            "applyTime": _utc_string(apply_time_ms),
            "network": network,
            "transferType": 0,
            "info": "",
            "confirmNo": 12,
            "walletType": 0,
            "txKey": "",
            "completeTime": _utc_string(apply_time_ms + 60_000),
        }
        with self._lock:
            self._withdrawals.setdefault(account, []).append((apply_time_ms, record))
        return dict(record)

    def add_deposit(
        self,
        account: str,
        *,
        coin: str,
        amount: str,
        address: str,
        network: str = "BSC",
        status: int = 1,
        insert_time_ms: int,
        tx_id: str | None = None,
    ) -> dict[str, Any]:
        record = {
            "id": str(secrets.randbelow(10**18)),
            "amount": amount,
            "coin": coin,
            "network": network,
            "status": status,
            "address": address,
            "addressTag": "",
            "txId": tx_id if tx_id is not None else "0x" + secrets.token_hex(32),
            "insertTime": insert_time_ms,
            "transferType": 0,
            "confirmTimes": "12/12",
            "unlockConfirm": 0,
            "walletType": 0,
        }
        with self._lock:
            self._deposits.setdefault(account, []).append((insert_time_ms, record))
        return dict(record)

    def add_withdraw_address(
        self,
        account: str,
        *,
        address: str,
        coin: str = "USDT",
        network: str = "BSC",
        name: str = "",
        white_status: bool = True,
    ) -> dict[str, Any]:
        """An entry of the account's withdrawal address book, with Binance's fields
        (https://developers.binance.com/docs/wallet/capital/fetch-withdraw-address)."""
        record = {
            "address": address,
            "addressTag": "",
            "coin": coin,
            "name": name,
            "network": network,
            "origin": "",
            "originType": "others",
            "whiteStatus": white_status,
        }
        with self._lock:
            self._addresses.setdefault(account, []).append(record)
        return dict(record)

    def set_address_whitelisted(self, account: str, address: str, value: bool) -> None:
        with self._lock:
            for record in self._addresses.get(account, []):
                if record["address"] == address:
                    record["whiteStatus"] = bool(value)

    # ------------------------------------------------------------------ faults, weight, log
    def inject_fault(self, kind: str, *, count: int = 1, path: str | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, count, path))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def used_weight(self, path: str = "/api") -> int:
        """The weight counted this minute against ``path``'s limit: any /api path (default)
        the shared /api budget; an IP-limited /sapi path, that endpoint's own budget."""
        counter = _ip_counter(path)
        with self._lock:
            window, used = self._ip_weight.get(counter, (-1, 0))
            return used if window == self.server_time_ms() // WINDOW_MS else 0

    def wait_for_request(
        self,
        predicate: Callable[[SimRequest], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> SimRequest:
        """The first request of ``request_log`` past its first ``after`` entries that matches
        ``predicate``, waiting up to ``timeout`` s for it. A request is logged as it arrives,
        before ``latency`` holds back its answer: tests wait for it rather than sleep. (A test
        hook, not Binance behaviour: Binance offers no such thing.)"""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for request in self.request_log[after:]:
                    if predicate is None or predicate(request):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = ", ".join(f"{r.method} {r.path}" for r in self.request_log[after:])
                    raise AssertionError(
                        f"no matching request reached the simulator within {timeout}s;"
                        f" arrived: {seen or 'none'}"
                    )
                self._arrived.wait(remaining)

    def reset(self) -> None:
        with self._lock:
            self.request_log.clear()
            self._faults.clear()
            self._ip_weight.clear()
            self.count_429 = 0
            self._uid_weight.clear()
            self.uid_minute_weight.clear()

    # ------------------------------------------------------------------ request handling
    def _add_weight(self, counter: str, weight: int) -> tuple[int, int]:
        """Count ``weight`` against ``counter`` in this minute; (used weight, seconds until the
        minute ends). Binance counts per calendar minute: the count resets as one begins."""
        now = self.server_time_ms()
        window = now // WINDOW_MS
        with self._lock:
            last, used = self._ip_weight.get(counter, (window, 0))
            used = (used if last == window else 0) + weight
            self._ip_weight[counter] = (window, used)
        return used, max(1, math.ceil(((window + 1) * WINDOW_MS - now) / 1000))

    def _ip_limit(self, counter: str) -> tuple[int, str]:
        """The limit and the header of an IP weight counter."""
        if counter == "/api":
            return self.weight_limit, API_WEIGHT_HEADER
        return self.sapi_ip_limit, SAPI_IP_WEIGHT_HEADER

    def _take_fault(self, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(path):
                    fault.remaining -= 1
                    return fault.kind
        return None

    def _fault_reply(self, kind: str) -> _Reply:
        if kind == "timeout":
            return _Reply(0, None, hang=True)
        if kind in ("500", "502", "503"):
            status = int(kind)
            reason = GATEWAY_REASONS[status]
            html = (
                f"<html><head><title>{status} {reason}</title></head><body>"
                f"<center><h1>{status} {reason}</h1></center></body></html>"
            )
            return _Reply(status, html)
        if kind == "-1021":
            return _Reply.error(400, -1021, MSG_RECV_WINDOW)
        if kind == "403":
            # Binance's docs: "HTTP 403 return code is used when the WAF Limit (Web Application
            # Firewall) has been violated" (spot api docs, "HTTP Return Codes"); an HTML page.
            return _Reply(403, "<html><head><title>403 Forbidden</title></head></html>")
        retry = self.retry_after_seconds
        if kind == "418":
            until = self.server_time_ms() + retry * 1000
            return _Reply.error(418, -1003, MSG_BANNED.format(until=until), retry)
        if kind == "429":
            msg = MSG_TOO_MUCH.format(limit=self.weight_limit, period="MINUTE")
            return _Reply.error(429, -1003, msg, retry)
        return _Reply.error(429, -1003, MSG_QUEUED)  # "-1003": a 429 without Retry-After

    def _answer(
        self,
        method: str,
        path: str,
        raw_query: str,
        headers: Headers,
        raw_body: str = "",
        client_ip: str = "127.0.0.1",
    ) -> tuple[_Reply, dict[str, str], dict[str, str]]:
        """Decide the reply to one request: (reply, params without signature, the weight
        header of the limit it counts against). Parameters may come in the query string or a
        form body; "If a parameter sent in both the query string and request body, the query
        string parameter will be used" (spot api docs, "General API Information")."""
        query = _form(raw_query)
        params = {**_form(raw_body), **query}
        route = _ROUTES.get(path) if method == "GET" else None
        sub_route = subaccounts.ROUTES.get((method, path))
        ip_weight = route[1] if route else (sub_route.ip_weight if sub_route else 1)
        used_headers: dict[str, str] = {}
        reset_in, over = 0, None
        if ip_weight > 0:  # a UID-limited endpoint has no IP weight
            counter = _ip_counter(path)
            weight, reset_in = self._add_weight(counter, ip_weight)
            limit, header = self._ip_limit(counter)
            used_headers[header] = str(weight)
            over = limit if weight > limit else None
        kind = self._take_fault(path)
        if kind is not None:
            return self._fault_reply(kind), params, used_headers
        if over is not None:
            msg = MSG_TOO_MUCH.format(limit=over, period="MINUTE")
            return _Reply.error(429, -1003, msg, reset_in), params, used_headers
        if route is None and sub_route is None:
            return _Reply.error(404, -1000, MSG_UNKNOWN_PATH), params, used_headers
        key: SimKey | None = None
        if sub_route is not None or (route is not None and route[2]):
            key_or_error = self._authenticate(raw_query, headers, raw_body, client_ip)
            if isinstance(key_or_error, _Reply):
                return key_or_error, params, used_headers
            key = key_or_error
        if sub_route is not None and key is not None:
            call = subaccounts.SubAccountCall(params, query, client_ip)
            with self._lock:
                try:
                    return subaccounts.answer(sub_route, self, key, call), params, used_headers
                except ValueError:
                    return _Reply.error(400, -1100, MSG_ILLEGAL), params, used_headers
        assert route is not None
        handler = route[0]
        try:
            with self._lock:  # a consistent view while tests change keys from other threads
                body = handler(self, key, params)
            if isinstance(body, _Reply):
                return body, params, used_headers
            return _Reply(200, body), params, used_headers
        except ValueError:
            return _Reply.error(400, -1100, MSG_ILLEGAL), params, used_headers

    def _authenticate(
        self, raw_query: str, headers: Headers, raw_body: str = "", client_ip: str = "127.0.0.1"
    ) -> SimKey | _Reply:
        """Binance's checks for a signed endpoint, in Binance's order. The signature covers
        totalParams, "the query string concatenated with the request body" (spot api docs,
        https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security-type),
        and may itself be in either; a key with an IP list admits only its TCP peers."""
        api_key = headers.get("X-MBX-APIKEY")
        if api_key is None or not _is_api_key_format(api_key):
            return _Reply.error(401, -2014, MSG_BAD_FORMAT)
        with self._lock:
            key = self._keys.get(api_key)
            if key is None:
                return _Reply.error(401, -2008, MSG_INVALID_ID)
            if key.deleted or not key.ip_allowed:
                return _Reply.error(401, -2015, MSG_REJECTED)
            if key.ip_restrict and key.ip_list is not None and client_ip not in key.ip_list:
                return _Reply.error(401, -2015, MSG_REJECTED)
        signatures: list[str] = []
        payloads: list[str] = []
        for raw in (raw_query, raw_body):
            parts = raw.split("&") if raw else []
            signatures += [p[len("signature=") :] for p in parts if p.startswith("signature=")]
            payloads.append("&".join(p for p in parts if not p.startswith("signature=")))
        payload = "".join(payloads)
        params = {**_form(payloads[1]), **_form(payloads[0])}
        try:
            timestamp = int(params["timestamp"])
        except (KeyError, ValueError):
            return _Reply.error(400, -1102, MSG_NO_TIMESTAMP)
        try:
            recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except ValueError:
            return _Reply.error(400, -1100, MSG_ILLEGAL)
        if recv_window > MAX_RECV_WINDOW_MS:
            return _Reply.error(400, -1131, MSG_BAD_RECV_WINDOW)
        now = self.server_time_ms()
        if not (now - recv_window <= timestamp <= now + 1000):
            return _Reply.error(400, -1021, MSG_RECV_WINDOW)
        if not signatures or not key.verify(payload, unquote(signatures[-1])):
            return _Reply.error(400, -1022, MSG_SIGNATURE)
        return key

    def _withdraw_history(self, key: SimKey, params: dict[str, str]) -> Any:
        """The withdraw history behind its own limit: 18,000 of the account's 180,000 UID
        weight a second, counted per calendar second like Binance's other counters (429 -1003
        past it, Retry-After the second's end), a window under 90 days (-1127)."""
        now_ms = self.server_time_ms()
        second = now_ms // SECOND_MS
        reset_in = max(1, math.ceil(((second + 1) * SECOND_MS - now_ms) / 1000))
        last_second, weight = self._uid_weight.get(key.account, (second, 0))
        weight = (weight if last_second == second else 0) + WITHDRAW_HISTORY_UID_WEIGHT
        self._uid_weight[key.account] = (second, weight)
        headers = {UID_WEIGHT_HEADER: str(weight)}
        if weight > UID_WEIGHT_PER_SECOND:
            msg = MSG_TOO_MUCH.format(limit=UID_WEIGHT_PER_SECOND, period="SECOND")
            return _Reply(429, {"code": -1003, "msg": msg}, -1003, reset_in, headers=headers)
        # "If both startTime and endTime are sent, time between startTime and endTime must be
        # less than 90 days."
        both = "startTime" in params and "endTime" in params
        if both and int(params["endTime"]) - int(params["startTime"]) >= HISTORY_SPAN_MS:
            msg = MSG_INTERVAL.format(hours=HISTORY_SPAN_MS // 3_600_000)
            return _Reply(400, {"code": -1127, "msg": msg}, -1127, headers=headers)
        return _Reply(200, self._history(self._withdrawals, key.account, params), headers=headers)

    def _history(
        self,
        store: dict[str, list[tuple[int, dict[str, Any]]]],
        account: str,
        params: dict[str, Any],
    ) -> list[dict[str, Any]]:
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 1000))
        with self._lock:
            rows = [
                (at, dict(rec))
                for at, rec in store.get(account, [])
                if start <= at <= end
                and params.get("coin", rec["coin"]) == rec["coin"]
                and int(params.get("status", rec["status"])) == rec["status"]
            ]
        rows.sort(key=lambda row: row[0], reverse=True)
        return [rec for _, rec in rows][offset : offset + limit]


def _checked_flags(flags: Mapping[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(flags) - set(PERMISSION_FIELDS))
    if unknown:
        raise ValueError(f"unknown permission flag(s) {unknown}; known: {PERMISSION_FIELDS}")
    return {name: bool(value) for name, value in flags.items()}


def _checked_extra(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Undocumented fields only: a documented one is set with ``permissions`` / its setter."""
    documented = {*PERMISSION_FIELDS, "ipRestrict", "createTime", "tradingAuthorityExpirationTime"}
    clash = sorted(set(fields) & documented)
    if clash:
        raise ValueError(f"{clash} are documented fields: set them with permissions=")
    return dict(fields)


# ---------------------------------------------------------------------- endpoints
_Endpoint = Callable[[BinanceSimulator, Any, dict[str, str]], Any]  # (sim, SimKey, params)
_TRADING_STATUS = {
    "data": {
        "isLocked": False,
        "plannedRecoverTime": 0,
        "triggerCondition": {"GCR": 150, "IFER": 150, "UFR": 300},
        "updateTime": 0,
    }
}

# GET path -> (endpoint, request weight, signed)
_ROUTES: dict[str, tuple[_Endpoint, int, bool]] = {
    "/api/v3/ping": (lambda sim, key, params: {}, 1, False),
    TIME_PATH: (lambda sim, key, params: {"serverTime": sim.server_time_ms()}, 1, False),
    "/sapi/v1/account/apiRestrictions": (lambda sim, key, params: key.restrictions(), 1, True),
    "/sapi/v1/account/apiTradingStatus": (lambda sim, key, params: _TRADING_STATUS, 1, True),
    "/sapi/v1/account/status": (lambda sim, key, params: {"data": "Normal"}, 1, True),
    # UID-limited: no IP weight (its 18,000 of the account's UID weight: _withdraw_history).
    WITHDRAW_HISTORY_PATH: (lambda sim, key, params: sim._withdraw_history(key, params), 0, True),
    # No parameters; Weight(IP) 10 (https://developers.binance.com/docs/wallet/capital/fetch-withdraw-address).
    "/sapi/v1/capital/withdraw/address/list": (
        lambda sim, key, params: [dict(r) for r in sim._addresses.get(key.account, [])],
        10,
        True,
    ),
    "/sapi/v1/capital/deposit/hisrec": (
        lambda sim, key, params: sim._history(sim._deposits, key.account, params),
        1,
        True,
    ),
}


def _form(raw: str) -> dict[str, str]:
    """Form-encoded parameters (query string or body), without ``signature``."""
    return {k: v for k, v in parse_qsl(raw, keep_blank_values=True) if k != "signature"}


def _ip_counter(path: str) -> str:
    """Which IP limit a path counts against: "/api" (shared by all of /api) or the /sapi path."""
    return path if path.startswith("/sapi/") else "/api"


# ---------------------------------------------------------------------- HTTP plumbing
class _Handler(TrackedHandler):
    server_version = "BinanceSimulator/1.0"
    json_content_type = "application/json;charset=UTF-8"
    server: LocalServer[BinanceSimulator]

    def _handle(self) -> None:
        sim = self.server.owner
        arrived = time.time()
        raw_body = self.read_body().decode("utf-8", errors="replace")
        split = urlsplit(self.path)
        client_ip = str(self.client_address[0])
        reply, params, weight_headers = sim._answer(
            self.command, split.path, split.query, self.headers, raw_body, client_ip
        )
        api_key = self.headers.get("X-MBX-APIKEY")
        with sim._lock:
            if reply.status == 429:
                sim.count_429 += 1
            sim.request_log.append(
                SimRequest(
                    self.command,
                    split.path,
                    params,
                    api_key,
                    reply.status,
                    reply.code,
                    arrived,
                    query=_form(split.query),
                    body=_form(raw_body),
                    client_ip=client_ip,
                )
            )
            sim._arrived.notify_all()
        if reply.hang:
            sim._stopping.wait(sim.hang_seconds)
            self.close_connection = True  # drop the connection without an answer
            return
        if sim.latency > 0:
            sim._stopping.wait(sim.latency)
        headers = {**weight_headers, **reply.headers}
        if reply.retry_after is not None:
            headers["Retry-After"] = str(reply.retry_after)
        self.send_reply(reply.status, reply.body, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


BinanceSimulator.handler_class = _Handler


# ---------------------------------------------------------------------- demo and CLI
def seed_demo(sim: BinanceSimulator) -> dict[str, SimKey]:
    """Demo keys on account "demo", one per situation the bot should explain."""
    day_ms = 86_400_000
    keys = {
        "healthy-reader": sim.add_key(account="demo", key_type="ED25519", ip_restrict=True),
        "withdrawer": sim.add_key(
            account="demo",
            key_type="HMAC",
            permissions={"enableSpotAndMarginTrading": True, "enableWithdrawals": True},
            ip_restrict=True,
        ),
        "no-whitelist": sim.add_key(
            account="demo",
            key_type="HMAC",
            permissions={"enableSpotAndMarginTrading": True},
            ip_restrict=False,
            create_time=sim.server_time_ms() - 20 * day_ms,
            trading_authority_expiration_time=sim.server_time_ms() + 10 * day_ms,
        ),
        "deleted": sim.add_key(account="demo", key_type="ED25519"),
    }
    sim.delete_key(keys["deleted"].api_key)
    return keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.binance_simulator",
        description="Run a local Binance REST API simulator until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument("--demo", action="store_true", help='add the demo keys (account "demo")')
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--weight-limit", type=int, default=6000)
    args = parser.parse_args(argv)

    sim = BinanceSimulator(
        host=args.host,
        port=args.port,
        weight_limit=args.weight_limit,
        latency=args.latency_ms / 1000,
    )

    def announce() -> None:
        print(f"Binance simulator listening on {sim.url}  (BINANCE_API_URL={sim.url})", flush=True)
        if args.demo:
            # These keys are fake and exist only inside this process. Printing their secrets is
            # acceptable here, in the simulator's own CLI, so that a sandbox user can paste them
            # into the bot; nothing else in the project may ever print a secret.
            for label, key in seed_demo(sim).items():
                state = " (deleted)" if key.deleted else ""
                print(f"\n{label}{state}: {key.key_type}\n  api key: {key.api_key}")
                print("  secret:  " + key.secret.strip().replace("\n", "\n           "))
            sys.stdout.flush()

    sim.run_until_interrupted(announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
