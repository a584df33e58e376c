"""Rotate now for a governed key (the command, a key's menu, a reminder's button) and the
"The service uses the new key" button: claim, then the governor works after the ack."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.blocks.rotation.rotation import (
    governed_rotation_busy_message,
    governed_rotation_failed_message,
    governed_rotation_started_message,
    governed_rotation_working_message,
    overlap_ending_message,
)
from bot.job_queue.queue import ClaimedJob, finish_job
from bot.services.access import Actor
from bot.services.context import Services
from bot.services.governor.rotation import (
    SuccessorAttempt,
    attempt_successor,
    claim_retire,
    claim_successor,
    end_overlap,
    is_governed_key,
    new_worker_id,
    retire_old_key,
)
from bot.slack.access import Requester, actor_from
from bot.slack.messaging import send_private

log = logging.getLogger(__name__)


def rotate_if_governed(
    services: Services,
    client: WebClient,
    actor: Actor,
    *,
    key_id: str,
    label: str,
    channel: str | None,
) -> bool:
    """Rotate the key through the governor if it is governed (True); else False and the caller
    opens the rotate form as before. The caller has checked the actor may rotate it."""
    if not is_governed_key(services.engine, key_id):
        return False
    worker_id = new_worker_id()
    job = claim_successor(
        services.engine,
        team_id=actor.team_id,
        key_id=key_id,
        actor=actor.user_id,
        worker_id=worker_id,
        now=services.clock(),
    )

    def tell(message: Any) -> None:
        send_private(client, channel=channel, user_id=actor.user_id, message=message)

    if job is None:
        tell(governed_rotation_busy_message(label))
        return True
    tell(governed_rotation_working_message(label))

    def work() -> None:
        attempt = attempt_successor(
            services, job, actor=actor.user_id, source="slack", now=services.clock()
        )
        _finish(services, job, attempt.outcome, worker_id)
        message = successor_message(attempt)
        if message is None:
            return
        tell(message)
        if attempt.owner and attempt.owner != actor.user_id:
            send_private(client, channel=None, user_id=attempt.owner, message=message)

    services.background.submit(work)
    return True


def successor_message(attempt: SuccessorAttempt) -> Any:
    """What the person (and the owner) are told of one attempt (None: nothing to say)."""
    if attempt.started is not None and attempt.overlap_until is not None:
        return governed_rotation_started_message(
            attempt.started, key_id=attempt.key_id, overlap_until=attempt.overlap_until
        )
    if attempt.failure is not None:
        return governed_rotation_failed_message(
            label=attempt.label, why=attempt.failure, retry_at=attempt.outcome.retry_at
        )
    return None


def _finish(services: Services, job: ClaimedJob, outcome: Any, worker_id: str) -> None:
    try:
        finish_job(services.engine, job, outcome, worker_id=worker_id, now=services.clock())
    except Exception:  # the lease runs out and the scheduler takes the claim over
        log.exception("could not record a governed rotation attempt")


def handle_new_key_in_use(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    respond: Respond,
    services: Services,
    requester: Requester,
) -> None:
    """ "The service uses the new key": the old key is deleted now instead of at the end of
    the overlap (its owner or an admin only)."""
    ack()
    actor = actor_from(services, requester)
    key_id = str(body["actions"][0].get("value") or "")
    rotation_id, label = end_overlap(services.engine, actor, key_id=key_id, now=services.clock())
    worker_id = new_worker_id()
    job = claim_retire(
        services.engine, rotation_id=rotation_id, worker_id=worker_id, now=services.clock()
    )
    channel = (body.get("channel") or {}).get("id")

    def tell(message: Any) -> None:
        send_private(client, channel=channel, user_id=actor.user_id, message=message)

    if job is None:
        tell(governed_rotation_busy_message(label))
        return

    def work() -> None:
        attempt = retire_old_key(
            services, job, actor=actor.user_id, early=True, now=services.clock()
        )
        _finish(services, job, attempt.outcome, worker_id)
        if attempt.failure is not None:
            tell(
                governed_rotation_failed_message(
                    label=attempt.label,
                    why=attempt.failure,
                    retry_at=attempt.outcome.retry_at,
                    step="delete old",
                )
            )

    tell(overlap_ending_message(label))
    services.background.submit(work)
