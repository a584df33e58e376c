"""Closing an incident as a false alarm: the key did not leak after all.

An admin's word alone does not put a key that was reported compromised back in use: the bot
asks Binance first. Only when Binance still accepts the key and reports the same permissions
and IP whitelist as before the report does the incident close as a false alarm and the key
return to normal: its rotation reminders resume, and a rotation the report interrupted goes
on. Anything else (Binance rejects the key, a permission or the whitelist changed, Binance
cannot be asked) changes nothing and says why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import binance
from bot.config import Settings
from bot.jobs.kinds import JobKind
from bot.jobs.queue import cancel_jobs
from bot.model.findings import permission_name
from bot.model.incidents import ClosedIncident
from bot.services.access import Actor, require_admin
from bot.services.errors import InvalidInput, KeyNotFound
from bot.services.incidents import IncidentClosed, load_incident, locked_incident, summarise
from bot.services.keys import open_credentials
from bot.services.paging import incident_page_key, resolve_page
from bot.services.reminder_plan import plan_reminders
from bot.services.rotate import resume_rotation
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    IncidentOutcome,
    IncidentState,
    KeyStatus,
    Rotation,
    RotationState,
)

CHECKED = "Binance accepts the key and reports the same permissions and IP whitelist"


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
) -> ClosedIncident:
    """Close the open incident as a false alarm (admins only) once Binance shows the key
    alive and unchanged; the key is back in normal use."""
    note = note.strip()
    if not note:
        raise InvalidInput("Please write a short note: why is this a false alarm, and who checked?")
    require_admin(engine, actor, action="close an incident as a false alarm")
    incident = load_incident(engine, incident_id, team_id=actor.team_id).incident
    label = incident.label
    if incident.state == IncidentState.CLOSED:
        raise IncidentClosed("This incident is already closed; nothing was changed.")
    _refuse_dead(label, incident.key_dead_at)
    with Session(engine) as session:
        key = session.get(ApiKey, incident.key_id)
        if key is None or key.secret_sealed is None:
            raise InvalidInput(
                f"The bot no longer holds the secret of “{label}”, so it cannot ask Binance "
                "whether the key still works. Close the incident as handled."
            )
        creds = open_credentials(ring, key)
        before = key.permissions_json
    try:
        fresh = gateway.api_restrictions(creds)
    except binance.KeyRejected:
        raise InvalidInput(
            f"Binance rejects “{label}” now: the key was deleted or no longer works, so it "
            "cannot return to use. The bot confirms this on the checklist; close the incident "
            "as handled. Nothing was changed."
        ) from None
    except binance.BinanceError as error:
        raise InvalidInput(
            f"The bot could not ask Binance about “{label}”: {error.user_message} The key stays "
            "marked compromised and the incident open; try again in a minute."
        ) from None
    changed = permission_changes(before, fresh)
    if changed:
        raise InvalidInput(
            f"Binance reports “{label}” differently than before it was reported: "
            f"{'; '.join(changed)}. Someone changed the key, so it stays marked compromised and "
            "the incident open: follow the checklist."
        )
    with session_scope(engine) as session:
        row = locked_incident(session, incident_id)
        if row.state == IncidentState.CLOSED:
            raise IncidentClosed("This incident was closed meanwhile; nothing was changed.")
        _refuse_dead(label, row.key_dead_at)  # a probe may have seen it die meanwhile
        key = session.get(ApiKey, row.key_id, with_for_update=True)
        if key is None:
            raise KeyNotFound(f"“{label}” is no longer registered; nothing was changed.")
        row.state = IncidentState.CLOSED.value
        row.outcome = IncidentOutcome.FALSE_ALARM.value
        row.closed_by = actor.user_id
        row.closed_at = now
        row.close_note = note[:2000]
        cancel_jobs(
            session, key_id=key.id, kinds=[JobKind.INCIDENT_PROBE, JobKind.INCIDENT_ACTIVITY]
        )
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
            action="incident.false_alarm",
            target=row.label,
            target_key_id=key.id,
            source=f"slack:{actor.channel}" if actor.channel else None,
            detail={"incident": incident_id, "proof": CHECKED, "key_status": key.status},
        )
    return summarise(load_incident(engine, incident_id))


def _refuse_dead(label: str, dead_at: datetime | None) -> None:
    if dead_at is not None:
        raise InvalidInput(
            f"Binance has rejected “{label}” since {dead_at:%Y-%m-%d %H:%M} UTC and its secret "
            "was destroyed: the key cannot return to use. Close the incident as handled."
        )


def permission_changes(before: dict | None, after: binance.KeyPermissions) -> list[str]:
    """What differs between the permissions stored before the report and Binance's answer
    now, in words. A flag either side did not report is not a change (nothing to compare)."""
    if before is None:
        return ["the bot never learnt this key's permissions, so nothing can be compared"]
    words = []
    for change in binance.diff_permissions(before, after):
        if change.before is None or change.after is None:
            continue
        if change.name == "ipRestrict":
            words.append("its IP whitelist was " + ("added" if change.after else "removed"))
        else:
            state = "turned on" if change.after else "turned off"
            words.append(f"the {permission_name(change.name)} permission was {state}")
    return words
