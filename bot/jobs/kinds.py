"""Every kind of scheduled job, and the one constructor per kind that owns its dedupe key.

The values are stored in ``scheduled_jobs.kind``: never rename one. A dedupe key makes
scheduling the same job twice (two replicas, a retried request) a no-op, so each kind's key is
built in exactly one place, here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bot.jobs.queue import NewJob


class JobKind(StrEnum):
    ROTATION_REMINDER = "rotation_reminder"  # a reminder step before / after a key is due
    ROTATION_PROBE = "rotation_probe"  # is the rotated-out key dead yet?
    ROTATION_ANNOUNCE = "announce"  # a rotation's outcome, told to the channel
    INCIDENT_PROBE = "incident_probe"  # is the compromised key dead yet?
    INCIDENT_ACTIVITY = "incident_activity"  # review withdrawals / deposits since the leak
    INCIDENT_ACTIVITY_POST = "incident_activity_post"  # that review, posted again in a thread
    INCIDENT_REFRESH = "incident_refresh"  # re-render the checklist everywhere
    INCIDENT_CHECKLIST = "incident_checklist"  # a checklist Slack refused at first
    DRIFT_CHECK = "drift_check"  # the team's daily drift check
    PENDING_PAIR_EXPIRY = "pending_pair_expiry"  # shred a generated pair never completed
    AUDIT_CHECKPOINT = "audit_checkpoint"  # the audit chain's head, posted to the alert channel


# Jobs that belong to a key's normal life: cancelled when it is compromised or retired.
KEY_LIFECYCLE_KINDS = (JobKind.ROTATION_REMINDER, JobKind.ROTATION_PROBE)


def rotation_reminder(
    *, team_id: str, key_id: str, cycle: str, step: str, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.ROTATION_REMINDER,
        key_id=key_id,
        dedupe_key=f"reminder:{key_id}:{cycle}:{step}",
        due_at=due_at,
        payload={"cycle": cycle, "step": step},
    )


def rotation_probe(
    *, team_id: str, key_id: str, rotation_id: str, attempt: int, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.ROTATION_PROBE,
        key_id=key_id,
        dedupe_key=f"probe:{rotation_id}:{attempt}",
        due_at=due_at,
        payload={"rotation_id": rotation_id, "attempt": attempt},
    )


def rotation_announce(
    *, team_id: str, key_id: str, rotation_id: str, what: str, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.ROTATION_ANNOUNCE,
        key_id=key_id,
        dedupe_key=f"announce:{rotation_id}:{what}",
        due_at=due_at,
        payload={"rotation_id": rotation_id, "what": what},
    )


def incident_probe(
    *, team_id: str, key_id: str, incident_id: str, attempt: int, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_PROBE,
        key_id=key_id,
        dedupe_key=f"incident_probe:{incident_id}:{attempt}",
        due_at=due_at,
        payload={"incident_id": incident_id, "attempt": attempt},
    )


def incident_activity(*, team_id: str, key_id: str, incident_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_ACTIVITY,
        key_id=key_id,
        dedupe_key=f"incident_activity:{incident_id}",
        due_at=due_at,
        payload={"incident_id": incident_id},
    )


def incident_activity_post(
    *, team_id: str, key_id: str | None, incident_id: str, channel: str, ts: str, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_ACTIVITY_POST,
        key_id=key_id,
        dedupe_key=f"incident_activity_post:{incident_id}:{channel}:{ts}",
        due_at=due_at,
        payload={"incident_id": incident_id, "channel": channel, "ts": ts},
    )


def incident_refresh(
    *, team_id: str, key_id: str | None, incident_id: str, reason: str, cause: str, due_at: datetime
) -> NewJob:
    """``cause``: the id of the job that asked for it (one refresh per cause and reason)."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_REFRESH,
        key_id=key_id,
        dedupe_key=f"incident_refresh:{incident_id}:{reason}:{cause}",
        due_at=due_at,
        payload={"incident_id": incident_id},
    )


def incident_checklist_prefix(incident_id: str) -> str:
    """What every checklist job of this incident's dedupe key starts with."""
    return f"incident_checklist:{incident_id}:"


def incident_checklist(
    *, team_id: str, key_id: str | None, incident_id: str, channel: str, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_CHECKLIST,
        key_id=key_id,
        dedupe_key=incident_checklist_prefix(incident_id) + channel,
        due_at=due_at,
        payload={"incident_id": incident_id, "channel": channel},
    )


def drift_check(*, team_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.DRIFT_CHECK,
        dedupe_key=f"drift:{team_id}:{due_at:%Y%m%dT%H}",
        due_at=due_at,
        payload={},
    )


def pending_pair_expiry(*, team_id: str, pending_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.PENDING_PAIR_EXPIRY,
        dedupe_key=f"pending_pair_expiry:{pending_id}",
        due_at=due_at,
        payload={"pending_id": pending_id},
    )


def audit_checkpoint(*, team_id: str, due_at: datetime) -> NewJob:
    """The daily audit checkpoint (one for the whole chain: ``team_id`` is the system's)."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.AUDIT_CHECKPOINT,
        dedupe_key=f"audit_checkpoint:{due_at:%Y%m%dT%H}",
        due_at=due_at,
        payload={},
    )
