"""HTTP mode: Slack posts commands, interactivity and events to POST /slack/events.

A threading server (one thread per request) so that acks are never queued behind each
other. Every POST goes through ``SlackGate``: the signature is checked on the raw bytes before
anything parses the body, and whatever cannot be read gets a clear HTTP answer and one log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from bot.slack.gate import MAX_BODY_BYTES, Answer, SlackGate, error_answer

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READ_TIMEOUT_SECONDS = 30  # a client that stops sending does not hold a thread for ever


def make_server(
    gate: SlackGate, *, host: str, port: int, health_check: Callable[[], bool]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "apikey-bot"
        sys_version = ""
        timeout = READ_TIMEOUT_SECONDS

        def do_GET(self) -> None:
            if urlsplit(self.path).path != HEALTH_PATH:
                self._refuse(error_answer(404, "not_found"))
                return
            healthy = _safe(health_check)
            body = json.dumps({"ok": healthy, "database": "ok" if healthy else "down"})
            self._reply(200 if healthy else 503, body.encode())

        def do_POST(self) -> None:
            split = urlsplit(self.path)
            if split.path != EVENTS_PATH:
                self._refuse(error_answer(404, "not_found"))
                return
            if self.headers.get("Transfer-Encoding"):
                self._refuse(error_answer(411, "length_required"))
                return
            length_text = (self.headers.get("Content-Length") or "0").strip()
            if not length_text.isdigit():
                log.info("refused a request from %s: bad Content-Length", self.client_address[0])
                self._refuse(error_answer(400, "invalid_length"))
                return
            length = int(length_text)
            if length > MAX_BODY_BYTES:
                log.info("refused a request from %s: body too large", self.client_address[0])
                self._refuse(error_answer(413, "too_large"))
                return
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                return  # the client went away mid-body: nobody to answer
            headers = {name.lower(): value for name, value in reversed(self.headers.items())}
            answer = gate.handle(
                body=body, headers=headers, query=split.query, client=self.client_address[0]
            )
            self._reply(answer.status, answer.body, answer.headers)

        def _refuse(self, answer: Answer) -> None:
            """Answer without reading the body: the connection cannot be reused after it."""
            self.close_connection = True
            self._reply(answer.status, answer.body, {**answer.headers, "Connection": "close"})

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
