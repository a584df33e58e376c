"""waitress, guarded against slow or numerous clients.

waitress reads every request whole in its I/O thread before a worker sees it, but it limits only
idle time (``channel_timeout``): a client sending one byte every few seconds keeps its connection
for ever, and once ``connection_limit`` connections are open waitress stops accepting, so probes
and Slack wait in the listen backlog behind the attacker. Three guards close that, enforced in
waitress' own I/O loop through its extension points (``channel_class``, ``readable``,
``handle_accept``), with no thread of their own:

- **A deadline per request.** Its headers and body must arrive within ``request_deadline_seconds``
  of its first byte (of the connection's opening, for the first request): one that is still
  arriving then is answered ``408 Request Timeout`` (RFC 9110, 15.5.9) and the connection closed.
  Time between requests on a kept-alive connection is idle time (``idle_seconds``).
- **A cap per client address.** A connection beyond ``per_client`` from one address is answered
  ``429 Too Many Requests`` (RFC 6585, 4) and closed at once. Behind a load balancer every client
  shares its address: there the cap is 0 (off) and the balancer limits clients.
- **Room at the limit.** When ``total`` connections are open, a new one does not wait: the
  connection that has been sending its request the longest (else the one idle the longest) is
  answered ``503`` and closed to make room. A connection whose request a worker is serving is
  never closed this way.

Each answer is best effort (one non-blocking send: a client that reads nothing loses it) and is
counted in ``apikey_bot_http_connections_refused_total`` by reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from bot.observability.metrics import record_refused_connection

log = logging.getLogger(__name__)

DEADLINE = "request_deadline"
CLIENT_CAP = "client_cap"
CONNECTION_LIMIT = "connection_limit"
_ANSWERS = {
    DEADLINE: (408, "Request Timeout", "request_timeout"),
    CLIENT_CAP: (429, "Too Many Requests", "too_many_connections"),
    CONNECTION_LIMIT: (503, "Service Unavailable", "server_busy"),
}
LOG_EVERY_SECONDS = 60.0  # one line per reason at most this often, with the count since


@dataclass(frozen=True)
class ConnectionLimits:
    request_deadline_seconds: float = 10.0
    per_client: int = 32  # 0: no cap
    total: int = 256
    idle_seconds: int = 30  # between requests on a kept-alive connection

    @property
    def sweep_seconds(self) -> float:
        """How often deadlines are checked (and the I/O loop wakes at least)."""
        return min(1.0, self.request_deadline_seconds / 4)


class GuardedChannel(HTTPChannel):
    """waitress' connection, noting since when its current request has been arriving."""

    def __init__(self, server: Any, sock: socket.socket, addr: Any, adj: Adjustments, map: Any):
        super().__init__(server, sock, addr, adj, map=map)
        # The first request is timed from the opening: a connection that sends nothing is a
        # request that does not arrive.
        self.reading_since: float | None = time.monotonic()

    def handle_read(self) -> None:
        # A connection closed to make room may still be in this turn's list of readable ones;
        # its input was drained, so reading it would only fail.
        if not self.is_closing:
            super().handle_read()

    def received(self, data: bytes) -> bool:
        if data and self.reading_since is None:
            self.reading_since = time.monotonic()
        received = bool(super().received(data))
        if self.request is None:  # nothing half-received: every request so far is whole
            self.reading_since = None
        return received

    @property
    def client(self) -> str:
        return str(self.addr[0]) if isinstance(self.addr, tuple) else str(self.addr)

    @property
    def is_closing(self) -> bool:  # (wasyncore's own ``closing`` means something else)
        return bool(self.will_close or self.close_when_flushed)

    @property
    def sheddable(self) -> bool:
        """Not being served (no request with a worker, nothing left to send) nor closing."""
        return not (self.requests or self.total_outbufs_len or self.is_closing)


class GuardedServer(TcpWSGIServer):
    """One listening socket of the guarded server (waitress' TcpWSGIServer)."""

    channel_class = GuardedChannel
    effective_port: int  # set by waitress' __init__ (the port bound, for port 0 too)

    def __init__(
        self,
        application: Callable[..., Any],
        *,
        limits: ConnectionLimits,
        adj: Adjustments,
        sockinfo: Any,
        map: dict[int, Any],
        dispatcher: ThreadedTaskDispatcher,
        notes: RefusalLog,
    ) -> None:
        self.limits = limits
        self._notes = notes
        self._connections = map  # shared by every listening socket of the server
        self._next_sweep = 0.0
        super().__init__(application, map=map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)

    def channels(self) -> list[GuardedChannel]:
        """Every open connection of the server (all its listening sockets share one map)."""
        return [
            c
            for c in self._connections.values()
            if isinstance(c, GuardedChannel) and not c.is_closing
        ]

    def readable(self) -> bool:
        now = int(time.time())
        if now >= self.next_channel_cleanup:  # waitress' own sweep: idle connections
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        self._enforce_deadline()
        if not self.accepting:
            return False
        channels = self.channels()
        return len(channels) < self.limits.total or _longest_waiting(channels) is not None

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
        except OSError:  # the client left before we got to it (as waitress: not an error)
            log.debug("accept() failed", exc_info=True)
            return
        client = str(addr[0]) if isinstance(addr, tuple) else str(addr)
        channels = self.channels()
        cap = self.limits.per_client
        if cap and sum(1 for c in channels if c.client == client) >= cap:
            self._refuse(conn, CLIENT_CAP, client)
            return
        if len(channels) >= self.limits.total:
            victim = _longest_waiting(channels)
            if victim is None:  # every connection is being served: this one waits no better
                self._refuse(conn, CONNECTION_LIMIT, client)
                return
            self._shed(victim, CONNECTION_LIMIT)
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._connections)

    def _enforce_deadline(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.limits.sweep_seconds
        cutoff = now - self.limits.request_deadline_seconds
        for channel in self.channels():
            since = channel.reading_since
            if channel.sheddable and since is not None and since < cutoff:
                self._shed(channel, DEADLINE)

    def _refuse(self, conn: socket.socket, reason: str, client: str) -> None:
        """A connection never handed to waitress: answered and closed here."""
        _answer(conn, reason)
        conn.close()
        self._notes.note(reason, client)

    def _shed(self, channel: GuardedChannel, reason: str) -> None:
        """An open connection: answered now, closed by waitress' loop on its next turn (closing
        it here could hand its descriptor to a new connection under the loop's feet)."""
        if channel.socket is not None:
            _answer(channel.socket, reason)
        channel.will_close = True
        self._notes.note(reason, channel.client)


def _longest_waiting(channels: Iterable[GuardedChannel]) -> GuardedChannel | None:
    """The connection to close to make room: the one whose request has been arriving the
    longest, else the one idle the longest; None when every one is being served."""
    oldest: tuple[int, float, GuardedChannel] | None = None
    for channel in channels:
        if not channel.sheddable:
            continue
        since = channel.reading_since
        key = (0, since) if since is not None else (1, float(channel.last_activity))
        if oldest is None or key < oldest[:2]:
            oldest = (*key, channel)
    return oldest[2] if oldest is not None else None


def _answer(sock: socket.socket, reason: str) -> None:
    """Say why, in one non-blocking send, then drain what the client had sent (so the close
    that follows is not a reset that would discard the answer)."""
    status, phrase, error = _ANSWERS[reason]
    body = json.dumps({"ok": False, "error": error}).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        + ("Retry-After: 1\r\n" if status != 408 else "")
        + "\r\n"
    )
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        for _ in range(16):
            if not sock.recv(65536):
                break


class RefusalLog:
    """Counts every refused connection, and logs at most one line per reason a minute: an
    attacker must not be able to flood the log either."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self._every = every
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def note(self, reason: str, client: str) -> None:
        record_refused_connection(reason)
        self._since[reason] = self._since.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last.get(reason, float("-inf")) < self._every:
            return
        count, self._since[reason] = self._since[reason], 0
        self._last[reason] = now
        log.warning(
            "closed a connection from %s: %s (%d so closed since the previous such line)",
            client,
            _WHY[reason],
            count,
        )


_WHY = {
    DEADLINE: "its request did not arrive whole within HTTP_REQUEST_DEADLINE_SECONDS",
    CLIENT_CAP: "that address holds HTTP_MAX_CONNECTIONS_PER_CLIENT connections already",
    CONNECTION_LIMIT: "the server was at its connection limit (room made for a new one)",
}


def create_guarded_servers(
    application: Callable[..., Any],
    *,
    limits: ConnectionLimits,
    map: dict[int, Any],
    threads: int,
    **adjustments: Any,
) -> list[GuardedServer]:
    """One guarded server per address ``host`` resolves to (as waitress' create_server), all in
    ``map`` and sharing one pool of ``threads`` workers."""
    adj = Adjustments(
        threads=threads,
        connection_limit=limits.total,
        channel_timeout=limits.idle_seconds,
        **adjustments,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    notes = RefusalLog()
    return [
        GuardedServer(
            application,
            limits=limits,
            adj=adj,
            sockinfo=sockinfo,
            map=map,
            dispatcher=dispatcher,
            notes=notes,
        )
        for sockinfo in adj.listen
    ]
