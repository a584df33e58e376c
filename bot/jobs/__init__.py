"""Scheduled-job handlers: thin adapters like the listeners (load -> service -> render -> post)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.jobs.announcements import make_announce_handler
from bot.jobs.drift import make_drift_handler
from bot.jobs.incidents import (
    ACTIVITY_POST_JOB,
    make_activity_handler,
    make_activity_post_handler,
    make_checklist_handler,
    make_incident_probe_handler,
    make_refresh_handler,
)
from bot.jobs.probes import make_probe_handler
from bot.jobs.reminders import make_reminder_handler
from bot.scheduler import Handler, Scheduler
from bot.services import incidents
from bot.services.context import Services
from bot.services.drift_plan import DRIFT_JOB
from bot.services.reminder_plan import PROBE_JOB, REMINDER_JOB
from bot.services.rotate import ANNOUNCE_JOB


def job_handlers(services: Services, client: WebClient) -> dict[str, Handler]:
    return {
        REMINDER_JOB: make_reminder_handler(services, client),
        PROBE_JOB: make_probe_handler(services),
        ANNOUNCE_JOB: make_announce_handler(services, client),
        incidents.PROBE_JOB: make_incident_probe_handler(services),
        incidents.ACTIVITY_JOB: make_activity_handler(services, client),
        ACTIVITY_POST_JOB: make_activity_post_handler(services, client),
        incidents.REFRESH_JOB: make_refresh_handler(services, client),
        incidents.CHECKLIST_JOB: make_checklist_handler(services, client),
        DRIFT_JOB: make_drift_handler(services, client),
    }


def build_scheduler(services: Services, client: WebClient, **kwargs) -> Scheduler:
    return Scheduler(
        services.engine,
        job_handlers(services, client),
        interval_seconds=services.settings.scheduler_interval_seconds,
        **kwargs,
    )
