"""HTTP mode: Slack posts commands, interactivity and events to POST /slack/events.

A threading server (one thread per request) so that acks are never queued behind each
other; Bolt verifies the signature and timestamp of every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from slack_bolt import App, BoltRequest

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1024 * 1024


def make_server(
    app: App, *, host: str, port: int, health_check: Callable[[], bool]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "apikey-bot"
        sys_version = ""

        def do_GET(self) -> None:
            if urlsplit(self.path).path != HEALTH_PATH:
                self._reply(404, b'{"ok": false, "error": "not_found"}')
                return
            healthy = _safe(health_check)
            body = json.dumps({"ok": healthy, "database": "ok" if healthy else "down"})
            self._reply(200 if healthy else 503, body.encode())

        def do_POST(self) -> None:
            split = urlsplit(self.path)
            if split.path != EVENTS_PATH:
                self._reply(404, b'{"ok": false, "error": "not_found"}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(413, b'{"ok": false, "error": "too_large"}')
                return
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            response = app.dispatch(BoltRequest(body=body, query=split.query, headers=headers))
            payload = (response.body or "").encode("utf-8")
            extra = {k: v for k, vs in response.headers.items() for v in vs[:1]}
            self._reply(response.status, payload, extra)

        def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            headers = dict(headers or {})
            headers.setdefault("content-type", "application/json; charset=utf-8")
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:
            # Request lines only (never bodies: they can hold a modal's secret).
            log.debug("%s %s", self.address_string(), format % args)

    server = _Server((host, port), Handler)
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Slack can send bursts; the default backlog of 5 drops connections under load.
    request_queue_size = 256


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        log.warning("health check failed", exc_info=True)
        return False
