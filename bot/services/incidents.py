"""The emergency playbook for a compromised key, tracked to the end in the database.

Binance has no API to delete a normal key: people do it in the Binance UI. The bot keeps the
checklist, verifies what it can (the key is dead once Binance rejects it; the account's recent
withdrawals and deposits, read-only) and shreds the key's secret once it is confirmed dead.
Everything lives in the database, so a restart loses nothing and old buttons keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import binance
from bot.jobs.kinds import (
    KEY_LIFECYCLE_KINDS,
    JobKind,
    incident_activity,
    incident_checklist,
    incident_checklist_prefix,
    incident_probe,
)
from bot.jobs.queue import NewJob, cancel_jobs, schedule_jobs
from bot.services.errors import DomainError, InvalidInput, KeyNotFound
from bot.services.keys import find_live_key, open_credentials, unknown_label
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.locks import exclusive
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    BinanceAccount,
    Incident,
    IncidentState,
    IncidentStep,
    JobState,
    KeyStatus,
    ScheduledJob,
)
from storage.vault import shred_api_key_row

CHECKLIST_RETRY = timedelta(seconds=30)
# How long after raising the checklist may still be on its way from the listener that raised it.
CHECKLIST_POSTING = timedelta(minutes=2)
ACTIVITY_LOOKBACK = timedelta(days=7)
KNOWN_ADDRESS_LOOKBACK = timedelta(days=90)
PROBE_DELAYS = (30, 60, 120, 300, 600)  # seconds: back off, then every 10 minutes
BINANCE_API_MANAGEMENT = "https://www.binance.com/en/my/settings/api-management"


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    detail: str


STEPS = (
    Step(
        1,
        "Delete the compromised key in Binance",
        "In Binance API Management delete this key, and every other key of the account if the "
        "account itself may be breached. The bot ticks this itself once Binance rejects the key.",
    ),
    Step(2, "Change the Binance account password", "And review 2FA and the account's devices."),
    Step(
        3,
        "Review abnormal trades and withdrawals",
        "The bot posts the account's recent withdrawals and deposits below.",
    ),
    Step(4, "Contact Binance support if assets were lost", "Freeze the account if needed."),
    Step(5, "Investigate the leak source and record it", "Where was the key stored or pasted?"),
)
KEY_DELETED_STEP = 1


class IncidentClosed(DomainError):
    pass


@dataclass(frozen=True)
class Raised:
    incident_id: str
    created: bool  # False: an incident for this key was already open


def _probe_job(incident: Incident, due: datetime, attempt: int) -> NewJob:
    return incident_probe(
        team_id=incident.team_id,
        key_id=incident.key_id,
        incident_id=incident.id,
        attempt=attempt,
        due_at=due,
    )


def raise_incident(
    *,
    engine: Engine,
    team_id: str,
    label: str | None = None,
    key_id: str | None = None,
    actor: str,
    channel: str | None,
    now: datetime,
    activity_since: datetime | None = None,
) -> Raised:
    """Mark the key compromised at once and open its incident (or return the open one)."""
    if activity_since is not None and activity_since > now:
        raise InvalidInput(
            f"The activity review cannot start in the future ({activity_since:%Y-%m-%d}). "
            "Give a past date or a number of days, e.g. `since 14d`. Nothing was marked."
        )
    with session_scope(engine) as session:
        key = _find_key(session, team_id, label=label, key_id=key_id)
        existing = _open_incident(session, key.id)
        if existing is not None:
            return Raised(existing.id, created=False)
        _refuse_retired(key)
        account = session.get(BinanceAccount, key.account_id)
        incident = Incident(
            team_id=team_id,
            key_id=key.id,
            label=key.label,
            account_alias=account.alias if account else "?",
            raised_by=actor,
            raised_at=now,
            raised_in=channel,
            activity_since=min(activity_since or now - ACTIVITY_LOOKBACK, now),
            other_keys=_other_keys(session, key),
        )
        session.add(incident)
        try:
            session.flush()  # before anything else: another replica may have opened it
        except IntegrityError:  # someone raised it at the same moment
            session.rollback()
            with Session(engine) as fresh:
                other = _open_incident(fresh, key.id)
            if other is None:
                raise
            return Raised(other.id, created=False)
        key.status = KeyStatus.COMPROMISED.value
        key.updated_at = now
        cancel_jobs(session, key_id=key.id, kinds=KEY_LIFECYCLE_KINDS)
        schedule_jobs(
            session,
            [
                _probe_job(incident, now, 0),
                incident_activity(
                    team_id=team_id, key_id=key.id, incident_id=incident.id, due_at=now
                ),
            ],
        )
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action="incident.raise",
            target=key.label,
            target_key_id=key.id,
            source=f"slack:{channel}" if channel else None,
            detail={"incident": incident.id, "masked": key.api_key_masked},
        )
        return Raised(incident.id, created=True)


def _find_key(session: Session, team_id: str, *, label: str | None, key_id: str | None) -> ApiKey:
    """The key a button names (any status: ``_refuse_retired`` explains a retired one), or
    the live key a command names."""
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        if key is None or key.team_id != team_id:
            raise KeyNotFound("That key is not registered (any more). `/apikey list` shows them.")
        return key
    key, _account = find_live_key(
        session,
        team_id,
        label,
        not_found=unknown_label(label)
        + " If the key was never registered, delete it in Binance API Management right away.",
    )
    return key


def _refuse_retired(key: ApiKey) -> None:
    """A button on an old message may name a key that has left the bot since: say so."""
    if key.status == KeyStatus.REMOVED.value:
        raise KeyNotFound(
            f"“{key.label}” was removed from the bot, so there is nothing to mark. If that key "
            "still exists in Binance and may have leaked, delete it in Binance API Management "
            "right away."
        )
    if key.status == KeyStatus.REVOKED.value:
        raise KeyNotFound(
            f"“{key.label}” is already revoked: Binance rejects it and its stored secret was "
            "destroyed. Nothing to do for this key."
        )


def _open_incident(session: Session, key_id: str) -> Incident | None:
    return session.exec(
        select(Incident).where(Incident.key_id == key_id, Incident.state == IncidentState.OPEN)
    ).first()


def _other_keys(session: Session, key: ApiKey) -> list[dict]:
    others = session.exec(
        select(ApiKey).where(
            ApiKey.account_id == key.account_id,
            ApiKey.id != key.id,
            ApiKey.status.not_in(RETIRED_STATUSES),
        )
    ).all()
    rows = []
    for other in sorted(others, key=lambda k: k.label.lower()):
        tier = None
        if other.permissions_json:
            tier = binance.KeyPermissions.from_dict(other.permissions_json).tier.name.title()
        rows.append({"label": other.label, "tier": tier, "status": other.status})
    return rows


def post_checklist_later(
    engine: Engine, incident_id: str, channels: list[str], *, now: datetime
) -> None:
    """Slack refused the checklist in ``channels`` for a passing reason (rate limit, server
    error): a job posts it there later, once (it skips a channel that already has it)."""
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        schedule_jobs(
            session,
            [
                incident_checklist(
                    team_id=incident.team_id,
                    key_id=incident.key_id,
                    incident_id=incident_id,
                    channel=channel,
                    due_at=now + CHECKLIST_RETRY,
                )
                for channel in channels
            ],
        )


def checklist_on_its_way(engine: Engine, incident: Incident, now: datetime) -> bool:
    """True while the checklist may still be posted: the incident was raised moments ago, or a
    job will post it again after Slack refused it. False once nobody will post it (e.g. the bot
    is in none of the channels)."""
    if now - incident.raised_at < CHECKLIST_POSTING:
        return True
    with Session(engine) as session:
        pending = session.exec(
            select(ScheduledJob.id)
            .where(
                ScheduledJob.kind == JobKind.INCIDENT_CHECKLIST,
                ScheduledJob.state == JobState.PENDING.value,
                col(ScheduledJob.dedupe_key).startswith(incident_checklist_prefix(incident.id)),
            )
            .limit(1)
        ).first()
    return pending is not None


def remember_message(engine: Engine, incident_id: str, *, channel: str, ts: str) -> None:
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        refs = [m for m in incident.messages if m.get("channel") != channel]
        incident.messages = [*refs, {"channel": channel, "ts": ts}]


@dataclass(frozen=True)
class StepView:
    step: Step
    ticked_by: str | None
    ticked_at: datetime | None
    automatic: bool


@dataclass(frozen=True)
class IncidentView:
    """Everything the checklist message shows."""

    incident: Incident
    owner_user_id: str | None
    steps: list[StepView]

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps if s.ticked_by)

    @property
    def all_done(self) -> bool:
        return self.done == len(STEPS)


@contextmanager
def one_refresh_at_a_time(engine: Engine, incident_id: str) -> Iterator[IncidentView]:
    """The incident as it is now, while no other replica re-renders its checklist: two people
    ticking steps at once on two replicas must not have the older rendering land last."""
    with exclusive(engine, f"incident-message:{incident_id}"):
        yield load_incident(engine, incident_id)


def load_incident(engine: Engine, incident_id: str, *, team_id: str | None = None) -> IncidentView:
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or (team_id is not None and incident.team_id != team_id):
            raise KeyNotFound("That incident does not exist.")
        key = session.get(ApiKey, incident.key_id)
        ticks = {
            t.step: t
            for t in session.exec(
                select(IncidentStep).where(IncidentStep.incident_id == incident_id)
            ).all()
        }
        session.expunge(incident)
    steps = [
        StepView(
            step=s,
            ticked_by=ticks[s.number].ticked_by if s.number in ticks else None,
            ticked_at=ticks[s.number].ticked_at if s.number in ticks else None,
            automatic=ticks[s.number].automatic if s.number in ticks else False,
        )
        for s in STEPS
    ]
    return IncidentView(
        incident=incident, owner_user_id=key.owner_user_id if key else None, steps=steps
    )


@dataclass(frozen=True)
class TickResult:
    view: IncidentView
    changed: bool


def tick_step(
    *, engine: Engine, team_id: str, incident_id: str, step: int, actor: str, now: datetime
) -> TickResult:
    """Record that ``actor`` did a step (idempotent). Closed incidents change nothing."""
    if step not in {s.number for s in STEPS}:
        raise InvalidInput("That checklist step does not exist.")
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.team_id != team_id:
            raise KeyNotFound("That incident does not exist.")
        if incident.state == IncidentState.CLOSED:
            raise IncidentClosed(
                f"The incident for “{incident.label}” was closed on "
                f"{incident.closed_at:%Y-%m-%d %H:%M} UTC; nothing was changed."
            )
        changed = session.get(IncidentStep, (incident_id, step)) is None
        if changed:
            session.add(
                IncidentStep(incident_id=incident_id, step=step, ticked_by=actor, ticked_at=now)
            )
            try:
                session.flush()
            except IntegrityError:  # ticked by someone else a moment ago: fine
                session.rollback()
                changed = False
            else:
                record_event(
                    session,
                    team_id=team_id,
                    actor=actor,
                    action="incident.tick",
                    target=incident.label,
                    target_key_id=incident.key_id,
                    detail={"incident": incident_id, "step": step},
                )
    return TickResult(view=load_incident(engine, incident_id), changed=changed)


def key_still_accepted(
    *, engine: Engine, ring: KeyRing, gateway: binance.BinanceGateway, incident_id: str
) -> bool | None:
    """Ask Binance now: True if it still accepts the key, False if not, None if unknown."""
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.key_dead_at is not None:
            return False
        key = session.get(ApiKey, incident.key_id)
        if key is None or key.secret_sealed is None:
            return None
        creds = open_credentials(ring, key)
    try:
        gateway.api_restrictions(creds)
        return True
    except binance.KeyRejected:
        return False
    except binance.BinanceError:
        return None


@dataclass(frozen=True)
class ProbeOutcome:
    next_probe: NewJob | None
    refresh: bool


def probe_compromised_key(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    incident_id: str,
    attempt: int,
    now: datetime,
) -> ProbeOutcome:
    """One probe. Rejected by Binance: tick step 1, revoke the key, destroy its secret."""
    alive = key_still_accepted(engine=engine, ring=ring, gateway=gateway, incident_id=incident_id)
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None or incident.key_dead_at is not None:
            return ProbeOutcome(next_probe=None, refresh=False)
        incident.last_probe_at = now
        incident.last_probe_result = {True: "alive", False: "rejected", None: "unknown"}[alive]
        if alive is False:
            incident.key_dead_at = now
            key = session.get(ApiKey, incident.key_id, with_for_update=True)
            if key is not None:
                shred_api_key_row(key)
                key.status = KeyStatus.REVOKED.value
                key.updated_at = now
            if session.get(IncidentStep, (incident_id, KEY_DELETED_STEP)) is None:
                session.add(
                    IncidentStep(
                        incident_id=incident_id,
                        step=KEY_DELETED_STEP,
                        ticked_by="bot",
                        ticked_at=now,
                        automatic=True,
                    )
                )
            record_event(
                session,
                team_id=incident.team_id,
                actor="bot",
                action="incident.key_dead",
                target=incident.label,
                target_key_id=incident.key_id,
                detail={
                    "incident": incident_id,
                    "proof": "Binance rejects the key",
                    "shredded": True,
                },
            )
            return ProbeOutcome(next_probe=None, refresh=True)
        delay = PROBE_DELAYS[min(attempt, len(PROBE_DELAYS) - 1)]
        return ProbeOutcome(
            next_probe=_probe_job(incident, now + timedelta(seconds=delay), attempt + 1),
            refresh=False,
        )


def review_activity(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    incident_id: str,
    now: datetime,
) -> dict:
    """Withdrawals and deposits since ``activity_since``, read through a working key of the
    account; withdrawals to addresses not used in the 90 days before are flagged."""
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        compromised = session.get(ApiKey, incident.key_id)
        candidates = session.exec(
            select(ApiKey).where(
                ApiKey.account_id == compromised.account_id,
                ApiKey.status.not_in(RETIRED_STATUSES),
                ApiKey.secret_sealed.is_not(None),
            )
        ).all()
        since = incident.activity_since
    _refresh_other_keys(
        engine, ring, gateway, incident_id, [k for k in candidates if k.id != compromised.id]
    )
    # Prefer keys that are not compromised; the compromised key itself is the last resort.
    candidates = sorted(candidates, key=lambda k: k.id == compromised.id)
    last_error = "no other registered key of this account can read it"
    for key in candidates:
        creds = open_credentials(ring, key)
        try:
            withdrawals = gateway.withdraw_history(
                creds, start=since - KNOWN_ADDRESS_LOOKBACK, end=now
            )
            deposits = gateway.deposit_history(creds, start=since, end=now)
        except binance.BinanceError as error:
            last_error = f"“{key.label}”: {error.user_message}"
            continue
        known = {w.address for w in withdrawals if w.time and w.time < since and w.address}
        rows = [
            _row(w, new_address=bool(w.address) and w.address not in known)
            for w in withdrawals
            if w.time is None or w.time >= since
        ]
        rows += [_row(d, new_address=False) for d in deposits]
        rows.sort(key=lambda r: r["time"] or "", reverse=True)
        activity = {"source": key.label, "since": since.isoformat(), "rows": rows, "error": None}
        break
    else:
        activity = {"source": None, "since": since.isoformat(), "rows": [], "error": last_error}
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        incident.activity = activity
        record_event(
            session,
            team_id=incident.team_id,
            actor="bot",
            action="incident.activity_review",
            target=incident.label,
            target_key_id=incident.key_id,
            detail={
                "incident": incident_id,
                "rows": len(activity["rows"]),
                "new_addresses": sum(1 for r in activity["rows"] if r["new_address"]),
                "source": activity["source"],
            },
        )
    return activity


def _refresh_other_keys(
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    incident_id: str,
    others: list[ApiKey],
) -> None:
    """Ask Binance what the account's other keys can do now (the team must delete them too if
    the account is breached); a key Binance cannot be asked about keeps its last known tier."""
    if not others:
        return
    results = gateway.check_many([open_credentials(ring, k) for k in others])
    current = {}
    for key, result in zip(others, results, strict=True):
        if result.permissions is not None:
            current[key.label] = result.permissions.tier.name.title()
        elif isinstance(result.error, binance.KeyRejected):
            current[key.label] = "rejected by Binance"
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        incident.other_keys = [
            {
                **row,
                "tier": current.get(row["label"], row["tier"]),
                "checked": row["label"] in current,
            }
            for row in incident.other_keys
        ]


def _row(row: binance.TransferRow, *, new_address: bool) -> dict:
    return {
        "kind": row.kind.value,
        "amount": str(row.amount) if row.amount is not None else "?",
        "coin": row.coin or "?",
        "address": row.address or "",
        "network": row.network or "",
        "time": row.time.isoformat() if row.time else None,
        "status": row.status_text,
        "new_address": new_address,
    }


@dataclass(frozen=True)
class ClosedIncident:
    view: IncidentView
    timeline: list[tuple[datetime, str]]
    time_to_revoke: timedelta | None
    open_questions: list[str]


def close_incident(
    *, engine: Engine, team_id: str, incident_id: str, actor: str, note: str, now: datetime
) -> ClosedIncident:
    note = note.strip()
    if not note:
        raise InvalidInput(
            "Please write a short closing note (what happened, what was done).", field="note"
        )
    view = load_incident(engine, incident_id, team_id=team_id)
    if view.incident.state == IncidentState.CLOSED:
        raise IncidentClosed("This incident is already closed; nothing was changed.")
    missing = [s.step for s in view.steps if not s.ticked_by]
    if missing:
        names = "; ".join(f"{s.number}. {s.title}" for s in missing)
        raise InvalidInput(
            f"Every step must be ticked before closing. Still open: {names}.", field="note"
        )
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident.state == IncidentState.CLOSED:
            raise IncidentClosed("This incident is already closed; nothing was changed.")
        incident.state = IncidentState.CLOSED.value
        incident.closed_by = actor
        incident.closed_at = now
        incident.close_note = note[:2000]
        cancel_jobs(session, key_id=incident.key_id, kinds=[JobKind.INCIDENT_PROBE])
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action="incident.close",
            target=incident.label,
            target_key_id=incident.key_id,
            detail={"incident": incident_id},
        )
    view = load_incident(engine, incident_id)
    return summarise(view)


def summarise(view: IncidentView) -> ClosedIncident:
    incident = view.incident
    timeline = [(incident.raised_at, f"raised by <@{incident.raised_by}>")]
    for s in view.steps:
        if s.ticked_at:
            who = "the bot (Binance rejects the key)" if s.automatic else f"<@{s.ticked_by}>"
            timeline.append((s.ticked_at, f"step {s.step.number} ({s.step.title}) by {who}"))
    if incident.key_dead_at:
        timeline.append(
            (incident.key_dead_at, "verified: Binance rejects the key; secret destroyed")
        )
    if incident.closed_at:
        timeline.append((incident.closed_at, f"closed by <@{incident.closed_by}>"))
    timeline.sort(key=lambda item: item[0])
    questions = []
    if incident.key_dead_at is None:
        questions.append("Binance has not been seen rejecting the key: check it was deleted.")
    activity = incident.activity or {}
    if activity.get("error"):
        questions.append("The account's withdrawals could not be reviewed by the bot.")
    if any(r.get("new_address") for r in activity.get("rows", [])):
        questions.append("Withdrawals went to addresses never used before: confirm each one.")
    revoke = incident.key_dead_at - incident.raised_at if incident.key_dead_at else None
    return ClosedIncident(
        view=view, timeline=timeline, time_to_revoke=revoke, open_questions=questions
    )


def list_incidents(session: Session, team_id: str, now: datetime, days: int = 30) -> list[Incident]:
    recent = now - timedelta(days=days)
    rows = session.exec(
        select(Incident)
        .where(
            Incident.team_id == team_id,
            (Incident.state == IncidentState.OPEN) | (col(Incident.raised_at) >= recent),
        )
        .order_by(col(Incident.raised_at).desc())
        .limit(50)
    ).all()
    return sorted(rows, key=lambda i: (i.state != IncidentState.OPEN, -i.raised_at.timestamp()))


def steps_done(session: Session, incident_ids: list[str]) -> dict[str, int]:
    rows = session.exec(
        select(IncidentStep.incident_id).where(col(IncidentStep.incident_id).in_(incident_ids))
    ).all()
    counts: dict[str, int] = {}
    for incident_id in rows:
        counts[incident_id] = counts.get(incident_id, 0) + 1
    return counts


def incident_overview(
    engine: Engine, team_id: str, now: datetime, days: int = 30
) -> tuple[list[Incident], dict[str, int]]:
    """Open and recent incidents with the number of steps each has done (for listeners)."""
    with Session(engine) as session:
        incidents = list_incidents(session, team_id, now, days)
        return incidents, steps_done(session, [i.id for i in incidents])
