"""What listeners need, bundled once at start-up and handed to them through Bolt's context."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from sqlalchemy.engine import Engine

from bot.binance import BinanceGateway
from bot.binance.governor import GovernorGateway
from bot.config import Settings
from bot.services.access import Actor
from storage.crypto import KeyRing
from storage.models import utcnow


class Directory(Protocol):
    """Who is an admin, and where commands are allowed (Slack's side: bot.slack.access)."""

    def is_admin(self, user_id: str) -> bool: ...

    def actor(self, *, user_id: str, team_id: str, channel: str | None) -> Actor: ...

    def channel_allowed(self, channel: str | None) -> bool: ...


class WorkInFlight:
    """Counts the work this bot has started on Slack's behalf and not yet finished.

    One count for every pool it makes (the listeners that run after an ack, the slow work they
    hand on): a listener submits its slow work before it returns, so the count never drops to
    zero in between, and "idle" means nothing more will reach Slack or Binance. The scheduler is
    not counted: its ticks are synchronous to whoever runs them.
    """

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    def executor(self, *, max_workers: int, thread_name_prefix: str) -> ThreadPoolExecutor:
        """A thread pool whose every task is counted from submit until it is done."""
        return _CountingExecutor(
            self, max_workers=max_workers, thread_name_prefix=thread_name_prefix
        )

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no counted task is left; False if some still run after ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout=timeout)

    def _started(self) -> None:
        with self._changed:
            self._count += 1

    def _finished(self, _future: Future[Any] | None = None) -> None:
        with self._changed:
            self._count -= 1
            if self._count == 0:
                self._changed.notify_all()


_P = ParamSpec("_P")
_T = TypeVar("_T")


class _CountingExecutor(ThreadPoolExecutor):
    def __init__(self, work: WorkInFlight, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._work = work

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        self._work._started()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._work._finished()
            raise
        future.add_done_callback(self._work._finished)
        return future


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ring: KeyRing
    gateway: BinanceGateway
    # The governor's gateway (bot.binance.governor): only sub-account key management, only
    # with a governor key, every call audited and announced (bot.services.governor.calls).
    governor: GovernorGateway | None = None
    clock: Callable[[], datetime] = utcnow
    # Set by build_app (it needs the Slack client): admins, user group, allowed channels.
    access: Directory | None = None
    # Listener runs and background work not finished yet (build_app counts its listeners here).
    in_flight: WorkInFlight = field(default_factory=WorkInFlight)
    # Slow work (Binance calls) runs here, after the ack, so acks never wait for Binance.
    # Few workers: each status report already fans out over the gateway's own pool, and
    # CPU-bound report work must not crowd out the acks (one interpreter lock).
    background: ThreadPoolExecutor = field(init=False)
    # Break-glass work (the governor containing a reported key): its own workers, so that a
    # burst of reports is not queued behind status reports, nor behind each other (each
    # containment mostly waits on Binance).
    urgent: ThreadPoolExecutor = field(init=False)

    @property
    def directory(self) -> Directory:
        """``access``, which build_app sets before any listener or job runs."""
        if self.access is None:
            raise RuntimeError("Services.access is set by build_app before use")
        return self.access

    def __post_init__(self) -> None:
        self.background = self.in_flight.executor(max_workers=4, thread_name_prefix="work")
        self.urgent = self.in_flight.executor(max_workers=16, thread_name_prefix="urgent")

    @property
    def governor_gateway(self) -> GovernorGateway:
        """``governor``, which build_services sets."""
        if self.governor is None:
            raise RuntimeError("Services.governor is set by build_services before use")
        return self.governor

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every listener run and background task has finished (False: timed out)."""
        return self.in_flight.wait_idle(timeout)

    def close(self) -> None:
        self.background.shutdown(wait=True, cancel_futures=False)
        self.urgent.shutdown(wait=True, cancel_futures=False)
