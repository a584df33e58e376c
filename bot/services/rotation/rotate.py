"""Rotating a key, proven on Binance.

1. The new key is checked on Binance: it must work, and its permissions must not exceed the
   old key's (as last observed) or the declared purpose, unless the owner confirms.
2. It is stored sealed; the old credentials move, sealed, into a Rotation row and the key is
   "rotating".
3. Probes try the old key until Binance rejects it: only then is the rotation complete and
   announced. Past the grace period the channel is told the old key is still alive.
Announcements are scheduled jobs written in the same transaction as the state change, so
they are posted (at least once) even if this process dies right after committing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.config import Settings
from bot.ids import Block
from bot.job_queue.kinds import JobKind, rotation_announce, rotation_probe
from bot.job_queue.queue import NewJob, cancel_jobs, drop_unsent_jobs, schedule_jobs
from bot.model.approvals import ApprovalView
from bot.model.delivery import SINK_LABELS
from bot.model.findings import permission_name
from bot.model.rotation import RotationStarted
from bot.services.access import Actor, require_manage_key
from bot.services.approvals.holding import (
    ApprovedChange,
    ChangedSinceRequest,
    HeldForApproval,
    finish_applied,
    hold_change,
    permissions_at_stake,
)
from bot.services.custody.delivery_plan import delivery_confirmed, plan_delivery
from bot.services.custody.keys import (
    credential_problems,
    open_credentials,
    refusal_for,
    require_owner_confirmation,
)
from bot.services.errors import (
    InvalidInput,
    KeyAlreadyRegistered,
    KeyNotFound,
)
from bot.services.oversight.findings import assess, purpose_excess
from bot.services.response.paging import old_key_page_key, open_page, resolve_page
from bot.services.rotation.reminder_plan import plan_reminders
from bot.services.rows import key_row
from bot.vocabulary import ApprovalKind, AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing, mask_api_key
from storage.db import session_scope
from storage.master_keys import seal_api_key_row
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    BinanceAccount,
    KeyPurpose,
    KeyStatus,
    KeyType,
    Rotation,
    RotationState,
    ScheduledJob,
)

# After the grace period, probe less often: the channel has been told already.
STALE_PROBE_FACTOR = 6


@dataclass(frozen=True)
class RotationForm:
    team_id: str
    actor: str
    key_id: str
    key_type: KeyType
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    confirm_more_permissions: bool = False
    source: str | None = None
    actor_is_admin: bool = False

    def credentials(self) -> binance.Credentials:
        return binance.Credentials(
            api_key=self.api_key, secret=self.secret, key_type=binance.KeyType(self.key_type.value)
        )


def normalise(form: RotationForm) -> RotationForm:
    return replace(
        form, api_key=form.api_key.strip(), secret=form.secret.strip().replace("\r\n", "\n")
    )


def rotatable_key(session: Session, team_id: str, key_id: str) -> ApiKey:
    """The live key ``key_id`` if it can be rotated now (else KeyNotFound / InvalidInput)."""
    return _live_key(session, team_id, key_id)


def _live_key(session: Session, team_id: str, key_id: str, *, lock: bool = False) -> ApiKey:
    key = session.get(ApiKey, key_id, with_for_update=lock)
    if key is None or key.team_id != team_id or key.status in RETIRED_STATUSES:
        raise KeyNotFound("That key is no longer registered.")
    if key.status == KeyStatus.ROTATING.value:
        if key.created_via == "governor" or _governed(session, key):
            raise InvalidInput(
                f"“{key.label}” is already being rotated: the bot deletes its old key in Binance "
                "when the overlap ends (or when its owner says the service uses the new key), "
                "then completes the rotation."
            )
        raise InvalidInput(
            f"“{key.label}” is already being rotated: delete its old key in Binance and the "
            "bot will complete the rotation."
        )
    if key.status == KeyStatus.COMPROMISED.value:
        raise InvalidInput(
            f"“{key.label}” is marked compromised: follow the emergency checklist instead."
        )
    return key


def _governed(session: Session, key: ApiKey) -> bool:
    """The key's sub-account has a master account (the governor rotates it)."""
    account = session.get(BinanceAccount, key.account_id)
    return account is not None and account.master_account_id is not None


def require_may_rotate(engine: Engine, form: RotationForm, *, channel: str | None = None) -> None:
    """Only the key's owner or an admin may rotate it (else refused, audited, nothing changes).
    Checked for every submission: a form can be forged, or a role change while it was open."""
    actor = Actor(
        user_id=form.actor, team_id=form.team_id, is_admin=form.actor_is_admin, channel=channel
    )
    with Session(engine) as session:
        key = session.get(ApiKey, form.key_id)
        if key is None or key.team_id != form.team_id or key.status in RETIRED_STATUSES:
            raise KeyNotFound("That key is no longer registered.")
    require_manage_key(engine, actor, key, action="rotate")


def _check_new_key(session: Session, ring: KeyRing, form: RotationForm) -> ApiKey:
    """Everything that can be refused before asking Binance."""
    problems = credential_problems(form.api_key, form.secret, form.key_type)
    if problems:
        block, message = next(iter(problems.items()))
        raise InvalidInput(message, field=block)
    key = _live_key(session, form.team_id, form.key_id)
    fingerprints = ring.fingerprints(form.api_key)
    if key.api_key_fingerprint in fingerprints:
        raise InvalidInput(
            "This is the key already registered: a rotation must replace it with a new key "
            "created in Binance.",
            field=Block.API_KEY,
        )
    other = session.exec(
        select(ApiKey.label).where(
            ApiKey.team_id == form.team_id,
            col(ApiKey.api_key_fingerprint).in_(fingerprints),
            col(ApiKey.status).not_in(RETIRED_STATUSES),
        )
    ).first()
    if other:
        raise KeyAlreadyRegistered(
            f"This API key is already registered as “{other}”.", field=Block.API_KEY
        )
    return key


def check_new_key(engine: Engine, ring: KeyRing, form: RotationForm) -> None:
    """Everything that can be refused before asking Binance (for the form's first answer)."""
    with Session(engine) as session:
        _check_new_key(session, ring, form)


def excess_permissions(
    new: binance.KeyPermissions, old: dict[str, Any] | None, purpose: KeyPurpose
) -> list[str]:
    """How the new key exceeds the old key or the declared purpose (empty: it does not).

    Every permission is compared, flag by flag: trading of each kind (spot & margin, margin,
    futures, options, portfolio margin, FIX), FIX read-only, transfers, withdrawals and any
    permission Binance added that this code does not know. Losing the old key's IP whitelist
    counts too: the new key would work from anywhere."""
    reasons = []
    if old is not None:
        old_perms = binance.KeyPermissions.from_dict(old)
        if new.tier > old_perms.tier:
            reasons.append(
                f"it has the {new.tier.name.title()} tier, the old key had "
                f"{old_perms.tier.name.title()}"
            )
        gained = new.widened_from(old_perms)
        if gained:
            names = ", ".join(
                permission_name(n)
                + (" (a permission the bot does not know yet)" if n in new.new_flags else "")
                for n in gained
            )
            reasons.append(f"it can do what the old key could not: {names}")
        if old_perms.ip_restrict is True and new.ip_restrict is not True:
            reasons.append(
                "it has no IP whitelist, the old key had one"
                if new.ip_restrict is False
                else "Binance does not say whether it has an IP whitelist, the old key had one"
            )
    reasons += purpose_excess(new, purpose)
    return reasons


def start_rotation(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    form: RotationForm,
    now: datetime,
    within: Callable[[Session, ApiKey], None] | None = None,
    overlap: timedelta | None = None,
    then: Callable[[Session, ApiKey, Rotation], None] | None = None,
    authorised: bool = False,
    approved: ApprovedChange | None = None,
) -> RotationStarted:
    """``within`` runs in the transaction that starts the rotation (a generated pair completes
    itself there), then ``then`` with the new rotation. ``overlap``: a governed rotation, whose old key the governor deletes when
    the window ends (bot.services.governor.rotation); the old key is not probed before then.
    ``authorised``: the caller has checked who asks (the bot's own due rotation).

    A new key beyond the declared purpose, or without the IP whitelist the old key had, waits
    for a second person when APPROVAL_REQUIRED_FOR says so (HeldForApproval; a governed
    rotation, whose new key the governor made itself, does not). ``approved``: that request,
    approved, being carried out: Binance must still say what the approvers saw."""
    form = normalise(form)
    if not authorised:
        require_may_rotate(engine, form)
    with Session(engine) as session:
        key = _check_new_key(session, ring, form)
        owner, purpose, old_permissions = (
            key.owner_user_id,
            KeyPurpose(key.purpose),
            key.permissions_json,
        )
    try:
        permissions = gateway.api_restrictions(form.credentials())
    except binance.BinanceError as error:
        raise refusal_for(error) from None
    excess = excess_permissions(permissions, old_permissions, purpose)
    require_owner_confirmation(
        excess,
        confirmed=form.confirm_more_permissions,
        actor=form.actor,
        owner=owner,
        what="The new key can do more than it should",
        fix="Reduce its permissions in Binance",
        field=Block.ROTATE_CONFIRM,
    )
    if approved is not None:
        if approved.permissions != permissions.to_dict():
            raise ChangedSinceRequest(
                "Binance's answer about the new key changed since the request was made. "
                "Nothing was changed: the request goes back to its requester."
            )
    elif overlap is None and (
        kinds := rotation_kinds(settings, permissions, old_permissions, purpose)
    ):
        raise HeldForApproval(
            _hold_rotation(engine, ring, settings, form, permissions, kinds, excess, now, within)
        )
    with session_scope(engine) as session:
        key = _check_new_key(session, ring, form)  # again, under the transaction
        key = key_row(session, key.id, for_update=True)
        old = open_credentials(ring, key)
        rotation = Rotation(
            team_id=key.team_id,
            key_id=key.id,
            started_by=form.actor,
            started_at=now,
            grace_until=now
            + (overlap or timedelta(0))
            + timedelta(hours=settings.rotation_grace_hours),
            old_masked=key.api_key_masked,
            old_key_type=key.key_type,
        )
        rotation.old_api_key_sealed = ring.seal(
            old.api_key, context=rotation.api_key_context()
        ).blob
        rotation.old_secret_sealed = ring.seal(old.secret, context=rotation.secret_context()).blob
        rotation.seal_key_id = ring.active.key_id
        session.add(rotation)
        seal_api_key_row(ring, key, api_key=form.api_key, secret=form.secret)
        key.key_type = form.key_type.value
        key.api_key_masked = mask_api_key(form.api_key)
        key.status = KeyStatus.ROTATING.value
        key.permissions_json = permissions.to_dict()
        key.permissions_checked_at = now
        key.updated_at = now
        session.flush()
        if within is not None:
            within(session, key)
        if then is not None:
            then(session, key, rotation)
        approval = {}
        if approved is not None:
            request = finish_applied(session, approved, key_id=key.id, now=now)
            approval = {"approval": request.id, "approved_by": request.approved_by}
        planned = plan_delivery(session, key, settings=settings, reason="rotation", now=now)
        cancel_jobs(session, key_id=key.id, kinds=[JobKind.ROTATION_REMINDER])
        if overlap is None:
            schedule_jobs(session, [_probe_job(rotation, now, attempt=0)])
        record_event(
            session,
            team_id=key.team_id,
            actor=form.actor,
            action=AuditAction.KEY_ROTATE_START,
            target=key.label,
            target_key_id=key.id,
            source=form.source,
            detail={
                "old": rotation.old_masked,
                "new": key.api_key_masked,
                "tier": permissions.tier.name,
                "confirmed_more_permissions": bool(excess),
                "accepted": excess,
                **({"overlap_hours": overlap.total_seconds() / 3600} if overlap else {}),
                **approval,
            },
        )
        return RotationStarted(
            rotation_id=rotation.id,
            label=key.label,
            old_masked=rotation.old_masked,
            new_masked=key.api_key_masked,
            permissions=permissions,
            findings=assess(
                purpose=purpose, now=now, permissions=permissions, key_type=form.key_type
            ),
            grace_until=rotation.grace_until,
            delivered_to=(
                f"{SINK_LABELS[planned.sink]} `{planned.destination}`" if planned else None
            ),
        )


def rotation_kinds(
    settings: Settings,
    new: binance.KeyPermissions,
    old: dict[str, Any] | None,
    purpose: KeyPurpose,
) -> list[ApprovalKind]:
    """What a rotation needs approval for, under APPROVAL_REQUIRED_FOR."""
    kinds = []
    if purpose_excess(new, purpose):
        kinds.append(ApprovalKind.BEYOND_PURPOSE)
    if old is not None and old.get("ipRestrict") is True and new.ip_restrict is not True:
        kinds.append(ApprovalKind.DROPS_IP_WHITELIST)
    return [k for k in kinds if k in settings.approval_required_for]


def _hold_rotation(
    engine: Engine,
    ring: KeyRing,
    settings: Settings,
    form: RotationForm,
    permissions: binance.KeyPermissions,
    kinds: list[ApprovalKind],
    excess: list[str],
    now: datetime,
    within: Callable[[Session, ApiKey], None] | None,
) -> ApprovalView:
    """Hold the new key, sealed, in an approval request; the old key stays as it is. A
    generated pair it completes hands its private key over (``within``)."""
    with session_scope(engine) as session:
        key = _check_new_key(session, ring, form)
        account = session.get(BinanceAccount, key.account_id)
        if within is not None:
            within(session, key)
        return hold_change(
            session,
            ring,
            settings,
            team_id=form.team_id,
            change="rotate",
            kinds=kinds,
            at_stake=permissions_at_stake(permissions, excess),
            label=key.label,
            requested_by=form.actor,
            now=now,
            form={
                "key_type": form.key_type.value,
                "confirm_more_permissions": form.confirm_more_permissions,
                "source": form.source,
            },
            permissions=permissions,
            account_alias=account.alias if account is not None else None,
            key_id=key.id,
            masked=mask_api_key(form.api_key),
            owner_user_id=key.owner_user_id,
            api_key=form.api_key,
            secret=form.secret,
            source=form.source,
        )


def resume_rotation(session: Session, key: ApiKey, rotation: Rotation, *, now: datetime) -> None:
    """Probe the old key again from now: a rotation that a (false) compromise report stopped
    goes on where it was (the probes it stopped are dropped; attempts already made keep their
    numbers, so the next one gets a dedupe key of its own)."""
    drop_unsent_jobs(session, key_id=key.id, kinds=[JobKind.ROTATION_PROBE], now=now)
    made = session.exec(
        select(sa.func.count())
        .select_from(ScheduledJob)
        .where(
            ScheduledJob.kind == JobKind.ROTATION_PROBE,
            col(ScheduledJob.dedupe_key).startswith(f"probe:{rotation.id}:"),
        )
    ).one()
    schedule_jobs(session, [_probe_job(rotation, now, attempt=made)])


def _probe_job(rotation: Rotation, due: datetime, *, attempt: int) -> NewJob:
    return rotation_probe(
        team_id=rotation.team_id,
        key_id=rotation.key_id,
        rotation_id=rotation.id,
        attempt=attempt,
        due_at=due,
    )


def _announce_job(rotation: Rotation, what: str, now: datetime) -> NewJob:
    return rotation_announce(
        team_id=rotation.team_id,
        key_id=rotation.key_id,
        rotation_id=rotation.id,
        what=what,
        due_at=now,
    )


@dataclass(frozen=True)
class ProbeOutcome:
    finished: bool  # no more probes needed
    next_probe: NewJob | None
    result: str


def probe_old_key(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    rotation_id: str,
    attempt: int,
    now: datetime,
) -> ProbeOutcome:
    """Try the old key once. Rejected: the rotation completes. Alive past grace: alert."""
    with Session(engine) as session:
        rotation = session.get(Rotation, rotation_id)
        if rotation is None or rotation.state != RotationState.PROBING.value:
            return ProbeOutcome(finished=True, next_probe=None, result="not probing")
        old_api_key, old_secret = rotation.old_api_key_sealed, rotation.old_secret_sealed
        if old_api_key is None or old_secret is None:  # shredded: nothing left to probe with
            return ProbeOutcome(finished=True, next_probe=None, result="not probing")
        old = binance.Credentials(
            api_key=ring.open_text(old_api_key, context=rotation.api_key_context()),
            secret=ring.open_text(old_secret, context=rotation.secret_context()),
            key_type=binance.KeyType(rotation.old_key_type),
        )
    try:
        gateway.api_restrictions(old)
        result = "alive"
    except binance.KeyRejected:
        result = "rejected"
    except binance.BinanceError as error:
        result = f"unknown: {type(error).__name__}"
    return settle_probe(
        engine=engine,
        settings=settings,
        rotation_id=rotation_id,
        result=result,
        attempt=attempt,
        now=now,
    )


def settle_probe(
    *,
    engine: Engine,
    settings: Settings,
    rotation_id: str,
    result: str,
    attempt: int,
    now: datetime,
) -> ProbeOutcome:
    """Record what Binance said of the old key ("alive", "rejected" or "unknown: …"):
    rejected completes the rotation (once the new credentials reached the sink); alive past
    the grace period alerts the channel."""
    interval = timedelta(minutes=settings.rotation_probe_minutes)
    with session_scope(engine) as session:
        rotation = session.get(Rotation, rotation_id, with_for_update=True)
        if rotation is None or rotation.state != RotationState.PROBING.value:
            return ProbeOutcome(finished=True, next_probe=None, result="not probing")
        key = session.get(ApiKey, rotation.key_id, with_for_update=True)
        rotation.last_probe_at = now
        waiting_already = rotation.last_probe_result == "rejected"
        rotation.last_probe_result = result
        if result == "rejected":
            if key is not None and not delivery_confirmed(session, key):
                # The old key is dead, but the service has not got the new one yet: the
                # rotation completes when the sink confirms it (complete_if_old_key_dead).
                if not waiting_already:
                    record_event(
                        session,
                        team_id=rotation.team_id,
                        actor="bot",
                        action=AuditAction.KEY_ROTATE_WAITING_FOR_DELIVERY,
                        target=key.label,
                        target_key_id=key.id,
                        detail={"old": rotation.old_masked, "sink": key.delivery_sink},
                    )
                return ProbeOutcome(finished=True, next_probe=None, result=result)
            _complete(session, rotation, key, settings, now)
            return ProbeOutcome(finished=True, next_probe=None, result=result)
        if result == "alive" and now >= rotation.grace_until and rotation.stale_alerted_at is None:
            rotation.stale_alerted_at = now
            schedule_jobs(session, [_announce_job(rotation, "old_key_alive", now)])
            open_page(
                session,
                team_id=rotation.team_id,
                dedup_key=old_key_page_key(rotation.id),
                reason="old_key_alive",
                summary=(
                    f"The old Binance API key ({rotation.old_masked}) of “"
                    f"{key.label if key else '?'}” still works after its rotation's grace "
                    "period: delete it in Binance API Management."
                ),
                key_id=rotation.key_id,
                now=now,
            )
            record_event(
                session,
                team_id=rotation.team_id,
                actor="bot",
                action=AuditAction.KEY_ROTATE_OLD_KEY_ALIVE,
                target=key.label if key else None,
                target_key_id=rotation.key_id,
                detail={"old": rotation.old_masked},
            )
        if now >= rotation.grace_until:
            interval *= STALE_PROBE_FACTOR
        next_probe = _probe_job(rotation, now + interval, attempt=attempt + 1)
        return ProbeOutcome(finished=False, next_probe=next_probe, result=result)


def complete_if_old_key_dead(
    session: Session, key: ApiKey, settings: Settings, now: datetime
) -> bool:
    """The key's newest credentials reached its sink: complete its rotation if Binance has
    already rejected the old key (the probe waits for the delivery). True when completed."""
    rotation = session.exec(
        select(Rotation).where(
            Rotation.key_id == key.id,
            Rotation.state == RotationState.PROBING.value,
            Rotation.last_probe_result == "rejected",
        )
    ).first()
    if rotation is None or not delivery_confirmed(session, key):
        return False
    _complete(session, rotation, key, settings, now)
    return True


def _complete(
    session: Session, rotation: Rotation, key: ApiKey | None, settings: Settings, now: datetime
) -> None:
    rotation.state = RotationState.COMPLETE.value
    rotation.completed_at = now
    rotation.old_api_key_sealed = None  # crypto-shred the old credentials
    rotation.old_secret_sealed = None
    rotation.seal_key_id = None
    if key is not None and key.status == KeyStatus.ROTATING.value:
        key.status = KeyStatus.ACTIVE.value
        key.last_rotated_at = rotation.started_at
        key.snoozed_until = None
        key.updated_at = now
        session.flush()
        plan_reminders(session, key, settings, now=now)
    schedule_jobs(session, [_announce_job(rotation, "complete", now)])
    resolve_page(session, dedup_key=old_key_page_key(rotation.id), now=now)
    record_event(
        session,
        team_id=rotation.team_id,
        actor="bot",
        action=AuditAction.KEY_ROTATE_COMPLETE,
        target=key.label if key else None,
        target_key_id=rotation.key_id,
        detail={"old": rotation.old_masked, "proof": "Binance rejects the old key"},
    )
