"""Slow or numerous clients against the bot's real HTTP server, over loopback sockets.

An attacker's connections come from other loopback addresses (127.0.1.x: Linux routes the whole
127.0.0.0/8 to this machine), so the per-address cap sees them as other clients than the tests'
own requests from 127.0.0.1. Deadlines are configured short, and every attack here stops by
itself within seconds.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from tests.e2e import ALICE, all_text
from tests.slack_requests import SIGNING_SECRET, BotClient

DEADLINE = 2.0  # HTTP_REQUEST_DEADLINE_SECONDS in these tests
SLACK_ACK_SECONDS = 3.0  # Slack gives up on an ack after 3 s

# A request that never ends: the line and headers Slack would send, then a header whose value
# grows by one byte each time the attacker gets round to it.
TRICKLED = b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Type: text/plain\r\nX-Pad: "


def _address(stack) -> tuple[str, int]:
    host, port = stack.url.removeprefix("http://").split(":")
    return host, int(port)


@dataclass
class _Connection:
    sock: socket.socket
    opened: float
    sent: int = 0


@dataclass
class Trickler:
    """``per_source`` connections from each of ``sources``, each sending one more byte every
    ``every`` seconds; a connection the server closes is opened again (a persistent attacker).
    Runs in a thread of its own for at most ``duration`` seconds."""

    target: tuple[str, int]
    sources: list[str]
    per_source: int
    every: float = 0.5
    duration: float = 20.0
    prefix: bytes = TRICKLED
    lifetimes: list[float] = field(default_factory=list)  # of those the server closed
    answers: list[bytes] = field(default_factory=list)  # what the server said before closing
    opened: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Trickler:
        self._thread = threading.Thread(target=self._run, name="trickler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Trickler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open(self, source: str) -> _Connection | None:
        try:
            sock = socket.create_connection(self.target, timeout=2, source_address=(source, 0))
        except OSError:
            return None
        sock.setblocking(False)
        self.opened += 1
        return _Connection(sock, time.monotonic())

    def _run(self) -> None:
        ends = time.monotonic() + self.duration
        slots: list[tuple[str, _Connection | None]] = [
            (source, None) for source in self.sources for _ in range(self.per_source)
        ]
        try:
            while not self._stop.is_set() and time.monotonic() < ends:
                for i, (source, conn) in enumerate(slots):
                    if conn is None or self._closed_by_server(conn):
                        conn = self._open(source)
                        slots[i] = (source, conn)
                    if conn is not None:
                        self._send_one_more(conn)
                self._stop.wait(self.every)
        finally:
            for _, conn in slots:
                if conn is not None:
                    conn.sock.close()

    def _send_one_more(self, conn: _Connection) -> None:
        try:
            conn.sock.send(self.prefix if conn.sent == 0 else b"a")
            conn.sent += 1
        except OSError:
            pass  # noticed as closed on the next round

    def _closed_by_server(self, conn: _Connection) -> bool:
        readable, _, _ = select.select([conn.sock], [], [], 0)
        if not readable:
            return False
        try:
            said = conn.sock.recv(4096)
        except OSError:
            said = b""
        if said:
            self.answers.append(said)
            try:  # the server closes right after its answer
                while conn.sock.recv(4096):
                    pass
            except OSError:
                pass
        self.lifetimes.append(time.monotonic() - conn.opened)
        conn.sock.close()
        return True


def _healthz(stack, timeout: float = 2.0) -> float:
    started = time.monotonic()
    response = requests.get(stack.url + "/healthz", timeout=timeout)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def _help_ack(stack) -> float:
    client = BotClient(stack.url, secret=SIGNING_SECRET, slack=stack.slack, timeout=5)
    started = time.monotonic()
    reply = client.command("help", user_id=ALICE)
    elapsed = time.monotonic() - started
    assert reply.status_code == 200 and "register" in all_text(reply.json())
    return elapsed


def test_health_and_slack_answer_while_260_trickling_connections_are_open(make_stack, caplog):
    """Before: 260 connections trickling a header byte now and then filled waitress' 256 and
    kept them (each byte reset the 30 s idle timer): /healthz and Slack timed out."""
    caplog.set_level(logging.INFO)
    stack = make_stack(http_request_deadline_seconds=DEADLINE)
    sources = [f"127.0.1.{i}" for i in range(1, 11)]  # 10 addresses, 26 each: under any cap
    with Trickler(_address(stack), sources, per_source=26, every=0.5, duration=25) as attack:
        while attack.opened < 260:
            time.sleep(0.05)
        time.sleep(1.0)  # every connection has started its request
        for _ in range(3):
            assert _healthz(stack) < 2.0
            assert _help_ack(stack) < SLACK_ACK_SECONDS
            time.sleep(0.5)
    # The server ended the trickling requests itself, each within the deadline (and a sweep).
    assert attack.lifetimes, "the server closed none of the trickling connections"
    assert max(attack.lifetimes) < DEADLINE + 2.0, max(attack.lifetimes)
    assert {a.split(b"\r\n")[0] for a in attack.answers} <= {
        b"HTTP/1.1 408 Request Timeout",
        b"HTTP/1.1 503 Service Unavailable",
    }
    # A few lines say what happened (at most one a minute per reason); no traceback.
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    closed = [r for r in caplog.records if r.getMessage().startswith("closed a connection")]
    assert 1 <= len(closed) <= 3


def _connect(stack, source: str) -> socket.socket:
    return socket.create_connection(_address(stack), timeout=5, source_address=(source, 0))


def _answer_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sends before it closes ``sock`` within ``seconds``; None when it is
    still open then."""
    sock.settimeout(0.2)
    ends = time.monotonic() + seconds
    said = b""
    while time.monotonic() < ends:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return said
        if not chunk:
            return said
        said += chunk
    return None


def _closed_now(sock: socket.socket) -> bytes | None:
    """What the server said before closing ``sock``; None when it is open and silent."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return None
    return _answer_within(sock, 1.0) or b""


def _trickle_until_closed(sock: socket.socket, data: bytes, seconds: float) -> bytes | None:
    """Send ``data`` one byte every 0.25 s; what the server said when it closed the
    connection, or None when it was still open after ``seconds``."""
    sock.settimeout(0.25)
    ends = time.monotonic() + seconds
    said = b""
    for byte in (data[i : i + 1] for i in range(len(data))):
        if time.monotonic() > ends:
            return None
        try:
            sock.sendall(byte)
        except OSError:
            return said
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return said
        if not chunk:
            return said
        said += chunk
    return None


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_request_must_arrive_whole_within_the_deadline(make_stack, part):
    """Before: only idle time was limited; a byte every few seconds kept a request open for
    ever. Now the headers and body of one request must arrive within the deadline: a request
    still arriving then is answered 408 and the connection closed."""
    stack = make_stack(http_request_deadline_seconds=DEADLINE)
    if part == "headers":
        data = TRICKLED + b"a" * 200
    else:
        data = b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 200\r\n\r\n"
        data += b"x" * 200
    with _connect(stack, "127.0.1.20") as sock:
        if part == "body":
            sock.sendall(data[: data.index(b"\r\n\r\n") + 4])  # headers at once, body slowly
            data = data[data.index(b"\r\n\r\n") + 4 :]
        started = time.monotonic()
        said = _trickle_until_closed(sock, data, seconds=DEADLINE + 4)
        took = time.monotonic() - started
    assert said is not None, "the connection was still open well after the deadline"
    assert took < DEADLINE + 2.0
    assert said == b"" or said.startswith(b"HTTP/1.1 408 "), said[:80]
    assert _healthz(stack) < 2.0


def test_a_connection_that_never_sends_is_closed_after_the_deadline(make_stack):
    stack = make_stack(http_request_deadline_seconds=DEADLINE)
    with _connect(stack, "127.0.1.21") as silent:
        said = _answer_within(silent, DEADLINE + 2.0)
    assert said is not None, "a connection that sent nothing was kept past the deadline"


def test_one_address_cannot_hold_more_connections_than_its_cap(make_stack):
    """Before: one address could open every connection the server allows."""
    cap = 8
    stack = make_stack(http_max_connections_per_client=cap, http_request_deadline_seconds=30)
    conns = [_connect(stack, "127.0.1.30") for _ in range(cap + 4)]
    try:
        for conn in conns:
            conn.sendall(TRICKLED)
        time.sleep(1.0)
        answers = [_closed_now(conn) for conn in conns]
        refused = [a for a in answers if a is not None]
        assert len(refused) == 4, answers
        assert all(a == b"" or a.startswith(b"HTTP/1.1 429 ") for a in refused), refused
        # Everyone else is served, at once.
        assert _healthz(stack) < 2.0
        assert _help_ack(stack) < SLACK_ACK_SECONDS
        # A slot given back is free again for that address.
        still_open = [c for c, a in zip(conns, answers, strict=True) if a is None]
        still_open[0].close()
        time.sleep(0.3)
        with _connect(stack, "127.0.1.30") as again:
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n")
            answer = _answer_within(again, 3.0)
        assert answer is not None and answer.startswith(b"HTTP/1.1 200 "), answer
    finally:
        for conn in conns:
            conn.close()


def test_without_a_cap_one_address_may_hold_many_connections(make_stack):
    """HTTP_MAX_CONNECTIONS_PER_CLIENT=0, for a load balancer whose address every client
    shares: only the deadline and the total limit apply."""
    stack = make_stack(http_max_connections_per_client=0, http_request_deadline_seconds=30)
    conns = [_connect(stack, "127.0.1.40") for _ in range(40)]
    try:
        for conn in conns:
            conn.sendall(TRICKLED)
        time.sleep(1.0)
        assert [_closed_now(conn) for conn in conns] == [None] * 40
        assert _healthz(stack) < 2.0
    finally:
        for conn in conns:
            conn.close()
