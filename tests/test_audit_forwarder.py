"""The audit forwarder against real local receivers: an HTTP collector that is down, hangs, then
answers 500 before it accepts; syslog servers on UDP and TCP; two replicas on one database.
Every event arrives exactly once and in order, and no action waits for the receiver."""

from __future__ import annotations

import json
import logging
import re
import socket
import socketserver
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from bot.config import ConfigError, load_settings
from bot.job_queue.scheduler import FixedClock
from bot.jobs.audit_forwarder import (
    LEASE,
    SD_ID,
    AuditForwarder,
    HttpTarget,
    start_audit_forwarder,
)
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.audit_export import event_record, iter_events
from storage.db import session_scope
from tests.e2e import register_directly, wait_until

TOKEN = "collector-token-for-tests"  # a local receiver's token, not a real secret


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Collector:
    """A SIEM's HTTP collector on 127.0.0.1. While ``hold`` is set each request waits (then is
    refused); the first ``fail`` requests after that get 500; then every batch is accepted."""

    def __init__(self, port: int = 0, *, fail: int = 0) -> None:
        self.fail = fail
        self.refused = 0
        self.batches: list[list[dict]] = []
        self.authorizations: list[str | None] = []
        self.hold = threading.Event()
        self.holding = threading.Event()  # a request is waiting in the collector right now
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.authorizations.append(self.headers.get("Authorization"))
                status = 200
                if collector.hold.is_set():
                    collector.holding.set()
                    while collector.hold.is_set():
                        collector.hold.wait(0.01)
                    status = 503  # the forwarder gave up on this one long ago
                elif collector.refused < collector.fail:
                    collector.refused += 1
                    status = 500
                else:
                    collector.batches.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/collect"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Collector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hold.clear()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    @property
    def ids(self) -> list[int]:
        return [event["id"] for batch in self.batches for event in batch]


def trail(engine) -> list[dict]:
    return [event_record(row) for row in iter_events(engine)]


def test_a_collector_down_hung_then_failing_gets_every_event_once_in_order(make_stack, caplog):
    caplog.set_level(logging.INFO, logger="bot")
    port = free_port()  # nothing listens there yet: connections are refused
    stack = make_stack(
        audit_forward_url=f"http://127.0.0.1:{port}/collect",
        audit_forward_token=TOKEN,
        audit_forward_interval_seconds=0.05,
        audit_forward_batch=2,
        audit_forward_timeout_seconds=1,
    )
    engine = stack.services.engine
    stop = start_audit_forwarder(stack.settings, engine)
    collector: Collector | None = None
    try:
        first, _ = register_directly(stack, "first")  # the collector is down: the action is done
        wait_until(lambda: "ConnectionError" in caplog.text)

        collector = Collector(port, fail=2)
        collector.hold.set()
        collector.start()
        wait_until(collector.holding.is_set)
        # The forwarder's request hangs in the collector; the bot's actions do not wait for it.
        second, _ = register_directly(stack, "second")
        assert collector.hold.is_set() and second.key_id != first.key_id
        collector.hold.clear()

        expected = trail(engine)
        assert len(expected) >= 2
        wait_until(lambda: len(collector.ids) >= len(expected), timeout=30)
        register_directly(stack, "third")  # written while the forwarder is healthy
        expected = trail(engine)
        wait_until(lambda: len(collector.ids) >= len(expected), timeout=30)
    finally:
        stop()
        if collector is not None:
            collector.stop()
    assert collector.refused == 2
    assert [event for batch in collector.batches for event in batch] == expected
    assert all(len(batch) <= 2 for batch in collector.batches)
    assert set(collector.authorizations) == {f"Bearer {TOKEN}"}
    assert TOKEN not in caplog.text and "/collect" not in caplog.text
    with engine.connect() as connection:
        cursor = connection.execute(sa.text("SELECT last_id, sent FROM audit_forward_cursors"))
        assert cursor.one() == (expected[-1]["id"], len(expected))


def _events(engine, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        with session_scope(engine) as session:
            record_event(
                session,
                team_id="T",
                actor="U0ALICE",
                action=AuditAction.KEY_STATUS,
                target=f'key "{i}" ]\\',
                detail={"i": i, "note": "é\nline"},
            )


def _settings(database_url: str, url: str, **overrides):
    return load_settings(
        _env_file=None,
        database_url=database_url,
        audit_forward_url=url,
        audit_forward_interval_seconds=0.02,
        **overrides,
    )


def test_two_replicas_send_each_event_once_and_a_restart_catches_up(engine, database_url):
    collector = Collector().start()
    settings = _settings(database_url, collector.url, audit_forward_batch=5)
    stop_a = start_audit_forwarder(settings, engine)
    stop_b = start_audit_forwarder(settings, engine)
    try:
        _events(engine, 60)
        wait_until(lambda: len(collector.ids) >= 20, timeout=30)
        stop_a()  # whichever was sending, the other carries on
        _events(engine, 40, start=60)
        wait_until(lambda: len(collector.ids) >= 100, timeout=30)
        stop_b()
        _events(engine, 25, start=100)  # written while no forwarder runs
        stop_c = start_audit_forwarder(settings, engine)
        try:
            wait_until(lambda: len(collector.ids) >= 125, timeout=30)
        finally:
            stop_c()
    finally:
        stop_a()
        stop_b()
        collector.stop()
    assert collector.ids == [event["id"] for event in trail(engine)]
    assert len(collector.ids) == 125


class _Collecting:
    """A syslog server that keeps the messages it gets."""

    messages: list[bytes]


class _UDPCollector(_Collecting, socketserver.ThreadingUDPServer):
    pass


class _TCPCollector(_Collecting, socketserver.ThreadingTCPServer):
    daemon_threads = True


class _SyslogUDP(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, _Collecting)
        self.server.messages.append(self.request[0])


class _SyslogTCP(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        # RFC 6587 section 3.4.1, octet counting: MSG-LEN SP SYSLOG-MSG, back to back.
        while True:
            length = b""
            while not length.endswith(b" "):
                byte = self.rfile.read(1)
                if not byte:
                    return
                length += byte
            assert isinstance(self.server, _Collecting)
            self.server.messages.append(self.rfile.read(int(length)))


RFC5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) apikey-bot (?P<proc>\S+) (?P<msgid>\S+) "
    rb"\[(?P<sd>(?:[^\]\\]|\\.)*)\] \xef\xbb\xbf(?P<msg>.*)",
    re.DOTALL,
)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_syslog_server_gets_rfc5424_messages(transport, engine, database_url):
    if transport == "udp":
        server = _UDPCollector(("127.0.0.1", 0), _SyslogUDP)
    else:
        server = _TCPCollector(("127.0.0.1", 0), _SyslogTCP)
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "syslog" if transport == "udp" else "syslog+tcp"
    settings = _settings(database_url, f"{scheme}://127.0.0.1:{server.server_address[1]}")
    _events(engine, 7)
    stop = start_audit_forwarder(settings, engine)
    try:
        wait_until(lambda: len(server.messages) >= 7, timeout=30)
    finally:
        stop()
        server.shutdown()
        server.server_close()
    expected = trail(engine)
    assert len(server.messages) == 7
    for raw, event in zip(server.messages, expected, strict=True):
        match = RFC5424.fullmatch(raw)
        assert match, raw
        assert int(match["pri"]) == 13 * 8 + 6  # facility "log audit", severity informational
        assert match["ts"].decode() == event["at"] and match["msgid"] == b"key.status"
        assert json.loads(match["msg"].decode("utf-8")) == event
        sd = match["sd"].decode("utf-8")
        assert sd.startswith(SD_ID + " ")
        params = dict(re.findall(r'(\w+)="((?:[^"\\\]]|\\.)*)"', sd))
        unescaped = {k: re.sub(r"\\(.)", r"\1", v) for k, v in params.items()}
        assert unescaped["id"] == str(event["id"]) and unescaped["target"] == event["target"]
        assert unescaped["hash"] == event["hash"] and "detail" not in unescaped


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://siem.example.com/in", "only allowed to this machine"),
        ("https://user:pw@siem.example.com/in", "AUDIT_FORWARD_TOKEN"),
        ("ftp://siem.example.com", "https://, syslog:// or syslog+tcp://"),
        ("syslog://logs.example.com:514/extra", "nothing after the port"),
    ],
)
def test_a_bad_forwarding_url_stops_start_up_with_one_line(url, problem):
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, audit_forward_url=url)
    assert problem in str(caught.value) and "AUDIT_FORWARD_URL" in str(caught.value)
    assert "user:pw" not in str(caught.value)


def test_without_a_url_nothing_is_forwarded(engine, database_url):
    settings = load_settings(_env_file=None, database_url=database_url)
    stop = start_audit_forwarder(settings, engine)
    stop()
    with engine.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT COUNT(*) FROM audit_forward_cursors")).scalar() == 0
        )


def test_a_sender_whose_lease_expired_gives_way_to_the_one_that_took_it(engine):
    """Replica A stalls past its lease; B takes over from A's cursor; A, back, sends nothing."""
    collector = Collector().start()
    clock = FixedClock(datetime.now(UTC))

    def replica(owner: str) -> AuditForwarder:
        target = HttpTarget(collector.url, token=None, timeout=5)
        return AuditForwarder(engine, target, destination="d", batch=3, clock=clock, owner=owner)

    a, b = replica("A"), replica("B")
    try:
        _events(engine, 9)
        assert a.step() == 3
        assert b.step() == 0  # A holds the lease
        clock.advance(LEASE + timedelta(seconds=1))
        assert b.step() == 3
        assert a.step() == 0 and not a.holds_lease
        assert b.step() == 3 and a.step() == 0
    finally:
        collector.stop()
    assert collector.ids == [event["id"] for event in trail(engine)]
