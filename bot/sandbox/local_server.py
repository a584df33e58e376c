"""HTTP plumbing shared by the local stand-ins (``binance_simulator``, ``slack_standin``).

Each stand-in is a real HTTP/1.1 server on its own daemon thread: keep-alive, one daemon thread per
connection, and a ``stop()`` that answers nothing more, even on open keep-alive connections or
requests still sleeping in injected latency. The pieces:

- ``LocalServer``: the ``ThreadingHTTPServer``; it holds the stand-in (``owner``) and tracks the
  open connections so that ``close_connections()`` can shut them;
- ``TrackedHandler``: the request handler base; it registers its connection with the server, keeps
  the console quiet and sends JSON (or plain) replies with ``send_reply()``;
- ``LocalService``: the stand-in's base; ``start()`` / ``stop()`` / ``with``, ``_stopping`` (an
  event set by ``stop()`` that requests wait on instead of sleeping) and, for the modules' command
  lines, ``run_until_interrupted()``.

A stand-in subclasses ``LocalService`` and sets ``handler_class``, ``thread_name`` and
``service_name``; its handler subclasses ``TrackedHandler`` and reaches the stand-in as
``self.server.owner``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Self, TypeVar

OwnerT = TypeVar("OwnerT")


class LocalServer(ThreadingHTTPServer, Generic[OwnerT]):
    """A threading HTTP server for ``owner`` that can shut its open keep-alive connections."""

    daemon_threads = True
    block_on_close = False  # stop() never waits for a request that hangs on purpose
    request_queue_size = 128  # bursts of concurrent connections must not see dropped SYNs

    def __init__(
        self, address: tuple[str, int], handler: type[TrackedHandler], owner: OwnerT
    ) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_connections(self) -> None:
        """Shut open keep-alive connections, so nothing is answered after stop()."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class TrackedHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler whose connection ``LocalServer.close_connections`` can shut."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without this, Nagle + delayed ACK add ~40 ms.
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    json_content_type = "application/json"  # the Content-Type of JSON replies
    server: LocalServer[Any]

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stand-in keeps its own record; keep test and CLI output quiet

    def read_body(self) -> bytes:
        """The request body (per ``Content-Length``; empty without one)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_reply(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Answer ``body``: a str as ``text/html``, anything else as JSON; then ``headers``."""
        if isinstance(body, str):
            data, content_type = body.encode(), "text/html"
        else:
            data, content_type = json.dumps(body).encode(), self.json_content_type
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class LocalService:
    """Runs a ``LocalServer`` for ``self`` on a daemon thread: ``start()``, ``stop()``, ``with``."""

    handler_class: ClassVar[type[TrackedHandler]]
    thread_name: ClassVar[str]  # the server thread's name
    service_name: ClassVar[str]  # for errors, e.g. "the simulator"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port  # 0 picks a free port
        self._stopping = threading.Event()  # set by stop(); requests wait on it, not sleep
        self._server: LocalServer[Self] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.service_name} is already running")
        self._stopping.clear()
        self._server = LocalServer((self.host, self.port), self.handler_class, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes requests sleeping in latency or hanging on purpose
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_until_interrupted(self, announce: Callable[[], None]) -> None:
        """For a command line: start, ``announce()`` (where it listens), serve until Ctrl-C, stop."""
        self.start()
        try:
            announce()
            threading.Event().wait()  # until Ctrl-C
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"{self.service_name} is not running")
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):  # an AF_UNIX-style address: never for these TCP servers
            host = host.decode()
        return f"http://{host}:{port}"
