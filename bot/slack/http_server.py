"""HTTP mode: Slack posts commands, interactivity and events to POST /slack/events.

Served by waitress, a production WSGI server (see the README on why this one): its I/O thread
reads each request whole before a worker sees it, so a client that sends slowly holds no
worker; a bounded pool of worker threads runs the requests; bodies over 1 MB are refused with
413 before they are read. ``bot.slack.connections`` guards it against slow or numerous clients:
a deadline for each request to arrive whole, a cap per client address, and room made for a new
connection at the limit.

/slack/events goes through Bolt's own WSGI adapter (slack_bolt.adapter.wsgi), whose dispatch
step is ``SlackGate``: the signature is checked on the raw bytes before anything parses the
body, and whatever cannot be read gets a clear HTTP answer and one log line. Other paths are
read-only GET routes (health, readiness; metrics only where the settings put them), some of
them behind a bearer token.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest

from bot.slack.connections import ConnectionLimits, GuardedServer, create_guarded_servers
from bot.slack.gate import MAX_BODY_BYTES, SlackGate

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
WORKER_THREADS = 16  # requests run at once; acks are fast, the slow work runs after the ack
BACKLOG = 1024

# A route answers a GET: (HTTP status, body, content type).
Route = Callable[[], tuple[int, bytes, str]]
StartResponse = Callable[..., Any]


class GatedRequestHandler(SlackRequestHandler):
    """Bolt's WSGI adapter, with ``SlackGate`` as its dispatch step."""

    def __init__(self, gate: SlackGate) -> None:
        super().__init__(gate.app, path=EVENTS_PATH)
        self._gate = gate

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        # The raw bytes, not the adapter's decoded text: the signature is over the bytes, and
        # a body that is not UTF-8 is the gate's to refuse (400), not an error.
        environ = request.environ
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {name: str(value) for name, value in request.get_headers().items()}
        answer = self._gate.handle(
            body=body,
            headers=headers,
            query=request.query_string,
            client=str(request.environ.get("REMOTE_ADDR", "?")),
        )
        return BoltResponse(
            status=answer.status,
            body=answer.body.decode("utf-8"),
            headers={name: [value] for name, value in answer.headers.items()},
        )


def make_wsgi_app(
    gate: SlackGate | None,
    routes: Mapping[str, Route],
    *,
    bearer_tokens: Mapping[str, str] | None = None,
) -> Callable[..., Any]:
    """The bot's WSGI application: Slack's POSTs (when ``gate`` is given) and GET ``routes``;
    a path in ``bearer_tokens`` answers only a request carrying ``Authorization: Bearer`` and
    its token (RFC 6750), else 401."""
    slack = GatedRequestHandler(gate) if gate is not None else None
    tokens = dict(bearer_tokens or {})

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == EVENTS_PATH and slack is not None:
            if method != "POST":
                return _answer(start_response, 405, _error("method_not_allowed"), allow="POST")
            return slack(environ, start_response)
        route = routes.get(path)
        if route is None:
            return _answer(start_response, 404, _error("not_found"))
        if method not in ("GET", "HEAD"):
            return _answer(start_response, 405, _error("method_not_allowed"))
        if path in tokens and not _bearer_matches(environ, tokens[path]):
            return _answer(start_response, 401, _error("unauthorized"))
        try:
            status, body, content_type = route()
        except Exception:
            log.warning("the %s endpoint failed", path, exc_info=True)
            status, body, content_type = 503, _error("unavailable"), "application/json"
        return _answer(start_response, status, body, content_type)

    return application


def _bearer_matches(environ: dict[str, Any], token: str) -> bool:
    scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _error(error: str) -> bytes:
    return json.dumps({"ok": False, "error": error}).encode()


_REASONS = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def _answer(
    start_response: StartResponse,
    status: int,
    body: bytes,
    content_type: str = "application/json; charset=utf-8",
    *,
    allow: str = "GET, HEAD",
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if status == 405:
        headers.append(("Allow", allow))  # RFC 9110: a 405 says what is allowed
    if status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="apikey-bot"'))  # RFC 6750, 3
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [body]


class HttpServer:
    """The guarded waitress server on one port; ``serve_forever`` in one thread, ``shutdown``
    from another."""

    def __init__(
        self,
        application: Callable[..., Any],
        *,
        host: str,
        port: int,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._limits = limits or ConnectionLimits()
        self._map: dict[int, Any] = {}
        self._servers: list[GuardedServer] = create_guarded_servers(
            application,
            limits=self._limits,
            map=self._map,
            threads=WORKER_THREADS,
            host=host,
            port=port,
            backlog=BACKLOG,
            cleanup_interval=10,
            max_request_body_size=MAX_BODY_BYTES,
            ident="apikey-bot",
            # Access lines are the bot's to write (never bodies): none from waitress itself.
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
        )
        self._stopped = threading.Event()
        self._loop_done = threading.Event()
        self._loop_done.set()  # no loop runs until serve_forever
        self._closing = threading.Lock()
        self._closed = False

    @property
    def server_port(self) -> int:
        return int(self._servers[0].effective_port)

    def serve_forever(self) -> None:
        """Run the I/O loop until ``shutdown``; the server is closed here, in the loop's own
        thread (closing its sockets from another thread would pull them out from under
        select())."""
        self._loop_done.clear()
        try:
            adj = self._servers[0].adj
            while not self._stopped.is_set() and self._map:
                self._servers[0].asyncore.loop(
                    # Wake at least this often: the request deadline is checked on each turn.
                    timeout=self._limits.sweep_seconds,
                    map=self._map,
                    use_poll=adj.asyncore_use_poll,
                    count=1,
                )
        finally:
            self._close_once()
            self._loop_done.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the loop (from any thread) and wait until it has closed the server."""
        self._stopped.set()
        if self._loop_done.is_set():  # not serving: close here
            self._close_once()
            return
        with self._closing:  # the loop may be closing the server (and its trigger) right now
            if not self._closed:
                self._servers[0].pull_trigger()  # wakes the loop at once
        self._loop_done.wait(timeout)

    def server_close(self) -> None:
        self.shutdown()

    def _close_once(self) -> None:
        with self._closing:
            if not self._closed:
                self._closed = True
                for server in self._servers:
                    server.close()


def make_server(
    gate: SlackGate | None,
    *,
    host: str,
    port: int,
    routes: Mapping[str, Route] | None = None,
    limits: ConnectionLimits | None = None,
    bearer_tokens: Mapping[str, str] | None = None,
) -> HttpServer:
    """The bot's HTTP server: Slack's events (``gate``; None where only the GET routes are
    served) and the GET ``routes`` (the probes, from bot.observability), some of them behind
    ``bearer_tokens``. Without routes, /healthz only says the server is up."""
    all_routes = dict(routes or {HEALTH_PATH: _up})
    application = make_wsgi_app(gate, all_routes, bearer_tokens=bearer_tokens)
    return HttpServer(application, host=host, port=port, limits=limits)


def _up() -> tuple[int, bytes, str]:
    return 200, b'{"ok": true}', "application/json; charset=utf-8"
