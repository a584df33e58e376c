"""Zero-touch rotation of a governed key (a key in a sub-account whose master account has a
governor): the bot makes the successor, delivers it, and deletes the old key itself.

1. Claim. One successor per set of credentials: the ``governed_rotation`` job whose dedupe
   key names the key and its current credentials' fingerprint is the claim. Whoever leases
   that row (a conditional UPDATE, atomic on SQLite and PostgreSQL) may ask Binance; a second
   replica, a second click or the scheduler find it leased and do nothing. The lease is taken
   BEFORE Binance is asked; a failed attempt hands the row back with a retry time (backoff).
2. Successor. ``mint_key(reason="rotate")`` writes its intent, creates the key with the same
   flags (SubAccountGrant.from_permissions of the key's last known permissions) and the same
   IP list (the key's, or Binance's answer to the governor), and hands it to
   ``start_rotation``: the key row gets the new credentials, the old go sealed to the
   rotation row, the sink gets the new version. If storing fails, mint_key deletes the new
   key again (or its intent names it to the admins).
3. Overlap. Both keys work for ROTATION_OVERLAP_HOURS; then (or when the owner says "the
   service uses the new key") the ``rotation_retire`` job deletes the OLD key through the
   governor, proves it by probing until Binance rejects it, and completes the rotation
   (old material shredded, completion announced) by the same path as a manual rotation.
Any failure leaves the old key working: nothing is deleted before the successor is stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.binance import GovernorGateway, SubAccountGrant
from bot.config import Settings
from bot.job_queue.kinds import (
    governed_rotation,
    governed_rotation_key,
    rotation_retire,
    rotation_retire_key,
)
from bot.job_queue.queue import ClaimedJob, JobOutcome, schedule_jobs
from bot.model.rotation import RotationStarted
from bot.services.access import Actor, require_manage_key
from bot.services.context import Services
from bot.services.custody.delivery_plan import delivery_confirmed
from bot.services.custody.keys import live_governor, open_credentials
from bot.services.errors import DomainError, InvalidInput, KeyNotFound
from bot.services.governor.calls import CallContext, on_behalf_of
from bot.services.governor.minting import GovernedTarget, MintRequest, Within, mint_key
from bot.services.rotation.rotate import RotationForm, rotatable_key, settle_probe, start_rotation
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    BinanceAccount,
    GovernorMint,
    JobState,
    KeyPurpose,
    KeyStatus,
    KeyType,
    MintState,
    Rotation,
    RotationState,
    ScheduledJob,
)

log = logging.getLogger(__name__)

# A claim is held this long; a replica that dies holding it frees it when it runs out.
CLAIM_LEASE = timedelta(minutes=5)
# Retries of a failed successor or deletion: back off, then every hour.
RETRY_DELAYS = (60, 300, 900, 1800, 3600)
# Binance may take a moment to forget a deleted key everywhere.
PROOF_WAITS = (0.0, 0.2, 0.5, 1.0, 2.0)
# Until the sink confirms the new version, the old key is not deleted (timed end only).
DELIVERY_WAIT = timedelta(minutes=5)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1])


def governed_target_of(session: Session, key: ApiKey) -> GovernedTarget | None:
    """Where the governor can make this key's successor: its sub-account, if the master account
    has a live governor and the key is one the sub-account API can make (not a withdrawing
    key, nor a governor itself). None: rotated by a person, as before."""
    if key.purpose in (KeyPurpose.WITHDRAWALS.value, KeyPurpose.GOVERNOR.value):
        return None
    if (key.permissions_json or {}).get("enableWithdrawals") is True:
        return None  # Binance's sub-account API cannot make a key that withdraws
    account = session.get(BinanceAccount, key.account_id)
    if account is None or account.master_account_id is None:
        return None
    governor = live_governor(session, account.master_account_id)
    if governor is None:
        return None
    return GovernedTarget(
        account_id=account.id,
        alias=account.alias,
        email=account.sub_account_email or account.alias,
        governor_id=governor.id,
        governor_label=governor.label,
    )


def is_governed_key(engine: Engine, key_id: str) -> bool:
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        return key is not None and governed_target_of(session, key) is not None


# --- the claim ---------------------------------------------------------------------------------


def _lease(
    session: Session, dedupe_key: str, *, worker_id: str, now: datetime, due_now: bool
) -> ClaimedJob | None:
    """Lease the pending job ``dedupe_key`` to this worker if nobody holds it (one UPDATE: of
    two replicas racing, exactly one gets the row)."""
    values: dict[str, object] = {
        "claimed_by": worker_id,
        "lease_until": now + CLAIM_LEASE,
        "attempts": ScheduledJob.attempts + 1,
    }
    if due_now:
        values["due_at"] = now
    row = session.exec(
        sa.update(ScheduledJob)
        .where(
            col(ScheduledJob.dedupe_key) == dedupe_key,
            col(ScheduledJob.state) == JobState.PENDING.value,
            sa.or_(col(ScheduledJob.lease_until).is_(None), col(ScheduledJob.lease_until) < now),
        )
        .values(**values)
        .returning(
            col(ScheduledJob.id),
            col(ScheduledJob.team_id),
            col(ScheduledJob.kind),
            col(ScheduledJob.key_id),
            col(ScheduledJob.dedupe_key),
            col(ScheduledJob.due_at),
            col(ScheduledJob.attempts),
            col(ScheduledJob.payload),
        )
    ).first()
    return ClaimedJob(*row) if row is not None else None


def new_worker_id() -> str:
    return f"rotate:{uuid.uuid4().hex[:12]}"


def claim_successor(
    engine: Engine, *, team_id: str, key_id: str, actor: str, worker_id: str, now: datetime
) -> ClaimedJob | None:
    """Write the claim for the successor of the key's current credentials and lease it to
    this worker (None: another replica or click holds it, or made it already)."""
    with session_scope(engine) as session:
        key = session.get(ApiKey, key_id, with_for_update=True)
        if key is None or key.team_id != team_id or key.status != KeyStatus.ACTIVE.value:
            return None
        generation = key.api_key_fingerprint or key.api_key_masked
        schedule_jobs(
            session,
            [
                governed_rotation(
                    team_id=team_id, key_id=key_id, generation=generation, actor=actor, due_at=now
                )
            ],
        )
        return _lease(
            session,
            governed_rotation_key(key_id, generation),
            worker_id=worker_id,
            now=now,
            due_now=True,
        )


# --- the successor -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SuccessorPlan:
    team_id: str
    key_id: str
    label: str
    owner: str | None
    purpose: KeyPurpose
    target: GovernedTarget
    permissions: dict[str, object] | None
    ip_addresses: tuple[str, ...] | None  # None: not recorded, ask Binance


def _plan(engine: Engine, team_id: str, key_id: str) -> SuccessorPlan:
    with Session(engine) as session:
        key = rotatable_key(session, team_id, key_id)
        target = governed_target_of(session, key)
        if target is None:
            raise InvalidInput(
                f"“{key.label}” is not in a sub-account the bot governs: rotate it with the form."
            )
        asking = session.exec(
            select(GovernorMint.id).where(
                GovernorMint.replaces_key_id == key.id,
                GovernorMint.state == MintState.ASKING.value,
            )
        ).first()
        if asking is not None:
            raise InvalidInput(
                f"A successor of “{key.label}” is still waiting for Binance's answer: the bot "
                "settles it before it asks again."
            )
        return SuccessorPlan(
            team_id=key.team_id,
            key_id=key.id,
            label=key.label,
            owner=key.owner_user_id,
            purpose=KeyPurpose(key.purpose),
            target=target,
            permissions=key.permissions_json,
            ip_addresses=tuple(key.ip_addresses) if key.ip_addresses is not None else None,
        )


def _grant(
    plan: SuccessorPlan, gateway: binance.BinanceGateway, creds: binance.Credentials
) -> SubAccountGrant:
    """The old key's flags, as last observed (asked of Binance when never observed)."""
    if plan.permissions is not None:
        permissions = binance.KeyPermissions.from_dict(plan.permissions)
    else:
        permissions = gateway.api_restrictions(creds)
    return SubAccountGrant.from_permissions(permissions)


def _ip_list(
    plan: SuccessorPlan,
    governor: GovernorGateway,
    governor_creds: binance.Credentials,
    old: binance.Credentials,
) -> tuple[str, ...] | None:
    """The old key's trusted IPs (None: unrestricted): as the bot made it, else as Binance
    lists them to the governor (GET /sapi/v1/sub-account/subAccountApi/ipRestriction)."""
    if plan.ip_addresses is not None:
        return plan.ip_addresses
    listed = governor.ip_restriction(governor_creds, email=plan.target.email, api_key=old.api_key)
    return listed.ip_list if listed.restricted else None


def rotate_governed(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    governor: GovernorGateway,
    settings: Settings,
    team_id: str,
    key_id: str,
    actor: str,
    source: str | None,
    now: datetime,
) -> RotationStarted:
    """Make the key's successor through the governor and start its rotation with an overlap
    window (the caller holds the claim and has checked who asks)."""
    plan = _plan(engine, team_id, key_id)
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        governor_row = session.get(ApiKey, plan.target.governor_id)
        if key is None or governor_row is None:
            raise KeyNotFound("That key or its governor is no longer registered.")
        old = open_credentials(ring, key)
        governor_creds = open_credentials(ring, governor_row)
    context = CallContext(
        team_id=team_id, actor=actor, why="rotate", key_id=key_id, label=plan.label
    )
    try:
        with on_behalf_of(context):
            ips = _ip_list(plan, governor, governor_creds, old)
        grant = _grant(plan, gateway, old)
    except binance.BinanceError as error:
        raise InvalidInput(
            f"The bot could not read the old key's settings from Binance: {error.user_message} "
            "Nothing was created; the old key keeps working."
        ) from None
    overlap = timedelta(hours=settings.rotation_overlap_hours)

    def schedule_retire(session: Session, row: ApiKey, rotation: Rotation) -> None:
        schedule_jobs(
            session,
            [
                rotation_retire(
                    team_id=row.team_id,
                    key_id=row.id,
                    rotation_id=rotation.id,
                    due_at=now + overlap,
                )
            ],
        )

    def store(api_key: str, private_pem: str, within: Within) -> RotationStarted:
        form = RotationForm(
            team_id=team_id,
            actor=actor,
            key_id=key_id,
            key_type=KeyType.ED25519,
            api_key=api_key,
            secret=private_pem,
            source=source,
        )
        return start_rotation(
            engine=engine,
            ring=ring,
            gateway=gateway,
            settings=settings,
            form=form,
            now=now,
            within=within,
            overlap=overlap,
            then=schedule_retire,
            authorised=True,
        )

    request = MintRequest(
        team_id=team_id,
        actor=actor,
        label=plan.label,
        sub_account=plan.target.email,
        owner_user_id=plan.owner or "",
        purpose=plan.purpose,
        source=source,
    )
    return mint_key(
        engine=engine,
        ring=ring,
        gateway=gateway,
        governor=governor,
        request=request,
        target=plan.target,
        grant=grant,
        ips=ips,
        reason="rotate",
        now=now,
        store=store,
        replaces_key_id=key_id,
    )


@dataclass(frozen=True)
class SuccessorAttempt:
    """One attempt at a governed key's successor, for the person and for the job."""

    key_id: str
    label: str
    owner: str | None
    started: RotationStarted | None
    failure: str | None  # what went wrong, in words for the owner
    outcome: JobOutcome
    overlap_until: datetime | None = None


def attempt_successor(
    services: Services, job: ClaimedJob, *, actor: str, source: str | None, now: datetime
) -> SuccessorAttempt:
    """Run the claimed ``governed_rotation`` job once: started, or failed and retried later
    (a refusal that no retry can change, such as a removed key, is not retried)."""
    key_id = job.key_id or ""
    with Session(services.engine) as session:
        key = session.get(ApiKey, key_id)
        label = key.label if key is not None else "?"
        owner = key.owner_user_id if key is not None else None
        stale = (
            key is None
            or key.status != KeyStatus.ACTIVE.value
            or (
                job.dedupe_key
                != governed_rotation_key(key_id, key.api_key_fingerprint or key.api_key_masked)
            )
        )
    if stale:  # rotated, removed or reported meanwhile: this claim has nothing left to do
        return SuccessorAttempt(key_id, label, owner, None, None, JobOutcome())
    try:
        started = rotate_governed(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            governor=services.governor_gateway,
            settings=services.settings,
            team_id=job.team_id,
            key_id=key_id,
            actor=actor,
            source=source,
            now=now,
        )
    except (KeyNotFound, InvalidInput) as exc:
        final = not isinstance(exc, InvalidInput) or "waiting for Binance" not in exc.user_message
        if final:
            return SuccessorAttempt(key_id, label, owner, None, exc.user_message, JobOutcome())
        retry_at = now + retry_delay(job.attempts)
        return SuccessorAttempt(
            key_id, label, owner, None, exc.user_message, JobOutcome.retry(retry_at, "asking")
        )
    except Exception as exc:
        why = exc.user_message if isinstance(exc, DomainError) else "an unexpected error"
        if not isinstance(exc, DomainError):
            log.exception("governed rotation of %s failed", label)
        retry_at = now + retry_delay(job.attempts)
        _record_failure(services.engine, job.team_id, key_id, label, why, retry_at, "successor")
        return SuccessorAttempt(
            key_id, label, owner, None, why, JobOutcome.retry(retry_at, why[:200])
        )
    overlap_until = now + timedelta(hours=services.settings.rotation_overlap_hours)
    return SuccessorAttempt(
        key_id, label, owner, started, None, JobOutcome(), overlap_until=overlap_until
    )


def _record_failure(
    engine: Engine,
    team_id: str,
    key_id: str,
    label: str,
    why: str,
    retry_at: datetime,
    step: str,
) -> None:
    with session_scope(engine) as session:
        record_event(
            session,
            team_id=team_id,
            actor="bot",
            action=AuditAction.KEY_ROTATE_FAILED,
            target=label,
            target_key_id=key_id,
            source="governor",
            detail={"step": step, "why": why[:200], "retry_at": retry_at.isoformat()},
        )


# --- the end of the overlap --------------------------------------------------------------------


@dataclass(frozen=True)
class RetireAttempt:
    key_id: str | None
    label: str
    owner: str | None
    done: bool  # the old key is deleted and proven (the rotation completes, or waits for
    # the sink's confirmation)
    failure: str | None
    outcome: JobOutcome


def claim_retire(
    engine: Engine, *, rotation_id: str, worker_id: str, now: datetime
) -> ClaimedJob | None:
    """Lease the rotation's retire job now (the owner ended the overlap early)."""
    with session_scope(engine) as session:
        return _lease(
            session, rotation_retire_key(rotation_id), worker_id=worker_id, now=now, due_now=True
        )


def end_overlap(engine: Engine, actor: Actor, *, key_id: str, now: datetime) -> tuple[str, str]:
    """ "The service uses the new key": the rotation (id, label) whose old key may go now. Only the
    key's owner or an admin (else refused, audited, nothing changes)."""
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.team_id != actor.team_id:
            raise KeyNotFound("That key is no longer registered.")
    require_manage_key(engine, actor, key, action="end the rotation's overlap of")
    with session_scope(engine) as session:
        rotation = session.exec(
            select(Rotation).where(
                Rotation.key_id == key_id, Rotation.state == RotationState.PROBING.value
            )
        ).first()
        pending = (
            session.exec(
                select(ScheduledJob.id).where(
                    ScheduledJob.dedupe_key == rotation_retire_key(rotation.id),
                    ScheduledJob.state == JobState.PENDING.value,
                )
            ).first()
            if rotation is not None
            else None
        )
        if rotation is None or pending is None:
            raise InvalidInput(
                f"“{key.label}” has no rotation waiting for its old key to be deleted: it was "
                "completed already."
            )
        record_event(
            session,
            team_id=key.team_id,
            actor=actor.user_id,
            action=AuditAction.KEY_ROTATE_OVERLAP_ENDED,
            target=key.label,
            target_key_id=key.id,
            detail={"old": rotation.old_masked},
        )
        return rotation.id, key.label


def retire_old_key(
    services: Services, job: ClaimedJob, *, actor: str, early: bool, now: datetime
) -> RetireAttempt:
    """Delete the rotation's old key through the governor and prove it by probing; then the
    rotation completes. A failure keeps everything (both keys work) and is retried."""
    engine, ring = services.engine, services.ring
    rotation_id = str(job.payload["rotation_id"])
    with Session(engine) as session:
        rotation = session.get(Rotation, rotation_id)
        key = session.get(ApiKey, rotation.key_id) if rotation is not None else None
        label = key.label if key is not None else "?"
        owner = key.owner_user_id if key is not None else None
        if (
            rotation is None
            or rotation.state != RotationState.PROBING.value
            or rotation.old_api_key_sealed is None
            or rotation.old_secret_sealed is None
        ):
            return RetireAttempt(job.key_id, label, owner, True, None, JobOutcome())
        target = governed_target_of(session, key) if key is not None else None
        if key is not None and not early and not delivery_confirmed(session, key):
            # The service may not have the new key yet: deleting the old one would stop it.
            return RetireAttempt(
                key.id,
                label,
                owner,
                False,
                None,
                JobOutcome.retry(now + DELIVERY_WAIT, "waiting for the delivery"),
            )
        old = binance.Credentials(
            api_key=ring.open_text(rotation.old_api_key_sealed, context=rotation.api_key_context()),
            secret=ring.open_text(rotation.old_secret_sealed, context=rotation.secret_context()),
            key_type=binance.KeyType(rotation.old_key_type),
        )
        governor_row = session.get(ApiKey, target.governor_id) if target is not None else None
        governor_creds = open_credentials(ring, governor_row) if governor_row else None
        old_masked, team_id = rotation.old_masked, rotation.team_id
    if target is None or governor_creds is None:
        why = "its sub-account no longer has a governor: delete the old key in Binance"
        return _retire_failed(services, job, team_id, label, owner, why, now)
    context = CallContext(
        team_id=team_id, actor=actor, why="rotate", key_id=job.key_id, label=label
    )
    try:
        with on_behalf_of(context):
            services.governor_gateway.delete_sub_account_key(
                governor_creds, email=target.email, api_key=old.api_key
            )
    except binance.KeyRejected as error:
        # Binance knows no such key: deleted already (an earlier attempt whose answer was
        # lost, or a person). The probe decides.
        log.info("governor delete of an old key: Binance rejected it (%s); probing", error.code)
    except binance.BinanceError as error:
        return _retire_failed(services, job, team_id, label, owner, error.user_message, now)
    if not _rejected(services.gateway, old):
        why = "Binance accepted the deletion but still accepts the old key"
        return _retire_failed(services, job, team_id, label, owner, why, now)
    with session_scope(engine) as session:
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action=AuditAction.KEY_ROTATE_OLD_KEY_DELETED,
            target=label,
            target_key_id=job.key_id,
            source="governor",
            detail={"old": old_masked, "early": early},
        )
    settle_probe(
        engine=engine,
        settings=services.settings,
        rotation_id=rotation_id,
        result="rejected",
        attempt=0,
        now=now,
    )
    return RetireAttempt(job.key_id, label, owner, True, None, JobOutcome())


def _rejected(gateway: binance.BinanceGateway, creds: binance.Credentials) -> bool:
    """Binance rejects the key signed by itself (after the governor deleted it)."""
    for wait in PROOF_WAITS:
        time.sleep(wait)
        try:
            gateway.api_restrictions(creds)
        except binance.KeyRejected:
            return True
        except binance.BinanceError:
            continue
    return False


def _retire_failed(
    services: Services,
    job: ClaimedJob,
    team_id: str,
    label: str,
    owner: str | None,
    why: str,
    now: datetime,
) -> RetireAttempt:
    retry_at = now + retry_delay(job.attempts)
    _record_failure(services.engine, team_id, job.key_id or "", label, why, retry_at, "delete old")
    return RetireAttempt(
        job.key_id, label, owner, False, why, JobOutcome.retry(retry_at, why[:200])
    )
