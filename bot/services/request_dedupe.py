"""One effect per Slack request, however often Slack delivers it.

Slack delivers an event again (with ``X-Slack-Retry-Num``) when the first answer was slow or
lost, and a retried command, click or form must not run twice either. Every request's identity
is recorded on arrival, in the PostgreSQL database every replica shares (with SQLite, the single
bot process remembers them itself); a copy whose identity is already there is acknowledged and
dropped. The trade: a replica that dies after recording and before
acting loses that one request (Slack's retry is dropped too), where the alternative would be
acting twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete

from storage.models import SlackDelivery

KEEP = timedelta(days=1)
PRUNE_EVERY = 1000  # deliveries between two clean-ups (per process)
MAX_REMEMBERED = 100_000  # SQLite: delivery ids kept in memory


def request_key(body: dict[str, Any]) -> str | None:
    """What identifies one request across Slack's retries (None: nothing to go by)."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("command") and body.get("trigger_id"):
        return f"command:{body['trigger_id']}"
    if body.get("type") == "block_actions" and body.get("trigger_id"):
        actions = body.get("actions") or [{}]
        return f"action:{body['trigger_id']}:{actions[0].get('action_ts', '')}"
    if body.get("type") in ("view_submission", "view_closed") and body.get("trigger_id"):
        # Each submission has its own trigger_id (a form resubmitted after an error is new).
        return f"view:{body['trigger_id']}"
    return None


class SeenRequests:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._count = 0
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, datetime] = OrderedDict()

    def first_time(self, key: str, now: datetime) -> bool:
        """Record ``key``; False when it was already recorded (a repeated delivery)."""
        if self._engine.dialect.name == "sqlite":
            return self._first_time_here(key, now)
        return self._first_time_shared(key, now)

    def _first_time_here(self, key: str, now: datetime) -> bool:
        """SQLite means one bot process (replicas need PostgreSQL): remembering here is
        enough, and an ack never waits for SQLite's single write lock behind a report."""
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - KEEP:
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            if len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
            return True

    def _first_time_shared(self, key: str, now: datetime) -> bool:
        dialect = self._engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(SlackDelivery)
            .values(delivery_key=key[:200], received_at=now)
            .on_conflict_do_nothing(index_elements=["delivery_key"])
            .returning(col(SlackDelivery.delivery_key))  # rowcount is not reliable on every driver
        )
        with Session(self._engine) as session:
            inserted = session.exec(statement).first() is not None
            if self._due_for_pruning():
                session.exec(
                    delete(SlackDelivery).where(col(SlackDelivery.received_at) < now - KEEP)
                )
            session.commit()
        return inserted

    def _due_for_pruning(self) -> bool:
        with self._lock:
            self._count += 1
            return self._count % PRUNE_EVERY == 0
