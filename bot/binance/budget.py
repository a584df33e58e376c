"""Request-weight budgets: Binance limits weight per IP (shared by every key) and, for some
endpoints, per account (UID).

A budget is a sliding log of the weight this process has sent over one window (a minute; a
second for the withdraw history). A sliding window is stricter than Binance's counter per
calendar minute or second (any window holds at most ``capacity``), so it needs no agreement
with Binance's clock about where one starts. It also learns from the used-weight header of its
limit (``X-MBX-USED-WEIGHT-1M`` and the like): weight Binance counts that this process did not
send (another process on the same IP or account) is booked as well.

- ``acquire`` books weight before a request is sent, waiting a bounded time when the budget is
  spent; past that bound it raises ``RateLimited`` without sending. Interactive callers wait
  briefly; background work (the daily drift check) runs inside ``waiting_up_to`` and paces
  itself across minutes instead of giving up.
- ``pause`` (after HTTP 429) makes every caller wait until ``Retry-After`` has passed.
- ``ban`` (after HTTP 418) makes every caller fail fast with ``IpBanned`` until the ban ends.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from bot.binance.errors import IpBanned, RateLimited

DEFAULT_WEIGHT_LIMIT = 6000  # Binance's /api REQUEST_WEIGHT per minute per IP
DEFAULT_SAFETY = 0.8  # never plan to use more than this fraction of the limit
DEFAULT_MAX_WAIT = 10.0  # seconds a caller may block waiting for weight

# How long requests made in this context may wait for weight (see ``waiting_up_to``).
_PATIENCE: ContextVar[float | None] = ContextVar("binance_weight_patience", default=None)
# Whose (which Binance account's) UID limit requests made in this context count against.
_ACCOUNT: ContextVar[str | None] = ContextVar("binance_account", default=None)


@contextmanager
def waiting_up_to(seconds: float | None) -> Iterator[None]:
    """Within the block (this thread / context), a request waits up to ``seconds`` for weight
    instead of the budget's ``max_wait``. ``None`` changes nothing."""
    if seconds is None:
        yield
        return
    token = _PATIENCE.set(seconds)
    try:
        yield
    finally:
        _PATIENCE.reset(token)


@contextmanager
def on_account(account: str | None) -> Iterator[None]:
    """Within the block, requests to UID-limited endpoints count against ``account``'s own
    budget (any stable name of the Binance account: the bot's account id). ``None``: one budget
    shared by every request that names no account (stricter than Binance, never looser)."""
    token = _ACCOUNT.set(account)
    try:
        yield
    finally:
        _ACCOUNT.reset(token)


def current_account() -> str | None:
    return _ACCOUNT.get()


@dataclass(frozen=True)
class BudgetStats:
    capacity: int
    used: int  # weight booked in the last window (own requests and learned foreign weight)
    sent: int  # requests booked since start
    refused: int  # requests refused without sending (budget spent, paused or banned)
    waited_seconds: float  # total time callers spent blocked


class WeightBudget:
    """Thread-safe; share one instance between every gateway of the process."""

    def __init__(
        self,
        limit: int = DEFAULT_WEIGHT_LIMIT,
        *,
        safety: float = DEFAULT_SAFETY,
        window_seconds: float = 60.0,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        period: str = "minute",
    ) -> None:
        if limit < 1 or not 0 < safety <= 1:
            raise ValueError("limit must be >= 1 and 0 < safety <= 1")
        self.limit = limit
        self.capacity = max(1, math.floor(limit * safety))
        self.window_seconds = window_seconds
        self.period = period  # the interval Binance counts this limit in, for people
        self.max_wait = max_wait
        self._clock = clock
        self._wall_clock = wall_clock
        self._cond = threading.Condition()
        self._log: deque[tuple[float, int]] = deque()  # (booked at, weight)
        self._used = 0
        self._paused_until = 0.0
        self._banned_until = 0.0
        self._banned_until_wall = 0.0
        self._sent = 0
        self._refused = 0
        self._waited = 0.0

    # --- before sending ---------------------------------------------------------------

    def acquire(self, weight: int = 1, *, max_wait: float | None = None) -> None:
        """Book ``weight`` now, or wait for it up to ``max_wait`` s (else the context's
        ``waiting_up_to``, else the budget's); past that raise, sending nothing."""
        if max_wait is None:
            patience = _PATIENCE.get()
            max_wait = self.max_wait if patience is None else patience
        start = self._clock()
        deadline = start + max_wait
        with self._cond:
            while True:
                now = self._clock()
                if self._banned_until > now:
                    self._refused += 1
                    raise IpBanned(datetime.fromtimestamp(self._banned_until_wall, UTC))
                self._prune(now)
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif weight > self.capacity:
                    self._refused += 1
                    raise RateLimited(self.window_seconds, period=self.period)
                elif self._used + weight <= self.capacity:
                    self._book(now, weight)
                    self._sent += 1
                    self._waited += now - start
                    return
                else:
                    wait = self._time_until_free(now, weight)
                if now + wait > deadline:
                    # Waiting would not help within the bound: fail now rather than later.
                    self._refused += 1
                    self._waited += now - start
                    raise RateLimited(wait, period=self.period)
                self._cond.wait(wait)

    def wait_for_pause(self, max_wait: float) -> bool:
        """Block until a 429 pause is over (at most ``max_wait`` s). True if it is over."""
        deadline = self._clock() + max_wait
        with self._cond:
            while True:
                now = self._clock()
                if self._paused_until <= now:
                    return True
                if now >= deadline:
                    return False
                self._cond.wait(min(self._paused_until, deadline) - now)

    # --- after a response -------------------------------------------------------------

    def observe(self, used_weight_header: str | int | None) -> None:
        """Learn from the limit's used-weight header (``X-MBX-USED-WEIGHT-1M``,
        ``X-SAPI-USED-UID-WEIGHT-1S``...): book weight Binance counts that we did not send."""
        try:
            server_used = int(used_weight_header)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        with self._cond:
            now = self._clock()
            self._prune(now)
            if server_used > self._used:
                self._book(now, server_used - self._used)

    def pause(self, seconds: float) -> None:
        """HTTP 429: nobody sends until ``seconds`` have passed."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
            self._cond.notify_all()

    def ban(self, seconds: float) -> None:
        """HTTP 418: every call fails fast until ``seconds`` have passed."""
        with self._cond:
            until = self._clock() + max(0.0, seconds)
            if until > self._banned_until:
                self._banned_until = until
                self._banned_until_wall = self._wall_clock() + max(0.0, seconds)
            self._cond.notify_all()

    # --- inspection -------------------------------------------------------------------

    @property
    def banned_until(self) -> datetime | None:
        with self._cond:
            if self._banned_until <= self._clock():
                return None
            return datetime.fromtimestamp(self._banned_until_wall, UTC)

    def stats(self) -> BudgetStats:
        with self._cond:
            self._prune(self._clock())
            return BudgetStats(
                capacity=self.capacity,
                used=self._used,
                sent=self._sent,
                refused=self._refused,
                waited_seconds=self._waited,
            )

    # --- internals (call with the lock held) --------------------------------------------

    def _book(self, now: float, weight: int) -> None:
        self._log.append((now, weight))
        self._used += weight

    def _prune(self, now: float) -> None:
        horizon = now - self.window_seconds
        while self._log and self._log[0][0] <= horizon:
            self._used -= self._log.popleft()[1]

    def _time_until_free(self, now: float, weight: int) -> float:
        """Seconds until enough booked weight leaves the window for ``weight`` to fit."""
        excess = self._used + weight - self.capacity
        freed = 0
        for booked_at, booked in self._log:
            freed += booked
            if freed >= excess:
                return max(0.0, booked_at + self.window_seconds - now) + 0.001
        return self.window_seconds


_SHARED: dict[int, WeightBudget] = {}
_SHARED_LOCK = threading.Lock()


def shared_budget(limit: int = DEFAULT_WEIGHT_LIMIT) -> WeightBudget:
    """The process-wide /api budget for this limit: every gateway built with it shares it."""
    with _SHARED_LOCK:
        return _shared_api_budget(limit)


def _shared_api_budget(limit: int, clock: Callable[[], float] = time.monotonic) -> WeightBudget:
    if limit not in _SHARED:
        _SHARED[limit] = WeightBudget(limit, clock=clock)
    return _SHARED[limit]


DEFAULT_BUDGET = shared_budget()
"""The process-wide budget every gateway shares unless given another one (tests inject theirs)."""


class LimitKind(StrEnum):
    """Binance's request limits (developers.binance.com/docs/products/caas/basics/4.rate-limits):
    ``/api`` endpoints share one IP budget; each ``/sapi`` endpoint has its own, per IP or per
    account (UID), as its own page says."""

    API_IP = "api"  # /api/*: 6,000 weight a minute per IP, shared by every /api endpoint
    SAPI_IP = "sapi_ip"  # each IP-limited /sapi endpoint: 12,000 a minute per IP, its own
    # The withdraw history's own limit: "This endpoint specifically uses per second UID rate
    # limit, user's total second level UID rate limit is 180000/second. Response from the
    # endpoint contains header key X-SAPI-USED-UID-WEIGHT-1S" (Weight(UID) 18,000; "Request
    # limit: 10 requests per second", the same count: 180,000 / 18,000;
    # https://developers.binance.com/docs/wallet/capital/withdraw-history).
    SAPI_UID_PER_SECOND = "sapi_uid_1s"
    # A UID-limited /sapi endpoint's own limit per account: "each UID-limited endpoint an
    # independent 180,000 per minute", header X-SAPI-USED-UID-WEIGHT-1M (the rate-limits page
    # above); the sub-account key management endpoints weigh 3,000 each ("Request Weight(UID)
    # 3000", developers.binance.com/docs/sub_account/api-management).
    SAPI_UID = "sapi_uid"


USED_WEIGHT_HEADERS = {
    LimitKind.API_IP: "X-MBX-USED-WEIGHT-1M",
    LimitKind.SAPI_IP: "X-SAPI-USED-IP-WEIGHT-1M",
    LimitKind.SAPI_UID_PER_SECOND: "X-SAPI-USED-UID-WEIGHT-1S",
    LimitKind.SAPI_UID: "X-SAPI-USED-UID-WEIGHT-1M",
}
LIMITS = {
    LimitKind.API_IP: 6_000,
    LimitKind.SAPI_IP: 12_000,
    LimitKind.SAPI_UID_PER_SECOND: 180_000,
    LimitKind.SAPI_UID: 180_000,
}
# How much of each limit the bot plans to use. /sapi's 12,000 leaves room at 0.9 (10,800 a
# minute: 10,000 keys checked in one minute); /api's shared budget keeps the usual margin, and
# so does the withdraw history (8 requests a second per account).
SAFETY = {
    LimitKind.API_IP: DEFAULT_SAFETY,
    LimitKind.SAPI_IP: 0.9,
    LimitKind.SAPI_UID_PER_SECOND: DEFAULT_SAFETY,
    LimitKind.SAPI_UID: DEFAULT_SAFETY,
}
PER_SECOND = frozenset({LimitKind.SAPI_UID_PER_SECOND})  # the others count per minute
# Limits counted per Binance account (UID), not per IP: one budget per account and endpoint.
PER_ACCOUNT = frozenset({LimitKind.SAPI_UID_PER_SECOND, LimitKind.SAPI_UID})


class RateLimits:
    """Every budget the process paces itself by: the shared /api budget, one per IP-limited
    /sapi endpoint, and one per UID-limited endpoint and Binance account, each learning from
    its own response header. A request names its account with ``on_account`` (the bot's id of
    the Binance account: Binance does not tell the bot UIDs); one that names none counts against
    one budget shared by all such requests, stricter than Binance, never looser. Thread-safe;
    share the IP budgets in one process (limits are per IP); UID budgets are per gateway (the
    bot has one gateway per process; tests build many: ``for_gateway``).
    """

    def __init__(
        self,
        api: WeightBudget | None = None,
        *,
        limits: dict[LimitKind, int] | None = None,
        window_seconds: float = 60.0,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
        single: bool = False,
    ) -> None:
        self._limits = {**LIMITS, **(limits or {})}
        self._window = window_seconds
        self._max_wait = max_wait
        self._clock = clock
        self.api = api or self._new(LimitKind.API_IP)
        self._single = single  # every path counts against ``api`` (see ``single``)
        self._ip: dict[str, WeightBudget] = {}  # per IP-limited /sapi path (process-wide)
        # per UID-limited path and account ("" for requests naming none): this gateway's
        self._uid: dict[tuple[str, str], WeightBudget] = {}
        self._lock = threading.Lock()

    def for_gateway(self) -> RateLimits:
        """A view sharing these IP budgets, with UID budgets of its own."""
        view = RateLimits(
            self.api,
            limits=self._limits,
            window_seconds=self._window,
            max_wait=self._max_wait,
            clock=self._clock,
            single=self._single,
        )
        view._ip = self._ip  # the same IP budgets (and the lock that guards them)
        view._lock = self._lock
        return view

    def use(
        self, kind: LimitKind, path: str, budget: WeightBudget, *, account: str | None = None
    ) -> None:
        """Put ``budget`` in place for one endpoint's limit (of ``account``, for a UID limit):
        tests spend a limit or shorten a minute with it."""
        with self._lock:
            if kind in PER_ACCOUNT:
                self._uid[(path, account or "")] = budget
            else:
                self._ip[path] = budget

    @classmethod
    def single(cls, budget: WeightBudget) -> RateLimits:
        """One budget for every request (a tool or a test that wants one knob)."""
        return cls(budget, single=True)

    def _new(self, kind: LimitKind) -> WeightBudget:
        per_second = kind in PER_SECOND
        return WeightBudget(
            self._limits[kind],
            safety=SAFETY[kind],
            window_seconds=1.0 if per_second else self._window,
            max_wait=self._max_wait,
            clock=self._clock,
            period="second" if per_second else "minute",
        )

    def budget_for(self, kind: LimitKind, path: str, account: str | None = None) -> WeightBudget:
        if self._single or kind is LimitKind.API_IP:
            return self.api
        with self._lock:
            if kind in PER_ACCOUNT:
                uid_key = (path, account or "")
                budget = self._uid.get(uid_key)
                if budget is None:
                    budget = self._uid[uid_key] = self._new(kind)
                return budget
            budget = self._ip.get(path)
            if budget is None:
                budget = self._ip[path] = self._new(kind)
            return budget

    def booking(
        self, kind: LimitKind, path: str, weight: int, account: str | None = None
    ) -> tuple[WeightBudget, int, str | None]:
        """The budget a request counts against (of ``account``, for a UID limit), its weight
        there, and the response header that budget learns from. A single budget stands for the
        IP's, where an account's (UID) weight means nothing: such a request counts 1 and its UID
        header is not read."""
        if self._single and kind in PER_ACCOUNT:
            return self.api, 1, None
        return self.budget_for(kind, path, account), weight, USED_WEIGHT_HEADERS[kind]

    def named(self) -> dict[str, WeightBudget]:
        """Each per-minute budget in use, by a name for people and metrics ("api", "sapi_ip
        <path>"). The per-second budgets of each account are left out: one a second and per
        account, they are no gauge to watch."""
        with self._lock:
            ip = {f"{LimitKind.SAPI_IP.value} {path}": b for path, b in self._ip.items()}
        return {"api": self.api, **ip}

    def _every(self) -> list[WeightBudget]:
        with self._lock:
            return [self.api, *self._ip.values(), *self._uid.values()]

    def pause_all(self, seconds: float) -> None:
        """HTTP 403 (Binance's web application firewall blocks this IP): nobody sends."""
        for budget in self._every():
            budget.pause(seconds)

    def ban_all(self, seconds: float) -> None:
        """HTTP 418: this IP is banned; every budget fails fast until the ban ends."""
        for budget in self._every():
            budget.ban(seconds)


_SHARED_LIMITS: dict[int, RateLimits] = {}


def shared_limits(
    api_limit: int = DEFAULT_WEIGHT_LIMIT, *, clock: Callable[[], float] = time.monotonic
) -> RateLimits:
    """The process-wide limits whose /api budget is ``shared_budget(api_limit)``. ``clock``
    counts their windows, pauses and bans; it is taken only when the set for ``api_limit`` is
    first made (tests make one with a clock they move, instead of waiting out a ban)."""
    with _SHARED_LOCK:
        if api_limit not in _SHARED_LIMITS:
            _SHARED_LIMITS[api_limit] = RateLimits(
                _shared_api_budget(api_limit, clock), clock=clock
            )
        return _SHARED_LIMITS[api_limit]
