"""Closing an incident as a false alarm: the key did not leak after all.

An admin's word alone does not put a key that was reported compromised back in use: the bot
asks Binance first. Only when Binance still accepts the key and reports every permission and
the IP restriction exactly as the bot knew them when the key was reported (a copy kept on the
incident: checks since then overwrite the key's own record) does the incident close as a false
alarm and the key return to normal (a key the governor quarantined gets its IP list back
first): its rotation reminders resume, and a rotation the report
interrupted goes on. Anything else changes nothing and says why; a key Binance reports
differently, or withdrawals the review flagged, are also said in the checklist's thread and
audited, since they are signs of a real breach.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import binance
from bot.binance import GovernorGateway
from bot.config import Settings
from bot.job_queue.kinds import JobKind
from bot.job_queue.queue import cancel_jobs
from bot.model.findings import permission_name
from bot.model.incidents import REJECTED_MEANING, ClosedIncident, IncidentFacts
from bot.services.access import Actor, require_admin
from bot.services.custody.keys import open_credentials
from bot.services.errors import InvalidInput
from bot.services.governor.containment import lift_quarantine
from bot.services.response.incidents import IncidentClosed, claim_close, load_incident, summarise
from bot.services.response.paging import incident_page_key, resolve_page
from bot.services.rotation.reminder_plan import plan_reminders
from bot.services.rotation.rotate import resume_rotation
from bot.vocabulary import AuditAction, Containment
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    Incident,
    IncidentOutcome,
    IncidentState,
    KeyStatus,
    Rotation,
    RotationState,
)

CHECKED = "Binance accepts the key and reports the same permissions and IP restriction"


class FalseAlarmRefused(InvalidInput):
    """Not closed as a false alarm. ``warning``: what the team should hear in the checklist's
    thread as well (a sign of a real breach), else None."""

    def __init__(self, message: str, *, warning: str | None = None) -> None:
        super().__init__(message)
        self.warning = warning


def close_as_false_alarm(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    actor: Actor,
    incident_id: str,
    note: str,
    now: datetime,
    governor: GovernorGateway | None = None,
) -> ClosedIncident:
    """Close the open incident as a false alarm (admins only) once Binance shows the key
    alive and unchanged; the key is back in normal use."""
    require_admin(engine, actor, action="close an incident as a false alarm")
    note = note.strip()
    if not note:
        raise InvalidInput("Please write a short note: why is this a false alarm, and who checked?")
    incident = load_incident(engine, incident_id, team_id=actor.team_id).incident
    label = incident.label
    if incident.state == IncidentState.CLOSED:
        raise IncidentClosed("This incident is already closed; nothing was changed.")
    _refuse_flagged_withdrawals(engine, actor, incident)
    before = incident.permissions_at_raise
    if not before:
        raise InvalidInput(
            f"The bot had not learnt what “{label}” could do before it was reported, so it "
            "cannot show that nothing changed since. Close the incident as handled (and "
            "register the key again if it is still in use)."
        )
    with Session(engine) as session:
        key = session.get(ApiKey, incident.key_id)
        if key is None or key.secret_sealed is None or key.status != KeyStatus.COMPROMISED.value:
            row = session.get(Incident, incident_id)
            if row is None or row.state == IncidentState.CLOSED:  # closed as handled meanwhile
                raise IncidentClosed("This incident was closed meanwhile; nothing was changed.")
            raise InvalidInput(
                f"“{label}” is no longer held by the bot as a reported key (removed, or its "
                "secret destroyed), so it cannot return to use. Close the incident as handled."
            )
        creds = open_credentials(ring, key)
        fingerprint = key.api_key_fingerprint
    try:
        fresh = gateway.api_restrictions(creds)
    except binance.KeyRejected:
        raise InvalidInput(
            f"Binance rejects “{label}” from the bot's address now ({REJECTED_MEANING}), so "
            "the bot cannot show the key unchanged and it cannot return to use. Once the key is "
            "deleted in Binance, tick step 1 and close the incident as handled. Nothing was "
            "changed."
        ) from None
    except binance.BinanceError as error:
        raise InvalidInput(
            f"The bot could not ask Binance about “{label}”: {error.user_message} The key stays "
            "marked compromised and the incident open; try again in a minute."
        ) from None
    changed = permission_changes(before, fresh)
    quarantined = incident.containment == Containment.QUARANTINED
    if quarantined:  # the bot restricted its IP list itself: given back below
        changed = [c for c in changed if not c.startswith("the IP restriction was")]
    if changed:
        what = "; ".join(changed)
        _audit_refusal(engine, actor, incident, reason=what)
        raise FalseAlarmRefused(
            f"Binance reports “{label}” differently than when it was reported: {what}. Someone "
            "may have changed the key, so it stays marked compromised and the incident open: "
            "follow the checklist.",
            warning=(
                f"⚠️ Not a false alarm yet: Binance reports “{label}” differently than when it "
                f"was reported ({what}). Someone may have changed the key: follow the checklist."
            ),
        )
    if quarantined:
        if governor is None:
            raise InvalidInput("The governor is not available to lift the quarantine.")
        lift_quarantine(
            engine=engine,
            ring=ring,
            governor=governor,
            settings=settings,
            incident_id=incident_id,
            actor=actor.user_id,
        )
    with session_scope(engine) as session:
        row = claim_close(session, incident_id)
        if row.key_dead_at is not None and row.last_probe_at != incident.last_probe_at:
            raise InvalidInput(  # a probe heard Binance reject the key while it was asked
                f"Binance rejected “{label}” from the bot's address at "
                f"{row.key_dead_at:%Y-%m-%d %H:%M} UTC, while it was being asked: the key "
                "cannot return to use. Nothing was changed."
            )
        key = session.get(ApiKey, row.key_id, with_for_update=True)
        if (
            key is None
            or key.status != KeyStatus.COMPROMISED.value
            or key.secret_sealed is None
            or key.api_key_fingerprint != fingerprint
        ):  # removed (or changed) while Binance was asked
            raise InvalidInput(
                f"“{label}” changed while Binance was being asked (removed, or its secret "
                "destroyed): it cannot return to use. Nothing was changed."
            )
        row.outcome = IncidentOutcome.FALSE_ALARM.value
        row.key_dead_at = None  # Binance accepts the key now, whatever an earlier probe heard
        row.closed_by = actor.user_id
        row.closed_at = now
        row.close_note = note[:2000]
        cancel_jobs(session, key_id=key.id, kinds=[JobKind.INCIDENT_PROBE])
        resolve_page(session, dedup_key=incident_page_key(incident_id), now=now)
        key.permissions_json = fresh.to_dict()
        key.permissions_checked_at = now
        key.last_check_result = "ok"
        key.updated_at = now
        rotation = session.exec(
            select(Rotation).where(
                Rotation.key_id == key.id, Rotation.state == RotationState.PROBING.value
            )
        ).first()
        if rotation is not None:  # the report interrupted a rotation: it goes on
            key.status = KeyStatus.ROTATING.value
            resume_rotation(session, key, rotation, now=now)
        else:
            key.status = KeyStatus.ACTIVE.value
            session.flush()
            plan_reminders(session, key, settings, now=now)
        record_event(
            session,
            team_id=row.team_id,
            actor=actor.user_id,
            action=AuditAction.INCIDENT_FALSE_ALARM,
            target=row.label,
            target_key_id=key.id,
            source=f"slack:{actor.channel}" if actor.channel else None,
            detail={"incident": incident_id, "proof": CHECKED, "key_status": key.status},
        )
    return summarise(load_incident(engine, incident_id))


def _refuse_flagged_withdrawals(engine: Engine, actor: Actor, incident: IncidentFacts) -> None:
    """A leaked key can move funds without any permission changing: withdrawals the review
    flagged keep the incident open, whatever Binance says of the key."""
    rows = (incident.activity or {}).get("rows") or []
    flagged = sum(1 for r in rows if r.get("new_address"))
    if not flagged:
        return
    what = f"{flagged} withdrawal{'' if flagged == 1 else 's'} to addresses never used before"
    _audit_refusal(engine, actor, incident, reason=what)
    raise FalseAlarmRefused(
        f"The review of step 3 found {what} since the key was reported as leaked: that is no "
        "false alarm to call. Confirm each withdrawal with the account's owners and close the "
        "incident as handled.",
        warning=(
            f"⚠️ A false alarm was refused: the review found {what} (step 3). Confirm each one "
            "with the account's owners."
        ),
    )


def _audit_refusal(engine: Engine, actor: Actor, incident: IncidentFacts, *, reason: str) -> None:
    with session_scope(engine) as session:
        record_event(
            session,
            team_id=incident.team_id,
            actor=actor.user_id,
            action=AuditAction.INCIDENT_FALSE_ALARM_REFUSED,
            target=incident.label,
            target_key_id=incident.key_id,
            source=f"slack:{actor.channel}" if actor.channel else None,
            detail={"incident": incident.id, "reason": reason},
        )


def permission_changes(before: dict[str, Any], after: binance.KeyPermissions) -> list[str]:
    """Every flag (documented ones, the IP restriction, and flags Binance added later) that is
    not reported exactly as before, in words. Strict: a flag reported on one side and not on
    the other counts too, since nothing shows it is unchanged."""
    words = []
    for change in after.changes_since(before):
        name = "IP restriction" if change.name == "ipRestrict" else permission_name(change.name)
        if change.after is None:
            words.append(f"Binance no longer reports {name}")
        elif change.before is None:
            state = "on" if change.after else "off"
            words.append(f"Binance now reports {name} {state}, which it did not report before")
        elif change.name == "ipRestrict":
            words.append("the IP restriction was " + ("added" if change.after else "removed"))
        else:
            state = "turned on" if change.after else "turned off"
            words.append(f"the {name} permission was {state}")
    return words
