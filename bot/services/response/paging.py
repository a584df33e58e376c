"""Paging: the conditions that cannot wait for someone to read Slack, sent out as pages.

A page is opened when a critical condition starts and resolved when it clears; each has one
PagerDuty ``dedup_key`` (PagerDuty correlates a trigger and its resolve by it; "Send an Alert
Event", developer.pagerduty.com / PagerDuty/developer-docs events-API-v2/02-Trigger-Events.md):

- ``incident_page_key``: a Withdraw-tier key reported compromised; resolved when its incident
  closes;
- ``withdrawals_page_key``: withdrawals newly enabled on a key (the drift check); resolved when a
  later check finds them disabled, or the key is removed;
- ``old_key_page_key``: an old key Binance still accepts after a rotation's grace; resolved
  when the rotation completes.

``open_page`` / ``resolve_page`` work in the caller's transaction (the page is recorded with
the action that caused it, or not at all) and only plan a job: sending never blocks or fails
the action. The job (bot.jobs.paging) sends to whatever is configured, retried with the queue's
backoff; with nothing configured it sends nothing. ``page`` is the same in a transaction of
its own, for callers that have none (e.g. a withdrawal to a new address).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.job_queue.kinds import page_event
from bot.job_queue.queue import schedule_jobs
from storage.db import session_scope
from storage.models import Page, PageState

MAX_SUMMARY = 1024  # PagerDuty's limit on payload.summary


def incident_page_key(incident_id: str) -> str:
    return f"apikey-bot/incident/{incident_id}"


def withdrawals_page_key(key_id: str) -> str:
    return f"apikey-bot/withdrawals-enabled/{key_id}"


def old_key_page_key(rotation_id: str) -> str:
    return f"apikey-bot/old-key-alive/{rotation_id}"


def open_page(
    session: Session,
    *,
    team_id: str,
    dedup_key: str,
    reason: str,
    summary: str,
    key_id: str | None,
    now: datetime,
) -> bool:
    """Open the page (again, if it was resolved before); False if it is open already."""
    page = session.get(Page, dedup_key, with_for_update=True)
    if page is not None and page.state == PageState.OPEN.value:
        return False
    if page is None:
        page = Page(
            dedup_key=dedup_key,
            team_id=team_id,
            reason=reason,
            key_id=key_id,
            summary=summary[:MAX_SUMMARY],
            opened_at=now,
            triggers=1,
        )
        session.add(page)
    else:
        page.state = PageState.OPEN.value
        page.summary = summary[:MAX_SUMMARY]
        page.opened_at = now
        page.resolved_at = None
        page.triggers += 1
    session.flush()
    schedule_jobs(
        session,
        [
            page_event(
                team_id=team_id,
                key_id=key_id,
                dedup_key=dedup_key,
                action="trigger",
                occurrence=page.triggers,
                due_at=now,
            )
        ],
    )
    return True


def resolve_page(session: Session, *, dedup_key: str, now: datetime) -> bool:
    """Resolve the page if it is open (else nothing happens); True when it was open."""
    page = session.get(Page, dedup_key, with_for_update=True)
    if page is None or page.state != PageState.OPEN.value:
        return False
    page.state = PageState.RESOLVED.value
    page.resolved_at = now
    schedule_jobs(
        session,
        [
            page_event(
                team_id=page.team_id,
                key_id=page.key_id,
                dedup_key=dedup_key,
                action="resolve",
                occurrence=page.triggers,
                due_at=now,
            )
        ],
    )
    return True


def page(
    engine: Engine,
    *,
    team_id: str,
    dedup_key: str,
    reason: str,
    summary: str,
    key_id: str | None = None,
    now: datetime,
) -> bool:
    """``open_page`` in a transaction of its own."""
    with session_scope(engine) as session:
        return open_page(
            session,
            team_id=team_id,
            dedup_key=dedup_key,
            reason=reason,
            summary=summary,
            key_id=key_id,
            now=now,
        )


def resolve(engine: Engine, *, dedup_key: str, now: datetime) -> bool:
    """``resolve_page`` in a transaction of its own."""
    with session_scope(engine) as session:
        return resolve_page(session, dedup_key=dedup_key, now=now)
