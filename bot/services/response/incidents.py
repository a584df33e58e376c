"""The emergency playbook for a compromised key, tracked to the end in the database.

Binance has no API to delete a normal key: people do it in the Binance UI. The bot keeps the
checklist, asks Binance what it can (whether it still accepts the key; the account's recent
withdrawals and deposits, read-only) and says exactly what Binance answered: a rejection may be
a deletion or an IP whitelist that no longer admits the bot (``bot.services.response.incident_probes``).
An incident closes as handled only once Binance rejects the key (or, when Binance could not be
asked, by an admin with a note); the key's secret is destroyed then. Everything lives in the
database, so a restart loses nothing and old buttons keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import binance
from bot.job_queue.kinds import (
    KEY_LIFECYCLE_KINDS,
    JobKind,
    incident_activity,
    incident_checklist,
    incident_checklist_prefix,
    incident_contain,
    incident_probe,
)
from bot.job_queue.queue import NewJob, cancel_jobs, schedule_jobs
from bot.model.incidents import (
    REJECTED_MEANING,
    STEPS,
    ClosedIncident,
    IncidentFacts,
    IncidentView,
    StepView,
)
from bot.services.access import Actor, deny
from bot.services.custody.delivery_plan import plan_cleanup
from bot.services.custody.keys import close_labels, find_live_key, unknown_label
from bot.services.errors import DomainError, InvalidInput, KeyNotFound
from bot.services.response.paging import incident_page_key, open_page, resolve_page
from bot.services.rows import incident_row
from bot.vocabulary import AuditAction, Containment
from storage.audit import record_event
from storage.db import session_scope
from storage.locks import exclusive
from storage.master_keys import shred_api_key_row
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    BinanceAccount,
    Incident,
    IncidentOutcome,
    IncidentState,
    IncidentStep,
    JobState,
    KeyStatus,
    ScheduledJob,
)

CHECKLIST_RETRY = timedelta(seconds=30)
# How long after raising the checklist may still be on its way from the listener that raised it.
CHECKLIST_POSTING = timedelta(minutes=2)
ACTIVITY_LOOKBACK = timedelta(days=7)  # default start of the activity review
# When the job containing a governed key looks, in case the attempt started by the report
# itself did not finish (its replica died, Binance failed).
CONTAIN_SAFETY_NET = timedelta(seconds=20)


def incident_facts(row: Incident) -> IncidentFacts:
    """What may be known of an incident, from its row."""
    return IncidentFacts(
        id=row.id,
        team_id=row.team_id,
        key_id=row.key_id,
        label=row.label,
        account_alias=row.account_alias,
        state=row.state,
        raised_by=row.raised_by,
        raised_at=row.raised_at,
        raised_in=row.raised_in,
        activity_since=row.activity_since,
        key_dead_at=row.key_dead_at,
        last_probe_at=row.last_probe_at,
        last_probe_result=row.last_probe_result,
        messages=tuple(row.messages or ()),
        other_keys=tuple(row.other_keys or ()),
        activity=row.activity,
        closed_by=row.closed_by,
        closed_at=row.closed_at,
        close_note=row.close_note,
        commander=row.commander or row.raised_by,
        outcome=row.outcome,
        permissions_at_raise=row.permissions_at_raise,
        containment=row.containment,
        contained_at=row.contained_at,
        containment_note=row.containment_note,
        successor_key_id=row.successor_key_id,
    )


class IncidentClosed(DomainError):
    pass


@dataclass(frozen=True)
class Raised:
    incident_id: str
    created: bool  # False: an incident for this key was already open


def probe_job(incident: Incident, due: datetime, attempt: int) -> NewJob:
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
            commander=actor,
            raised_at=now,
            raised_in=channel,
            activity_since=min(activity_since or now - ACTIVITY_LOOKBACK, now),
            other_keys=_other_keys(session, key),
            permissions_at_raise=dict(key.permissions_json) if key.permissions_json else None,
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
                probe_job(incident, now, 0),
                incident_activity(
                    team_id=team_id, key_id=key.id, incident_id=incident.id, due_at=now
                ),
            ],
        )
        if account is not None and account.master_account_id is not None:
            # A governed key: contained at once by whoever raised it; this job is the safety
            # net (bot.services.governor.containment), retried until contained.
            schedule_jobs(
                session,
                [
                    incident_contain(
                        team_id=team_id,
                        key_id=key.id,
                        incident_id=incident.id,
                        attempt=0,
                        due_at=now + CONTAIN_SAFETY_NET,
                    )
                ],
            )
        _page_if_withdraw_tier(session, incident, key, account, now)
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action=AuditAction.INCIDENT_RAISE,
            target=key.label,
            target_key_id=key.id,
            source=f"slack:{channel}" if channel else None,
            detail={"incident": incident.id, "masked": key.api_key_masked},
        )
        return Raised(incident.id, created=True)


def _page_if_withdraw_tier(
    session: Session, incident: Incident, key: ApiKey, account: BinanceAccount | None, now: datetime
) -> None:
    """A compromised key that can withdraw puts funds at risk now: page (bot.services.response.paging)."""
    if not key.permissions_json:
        return
    if binance.KeyPermissions.from_dict(key.permissions_json).tier < binance.Tier.WITHDRAW:
        return
    where = f" on Binance account “{account.alias}”" if account else ""
    open_page(
        session,
        team_id=incident.team_id,
        dedup_key=incident_page_key(incident.id),
        reason="incident",
        summary=(
            f"Withdraw-tier Binance API key “{key.label}” ({key.api_key_masked}){where} was "
            "reported compromised: delete it in Binance API Management now."
        ),
        key_id=key.id,
        now=now,
    )


def _find_key(session: Session, team_id: str, *, label: str | None, key_id: str | None) -> ApiKey:
    """The key a button names (any status: ``_refuse_retired`` explains a retired one), or
    the live key a command names."""
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        if key is None or key.team_id != team_id:
            raise KeyNotFound("That key is not registered (any more). `/apikey list` shows them.")
        return key
    label = label or ""  # a command always names a label when no button names a key
    key, _account = find_live_key(
        session,
        team_id,
        label,
        not_found=unknown_label(label, close_labels(session, team_id, label))
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
            f"“{key.label}” is already revoked: its incident was closed once Binance rejected it, "
            "and its stored secret was destroyed. Nothing to do for this key."
        )


def locked_incident(session: Session, incident_id: str) -> Incident:
    """The incident's row, locked for this transaction (gone: ``KeyNotFound``)."""
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None:
        raise KeyNotFound("That incident does not exist.")
    return incident


def _open_incident(session: Session, key_id: str) -> Incident | None:
    return session.exec(
        select(Incident).where(Incident.key_id == key_id, Incident.state == IncidentState.OPEN)
    ).first()


def open_incident_of(engine: Engine, *, team_id: str, key_id: str) -> IncidentView:
    """The open incident of the team's key ``key_id`` (a key menu's "Show the incident");
    never opens one."""
    with Session(engine) as session:
        incident = _open_incident(session, key_id)
        incident_id = incident.id if incident is not None and incident.team_id == team_id else None
    if incident_id is None:
        raise KeyNotFound(
            "No incident is open for that key any more: `/apikey incidents` lists recent ones."
        )
    return load_incident(engine, incident_id)


def _other_keys(session: Session, key: ApiKey) -> list[dict[str, Any]]:
    others = session.exec(
        select(ApiKey).where(
            ApiKey.account_id == key.account_id,
            ApiKey.id != key.id,
            col(ApiKey.status).not_in(RETIRED_STATUSES),
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
        incident = incident_row(session, incident_id)
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


def checklist_on_its_way(engine: Engine, incident: IncidentFacts, now: datetime) -> bool:
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
        incident = locked_incident(session, incident_id)
        refs = [m for m in incident.messages if m.get("channel") != channel]
        incident.messages = [*refs, {"channel": channel, "ts": ts}]


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
        facts = incident_facts(incident)
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
        incident=facts, owner_user_id=key.owner_user_id if key else None, steps=steps
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
                    action=AuditAction.INCIDENT_TICK,
                    target=incident.label,
                    target_key_id=incident.key_id,
                    detail={"incident": incident_id, "step": step},
                )
    return TickResult(view=load_incident(engine, incident_id), changed=changed)


@dataclass(frozen=True)
class CommanderChanged:
    view: IncidentView
    previous: str
    changed: bool  # False: that person already led it


def claim_close(session: Session, incident_id: str) -> Incident:
    """Mark the open incident closed in one conditional UPDATE, so that of two people closing
    it at once (on any database, on any replica) one closes it and the other is told; returns
    its row for the caller to fill in (the transaction's rollback undoes the claim)."""
    claimed = session.exec(
        sa.update(Incident)
        .where(
            col(Incident.id) == incident_id,
            col(Incident.state) == IncidentState.OPEN.value,
        )
        .values(state=IncidentState.CLOSED.value)
    )
    if claimed.rowcount != 1:
        raise IncidentClosed("This incident was closed meanwhile; nothing was changed.")
    incident = session.get(Incident, incident_id, populate_existing=True)
    if incident is None:  # claimed a moment ago in this very transaction: cannot happen
        raise KeyNotFound("That incident does not exist.")
    return incident


def require_may_hand_over(engine: Engine, actor: Actor, incident_id: str) -> IncidentFacts:
    """The open incident, if ``actor`` may hand over its command: the commander, the key's
    owner or an admin. Others are refused and the refusal is audited."""
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.team_id != actor.team_id:
            raise KeyNotFound("That incident does not exist.")
        _refuse_closed(incident)
        allowed = _may_hand_over(session, actor, incident)
        facts = incident_facts(incident)
    if not allowed:
        raise _hand_over_denied(engine, actor, facts.label, facts.key_id, facts.commander)
    return facts


def hand_over_command(
    *, engine: Engine, actor: Actor, incident_id: str, commander: str, now: datetime
) -> CommanderChanged:
    """Make ``commander`` (a person the caller has checked is in the workspace) lead the open
    incident. Who may (``require_may_hand_over``) is decided under the row's lock, so a
    commander who just handed over cannot take it back with a stale form."""
    with session_scope(engine) as session:
        incident = locked_incident(session, incident_id)
        if incident.team_id != actor.team_id:
            raise KeyNotFound("That incident does not exist.")
        _refuse_closed(incident)
        previous = incident.commander or incident.raised_by
        label, key_id = incident.label, incident.key_id
        allowed = _may_hand_over(session, actor, incident)
        changed = allowed and commander != previous
        if changed:
            incident.commander = commander
            record_event(
                session,
                team_id=incident.team_id,
                actor=actor.user_id,
                action=AuditAction.INCIDENT_COMMANDER,
                target=label,
                target_key_id=key_id,
                source=f"slack:{actor.channel}" if actor.channel else None,
                detail={"incident": incident_id, "from": previous, "to": commander},
            )
    if not allowed:  # audited in its own transaction, once the row is let go
        raise _hand_over_denied(engine, actor, label, key_id, previous)
    return CommanderChanged(
        view=load_incident(engine, incident_id), previous=previous, changed=changed
    )


def _refuse_closed(incident: Incident) -> None:
    if incident.state == IncidentState.CLOSED:
        raise IncidentClosed(f"The incident for “{incident.label}” is closed; nothing was changed.")


def _may_hand_over(session: Session, actor: Actor, incident: Incident) -> bool:
    commander = incident.commander or incident.raised_by
    key = session.get(ApiKey, incident.key_id)
    return actor.is_admin or actor.user_id in (commander, key.owner_user_id if key else None)


def _hand_over_denied(
    engine: Engine, actor: Actor, label: str, key_id: str, commander: str
) -> DomainError:
    return deny(
        engine,
        actor,
        action="hand over the incident command",
        target=label,
        target_key_id=key_id,
        message=(
            f"Only the incident commander <@{commander}>, the key's owner or an admin can "
            "hand over the command. Nothing was changed."
        ),
    )


def close_incident(
    *, engine: Engine, actor: Actor, incident_id: str, note: str, now: datetime
) -> ClosedIncident:
    """Close the open incident as handled: every step ticked, a note, and Binance rejecting the
    key (``_refuse_unproven``). The key leaves the bot then: its secret is destroyed, and it is
    revoked (Binance rejects it) or, closed by an admin while Binance could not be asked,
    removed. Probing stops."""
    note = note.strip()
    if not note:
        raise InvalidInput(
            "Please write a short closing note (what happened, what was done).", field="note"
        )
    view = load_incident(engine, incident_id, team_id=actor.team_id)
    if view.incident.state == IncidentState.CLOSED:
        raise IncidentClosed("This incident is already closed; nothing was changed.")
    missing = [s.step for s in view.steps if not s.ticked_by]
    if missing:
        names = "; ".join(f"{s.number}. {s.title}" for s in missing)
        raise InvalidInput(
            f"Every step must be ticked before closing. Still open: {names}.", field="note"
        )
    _refuse_unproven(view.incident, actor)
    with session_scope(engine) as session:
        incident = claim_close(session, incident_id)
        # Decided again on the claimed row: a probe may have heard otherwise meanwhile.
        _refuse_unproven(incident_facts(incident), actor)
        rejected = incident.key_dead_at is not None
        incident.closed_by = actor.user_id
        incident.closed_at = now
        incident.close_note = note[:2000]
        incident.outcome = IncidentOutcome.HANDLED.value
        key_status = _retire_key(session, incident.key_id, rejected=rejected, now=now)
        cancel_jobs(session, key_id=incident.key_id, kinds=[JobKind.INCIDENT_PROBE])
        resolve_page(session, dedup_key=incident_page_key(incident_id), now=now)
        record_event(
            session,
            team_id=actor.team_id,
            actor=actor.user_id,
            action=AuditAction.INCIDENT_CLOSE,
            target=incident.label,
            target_key_id=incident.key_id,
            source=f"slack:{actor.channel}" if actor.channel else None,
            detail={
                "incident": incident_id,
                "binance": "rejects the key" if rejected else "not verified",
                "shredded": True,
                "key_status": key_status,
            },
        )
    view = load_incident(engine, incident_id)
    return summarise(view)


def _refuse_unproven(incident: IncidentFacts, actor: Actor) -> None:
    """Handled means the key no longer works: while Binance accepts it, nobody closes so; while
    the bot has not heard Binance reject it (Binance could not be asked), only an admin, whose
    note says why. The incident stays open and probed."""
    if incident.key_dead_at is not None:
        return
    label = incident.label
    when = _when(incident.last_probe_at)
    if incident.last_probe_result == "alive":
        raise InvalidInput(
            f"Binance still accepts “{label}” (checked at {when}): it is not deleted, so the "
            "incident cannot close as handled. Delete it in Binance API Management; the bot "
            "keeps checking and says when Binance rejects it. If the key never leaked, an admin "
            "can close the incident as a false alarm. Nothing was changed.",
            field="note",
        )
    if actor.is_admin:
        return
    asked = (
        f"at {when} Binance could not be asked"
        if incident.last_probe_at is not None
        else "Binance has not been asked yet"
    )
    raise InvalidInput(
        f"The bot has not seen Binance reject “{label}” ({asked}), so the incident stays "
        "open and the bot keeps checking. Delete the key in Binance API Management if that is "
        "not done yet. If Binance cannot confirm it, an admin can close the incident with a "
        "note saying how the key was dealt with. Nothing was changed.",
        field="note",
    )


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "an unknown time"


def _retire_key(session: Session, key_id: str, *, rejected: bool, now: datetime) -> str | None:
    """The closed incident's key leaves the bot: its secret is destroyed. "revoked" when Binance
    rejects it; "removed" (out of the bot's hands, nothing claimed of Binance) otherwise. A key
    removed meanwhile stays as it is. Returns the key's status."""
    key = session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        return None
    if key.status == KeyStatus.COMPROMISED.value:
        shred_api_key_row(key)
        key.status = (KeyStatus.REVOKED if rejected else KeyStatus.REMOVED).value
        key.updated_at = now
        plan_cleanup(session, key, now=now)  # pending deliveries stop; crash leftovers go
    return key.status


def summarise(view: IncidentView) -> ClosedIncident:
    incident = view.incident
    timeline = [(incident.raised_at, f"raised by <@{incident.raised_by}>")]
    for s in view.steps:
        if s.ticked_at:
            # an automatic tick: the governor deleted the key; or an incident from before
            # issue 21, when the bot ticked step 1 on a rejection
            who = f"<@{s.ticked_by}>"
            if s.automatic:
                who = (
                    "the bot (deleted through Binance's API)"
                    if incident.containment == Containment.DELETED
                    else "the bot (Binance rejected the key)"
                )
            timeline.append((s.ticked_at, f"step {s.step.number} ({s.step.title}) by {who}"))
    if incident.key_dead_at:
        timeline.append(
            (
                incident.key_dead_at,
                f"Binance rejects the key from the bot's address: {REJECTED_MEANING}",
            )
        )
    if incident.contained_at and incident.containment == Containment.QUARANTINED:
        timeline.append((incident.contained_at, "quarantined by the bot through Binance's API"))
    if incident.closed_at:
        if incident.false_alarm:
            how = "closed as a false alarm (Binance: the key unchanged) by"
        else:
            how = "closed (the key's stored secret destroyed) by"
        timeline.append((incident.closed_at, f"{how} <@{incident.closed_by}>"))
    timeline.sort(key=lambda item: item[0])
    questions = []
    if incident.key_dead_at is None and not incident.false_alarm:
        questions.append(
            "Binance was not seen rejecting the key: check in Binance API Management that it "
            "is deleted."
        )
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
            (col(Incident.state) == IncidentState.OPEN) | (col(Incident.raised_at) >= recent),
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
) -> tuple[list[IncidentFacts], dict[str, int]]:
    """Open and recent incidents with the number of steps each has done (for listeners)."""
    with Session(engine) as session:
        incidents = list_incidents(session, team_id, now, days)
        done = steps_done(session, [i.id for i in incidents])
        return [incident_facts(i) for i in incidents], done
