"""Checks run in the background, so that a probe answers at once from the last result.

Each check runs in a daemon thread of its own, every ``interval`` seconds, one run at a time:
a probe (``/healthz``, ``/readyz``) only reads the last answer and its age, so however many
probes arrive, and however long the database or KMS takes, no request waits on them. The checks
bound their own calls (short timeouts, no retries: ``bot.operations.readiness``); should one
hang anyway, its answer grows old, and past ``stale_after`` seconds it counts as failed ("no
answer for 25s").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

OK = "ok"
NOT_CHECKED = "not checked yet"


@dataclass(frozen=True)
class Check:
    name: str
    passes: Callable[[], bool]
    failed: str  # what the probe says when it does not pass: "down", "cannot open"


@dataclass(frozen=True)
class Reading:
    """The last answer of a check as a probe shows it."""

    state: str  # "ok", the check's failure word, "no answer for 25s" or "not checked yet"
    age: float | None  # seconds since that answer; None before the first

    @property
    def passed(self) -> bool:
        return self.state == OK


@dataclass(frozen=True)
class _Answer:
    passed: bool
    at: float


class BackgroundChecks:
    def __init__(
        self,
        checks: Iterable[Check],
        *,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = {check.name: check for check in checks}
        self._interval = interval
        self._timeout = timeout
        # An answer is due every interval, a run may take its timeout: beyond twice that, the
        # run under way is hanging.
        self.stale_after = 2 * (interval + timeout)
        self._clock = clock
        self._answers: dict[str, _Answer] = {}
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> BackgroundChecks:
        """Start the checks, and wait (at most about one timeout) for their first answers, so
        that a probe right after start-up answers from a real check."""
        for check in self._checks.values():
            thread = threading.Thread(
                target=self._run, args=(check,), name=f"check-{check.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        with self._answered:
            self._answered.wait_for(
                lambda: len(self._answers) == len(self._checks), timeout=2 * self._timeout + 1
            )
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2 * self._timeout + 1)

    def read(self, name: str) -> Reading:
        with self._lock:
            answer = self._answers.get(name)
        if answer is None:
            return Reading(NOT_CHECKED, None)
        age = max(0.0, self._clock() - answer.at)
        if age > self.stale_after:
            return Reading(f"no answer for {age:.0f}s", age)
        return Reading(OK if answer.passed else self._checks[name].failed, age)

    def _run(self, check: Check) -> None:
        previous: bool | None = None
        while not self._stop.is_set():
            passed, why = _passes(check)
            with self._answered:
                self._answers[check.name] = _Answer(passed, self._clock())
                self._answered.notify_all()
            if passed != previous:
                _log_change(check, passed, why, first=previous is None)
                previous = passed
            self._stop.wait(self._interval)


def _passes(check: Check) -> tuple[bool, str]:
    """Whether the check passed, and if not why: an exception's type only (a driver's message
    may name hosts and users)."""
    try:
        return bool(check.passes()), "it said no"
    except Exception as exc:
        return False, type(exc).__name__


def _log_change(check: Check, passed: bool, why: str, *, first: bool) -> None:
    """One line when a check starts failing and one when it recovers, not one per run."""
    name = check.name.replace("_", " ")
    if not passed:
        log.warning("readiness: %s: %s (%s)", name, check.failed, why)
    elif not first:
        log.info("readiness: %s ok again", name)
