"""The transport under the gateway: allow-listed GETs, one budget, one session per gateway.

Read-only by construction: ``TransportSession`` (the session python-binance is given, see
``bot.binance.read_only_client``) and the ``ReadOnlySession`` underneath, which sends, both
refuse anything but a GET to ``READ_ENDPOINTS`` before a byte is sent. Keys are loaded by their
declared type. Non-2xx answers become ``ApiFailure`` (status, code, Retry-After), which the
gateway classifies; network failures are already classified here, without their raw text
(requests' exceptions carry the signed URL).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import requests
from Crypto.PublicKey import ECC, RSA
from requests.adapters import HTTPAdapter

from bot.binance.budget import (
    LimitKind,
    RateLimits,
    WeightBudget,
    current_account,
)
from bot.binance.errors import (
    BadKeyFormat,
    BinanceUnavailable,
    ForbiddenEndpoint,
    IpBanned,
    RateLimited,
)
from bot.secret_shapes import PEM_BLOCK

DEFAULT_BASE_URL = "https://api.binance.com"

WITHDRAW_HISTORY_PATH = "/sapi/v1/capital/withdraw/history"
WITHDRAW_ADDRESSES_PATH = "/sapi/v1/capital/withdraw/address/list"

# The only requests the gateway can make: GET to these paths. Each counts against one of
# Binance's limits (``LimitKind``: /api share one IP budget; each /sapi endpoint has its own, per
# IP or per account) with the weight its page in Binance's docs gives:
#   time, ping: Weight 1 of /api's shared 6,000 a minute (spot api docs, "General endpoints");
#   apiRestrictions, apiTradingStatus, account status, deposit history: Weight(IP) 1 of their
#     own 12,000 (developers.binance.com/docs/wallet/...: api-key-permission,
#     account-api-trading-status, account-status, capital/deposite-history);
#   withdraw address list: Weight(IP) 10 (docs/wallet/capital/fetch-withdraw-address);
#   withdraw history: Weight(UID) 18,000 of the account's own 180,000 a SECOND (header
#     X-SAPI-USED-UID-WEIGHT-1S), that is at most 10 requests a second per account
#     (docs/wallet/capital/withdraw-history).
ENDPOINTS: Mapping[str, tuple[LimitKind, int]] = MappingProxyType(
    {
        "/api/v3/time": (LimitKind.API_IP, 1),
        "/api/v3/ping": (LimitKind.API_IP, 1),
        "/sapi/v1/account/apiRestrictions": (LimitKind.SAPI_IP, 1),
        "/sapi/v1/account/apiTradingStatus": (LimitKind.SAPI_IP, 1),
        "/sapi/v1/account/status": (LimitKind.SAPI_IP, 1),
        WITHDRAW_HISTORY_PATH: (LimitKind.SAPI_UID_PER_SECOND, 18_000),
        "/sapi/v1/capital/deposit/hisrec": (LimitKind.SAPI_IP, 1),
        WITHDRAW_ADDRESSES_PATH: (LimitKind.SAPI_IP, 10),
    }
)
# The allow-list with each path's weight (in the limit ENDPOINTS names).
READ_ENDPOINTS: Mapping[str, int] = MappingProxyType(
    {path: weight for path, (_kind, weight) in ENDPOINTS.items()}
)


DEFAULT_429_PAUSE = 60.0  # seconds, when a 429 comes without Retry-After
DEFAULT_418_BAN = 120.0  # seconds, when a 418 comes without Retry-After
# HTTP 403: Binance's web application firewall blocks this IP; its docs say to back off, and
# such blocks usually lift after about five minutes.
DEFAULT_403_PAUSE = 300.0
API_KEY_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII: anything else cannot be a header

# Told of every request's outcome, (endpoint path, outcome): ok, http_403, http_418, http_429,
# http_4xx, http_5xx, timeout, connection, bad_response, or refused (the budget did not let
# it go). The metrics (bot.observability) listen here, so this package imports nothing of theirs.
CALL_OBSERVERS: list[Callable[[str, str], None]] = []


PrivateKey = RSA.RsaKey | ECC.EccKey  # what python-binance signs RSA and Ed25519 requests with


class KeyType(StrEnum):
    HMAC = "HMAC"
    ED25519 = "ED25519"
    RSA = "RSA"


# --- keys ---------------------------------------------------------------------------------


def normalise_pem(text: str) -> tuple[str, str]:
    """(label, PEM) with canonical line breaks, whatever Slack or a clipboard did to them.

    CRLF, spaces instead of newlines, indentation, a missing header (bare base64) are all fine.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    match = PEM_BLOCK.search(text)
    label, body = (match.group(1), match.group(2)) if match else ("PRIVATE KEY", text)
    body = "".join(body.split())
    if not body or not re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body):
        raise BadKeyFormat(_PRIVATE_KEY_HELP, part="secret")
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return label, f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


_PRIVATE_KEY_HELP = (
    "The private key could not be read. Paste the whole unencrypted private key in PEM form "
    "(from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----) that belongs to this API key."
)


def load_private_key(key_type: KeyType, pem_text: str) -> PrivateKey:
    """The pycryptodome key python-binance signs with, chosen by the declared type.

    python-binance would guess RSA from the text's length (> 120 chars); the declared type is
    what counts here. Anything unreadable is a classified ``BadKeyFormat``.
    """
    label, pem = normalise_pem(pem_text)
    if "PUBLIC" in label:
        raise BadKeyFormat(
            "This is the public key. Paste the private key instead: the public key is the one "
            "registered with Binance, the private key stays with you.",
            part="secret",
        )
    if "ENCRYPTED" in label:
        raise BadKeyFormat(
            "This private key is protected by a passphrase; paste an unencrypted one.",
            part="secret",
        )
    key: PrivateKey
    try:
        if key_type is KeyType.RSA:
            key = RSA.import_key(pem)
            usable = key.has_private()
        else:
            key = ECC.import_key(pem)
            usable = key.has_private() and key.curve == "Ed25519"
    except Exception:  # pycryptodome raises ValueError, IndexError, TypeError...: all "unreadable"
        usable = False
    if not usable:
        raise BadKeyFormat(
            f"{_PRIVATE_KEY_HELP} It must be an {key_type.value} private key.", part="secret"
        ) from None
    return key


# --- transport: the read-only choke point ----------------------------------------------------


class ApiFailure(Exception):
    """A non-2xx answer, parsed safely; the gateway classifies it (some need recovery)."""

    def __init__(
        self,
        status: int,
        code: int | None,
        retry_after: float | None,
        budget: WeightBudget | None = None,
    ) -> None:
        super().__init__(status, code)
        self.status, self.code, self.retry_after = status, code, retry_after
        self.budget = budget  # the budget of the limit this request counted against


def url_key(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower(), parts.path


class GatedSession(requests.Session):
    """Defence in depth: every request is gated (``gate`` raises ForbiddenEndpoint) when it is
    made and again when it is sent, and no redirect is ever followed. The read-only transport
    and the governor's each send through one, with their own allow-list."""

    def __init__(self, gate: Callable[[str, str], str]) -> None:
        super().__init__()
        self._gate = gate
        self.max_redirects = 0

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self._gate(as_text(method), as_text(url))
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self._gate(str(request.method), str(request.url))
        kwargs["allow_redirects"] = False
        return super().send(request, **kwargs)


# Below python-binance: even a direct session call cannot write.
ReadOnlySession = GatedSession


class Transport:
    """What every client of one gateway shares: base URL, session, clock offset, budget."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        recv_window_ms: int,
        limits: RateLimits | WeightBudget,
        pool: int,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the Binance base URL must look like https://api.binance.com")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.recv_window_ms = recv_window_ms
        self.limits = limits if isinstance(limits, RateLimits) else RateLimits.single(limits)
        self.clock_offset_ms = 0  # Binance's clock minus ours, learned on -1021
        self._allowed = {url_key(self.base_url + path): path for path in READ_ENDPOINTS}
        self.session = ReadOnlySession(self.gate)
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # The session python-binance is given: it gates, then hands each request to get().
        self.client_session = TransportSession(self)

    def gate(self, method: str, url: str) -> str:
        """The allow-listed path of a GET, or ``ForbiddenEndpoint``."""
        path = self._allowed.get(url_key(url))
        if method.upper() != "GET" or path is None:
            raise ForbiddenEndpoint(method, url)
        return path

    def get(
        self, path: str, url: str, params: Any, headers: Mapping[str, str]
    ) -> requests.Response:
        """Book, send and check one allow-listed GET: a 2xx answer whose body is JSON (or
        empty), or ``ApiFailure`` / ``BinanceUnavailable`` / the budget's refusal."""
        outcome = "ok"
        try:
            return self._get(path, url, params, headers)
        except ApiFailure as failure:
            outcome = _outcome_of(failure.status)
            raise
        except BinanceUnavailable as exc:
            outcome = exc.reason
            raise
        except (RateLimited, IpBanned):
            outcome = "refused"
            raise
        finally:
            for observer in CALL_OBSERVERS:
                observer(path, outcome)

    def _get(
        self, path: str, url: str, params: Any, headers: Mapping[str, str]
    ) -> requests.Response:
        kind, weight = ENDPOINTS[path]
        budget, weight, used_header = self.limits.booking(kind, path, weight, current_account())
        budget.acquire(weight)
        try:
            response = self.session.get(
                url, params=params, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise BinanceUnavailable(
                "Binance did not answer in time. Try again later.", reason="timeout"
            ) from None
        except requests.RequestException:
            raise BinanceUnavailable(
                "Binance could not be reached. Try again later.", reason="connection"
            ) from None
        if used_header is not None:
            budget.observe(response.headers.get(used_header))
        status = response.status_code
        if 200 <= status < 300:
            try:
                if response.content:
                    response.json()  # read again by python-binance; a bad body is ours to classify
                return response
            except ValueError:
                raise BinanceUnavailable(
                    "Binance answered with something that is not JSON. Try again later.",
                    reason="bad_response",
                    http_status=status,
                ) from None
        retry_after = retry_after_of(response)
        if status == 418:  # this IP is banned: every budget waits out the ban
            self.limits.ban_all(DEFAULT_418_BAN if retry_after is None else retry_after)
        elif status == 429:  # this limit is spent: its budget pauses, the others go on
            budget.pause(DEFAULT_429_PAUSE if retry_after is None else retry_after)
        elif status == 403:  # the firewall blocks this IP: nothing is sent for a while
            self.limits.pause_all(DEFAULT_403_PAUSE if retry_after is None else retry_after)
        raise ApiFailure(status, error_code_of(response), retry_after, budget)


def _outcome_of(status: int) -> str:
    if status in (403, 418, 429):
        return f"http_{status}"
    return "http_5xx" if status >= 500 else "http_4xx"


def retry_after_of(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, TypeError, ValueError):
        return None


def error_code_of(response: requests.Response) -> int | None:
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


class TransportSession(requests.Session):
    """The session a client library (python-binance) is given to send through; one per gateway.

    It sends nothing itself: each request is gated (a GET to an allow-listed path, no body),
    then handed to the transport, which books it in the budget, sends it through
    ``ReadOnlySession`` and checks the answer. Auth a library passes per request (requests'
    ``auth=``) is applied as requests would apply it: that is how the API key travels, since
    this session is shared by every key and carries none. The library's other requests options
    (timeout, proxies, redirects) give way to the transport's.
    """

    def __init__(self, transport: Transport) -> None:
        super().__init__()
        self._transport = transport

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        method, url = as_text(method), as_text(url)
        path = self._transport.gate(method, url)  # before anything else is looked at
        if args or any(kwargs.get(part) for part in ("data", "json", "files")):
            raise ForbiddenEndpoint(method, url)  # a read carries no body
        prepared = requests.Request(
            "GET", url, headers=kwargs.get("headers"), auth=kwargs.get("auth")
        ).prepare()
        return self._transport.get(path, url, kwargs.get("params"), prepared.headers)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        return self.request(
            str(request.method), str(request.url), headers=request.headers, data=request.body
        )


def as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
