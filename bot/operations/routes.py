"""The probes and the metrics route, for whichever HTTP server the bot runs.

- ``/healthz`` (liveness): ``{"ok": …, "database": "ok"|"down"|…, "checked_seconds_ago": …}``,
  200 or 503.
- ``/readyz`` (readiness): each check by name, 200 when all pass, else 503, and how old the
  oldest answer is. Checks: the database answers, the active master key opens its canary (with
  KMS: KMS answers), the scheduler is not further behind than
  READINESS_MAX_SCHEDULER_LAG_SECONDS (skipped where this process runs none), and, in Socket
  Mode, the connection to Slack is up.
- ``/metrics``: Prometheus' text format, from the bot's own registry: on a port of its own or
  behind a token (``bot.operations.server``), never open beside Slack.

The database and master key are checked in the background (``bot.operations.checks``):
a probe reads their last answers and never waits on the database, KMS or Slack. The scheduler
lag and Slack's connection are the process' own state, read as the probe asks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from bot.observability.metrics import INSTRUMENTS
from bot.operations.checks import BackgroundChecks, Reading
from bot.operations.collectors import (
    BinanceWeightCollector,
    DatabaseCollector,
    SchedulerCollector,
)
from bot.operations.readiness import (
    database_check,
    master_key_check,
    probe_engine,
    probe_ring,
)
from bot.services.context import Services
from bot.slack import http_server

Route = http_server.Route  # (HTTP status, body, content type) for a GET

JSON = "application/json; charset=utf-8"
METRICS_PATH = "/metrics"


class _Instruments(Collector):
    """The process-wide counters and histograms (bot.observability.metrics), in this registry."""

    def collect(self) -> Iterable[Metric]:
        return INSTRUMENTS.collect()


@dataclass
class Observability:
    """The probes (``/healthz``, ``/readyz``: on PORT), the metrics route, and the background
    checks the probes read; ``close`` stops the checks."""

    probes: dict[str, Route]
    metrics: dict[str, Route]
    checks: BackgroundChecks
    _engines: list[Engine] = field(default_factory=list)

    def close(self) -> None:
        self.checks.stop()
        for engine in self._engines:
            engine.dispose()

    def __enter__(self) -> Observability:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_observability(
    services: Services,
    *,
    slack_connected: Callable[[], bool] | None,
    scheduler_lag: Callable[[], float | None],
) -> Observability:
    """Start the background checks and build the routes. ``slack_connected``: None in HTTP
    mode (Slack calls us; nothing to be connected to). ``scheduler_lag``: seconds, or None where
    this process runs no scheduler."""
    settings = services.settings
    timeout = settings.readiness_check_timeout_seconds
    engine = probe_engine(services.engine, timeout=timeout)
    checks = BackgroundChecks(
        [
            database_check(engine, timeout=timeout),
            master_key_check(engine, probe_ring(services.ring, timeout=timeout)),
        ],
        interval=settings.readiness_check_interval_seconds,
        timeout=timeout,
    ).start()
    max_lag = settings.readiness_max_scheduler_lag_seconds

    def healthz() -> tuple[int, bytes, str]:
        database = checks.read("database")
        body = {"ok": database.passed, "database": database.state, **_age([database])}
        return (200 if database.passed else 503), json.dumps(body).encode(), JSON

    def readyz() -> tuple[int, bytes, str]:
        readings = [checks.read("database"), checks.read("master_keys")]
        states: dict[str, str] = {"database": readings[0].state, "master_keys": readings[1].state}
        lag = scheduler_lag()
        if lag is None:
            states["scheduler"] = "not running here"
        else:
            states["scheduler"] = "ok" if lag <= max_lag else f"{lag:.0f}s behind"
        if slack_connected is not None:
            states["slack"] = "ok" if _connected(slack_connected) else "disconnected"
        ready = all(v in ("ok", "not running here") for v in states.values())
        body = {"ok": ready, **states, **_age(readings)}
        return (200 if ready else 503), json.dumps(body).encode(), JSON

    registry = CollectorRegistry()
    registry.register(_Instruments())
    registry.register(BinanceWeightCollector(services.gateway))
    registry.register(SchedulerCollector(scheduler_lag))
    registry.register(DatabaseCollector(services.engine, services.clock))

    def metrics() -> tuple[int, bytes, str]:
        return 200, generate_latest(registry), CONTENT_TYPE_LATEST

    return Observability(
        probes={"/healthz": healthz, "/readyz": readyz},
        metrics={METRICS_PATH: metrics},
        checks=checks,
        _engines=[engine] if engine is not services.engine else [],
    )


def _age(readings: list[Reading]) -> dict[str, float | None]:
    """How old the oldest of these answers is, in seconds (None before the first)."""
    ages = [r.age for r in readings]
    oldest = None if any(a is None for a in ages) else max(a for a in ages if a is not None)
    return {"checked_seconds_ago": None if oldest is None else round(oldest, 1)}


def _connected(slack_connected: Callable[[], bool]) -> bool:
    try:
        return bool(slack_connected())
    except Exception:
        return False
