"""Socket Mode's small HTTP server: /healthz, /readyz and /metrics on PORT, nothing else.

Slack never calls a Socket Mode bot, so this serves only three GET routes to the platform
(probes, Prometheus): wsgiref's server with a thread per request (daemon threads, a socket
timeout so a stalled client does not hold one for ever) is enough, in a daemon thread of its
own that ``stop`` shuts down with the bot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.config import ConfigError
from bot.observability.routes import Route

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 10

StartResponse = Callable[..., Any]


def routes_app(
    routes: dict[str, Route],
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI application answering GET (and HEAD) on ``routes``; 404 / 405 otherwise."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO") or "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if route is None:
            status, body, content_type = (
                404,
                b'{"ok": false, "error": "not_found"}',
                "application/json",
            )
        elif method not in ("GET", "HEAD"):
            status, body, content_type = (
                405,
                b'{"ok": false, "error": "method_not_allowed"}',
                "application/json",
            )
        else:
            try:
                status, body, content_type = route()
            except Exception as exc:  # never a traceback to the prober
                log.error(
                    "%s failed (%s)", environ.get("PATH_INFO"), type(exc).__name__, exc_info=True
                )
                status, body, content_type = 500, b'{"ok": false}', "application/json"
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status == 405:
            headers.append(("Allow", "GET, HEAD"))
        start_response(f"{status} {_REASONS.get(status, 'OK')}", headers)
        return [b""] if method == "HEAD" else [body]

    return app


_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64


class _QuietHandler(WSGIRequestHandler):
    timeout = READ_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class BackgroundServer:
    def __init__(self, routes: dict[str, Route], *, host: str, port: int) -> None:
        self._server = make_server(
            host,
            port,
            routes_app(routes),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
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
