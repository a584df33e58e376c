"""The audit forwarder: every audit event, sent to a SIEM (HTTPS) or a syslog server, in order.

It never blocks an action and never loses an event because it is a reader, not a hook: actions
only write their event (in their own transaction, as always); this loop, in a thread of its own,
reads the committed events after the last one the destination accepted and sends them. The id
of that last event is kept in the database (``audit_forward_cursors``), so a restart, a
destination that is down for hours or a replica that dies all end the same way: the forwarder
catches up from where the destination stopped accepting.

- Order: events are read in id order, the chain's order. Appends to the chain are serialised
  until they commit (storage/audit.py), so a later id never becomes visible before an earlier
  one and nothing is skipped.
- One sender per destination across replicas: each replica runs the loop, but only the holder
  of the cursor's lease sends; the others wait and take over when a lease expires (a replica
  that stops gives its lease up at once).
- Failures (connection refused, timeouts, any answer but 2xx) keep the cursor where it is; the
  same batch is sent again after a backoff (1 s doubling to 60 s), for as long as it takes.
- Delivery is at least once: a destination that accepted a batch just before this replica died
  (before it recorded the new cursor) gets that batch again. Each event carries its ``id``, so
  a receiver can drop the repeat.

HTTPS: one POST per batch (up to AUDIT_FORWARD_BATCH events), body a JSON array of events
(every column of the audit table, as ``apikey-bot audit export`` writes them), optional bearer
token. Syslog: one RFC 5424 message per event (structured data with the event's scalar columns,
the whole event as JSON in MSG); UDP datagrams, or TCP with octet-counting framing (RFC 6587).
Syslog has no acknowledgement: UDP may drop a message unseen, and TCP reports only a connection
that fails (the batch is then sent again on a new one); HTTPS confirms every batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from sqlalchemy.engine import Engine

from bot.config import Settings
from bot.job_queue.queue import default_worker_id
from bot.job_queue.scheduler import Clock, DatabaseClock
from storage.audit_export import (
    advance_cursor,
    claim_cursor,
    event_json,
    event_record,
    exportable,
    iter_events,
    release_cursor,
)

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_BACKOFF_SECONDS = 60.0


class ForwardError(Exception):
    """The destination did not accept a batch (the message says why, never a secret)."""


class Target(Protocol):
    endpoint: str  # scheme://host:port, safe to log

    def send(self, events: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


def endpoint_of(url: str) -> str:
    """``scheme://host:port`` of a destination: what logs and the cursor table show (a path or
    query string may hold a token)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme, 514)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or default}"


def destination_key(url: str) -> str:
    """The cursor's key for a destination: a digest of its whole URL (another URL is another
    destination and starts from the first event)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:64]


# --- HTTPS ---------------------------------------------------------------------------------------


class HttpTarget:
    """One POST per batch: a JSON array of events; any 2xx answer means accepted."""

    def __init__(self, url: str, *, token: str | None, timeout: float) -> None:
        self._url = url
        self.endpoint = endpoint_of(url)
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/json"
        self._session.headers["User-Agent"] = "apikey-bot audit forwarder"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def send(self, events: list[dict[str, Any]]) -> None:
        body = "[" + ",".join(event_json(event) for event in events) + "]"
        try:
            # No redirects: requests would turn a 301/302 POST into a GET and drop the body.
            answer = self._session.post(
                self._url,
                data=body.encode("utf-8"),
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise ForwardError(type(exc).__name__) from None
        answer.close()
        if not 200 <= answer.status_code < 300:
            raise ForwardError(f"HTTP {answer.status_code}")

    def close(self) -> None:
        self._session.close()


# --- syslog (RFC 5424) ---------------------------------------------------------------------------

# RFC 5424 section 6.2.1: facility 13 is "log audit"; severity 6 "informational".
PRI = 13 * 8 + 6
APP_NAME = "apikey-bot"
# RFC 5424 section 6.3.2: an SD-ID of our own is name@<private enterprise number>. 32473 is the
# number RFC 5612 reserves for documentation (RFC 5424's own examples use it): we have none.
SD_ID = "apikeybot@32473"
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_NOT_SD_NAME = re.compile(r'[^\x21-\x7e]|[=\]"]')


def _printusascii(text: str, limit: int) -> str:
    cleaned = _NOT_PRINTUSASCII.sub("_", text)[:limit]
    return cleaned or "-"


def _param_value(value: Any) -> str:
    """RFC 5424 section 6.3.3: PARAM-VALUE is UTF-8 with '"', '\\' and ']' escaped."""
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(event: dict[str, Any], *, hostname: str, procid: str) -> bytes:
    """One event as an RFC 5424 message: HEADER, one SD-ELEMENT holding every scalar column of
    the event (JSON ones, the detail, are in MSG only), then MSG: a BOM and the event's JSON."""
    record = event_record(event)
    params = "".join(
        f' {_NOT_SD_NAME.sub("_", name)[:32]}="{_param_value(value)}"'
        for name, value in record.items()
        if value is not None and not isinstance(value, dict | list)
    )
    at = exportable(event.get("at")) or "-"
    msgid = _printusascii(str(event.get("action") or "-"), 32)
    header = f"<{PRI}>1 {at} {hostname} {APP_NAME} {procid} {msgid}"
    message = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return f"{header} [{SD_ID}{params}] ".encode() + b"\xef\xbb\xbf" + message.encode()


class SyslogTarget:
    """RFC 5424 messages over UDP (RFC 5426: one message per datagram; nothing confirms
    delivery) or TCP (RFC 6587 octet counting: ``LENGTH SP MESSAGE``; a failed write sends the
    batch again on a new connection)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urlsplit(url)
        self.endpoint = endpoint_of(url)
        self._address = (parts.hostname or "", parts.port or 514)
        self._tcp = parts.scheme == "syslog+tcp"
        self._timeout = timeout
        self._socket: socket.socket | None = None
        self._hostname = _printusascii(socket.gethostname(), 255)
        self._procid = str(os.getpid())

    def send(self, events: list[dict[str, Any]]) -> None:
        messages = [
            syslog_message(event, hostname=self._hostname, procid=self._procid) for event in events
        ]
        try:
            if self._tcp:
                connection = self._connection()
                connection.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
            else:
                udp = self._connection()
                for message in messages:
                    udp.sendto(message, self._address)
        except OSError as exc:
            self.close()
            raise ForwardError(type(exc).__name__) from None

    def _connection(self) -> socket.socket:
        if self._socket is None:
            if self._tcp:
                self._socket = socket.create_connection(self._address, timeout=self._timeout)
            else:
                family = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0][0]
                self._socket = socket.socket(family, socket.SOCK_DGRAM)
                self._socket.settimeout(self._timeout)
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def target_for(settings: Settings) -> Target | None:
    url = settings.audit_forward_url
    if url is None:
        return None
    timeout = settings.audit_forward_timeout_seconds
    if url.startswith("syslog"):
        return SyslogTarget(url, timeout=timeout)
    token = settings.audit_forward_token
    return HttpTarget(url, token=token.get_secret_value() if token else None, timeout=timeout)


# --- the loop ------------------------------------------------------------------------------------


class AuditForwarder:
    """Sends the events after the destination's cursor, batch by batch, holding its lease."""

    def __init__(
        self,
        engine: Engine,
        target: Target,
        *,
        destination: str,
        batch: int = 100,
        interval_seconds: float = 1.0,
        lease: timedelta = LEASE,
        clock: Clock | None = None,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.target = target
        self.destination = destination
        self.batch = batch
        self.interval_seconds = interval_seconds
        self.lease = lease
        self.clock = clock or DatabaseClock(engine)
        self.owner = owner or default_worker_id()
        self.failures = 0
        self._cursor: int | None = None  # the last id accepted, while this sender holds the lease
        self._lease_until: datetime | None = None

    def step(self) -> int:
        """One round: hold the lease, send the next batch, move the cursor. Returns how many
        events the destination accepted; raises ForwardError when it refused them."""
        if not self._hold_lease():
            return 0
        assert self._cursor is not None
        events = list(iter_events(self.engine, after_id=self._cursor, limit=self.batch))
        if not events:
            return 0
        self.target.send(events)
        last_id = int(events[-1]["id"])
        now = self.clock.now()
        if not advance_cursor(
            self.engine,
            destination=self.destination,
            owner=self.owner,
            last_id=last_id,
            sent=len(events),
            now=now,
        ):
            log.warning("audit forwarder %s: its lease expired; another replica sends", self.owner)
            self._cursor = None
            return 0
        self._cursor = last_id
        return len(events)

    def _hold_lease(self) -> bool:
        now = self.clock.now()
        if (
            self._cursor is not None
            and self._lease_until is not None
            and self._lease_until - now > self.lease / 2
        ):
            return True
        cursor = claim_cursor(
            self.engine,
            destination=self.destination,
            endpoint=self.target.endpoint,
            owner=self.owner,
            now=now,
            lease=self.lease,
        )
        if cursor is None:
            self._cursor = None
            return False
        if self._cursor is None:
            log.info(
                "audit forwarder: sending to %s from event #%d", self.target.endpoint, cursor + 1
            )
        self._cursor = cursor
        self._lease_until = now + self.lease
        return True

    @property
    def holds_lease(self) -> bool:
        return self._cursor is not None

    def backoff_seconds(self) -> float:
        growth: int = 2 ** min(self.failures - 1, 16)  # failures >= 1: a whole number
        base = min(self.interval_seconds * growth, MAX_BACKOFF_SECONDS)
        return base * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not security

    def run_forever(self, stop: threading.Event) -> None:
        log.info("audit forwarder %s for %s running", self.owner, self.target.endpoint)
        try:
            while not stop.is_set():
                stop.wait(self._round())
        finally:
            self.target.close()
            if self._cursor is not None:
                try:
                    release_cursor(self.engine, destination=self.destination, owner=self.owner)
                except Exception:
                    log.warning("audit forwarder: could not give its lease up", exc_info=True)

    def _round(self) -> float:
        """One step; returns how long to wait before the next."""
        try:
            sent = self.step()
        except ForwardError as exc:
            self.failures += 1
            wait = self.backoff_seconds()
            log.warning(
                "audit forwarder: %s did not accept events after #%s (%s, attempt %d); "
                "trying again in %.0f s",
                self.target.endpoint,
                self._cursor,
                exc,
                self.failures,
                wait,
            )
            return wait
        except Exception:
            self.failures += 1
            wait = self.backoff_seconds()
            log.exception("audit forwarder: round failed; trying again in %.0f s", wait)
            return wait
        if self.failures and sent:
            log.info(
                "audit forwarder: %s accepts events again after %d failed attempts",
                self.target.endpoint,
                self.failures,
            )
            self.failures = 0
        if sent >= self.batch:
            return 0.0  # a backlog: keep going
        if not self.holds_lease:  # another replica sends: look again now and then
            return min(self.interval_seconds * 10, self.lease.total_seconds() / 3)
        return self.interval_seconds


def start_audit_forwarder(
    settings: Settings, engine: Engine, *, clock: Clock | None = None
) -> Callable[[], None]:
    """Run the forwarder in a thread of this replica when AUDIT_FORWARD_URL is set; returns
    its stop function (which gives the lease up for another replica)."""
    target = target_for(settings)
    if target is None or settings.audit_forward_url is None:
        return lambda: None
    forwarder = AuditForwarder(
        engine,
        target,
        destination=destination_key(settings.audit_forward_url),
        batch=settings.audit_forward_batch,
        interval_seconds=settings.audit_forward_interval_seconds,
        clock=clock,
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=forwarder.run_forever, args=(stop,), name="audit-forwarder", daemon=True
    )
    thread.start()

    def stop_it() -> None:
        stop.set()
        thread.join(timeout=settings.audit_forward_timeout_seconds + 5)

    return stop_it
