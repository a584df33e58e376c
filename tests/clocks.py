"""Clocks that tests move instead of waiting: ``FixedClock`` (bot.job_queue.scheduler) for the
scheduler's datetimes, and ``MovableClock`` for the monotonic seconds of Binance's budgets."""

from __future__ import annotations

import threading
import time


class MovableClock:
    """``time.monotonic()`` plus however far the test has moved it: a ban or a pause of the
    Binance budgets (``shared_limits(limit, clock=...)``) passes when the test says so."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
