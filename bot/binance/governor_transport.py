"""The governor's transport: its own allow-list, its own signing, its own session.

Separate from the read-only transport (``bot.binance.transport``), which stays GET-only: the
governor key may call exactly ``GOVERNOR_ENDPOINTS`` (method and path) on the configured host
and nothing else. The gate runs before a request is built, in the session's ``request`` and
again in its ``send``; redirects are never followed (``max_redirects = 0``) and a 3xx answer is
refused like any other endpoint. Anything else raises ``ForbiddenEndpoint`` before a byte
leaves the process.

Signing follows Binance's spot docs ("SIGNED (TRADE and USER_DATA) Endpoint security",
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security-type):
the signature covers totalParams, "the query string concatenated with the request body"; HMAC
SHA-256 in hex, RSA (PKCS#1 v1.5, SHA-256) and Ed25519 in base64, percent-encoded. Here a GET
carries everything in its query string and a POST / DELETE everything in a form-encoded body
(query string empty), so totalParams is that one string: the create call's ``publicKey``
travels only in the body, as its page requires ("must be in the request body; rejected in the
URL query string", Create Sub-account API Key V2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import eddsa, pkcs1_15
from requests.adapters import HTTPAdapter

from bot.binance.budget import LimitKind, RateLimits, current_account
from bot.binance.errors import BadKeyFormat, BinanceUnavailable, ForbiddenEndpoint
from bot.binance.gateway import Credentials
from bot.binance.transport import (
    API_KEY_CHARS,
    DEFAULT_403_PAUSE,
    DEFAULT_418_BAN,
    DEFAULT_429_PAUSE,
    ApiFailure,
    GatedSession,
    KeyType,
    error_code_of,
    load_private_key,
    retry_after_of,
    url_key,
)

TIME_PATH = "/api/v3/time"
API_RESTRICTIONS_PATH = "/sapi/v1/account/apiRestrictions"
SUB_ACCOUNT_LIST_PATH = "/sapi/v1/sub-account/list"
CREATE_KEY_PATH = "/sapi/v2/sub-account/subAccountApi"
DELETE_KEY_PATH = "/sapi/v1/sub-account/subAccountApi"
PERMISSION_PATH = "/sapi/v1/sub-account/subAccountApiPermission"
ADD_IPS_PATH = "/sapi/v2/sub-account/subAccountApi/ipRestriction"
IPS_PATH = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
DELETE_IPS_PATH = "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList"

# Everything the governor key may do, with each endpoint's limit and weight from its page:
#   time: Weight 1 of /api's shared 6,000 a minute (spot api docs, "General endpoints");
#   apiRestrictions: Weight(IP) 1 (https://developers.binance.com/docs/wallet/account/api-key-permission);
#   sub-account list: Weight(IP) 1
#     (https://developers.binance.com/docs/zh-CN/sub_account/account-management/Query-Sub-account-List);
#   the key management endpoints: Weight(UID) 3000 each, of each endpoint's own 180,000 a minute
#     (developers.binance.com/docs/sub_account/api-management/: Create-Sub-account-API-Key-V2,
#     Delete-Sub-account-API-Key, Modify-Sub-account-API-Key-Permission,
#     Add-IP-Restriction-for-Sub-Account-API-key, Get IP Restriction, Delete-IP-List-For-a-
#     Sub-account-API-Key; the UID minute limit: docs/products/caas/basics/4.rate-limits).
# Binance's catalog also names "Query Sub-account API Key (For Master Account)", a list of a
# sub-account's keys; the docs corpus holds neither its path nor its fields, so it is not here.
GOVERNOR_ENDPOINTS: Mapping[tuple[str, str], tuple[LimitKind, int]] = MappingProxyType(
    {
        ("GET", TIME_PATH): (LimitKind.API_IP, 1),
        ("GET", API_RESTRICTIONS_PATH): (LimitKind.SAPI_IP, 1),
        ("GET", SUB_ACCOUNT_LIST_PATH): (LimitKind.SAPI_IP, 1),
        ("POST", CREATE_KEY_PATH): (LimitKind.SAPI_UID, 3000),
        ("DELETE", DELETE_KEY_PATH): (LimitKind.SAPI_UID, 3000),
        ("POST", PERMISSION_PATH): (LimitKind.SAPI_UID, 3000),
        ("POST", ADD_IPS_PATH): (LimitKind.SAPI_UID, 3000),
        ("GET", IPS_PATH): (LimitKind.SAPI_UID, 3000),
        ("DELETE", DELETE_IPS_PATH): (LimitKind.SAPI_UID, 3000),
    }
)
UNSIGNED = frozenset({("GET", TIME_PATH)})


@dataclass(frozen=True)
class PreparedCall:
    """A signed request, not yet sent. ``repr`` leaves out the signed URL and body."""

    method: str
    path: str
    url: str = field(repr=False)
    body: str | None = field(repr=False)
    headers: dict[str, str] = field(repr=False)


def sign(creds: Credentials, payload: str) -> str:
    """The signature of ``payload`` with ``creds``, as Binance wants it for its key type."""
    if not API_KEY_CHARS.fullmatch(creds.api_key):
        raise BadKeyFormat(
            "The governor API key contains characters an API key never has. "
            "Check that exactly the key was entered."
        )
    if not creds.secret.strip():
        raise BadKeyFormat("The governor key's secret (or private key) is empty.", part="secret")
    data = payload.encode()
    if creds.key_type is KeyType.HMAC:
        return hmac.new(creds.secret.encode(), data, hashlib.sha256).hexdigest()
    key = load_private_key(creds.key_type, creds.secret)
    if isinstance(key, RSA.RsaKey):
        raw = pkcs1_15.new(key).sign(SHA256.new(data))
    else:
        raw = eddsa.new(key, "rfc8032").sign(data)
    return base64.b64encode(raw).decode()


# The governor sends through a gated session as the read-only transport does.
GovernorSession = GatedSession


class GovernorTransport:
    """Base URL, clock offset, budgets and the gated session of one governor gateway."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        recv_window_ms: int,
        limits: RateLimits,
        on_forbidden: Callable[[str, str], None],
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the Binance base URL must look like https://api.binance.com")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.recv_window_ms = recv_window_ms
        self.limits = limits
        self.clock_offset_ms = 0  # Binance's clock minus ours, learned on -1021
        self._on_forbidden = on_forbidden
        self._allowed = {
            (method, url_key(self.base_url + path)): path for method, path in GOVERNOR_ENDPOINTS
        }
        self.session = GovernorSession(self.session_gate)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def gate(self, method: str, url: str) -> str:
        """The allow-listed path of this request, or ``ForbiddenEndpoint``."""
        path = self._allowed.get((method.upper(), url_key(url)))
        if path is None:
            raise ForbiddenEndpoint(method, url, gateway="governor")
        return path

    def session_gate(self, method: str, url: str) -> str:
        """``gate`` for a request made on the session itself: a refusal is reported too."""
        try:
            return self.gate(method, url)
        except ForbiddenEndpoint as refused:
            self._on_forbidden(refused.method, urlsplit(url).path)
            raise

    def prepare(
        self, creds: Credentials | None, method: str, path: str, params: Mapping[str, Any]
    ) -> PreparedCall:
        """Gate, then sign: a GET in its query string, a POST / DELETE in a form body."""
        method = method.upper()
        url = self.base_url + path
        self.gate(method, url)  # before anything is built or signed
        if creds is None or (method, path) in UNSIGNED:
            query = urlencode(params)
            return PreparedCall(method, path, url + (f"?{query}" if query else ""), None, {})
        stamped = {
            **params,
            "recvWindow": self.recv_window_ms,
            "timestamp": int(time.time() * 1000) + self.clock_offset_ms,
        }
        payload = urlencode(stamped)
        signed = f"{payload}&signature={quote(sign(creds, payload), safe='')}"
        headers = {"X-MBX-APIKEY": creds.api_key}
        if method == "GET":
            return PreparedCall(method, path, f"{url}?{signed}", None, headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return PreparedCall(method, path, url, signed, headers)

    def send(self, call: PreparedCall) -> Any:
        """Book, send and check one prepared call: Binance's JSON answer, or ``ApiFailure`` /
        ``BinanceUnavailable`` / ``ForbiddenEndpoint`` (a redirect) / the budget's refusal."""
        kind, weight = GOVERNOR_ENDPOINTS[(call.method, call.path)]
        budget, weight, used_header = self.limits.booking(
            kind, call.path, weight, current_account()
        )
        budget.acquire(weight)
        try:
            response = self.session.request(
                call.method, call.url, data=call.body, headers=call.headers, timeout=self.timeout
            )
        except requests.TooManyRedirects as redirect:  # max_redirects 0: a 3xx came back
            answered = redirect.response
            location = answered.headers.get("Location", "?") if answered is not None else "?"
            raise ForbiddenEndpoint(call.method, location, gateway="governor") from None
        except requests.Timeout:
            raise BinanceUnavailable("Binance did not answer in time.", reason="timeout") from None
        except requests.RequestException:
            raise BinanceUnavailable("Binance could not be reached.", reason="connection") from None
        if used_header is not None:
            budget.observe(response.headers.get(used_header))
        status = response.status_code
        if 300 <= status < 400:  # never followed: wherever it points is not allow-listed here
            raise ForbiddenEndpoint(
                call.method, response.headers.get("Location", "?"), gateway="governor"
            )
        if 200 <= status < 300:
            try:
                return response.json() if response.content else {}
            except ValueError:
                raise BinanceUnavailable(
                    "Binance answered with something that is not JSON.",
                    reason="bad_response",
                    http_status=status,
                ) from None
        retry_after = retry_after_of(response)
        if status == 418:
            self.limits.ban_all(DEFAULT_418_BAN if retry_after is None else retry_after)
        elif status == 429:
            budget.pause(DEFAULT_429_PAUSE if retry_after is None else retry_after)
        elif status == 403:
            self.limits.pause_all(DEFAULT_403_PAUSE if retry_after is None else retry_after)
        raise ApiFailure(status, error_code_of(response), retry_after, budget)
