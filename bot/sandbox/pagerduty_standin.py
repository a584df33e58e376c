"""A local stand-in for PagerDuty's Events API v2 and for a generic paging webhook.

``POST /v2/enqueue`` checks each event as PagerDuty documents it ("Send an Alert Event",
PagerDuty/developer-docs docs/events-API-v2/02-Trigger-Events.md, and the Events API v2
overview's "Response Codes & Retry Logic", 01-Overview.md):
- ``routing_key`` (required): the 32-character integration key;
- ``event_action`` (required): ``trigger``, ``acknowledge`` or ``resolve``;
- ``dedup_key``: at most 255 characters; required for acknowledge and resolve (they act on the
  alert it names);
- a trigger's ``payload`` with ``summary`` (at most 1,024 characters), ``source`` and
  ``severity`` (``critical``, ``error``, ``warning`` or ``info``) required; ``custom_details``
  an object when given;
- the whole event at most 512 KB.
A valid event gets 202 ``{"status": "success", "message": "Event processed", "dedup_key": …}``;
an invalid one 400 ``{"status": "invalid event", "message": "Event object is invalid",
"errors": […]}``, recorded as rejected. ``fail_next(n, status)`` answers the next ``n`` requests
with ``status`` instead (429 or 5xx: the retries the docs ask for), on one path if given.

Any other path is a webhook: the JSON body and the Authorization header are recorded, 200.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.local_server import LocalService, TrackedHandler

EVENTS_PATH = "/v2/enqueue"
MAX_EVENT_BYTES = 512 * 1024
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0


def event_errors(event: object) -> list[str]:
    """What is wrong with an Events API v2 event (empty: nothing)."""
    if not isinstance(event, dict):
        return ["the event must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("routing_key must be a 32 character integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("event_action must be trigger, acknowledge or resolve")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        errors.append("dedup_key must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and dedup is None:
        errors.append(f"dedup_key is required to {action}")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("payload is required for a trigger")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("payload.summary is required (at most 1024 characters)")
            if not isinstance(payload.get("source"), str) or not payload.get("source"):
                errors.append("payload.source is required")
            if payload.get("severity") not in SEVERITIES:
                errors.append("payload.severity must be critical, error, warning or info")
            details = payload.get("custom_details")
            if details is not None and not isinstance(details, dict):
                errors.append("payload.custom_details must be an object")
    return errors


class _Handler(TrackedHandler):
    def do_POST(self) -> None:
        owner: PagerDutyStandIn = self.server.owner
        raw = self.read_body()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        received = Received(
            path=self.path, body=body, headers={k.lower(): v for k, v in self.headers.items()}
        )
        failure = owner._take_failure(self.path)
        if failure is not None:
            received.status = failure
            owner._record(received)
            self.send_reply(failure, {"status": "error", "message": "try again later"})
            return
        if self.path != EVENTS_PATH:
            received.status = 200
            owner._record(received)
            self.send_reply(200, {"ok": True})
            return
        errors = ["the event is larger than 512 KB"] if len(raw) > MAX_EVENT_BYTES else []
        errors = errors or event_errors(body)
        if errors:
            received.status = 400
            owner._record(received)
            self.send_reply(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
            return
        received.status = 202
        owner._record(received)
        self.send_reply(
            202,
            {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")},
        )


class PagerDutyStandIn(LocalService):
    handler_class = _Handler
    thread_name = "pagerduty-standin"
    service_name = "the PagerDuty stand-in"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._failures: list[tuple[int, str | None]] = []  # (status, only on this path)

    @property
    def url(self) -> str:
        return self._base_url()

    @property
    def events_url(self) -> str:
        return self._base_url() + EVENTS_PATH

    def fail_next(self, count: int, status: int = 503, *, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path`` only, if given) with ``status``."""
        with self._lock:
            self._failures.extend([(status, path)] * count)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted_events(self) -> list[dict[str, Any]]:
        """The Events API v2 events answered 202, in order."""
        return [r.body for r in self.received() if r.path == EVENTS_PATH and r.status == 202]

    def webhook_calls(self) -> list[Received]:
        return [r for r in self.received() if r.path != EVENTS_PATH and r.status == 200]

    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            for index, (status, only) in enumerate(self._failures):
                if only is None or only == path:
                    del self._failures[index]
                    return status
            return None

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
