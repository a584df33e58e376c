"""Socket Mode's HTTP server: /healthz, /readyz and /metrics on PORT, nothing else.

Slack never calls a Socket Mode bot, so nothing is served at /slack/events: the same
production server as HTTP mode (``bot.slack.http_server``, waitress) with no Slack gate and
only these GET routes, in a daemon thread of its own that ``stop`` shuts down with the bot.
"""

from __future__ import annotations

import logging
import threading

from bot.config import ConfigError
from bot.slack.http_server import HttpServer, Route, make_wsgi_app

log = logging.getLogger(__name__)


class BackgroundServer:
    def __init__(self, routes: dict[str, Route], *, host: str, port: int) -> None:
        self._server = HttpServer(make_wsgi_app(None, routes), host=host, port=port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
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


def serve_in_background(routes: dict[str, Route], *, host: str, port: int) -> BackgroundServer:
    """Start serving ``routes`` on host:port in a daemon thread; ``stop()`` ends it. A port
    that cannot be bound is a ConfigError (one line naming PORT), not a traceback."""
    try:
        server = BackgroundServer(routes, host=host, port=port).start()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"configuration error: PORT: cannot serve health and metrics on {host}:{port} "
            f"({reason})"
        ) from None
    log.info("health and metrics on http://%s:%d (/healthz, /readyz, /metrics)", host, server.port)
    return server
