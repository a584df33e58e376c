"""The gateway: typed results and classified failures over the read-only transport.

Read-only by construction (``bot.binance.transport``): python-binance's single choke point and the
requests session underneath both refuse anything but a GET to ``READ_ENDPOINTS``, before a byte
is sent. Every failure is one of the classes in ``bot.binance.errors``; no raw exception
text (requests' carries the signed URL) and no secret ever leaves this module.

Rate limits are per IP, so every gateway of the process books its requests in one shared
``WeightBudget`` (``bot.binance.budget``); the withdraw history's limit is per account and per
second, so its reads name their account.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.binance.account import (
    HISTORY_PAGE_SIZE,
    AccountStatus,
    TradingStatus,
    TransferKind,
    TransferRow,
    WithdrawAddress,
    history_windows,
)
from bot.binance.budget import (
    DEFAULT_BUDGET,
    RateLimits,
    WeightBudget,
    on_account,
    shared_limits,
    waiting_up_to,
)
from bot.binance.errors import (
    BadKeyFormat,
    BadSignature,
    BinanceError,
    BinanceUnavailable,
    ClockDrift,
    ErrorDetails,
    IpBanned,
    KeyRejected,
    RateLimited,
    UnexpectedResponse,
)
from bot.binance.permissions import KeyPermissions
from bot.binance.read_only_client import ReadOnlyClient
from bot.binance.transport import (
    API_KEY_CHARS,
    DEFAULT_429_PAUSE,
    DEFAULT_BASE_URL,
    ApiFailure,
    KeyType,
    Transport,
    load_private_key,
)

log = logging.getLogger(__name__)

_KEY_PROBLEMS = (KeyRejected, BadKeyFormat, BadSignature)

T = TypeVar("T")


def mask_api_key(api_key: str) -> str:
    """First 4 and last 4 characters: enough for the owner to recognise the key."""
    key = api_key.strip()
    return f"{key[:4]}…{key[-4:]}" if len(key) > 12 else "…"


@dataclass(frozen=True)
class Credentials:
    """An API key and what signs for it: the HMAC secret, or the user's private key (PEM)."""

    api_key: str
    secret: str = field(repr=False)
    key_type: KeyType = KeyType.HMAC

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_type", KeyType(str(self.key_type).upper()))

    @property
    def masked(self) -> str:
        return mask_api_key(self.api_key)


@dataclass(frozen=True)
class CheckResult:
    """One key's outcome in ``check_many``: exactly one of ``permissions`` / ``error``."""

    api_key_masked: str
    permissions: KeyPermissions | None = None
    error: BinanceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --- the gateway ---------------------------------------------------------------------------


class BinanceGateway:
    """Typed, classified reads about keys; safe to share between threads."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        max_workers: int = 32,
        budget: WeightBudget | None = None,
        limits: RateLimits | None = None,
        weight_limit: int | None = None,
        recv_window_ms: int = 10_000,
        short_retry_after: float = 5.0,
        client_cache_size: int = 64,
    ) -> None:
        self.max_workers = max(1, max_workers)
        # Binance's limits are per IP, so one set per process: ``weight_limit`` picks the
        # shared set with that /api limit. ``limits`` injects a set; ``budget`` one budget that
        # every request counts against (tests and tools that want one knob).
        if limits is None:
            limits = (
                RateLimits.single(budget)
                if budget is not None
                else shared_limits(weight_limit or DEFAULT_BUDGET.limit).for_gateway()
            )
        self.limits = limits
        self.budget = limits.api  # the /api budget (and the only one of a single budget)
        self.short_retry_after = short_retry_after
        # Connection pool: check_many's workers plus callers from other threads (Slack handlers).
        pool = self.max_workers + 16
        self._transport = Transport(base_url, timeout, recv_window_ms, self.limits, pool)
        self._public = ReadOnlyClient(self._transport)
        # Recently used clients (an RSA key import costs ~10 ms). Small on purpose: each holds an
        # opened secret, and a team-wide check must not keep thousands of them in memory.
        self._clients: OrderedDict[Credentials, ReadOnlyClient] = OrderedDict()
        self._clients_lock = threading.Lock()
        self._cache_size = client_cache_size
        self._resync_lock = threading.Lock()
        self._synced_at = float("-inf")

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def clock_offset_ms(self) -> int:
        return self._transport.clock_offset_ms

    def close(self) -> None:
        with self._clients_lock:
            self._clients.clear()
        self._transport.session.close()

    def __enter__(self) -> BinanceGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reads ---------------------------------------------------------------------------

    def api_restrictions(self, creds: Credentials) -> KeyPermissions:
        """What Binance says this key may do (the only truth about a key)."""
        payload = self._call(creds, "apiRestrictions", lambda c: c.get_account_api_permissions())
        return KeyPermissions.from_api(_mapping(payload, creds))

    def check(self, creds: Credentials) -> CheckResult:
        """``api_restrictions`` that returns its failure instead of raising it."""
        try:
            return CheckResult(creds.masked, permissions=self.api_restrictions(creds))
        except BinanceError as error:
            return CheckResult(creds.masked, error=_detached(error))
        except Exception as exc:  # a bug must not sink the other keys of check_many
            log.error("unexpected %s checking key %s", type(exc).__name__, creds.masked)
            return CheckResult(creds.masked, error=BinanceUnavailable(reason="internal"))

    def check_many(
        self,
        creds_list: Iterable[Credentials],
        *,
        max_workers: int | None = None,
        patience: float | None = None,
    ) -> list[CheckResult]:
        """Check every key concurrently (bounded pool, shared budget); results in input order.

        ``patience``: how long each check may wait for request weight once the per-minute
        budget is spent (default: the budget's short wait). Background checks of more keys
        than one minute's weight allows pass a minute or more, and so pace themselves.
        """
        creds_list = list(creds_list)
        workers = min(max_workers or self.max_workers, len(creds_list))

        def check(creds: Credentials) -> CheckResult:
            with waiting_up_to(patience):
                return self.check(creds)

        if workers <= 1:
            return [check(c) for c in creds_list]
        # Each worker takes the next key itself: pool.map would make a Future (with its lock
        # and condition) for every key at once, ~12 MB for 10,000 keys.
        results: list[CheckResult | None] = [None] * len(creds_list)
        pending = iter(enumerate(creds_list))
        taking = threading.Lock()

        def work() -> None:
            while True:
                with taking:
                    item = next(pending, None)
                if item is None:
                    return
                index, creds = item
                results[index] = check(creds)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="binance-check") as pool:
            for worker in [pool.submit(work) for _ in range(workers)]:
                worker.result()  # a worker's failure is the caller's
        return [result for result in results if result is not None]

    def trading_status(self, creds: Credentials) -> TradingStatus:
        payload = self._call(
            creds, "apiTradingStatus", lambda c: c.get_account_api_trading_status()
        )
        return TradingStatus.from_api(_mapping(payload, creds))

    def account_status(self, creds: Credentials) -> AccountStatus:
        payload = self._call(creds, "accountStatus", lambda c: c.get_account_status())
        return AccountStatus.from_api(_mapping(payload, creds))

    def withdraw_history(
        self,
        creds: Credentials,
        *,
        start: datetime,
        end: datetime | None = None,
        account: str | None = None,
    ) -> list[TransferRow]:
        """Withdrawals from ``start`` to ``end``. Binance limits this read per second and per
        account (UID): ``account`` names the Binance account the key belongs to (any stable
        name, e.g. the bot's account id), so reads of different accounts do not wait for each
        other; without it, every unnamed read shares one allowance."""
        with on_account(account):
            return self._history(creds, TransferKind.WITHDRAWAL, start, end)

    def deposit_history(
        self, creds: Credentials, *, start: datetime, end: datetime | None = None
    ) -> list[TransferRow]:
        return self._history(creds, TransferKind.DEPOSIT, start, end)

    def withdraw_addresses(self, creds: Credentials) -> list[WithdrawAddress]:
        """The account's withdrawal address book, with each address's ``whiteStatus``."""
        payload = self._call(
            creds,
            "withdrawAddressList",
            lambda c: c.get_withdraw_address_list(),
        )
        if not isinstance(payload, list):
            raise UnexpectedResponse(key=creds.masked)
        return [WithdrawAddress.from_api(r) for r in payload if isinstance(r, Mapping)]

    def server_time(self) -> datetime:
        payload = self._call(None, "time", lambda c: c.get_server_time())
        return datetime.fromtimestamp(_server_millis(payload) / 1000, UTC)

    def client_for(self, creds: Credentials) -> ReadOnlyClient:
        """The (cached) read-only python-binance client for these credentials."""
        with self._clients_lock:
            client = self._clients.get(creds)
            if client is not None:
                self._clients.move_to_end(creds)
                return client
        client = self._make_client(creds)  # outside the lock: RSA key import takes ~10 ms
        with self._clients_lock:
            self._clients[creds] = client
            while len(self._clients) > self._cache_size:
                self._clients.popitem(last=False)
        return client

    def resync_clock(self) -> int:
        """Learn Binance's clock offset (shared by every later signed call); returns it in ms."""
        with self._resync_lock:
            return self._resync_locked()

    # --- internals --------------------------------------------------------------------------

    def _resync_locked(self) -> int:
        before = time.time()
        try:
            payload = self._public.get_server_time()
        except ApiFailure as failure:
            raise _classify(failure) from None
        after = time.time()
        offset = _server_millis(payload) - round((before + after) / 2 * 1000)
        self._transport.clock_offset_ms = offset
        self._synced_at = time.monotonic()
        log.info("resynchronised with Binance's clock: offset %d ms", offset)
        return offset

    def _history(
        self, creds: Credentials, kind: TransferKind, start: datetime, end: datetime | None
    ) -> list[TransferRow]:
        rows: list[TransferRow] = []
        for start_ms, end_ms in history_windows(start, end or datetime.now(UTC)):
            offset = 0
            while True:
                params = {"startTime": start_ms, "endTime": end_ms, "offset": offset}
                params["limit"] = HISTORY_PAGE_SIZE
                page = self._call(creds, kind.endpoint_name, _history_request(kind, params))
                if not isinstance(page, list):
                    raise UnexpectedResponse(key=creds.masked)
                rows += [TransferRow.from_api(kind, r) for r in page if isinstance(r, Mapping)]
                if len(page) < HISTORY_PAGE_SIZE:
                    break
                offset += len(page)
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(rows, key=lambda r: r.time or epoch)

    def _make_client(self, creds: Credentials) -> ReadOnlyClient:
        if not API_KEY_CHARS.fullmatch(creds.api_key):
            raise BadKeyFormat(
                "This API key contains spaces or characters an API key never has. "
                "Check that exactly the key was pasted."
            )
        if not creds.secret.strip():
            raise BadKeyFormat("The secret (or private key) is empty.", part="secret")
        if creds.key_type is KeyType.HMAC:
            return ReadOnlyClient(self._transport, creds.api_key, creds.secret)
        key = load_private_key(creds.key_type, creds.secret)
        return ReadOnlyClient(self._transport, creds.api_key, private_key=key)

    def _call(
        self, creds: Credentials | None, what: str, request: Callable[[ReadOnlyClient], T]
    ) -> T:
        masked = creds.masked if creds is not None else "-"
        try:
            client = self._public if creds is None else self.client_for(creds)
            return self._with_recovery(client, request)
        except BinanceError as error:
            if creds is not None and error.key is None:
                error.key = masked
            level = logging.INFO if isinstance(error, _KEY_PROBLEMS) else logging.WARNING
            log.log(
                level,
                "binance %s for key %s: %s (HTTP %s, code %s)",
                what,
                masked,
                type(error).__name__,
                error.http_status,
                error.code,
            )
            raise

    def _with_recovery(self, client: ReadOnlyClient, request: Callable[[ReadOnlyClient], T]) -> T:
        """One resync + retry on -1021; one wait + retry on a 429 with a short Retry-After."""
        resynced = rate_retried = False
        while True:
            sent_at = time.monotonic()
            try:
                return request(client)
            except ApiFailure as failure:
                budget = failure.budget or self.budget  # the limit this request counted against
                if failure.status == 418:
                    until = budget.banned_until or datetime.now(UTC)
                    raise IpBanned(until, http_status=418, code=failure.code) from None
                if failure.status == 429 or failure.code == -1003:
                    wait = DEFAULT_429_PAUSE if failure.retry_after is None else failure.retry_after
                    budget.pause(wait)
                    if (
                        not rate_retried
                        and wait <= self.short_retry_after
                        and budget.wait_for_pause(wait + 1.0)
                    ):
                        rate_retried = True
                        continue
                    raise RateLimited(
                        wait, period=budget.period, http_status=failure.status, code=failure.code
                    ) from None
                if failure.code == -1021 and not resynced:
                    resynced = True
                    self._resync_after(sent_at)
                    continue
                raise _classify(failure) from None

    def _resync_after(self, sent_at: float) -> None:
        """Resync once, unless another thread already did after our request was signed."""
        with self._resync_lock:
            if self._synced_at > sent_at:
                return
            try:
                self._resync_locked()
            except BinanceError:
                raise ClockDrift(code=-1021) from None


def _detached(error: BinanceError) -> BinanceError:
    """``error`` without its traceback and the exception it replaced: a result outlives the
    call, and their frames hold the key's client (with the secret it signs with), the
    request and the response. A team-wide check keeps thousands of results at once."""
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    return error


def _classify(failure: ApiFailure) -> BinanceError:
    status, code = failure.status, failure.code
    kw: ErrorDetails = {"code": code, "http_status": status}
    if code in (-2015, -2008):
        return KeyRejected(**kw)
    if code == -2014:
        return BadKeyFormat(**kw)
    if code == -1022:
        return BadSignature(**kw)
    if code == -1021:
        return ClockDrift(**kw)
    if status == 403:
        return BinanceUnavailable(
            "Binance's web application firewall is refusing requests from this bot's address "
            "(usually for about five minutes); the bot waits before asking again.",
            reason="waf_blocked",
            **kw,
        )
    if status >= 500:
        return BinanceUnavailable(reason="server_error", **kw)
    if code is None:
        return BinanceUnavailable(reason="bad_response", **kw)
    return UnexpectedResponse(**kw)


def _mapping(payload: Any, creds: Credentials) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise UnexpectedResponse(key=creds.masked)
    return payload


def _server_millis(payload: Any) -> int:
    value = payload.get("serverTime") if isinstance(payload, Mapping) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise UnexpectedResponse("Binance's server time answer could not be read.")
    return value


def _history_request(kind: TransferKind, params: dict[str, Any]) -> Callable[[ReadOnlyClient], Any]:
    if kind is TransferKind.WITHDRAWAL:
        return lambda c: c.get_withdraw_history(**params)
    return lambda c: c.get_deposit_history(**params)
