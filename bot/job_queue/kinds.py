"""Every kind of scheduled job, and the one constructor per kind that owns its dedupe key.

The values are stored in ``scheduled_jobs.kind``: never rename one. A dedupe key makes
scheduling the same job twice (two replicas, a retried request) a no-op, so each kind's key is
built in exactly one place, here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.job_queue.queue import NewJob


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
    CREDENTIAL_DELIVERY = "credential_delivery"  # write a key's credentials to its sink
    KEY_ANNOUNCE = "key_announce"  # a key that can move funds was registered or removed
    ACTIVITY_REVIEW = "activity_review"  # the team's daily review of withdrawals
    PAGE = "page"  # a critical condition (or its end) to PagerDuty and/or the paging webhook
    AUDIT_CHECKPOINT = "audit_checkpoint"  # the audit chain's head, posted to the alert channel
    CREDENTIAL_CLEANUP = "credential_cleanup"  # a retired key's sink leftovers of crashed writes
    GOVERNOR_ANNOUNCE = "governor_announce"  # a governor call, told to the alert channel
    MINT_CHECK = "mint_check"  # a key creation whose answer never came: name it to the admins
    INCIDENT_CONTAIN = "incident_contain"  # delete (or quarantine) a governed key reported
    GOVERNED_ROTATION = "governed_rotation"  # the governor makes a governed key's successor
    ROTATION_RETIRE = "rotation_retire"  # the governor deletes a rotated-out governed key
    APPROVAL_NOTIFY = "approval_notify"  # a held change, told to its approvers and channel
    APPROVAL_EXPIRY = "approval_expiry"  # shred a held change nobody decided in time
    APPROVAL_OUTCOME = "approval_outcome"  # how a held change ended, told to the requester


# Jobs that belong to a key's normal life: cancelled when it is compromised or retired.
KEY_LIFECYCLE_KINDS = (
    JobKind.ROTATION_REMINDER,
    JobKind.ROTATION_PROBE,
    JobKind.GOVERNED_ROTATION,
)


def rotation_reminder(
    *, team_id: str, key_id: str, cycle: str, step: str, due_at: datetime, anchor: datetime
) -> NewJob:
    """``anchor``: the time the step's offset counts from (the due date, or when a policy
    change made an already-overdue key due)."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.ROTATION_REMINDER,
        key_id=key_id,
        dedupe_key=f"reminder:{key_id}:{cycle}:{step}",
        due_at=due_at,
        payload={"cycle": cycle, "step": step, "anchor": anchor.isoformat()},
    )


def credential_delivery(*, team_id: str, key_id: str, delivery_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.CREDENTIAL_DELIVERY,
        key_id=key_id,
        dedupe_key=f"deliver:{delivery_id}",
        due_at=due_at,
        payload={"delivery_id": delivery_id},
    )


def credential_cleanup(*, team_id: str, key_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.CREDENTIAL_CLEANUP,
        key_id=key_id,
        dedupe_key=f"clean:{key_id}",
        due_at=due_at,
        payload={"key_id": key_id},
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


def incident_activity(
    *, team_id: str, key_id: str, incident_id: str, due_at: datetime, again: str | None = None
) -> NewJob:
    """``again``: a later review of the same incident (e.g. through the successor of a key
    the governor deleted), named so that it runs once too."""
    suffix = f":{again}" if again else ""
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_ACTIVITY,
        key_id=key_id,
        dedupe_key=f"incident_activity:{incident_id}{suffix}",
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


def key_announce(
    *, team_id: str, key_id: str, what: str, facts: dict[str, Any], due_at: datetime
) -> NewJob:
    """Tell the owner and the alert channel that a key that can move funds (Withdraw tier or
    transfer rights) was ``what`` ("registered" or "removed"): once per key and event.
    ``facts`` (JSON, never a secret) is what the message says, as it was at that moment."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.KEY_ANNOUNCE,
        key_id=key_id,
        dedupe_key=f"key_announce:{key_id}:{what}",
        due_at=due_at,
        payload={"what": what, **facts},
    )


def activity_review(*, team_id: str, due_at: datetime) -> NewJob:
    """Keyed by day: two replicas planning the same team's review plan one (once a day)."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.ACTIVITY_REVIEW,
        dedupe_key=f"activity_review:{team_id}:{due_at:%Y%m%d}",
        due_at=due_at,
        payload={},
    )


def page_event(
    *,
    team_id: str,
    key_id: str | None,
    dedup_key: str,
    action: str,
    occurrence: int,
    due_at: datetime,
) -> NewJob:
    """``action``: trigger or resolve; ``occurrence``: how many times the page was opened (a
    condition that clears and comes back is paged again, under the same dedup key)."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.PAGE,
        key_id=key_id,
        dedupe_key=f"page:{action}:{occurrence}:{dedup_key}",
        due_at=due_at,
        payload={"dedup_key": dedup_key, "action": action},
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


def governor_announce(
    *, team_id: str, call_id: str, facts: dict[str, Any], due_at: datetime
) -> NewJob:
    """One governor call (``call_id``: fresh for each), told to the alert channel once.
    ``facts`` (JSON, never a secret): what the message says."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.GOVERNOR_ANNOUNCE,
        key_id=facts.get("key_id"),
        dedupe_key=f"governor_announce:{call_id}",
        due_at=due_at,
        payload=facts,
    )


def mint_check(*, team_id: str, mint_id: str, due_at: datetime) -> NewJob:
    """Look again at a key creation in flight once its answer must have come."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.MINT_CHECK,
        dedupe_key=f"mint_check:{mint_id}",
        due_at=due_at,
        payload={"mint_id": mint_id},
    )


def incident_contain(
    *, team_id: str, key_id: str, incident_id: str, attempt: int, due_at: datetime
) -> NewJob:
    """Contain a governed key reported compromised (again, if the first attempt failed or its
    replica died): the safety net under the attempt the report itself starts at once."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.INCIDENT_CONTAIN,
        key_id=key_id,
        dedupe_key=f"incident_contain:{incident_id}:{attempt}",
        due_at=due_at,
        payload={"incident_id": incident_id, "attempt": attempt},
    )


def governed_rotation_key(key_id: str, generation: str) -> str:
    """The dedupe key of the one successor of a key's current credentials (``generation``:
    their fingerprint): this row is also the claim that lets one replica, and only one,
    ask Binance for the successor."""
    return f"governed_rotation:{key_id}:{generation}"


def governed_rotation(
    *, team_id: str, key_id: str, generation: str, actor: str, due_at: datetime
) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.GOVERNED_ROTATION,
        key_id=key_id,
        dedupe_key=governed_rotation_key(key_id, generation),
        due_at=due_at,
        payload={"actor": actor},
    )


def rotation_retire_key(rotation_id: str) -> str:
    return f"rotation_retire:{rotation_id}"


def rotation_retire(*, team_id: str, key_id: str, rotation_id: str, due_at: datetime) -> NewJob:
    """Delete a governed rotation's old key once the overlap window ends (or the owner says
    the service uses the new key): one per rotation, retried with backoff."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.ROTATION_RETIRE,
        key_id=key_id,
        dedupe_key=rotation_retire_key(rotation_id),
        due_at=due_at,
        payload={"rotation_id": rotation_id},
    )


def approval_notify(*, team_id: str, request_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.APPROVAL_NOTIFY,
        dedupe_key=f"approval_notify:{request_id}",
        due_at=due_at,
        payload={"request_id": request_id},
    )


def approval_expiry(*, team_id: str, request_id: str, due_at: datetime) -> NewJob:
    return NewJob(
        team_id=team_id,
        kind=JobKind.APPROVAL_EXPIRY,
        dedupe_key=f"approval_expiry:{request_id}",
        due_at=due_at,
        payload={"request_id": request_id},
    )


def approval_outcome(*, team_id: str, request_id: str, state: str, due_at: datetime) -> NewJob:
    """Tell the requester (and the alert channel) that the request ended in ``state``."""
    return NewJob(
        team_id=team_id,
        kind=JobKind.APPROVAL_OUTCOME,
        dedupe_key=f"approval_outcome:{request_id}:{state}",
        due_at=due_at,
        payload={"request_id": request_id, "state": state},
    )
