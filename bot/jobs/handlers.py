"""Which handler runs each kind of job, and the scheduler that runs them."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from bot.job_queue.kinds import JobKind
from bot.job_queue.queue import Handler
from bot.job_queue.scheduler import Scheduler
from bot.jobs.activity import make_activity_review_handler
from bot.jobs.announcements import make_announce_handler, make_key_announce_handler
from bot.jobs.approvals import (
    make_approval_expiry_handler,
    make_approval_notify_handler,
    make_approval_outcome_handler,
)
from bot.jobs.audit import make_checkpoint_handler
from bot.jobs.credentials import make_cleanup_handler, make_delivery_handler
from bot.jobs.drift import make_drift_handler
from bot.jobs.governor import (
    make_contain_handler,
    make_governor_announce_handler,
    make_mint_check_handler,
)
from bot.jobs.incidents import (
    make_activity_handler,
    make_activity_post_handler,
    make_checklist_handler,
    make_incident_probe_handler,
    make_refresh_handler,
)
from bot.jobs.key_pairs import make_pair_expiry_handler
from bot.jobs.paging import make_page_handler
from bot.jobs.probes import (
    make_governed_rotation_handler,
    make_probe_handler,
    make_retire_handler,
)
from bot.jobs.reminders import make_reminder_handler
from bot.services.context import Services


def job_handlers(services: Services, client: WebClient) -> dict[str, Handler]:
    """One handler for every JobKind (a test checks none is missing)."""
    return {
        JobKind.ROTATION_REMINDER: make_reminder_handler(services, client),
        JobKind.ROTATION_PROBE: make_probe_handler(services),
        JobKind.ROTATION_ANNOUNCE: make_announce_handler(services, client),
        JobKind.INCIDENT_PROBE: make_incident_probe_handler(services),
        JobKind.INCIDENT_ACTIVITY: make_activity_handler(services, client),
        JobKind.INCIDENT_ACTIVITY_POST: make_activity_post_handler(services, client),
        JobKind.INCIDENT_REFRESH: make_refresh_handler(services, client),
        JobKind.INCIDENT_CHECKLIST: make_checklist_handler(services, client),
        JobKind.DRIFT_CHECK: make_drift_handler(services, client),
        JobKind.PENDING_PAIR_EXPIRY: make_pair_expiry_handler(services, client),
        JobKind.CREDENTIAL_DELIVERY: make_delivery_handler(services),
        JobKind.CREDENTIAL_CLEANUP: make_cleanup_handler(services),
        JobKind.KEY_ANNOUNCE: make_key_announce_handler(services, client),
        JobKind.ACTIVITY_REVIEW: make_activity_review_handler(services, client),
        JobKind.PAGE: make_page_handler(services),
        JobKind.AUDIT_CHECKPOINT: make_checkpoint_handler(services, client),
        JobKind.GOVERNOR_ANNOUNCE: make_governor_announce_handler(services, client),
        JobKind.MINT_CHECK: make_mint_check_handler(services, client),
        JobKind.INCIDENT_CONTAIN: make_contain_handler(services),
        JobKind.GOVERNED_ROTATION: make_governed_rotation_handler(services, client),
        JobKind.ROTATION_RETIRE: make_retire_handler(services, client),
        JobKind.APPROVAL_NOTIFY: make_approval_notify_handler(services, client),
        JobKind.APPROVAL_EXPIRY: make_approval_expiry_handler(services),
        JobKind.APPROVAL_OUTCOME: make_approval_outcome_handler(services, client),
    }


def build_scheduler(services: Services, client: WebClient, **kwargs: Any) -> Scheduler:
    return Scheduler(
        services.engine,
        job_handlers(services, client),
        interval_seconds=services.settings.scheduler_interval_seconds,
        **kwargs,
    )
