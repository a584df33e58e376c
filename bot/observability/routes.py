"""The health, readiness and metrics routes, for whichever HTTP server the bot runs.

- ``/healthz`` (liveness, as before): ``{"ok": …, "database": "ok"|"down"}``, 200 or 503.
- ``/readyz`` (readiness): each check by name, 200 when all pass, else 503. Checks: the
  database answers, the active master key opens its canary, the scheduler is not further
  behind than READINESS_MAX_SCHEDULER_LAG_SECONDS (skipped where this process runs none),
  and, in Socket Mode, the connection to Slack is up.
- ``/metrics``: Prometheus' text format, from the bot's own registry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bot.observability.collectors import (
    BinanceWeightCollector,
    DatabaseCollector,
    SchedulerCollector,
)
from bot.observability.metrics import INSTRUMENTS
from bot.services.context import Services
from bot.slack import http_server
from storage.vault import active_key_opens

log = logging.getLogger(__name__)

# (HTTP status, body, content type)
Route = http_server.Route  # (HTTP status, body, content type) for a GET

JSON = "application/json; charset=utf-8"
MASTER_KEY_CACHE_SECONDS = 30.0  # with KMS, opening the canary asks AWS: not on every probe


class _Instruments(Collector):
    """The process-wide counters and histograms (bot.observability.metrics), in this registry."""

    def collect(self) -> Iterable[Metric]:
        return INSTRUMENTS.collect()


def observability_routes(
    services: Services,
    *,
    slack_connected: Callable[[], bool] | None,
    scheduler_lag: Callable[[], float | None],
) -> dict[str, Route]:
    """``slack_connected``: None in HTTP mode (Slack calls us; nothing to be connected to).
    ``scheduler_lag``: seconds, or None where this process runs no scheduler."""
    registry = CollectorRegistry()
    registry.register(_Instruments())
    registry.register(BinanceWeightCollector(services.gateway))
    registry.register(SchedulerCollector(scheduler_lag))
    registry.register(DatabaseCollector(services.engine, services.clock))
    master_key = _Cached(lambda: active_key_opens(services.engine, services.ring))
    max_lag = services.settings.readiness_max_scheduler_lag_seconds

    def database_up() -> bool:
        with services.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True

    def healthz() -> tuple[int, bytes, str]:
        healthy = _safe(database_up)
        body = json.dumps({"ok": healthy, "database": "ok" if healthy else "down"})
        return (200 if healthy else 503), body.encode(), JSON

    def readyz() -> tuple[int, bytes, str]:
        checks: dict[str, str] = {}
        checks["database"] = "ok" if _safe(database_up) else "down"
        checks["master_keys"] = "ok" if _safe(master_key) else "cannot open"
        lag = scheduler_lag()
        if lag is None:
            checks["scheduler"] = "not running here"
        else:
            checks["scheduler"] = "ok" if lag <= max_lag else f"{lag:.0f}s behind"
        if slack_connected is not None:
            checks["slack"] = "ok" if _safe(slack_connected) else "disconnected"
        ready = all(v in ("ok", "not running here") for v in checks.values())
        body = json.dumps({"ok": ready, **checks})
        return (200 if ready else 503), body.encode(), JSON

    def metrics() -> tuple[int, bytes, str]:
        return 200, generate_latest(registry), CONTENT_TYPE_LATEST

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class _Cached:
    """A check whose passing answer is kept for a while (a failing one is asked again)."""

    def __init__(self, check: Callable[[], bool], seconds: float = MASTER_KEY_CACHE_SECONDS):
        self._check = check
        self._seconds = seconds
        self._passed_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._passed_at < self._seconds:
                return True
            if self._check():
                self._passed_at = time.monotonic()
                return True
            return False


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception as exc:
        log.warning("health check failed (%s)", type(exc).__name__)
        return False
