"""What /metrics reads at scrape time: Binance weight, scheduler lag, and database counts.

The database collector runs a handful of cheap queries (counts grouped in the database; the
live keys' stored permissions, read in one pass) at most once every ``DB_CACHE_SECONDS``, with
a statement timeout on PostgreSQL, so a scraper every few seconds costs the database nothing
much; when the database does not answer, the scrape still succeeds and says so
(``apikey_bot_database_up 0``) instead of hanging or failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from bot import binance
from bot.binance.budget import WeightBudget
from bot.model.findings import Severity
from bot.observability.metrics import PREFIX
from bot.services.oversight.findings import assess
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    CredentialDelivery,
    DeliveryState,
    Incident,
    IncidentState,
    KeyPurpose,
    KeyStatus,
    KeyType,
    Page,
    PageState,
)

log = logging.getLogger(__name__)

DB_CACHE_SECONDS = 15.0
DB_TIMEOUT_MS = 2000  # PostgreSQL statement_timeout of the scrape's queries


def weight_budgets(gateway: binance.BinanceGateway) -> dict[str, WeightBudget]:
    """Each Binance weight budget the gateway paces itself by, by the limit it stands for."""
    return gateway.limits.named()


class BinanceWeightCollector(Collector):
    def __init__(self, gateway: binance.BinanceGateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily(
            PREFIX + "binance_weight_used",
            "Binance request weight used in the last minute (own requests and weight Binance "
            "reported beyond them), by limit.",
            labels=["limit"],
        )
        limit = GaugeMetricFamily(
            PREFIX + "binance_weight_limit",
            "Binance's request weight limit per minute, by limit.",
            labels=["limit"],
        )
        capacity = GaugeMetricFamily(
            PREFIX + "binance_weight_capacity",
            "The part of each limit the bot allows itself per minute (a safety margin).",
            labels=["limit"],
        )
        for name, budget in weight_budgets(self._gateway).items():
            stats = budget.stats()
            used.add_metric([name], stats.used)
            limit.add_metric([name], budget.limit)
            capacity.add_metric([name], stats.capacity)
        yield used
        yield limit
        yield capacity


class SchedulerCollector(Collector):
    def __init__(self, lag: Callable[[], float | None]) -> None:
        self._lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = self._lag()
        if lag is not None:  # no scheduler in this process, or no tick yet
            yield GaugeMetricFamily(
                PREFIX + "scheduler_lag_seconds",
                "How far behind the scheduler loop is: how overdue its next tick is, or how "
                "late the oldest job of its last tick was, whichever is larger.",
                value=lag,
            )


@dataclass
class DatabaseFigures:
    open_incidents: int = 0
    open_pages: int = 0
    keys_by_tier: Counter[str] = field(default_factory=Counter)
    keys_by_finding: Counter[tuple[str, str]] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)


def read_figures(engine: Engine, now: datetime) -> DatabaseFigures:
    figures = DatabaseFigures()
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.exec(sa.text(f"SET LOCAL statement_timeout = {DB_TIMEOUT_MS}"))  # type: ignore[call-overload]
        figures.open_incidents = session.exec(
            select(func.count()).select_from(Incident).where(Incident.state == IncidentState.OPEN)
        ).one()
        figures.open_pages = session.exec(
            select(func.count()).select_from(Page).where(Page.state == PageState.OPEN)
        ).one()
        failing = col(CredentialDelivery.first_failed_at).is_not(None)
        for is_failing, count in session.exec(
            select(failing, func.count())
            .where(CredentialDelivery.state == DeliveryState.PENDING)
            .group_by(failing)
        ).all():
            figures.deliveries["failing" if is_failing else "pending"] += count
        rows = (
            session.connection()
            .execute(
                sa.select(
                    col(ApiKey.permissions_json),
                    col(ApiKey.purpose),
                    col(ApiKey.status),
                    col(ApiKey.key_type),
                    col(ApiKey.last_check_result),
                ).where(col(ApiKey.status).not_in(RETIRED_STATUSES))
            )
            .all()
        )
    for permissions_json, purpose, status, key_type, last_result in rows:
        permissions = (
            binance.KeyPermissions.from_dict(permissions_json) if permissions_json else None
        )
        figures.keys_by_tier[permissions.tier.name.lower() if permissions else "unknown"] += 1
        compromised = status == KeyStatus.COMPROMISED.value
        if last_result == "rejected":  # as the App Home judges it (bot.services.home)
            findings = assess(
                purpose=KeyPurpose(purpose),
                now=now,
                error=binance.KeyRejected(),
                compromised=compromised,
            )
        else:
            findings = assess(
                purpose=KeyPurpose(purpose),
                now=now,
                permissions=permissions,
                compromised=compromised,
                key_type=KeyType(key_type),
            )
        worst = findings[0] if findings else None
        if worst is None or worst.severity == Severity.OK:
            figures.keys_by_finding[("none", "ok")] += 1
        else:
            figures.keys_by_finding[(worst.kind.value, worst.severity.name.lower())] += 1
    return figures


class DatabaseCollector(Collector):
    """Counts from the database, read at most every ``DB_CACHE_SECONDS``."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        *,
        cache_seconds: float = DB_CACHE_SECONDS,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._figures: DatabaseFigures | None = None
        self._read_at = float("-inf")

    def figures(self) -> DatabaseFigures | None:
        with self._lock:  # one scrape reads; others that arrive meanwhile use its answer
            if time.monotonic() - self._read_at >= self._cache_seconds:
                try:
                    self._figures = read_figures(self._engine, self._clock())
                except Exception as exc:
                    log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
                    self._figures = None
                self._read_at = time.monotonic()
            return self._figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self.figures()
        yield GaugeMetricFamily(
            PREFIX + "database_up",
            "1 when the last read of the figures below succeeded (they are absent otherwise).",
            value=0 if figures is None else 1,
        )
        if figures is None:
            return
        yield GaugeMetricFamily(
            PREFIX + "incidents_open",
            "Incidents (compromised keys) still open.",
            value=figures.open_incidents,
        )
        yield GaugeMetricFamily(
            PREFIX + "pages_open", "Paged conditions not resolved yet.", value=figures.open_pages
        )
        tiers = GaugeMetricFamily(
            PREFIX + "keys",
            "Live keys by the tier Binance last reported (unknown: never checked).",
            labels=["tier"],
        )
        for tier in ("none", "read", "trade", "withdraw", "unknown"):
            tiers.add_metric([tier], figures.keys_by_tier.get(tier, 0))
        yield tiers
        worst = GaugeMetricFamily(
            PREFIX + "keys_by_worst_finding",
            "Live keys by their worst finding (as the App Home shows it) and its severity.",
            labels=["finding", "severity"],
        )
        for (kind, severity), count in sorted(figures.keys_by_finding.items()):
            worst.add_metric([kind, severity], count)
        yield worst
        deliveries = GaugeMetricFamily(
            PREFIX + "credential_deliveries",
            "Credential deliveries to secret sinks not done yet: pending (not tried or not "
            "failed yet) and failing (failed at least once, being retried).",
            labels=["state"],
        )
        for state in ("pending", "failing"):
            deliveries.add_metric([state], figures.deliveries.get(state, 0))
        yield deliveries
