"""Sending a page (or its resolve) to PagerDuty's Events API v2 and/or the paging webhook.

PagerDuty's documented answers ("Response Codes & Retry Logic", Events API v2 overview,
developer.pagerduty.com / PagerDuty/developer-docs events-API-v2/01-Overview.md): 202 accepted;
400 invalid event, not to be retried; 429 too many events, retry after some time (preferably a
few minutes' backoff); 5xx and network errors, retry after some time. So: a 429, a 5xx or no
answer retries the job with the queue's backoff (2, 4, 8 … minutes); another 4xx is given up,
logged and audited. The webhook gets the same JSON event without the routing key, with
"Authorization: Bearer PAGING_WEBHOOK_TOKEN" when one is set, and is judged the same way.

Each destination that took the event is saved with the job (``PartialProgress``): a retry does
not send it there again. A resolve waits while the trigger of the same page is still on its
way, so PagerDuty never gets them in the wrong order. The routing key and the token are never
logged, audited or put in an error.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlmodel import Session, select

from bot.config import Settings
from bot.job_queue.queue import ClaimedJob, Handler, JobOutcome, PartialProgress, backoff
from bot.observability.metrics import record_page
from bot.services.context import Services
from bot.vocabulary import AuditAction
from storage.models import JobState, Page, ScheduledJob

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
# Payload entries: the destinations that already took this event, or refused it for good.
SENT_TO = "sent_to"
REFUSED_BY = "refused_by"
TRIGGER_PENDING_RETRY = timedelta(seconds=30)


class PassingFailure(Exception):
    """The destination may take it later (429, 5xx, no answer): retry with backoff."""


class Refused(Exception):
    """The destination refused the event for good (a 4xx other than 429)."""


def event_body(page: Page, action: str, *, source: str) -> dict[str, Any]:
    """The Events API v2 event (without routing_key). A trigger needs payload.summary, source
    and severity ("Send an Alert Event"); a resolve only the dedup_key."""
    body: dict[str, Any] = {"event_action": action, "dedup_key": page.dedup_key}
    if action == "trigger":
        body["client"] = "apikey-bot"
        body["payload"] = {
            "summary": page.summary,
            "source": source,
            "severity": "critical",
            "timestamp": page.opened_at.isoformat(),
            "component": "binance-api-key",
            "group": page.team_id,
            "class": page.reason,
            "custom_details": {"reason": page.reason, "team": page.team_id, "key": page.key_id},
        }
    return body


def destinations(settings: Settings) -> list[str]:
    found = []
    if settings.pagerduty_routing_key is not None:
        found.append("pagerduty")
    if settings.paging_webhook_url is not None:
        found.append("webhook")
    return found


def send(settings: Settings, destination: str, body: dict[str, Any]) -> None:
    """POST the event; returns when it was accepted, else raises PassingFailure or Refused."""
    headers = {"Content-Type": "application/json"}
    if destination == "pagerduty":
        assert settings.pagerduty_routing_key is not None
        url = settings.pagerduty_events_url
        body = {"routing_key": settings.pagerduty_routing_key.get_secret_value(), **body}
    else:
        assert settings.paging_webhook_url is not None
        url = settings.paging_webhook_url
        if settings.paging_webhook_token is not None:
            token = settings.paging_webhook_token.get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.post(
            url, json=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except requests.RequestException as exc:
        raise PassingFailure(f"{destination} not reachable ({type(exc).__name__})") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429 or status >= 500:
        raise PassingFailure(f"{destination} answered HTTP {status}")
    raise Refused(f"{destination} refused the event: HTTP {status}")


def make_page_handler(services: Services) -> Handler:
    settings = services.settings
    source = f"apikey-bot@{socket.gethostname()}"

    def handle(job: ClaimedJob, now: datetime) -> JobOutcome:
        dedup_key, action = job.payload["dedup_key"], job.payload["action"]
        targets = destinations(settings)
        if not targets:
            return JobOutcome()  # paging is not configured: nothing to send
        with Session(services.engine) as session:
            page = session.get(Page, dedup_key)
            if page is None:
                return JobOutcome()
            if action == "resolve" and _trigger_pending(session, job.dedupe_key):
                return JobOutcome.retry(now + TRIGGER_PENDING_RETRY, "its trigger is not sent yet")
        body = event_body(page, action, source=source)
        sent = list(job.payload.get(SENT_TO, []))
        refused = list(job.payload.get(REFUSED_BY, []))
        for destination in targets:
            if destination in sent or destination in refused:
                continue
            try:
                send(settings, destination, body)
            except PassingFailure as exc:
                record_page(destination, action, "retried")
                log.warning("page %s (%s) not delivered: %s; will retry", dedup_key, action, exc)
                if sent or refused:
                    raise PartialProgress({SENT_TO: sent, REFUSED_BY: refused}, exc) from None
                return JobOutcome.retry(now + backoff(job.attempts), str(exc))
            except Refused as exc:
                record_page(destination, action, "failed")
                log.error("page %s (%s) not delivered: %s (not retried)", dedup_key, action, exc)
                refused.append(destination)
                continue
            record_page(destination, action, "sent")
            sent.append(destination)
        audit = []
        for names, outcome in ((sent, "sent"), (refused, "refused")):
            if names:
                audit.append(
                    {
                        "team_id": page.team_id,
                        "actor": "bot",
                        "action": _audit_action(action, outcome),
                        "target_key_id": page.key_id,
                        "detail": {
                            "dedup_key": dedup_key,
                            "reason": page.reason,
                            "destinations": names,
                        },
                    }
                )
        return JobOutcome(audit=tuple(audit))

    return handle


def _audit_action(action: str, outcome: str) -> AuditAction:
    if outcome == "refused":
        return AuditAction.PAGE_REFUSED
    return AuditAction.PAGE_SENT if action == "trigger" else AuditAction.PAGE_RESOLVED


def _trigger_pending(session: Session, resolve_dedupe_key: str) -> bool:
    """Is the trigger this resolve job answers (same page, same occurrence) still to be sent?"""
    trigger = resolve_dedupe_key.replace("page:resolve:", "page:trigger:", 1)
    return (
        session.exec(
            select(ScheduledJob.id).where(
                ScheduledJob.dedupe_key == trigger,
                ScheduledJob.state == JobState.PENDING.value,
            )
        ).first()
        is not None
    )
