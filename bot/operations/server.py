"""Servers of their own for the probes and metrics: in Socket Mode (the probes on PORT), and for
/metrics on METRICS_HOST:METRICS_PORT in both modes.

Slack never calls a Socket Mode bot, so nothing is served at /slack/events there: the same
guarded production server as HTTP mode (``bot.slack.http_server``, waitress) with no Slack gate
and only GET routes, in a daemon thread of its own that ``stop`` shuts down with the bot.

Where /metrics goes (``Settings.metrics_placement``): on its own port when METRICS_PORT is set
(behind METRICS_TOKEN too when that is set); beside the probes on PORT only behind
METRICS_TOKEN; otherwise nowhere. It tells how many keys can withdraw: never open to whoever
reaches the port Slack posts to.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from bot.config import ConfigError, MetricsPlacement, Settings
from bot.operations.routes import METRICS_PATH, Observability
from bot.slack.connections import ConnectionLimits
from bot.slack.http_server import HttpServer, Route, make_wsgi_app

log = logging.getLogger(__name__)


class BackgroundServer:
    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        host: str,
        port: int,
        limits: ConnectionLimits | None = None,
        bearer_tokens: Mapping[str, str] | None = None,
    ) -> None:
        application = make_wsgi_app(None, routes, bearer_tokens=bearer_tokens)
        self._server = HttpServer(application, host=host, port=port, limits=limits)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-server", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def serve_in_background(
    routes: Mapping[str, Route],
    *,
    host: str,
    port: int,
    limits: ConnectionLimits | None = None,
    bearer_tokens: Mapping[str, str] | None = None,
    setting: str = "PORT",
) -> BackgroundServer:
    """Start serving ``routes`` on host:port in a daemon thread; ``stop()`` ends it. A port
    that cannot be bound is a ConfigError (one line naming ``setting``), not a traceback."""
    try:
        server = BackgroundServer(
            routes, host=host, port=port, limits=limits, bearer_tokens=bearer_tokens
        ).start()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        what = "metrics" if setting.startswith("METRICS") else "health checks"
        raise ConfigError(
            f"configuration error: {setting}: cannot serve {what} on {host}:{port} ({reason})"
        ) from None
    return server


def metrics_tokens(settings: Settings) -> dict[str, str]:
    """The bearer token /metrics asks for, by path (none without METRICS_TOKEN)."""
    token = settings.metrics_token
    return {METRICS_PATH: token.get_secret_value()} if token is not None else {}


def port_routes(observability: Observability, settings: Settings) -> dict[str, Route]:
    """What PORT serves besides Slack: the probes, and /metrics only when it has no port of its
    own and a token to ask for."""
    if settings.metrics_placement is MetricsPlacement.BESIDE_SLACK:
        return {**observability.probes, **observability.metrics}
    return dict(observability.probes)


def serve_metrics(
    observability: Observability, settings: Settings, *, limits: ConnectionLimits
) -> BackgroundServer | None:
    """/metrics on METRICS_HOST:METRICS_PORT when it has a port of its own (else None); one
    line says where metrics are served, or how to turn them on."""
    placement = settings.metrics_placement
    if placement is MetricsPlacement.OFF:
        log.info(
            "GET /metrics is off: set METRICS_PORT (a port of its own) or METRICS_TOKEN "
            "(beside Slack on PORT, behind a bearer token)"
        )
        return None
    if placement is MetricsPlacement.BESIDE_SLACK or settings.metrics_port is None:
        log.info("metrics on PORT at /metrics, behind METRICS_TOKEN")
        return None
    server = serve_in_background(
        observability.metrics,
        host=settings.metrics_host,
        port=settings.metrics_port,
        limits=limits,
        bearer_tokens=metrics_tokens(settings),
        setting="METRICS_PORT",
    )
    token = " (behind METRICS_TOKEN)" if settings.metrics_token is not None else ""
    log.info("metrics on http://%s:%d%s%s", settings.metrics_host, server.port, METRICS_PATH, token)
    return server
