"""HTTP mode: Slack posts commands, interactivity and events to POST /slack/events.

Served by waitress, a production WSGI server (see the README on why this one): its I/O thread
reads each request whole, with timeouts, before a worker sees it, so a client that sends slowly
holds no worker; a bounded pool of worker threads runs the requests; connections beyond a limit
wait in the backlog; bodies over 1 MB are refused with 413 before they are read.

/slack/events goes through Bolt's own WSGI adapter (slack_bolt.adapter.wsgi), whose dispatch
step is ``SlackGate``: the signature is checked on the raw bytes before anything parses the
body, and whatever cannot be read gets a clear HTTP answer and one log line. Other paths are
read-only GET routes (health, readiness, metrics).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from slack_bolt import BoltResponse
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from waitress.server import create_server

from bot.slack.gate import MAX_BODY_BYTES, SlackGate

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
# A connection idle this long is closed (waitress' channel_timeout): a client that stops
# sending in the middle of a request holds a socket that long, and never a worker thread.
READ_TIMEOUT_SECONDS = 30
WORKER_THREADS = 16  # requests run at once; acks are fast, the slow work runs after the ack
CONNECTION_LIMIT = 256  # open connections at once; more wait in the listen backlog
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


def make_wsgi_app(gate: SlackGate | None, routes: Mapping[str, Route]) -> Callable[..., Any]:
    """The bot's WSGI application: Slack's POSTs (when ``gate`` is given) and GET ``routes``."""
    slack = GatedRequestHandler(gate) if gate is not None else None

    def application(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
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
        try:
            status, body, content_type = route()
        except Exception:
            log.warning("the %s endpoint failed", path, exc_info=True)
            status, body, content_type = 503, _error("unavailable"), "application/json"
        return _answer(start_response, status, body, content_type)

    return application


def _error(error: str) -> bytes:
    return json.dumps({"ok": False, "error": error}).encode()


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


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
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [body]


def health_route(check: Callable[[], bool]) -> Route:
    """GET /healthz: 200 while the database answers, else 503."""

    def route() -> tuple[int, bytes, str]:
        healthy = _safe(check)
        body = json.dumps({"ok": healthy, "database": "ok" if healthy else "down"})
        return (200 if healthy else 503), body.encode(), "application/json; charset=utf-8"

    return route


class HttpServer:
    """A waitress server on one port; ``serve_forever`` in one thread, ``shutdown`` from
    another."""

    def __init__(self, application: Callable[..., Any], *, host: str, port: int) -> None:
        self._server: Any = create_server(
            application,
            host=host,
            port=port,
            threads=WORKER_THREADS,
            connection_limit=CONNECTION_LIMIT,
            backlog=BACKLOG,
            channel_timeout=READ_TIMEOUT_SECONDS,
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
        return int(self._server.effective_port)

    def serve_forever(self) -> None:
        """Run the I/O loop until ``shutdown``; the server is closed here, in the loop's own
        thread (closing its sockets from another thread would pull them out from under
        select())."""
        self._loop_done.clear()
        try:
            adj = self._server.adj
            # One listening socket: TcpWSGIServer (its map is _map); several: MultiSocketServer.
            sockets = getattr(self._server, "_map", None) or self._server.map
            while not self._stopped.is_set() and sockets:
                self._server.asyncore.loop(
                    timeout=adj.asyncore_loop_timeout,
                    map=sockets,
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
                self._server.pull_trigger()  # wakes the loop at once
        self._loop_done.wait(timeout)

    def server_close(self) -> None:
        self.shutdown()

    def _close_once(self) -> None:
        with self._closing:
            if not self._closed:
                self._closed = True
                self._server.close()


def make_server(
    gate: SlackGate | None,
    *,
    host: str,
    port: int,
    health_check: Callable[[], bool],
    routes: Mapping[str, Route] | None = None,
) -> HttpServer:
    """The bot's HTTP server: Slack's events (``gate``; None in Socket Mode, where only the
    GET routes are served), /healthz from ``health_check``, and any other GET ``routes``."""
    all_routes = {HEALTH_PATH: health_route(health_check), **(routes or {})}
    return HttpServer(make_wsgi_app(gate, all_routes), host=host, port=port)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        log.warning("health check failed", exc_info=True)
        return False
