"""Asking Binance, while an incident is open, whether it still accepts the compromised key.

What Binance answers is recorded as it is, and no more. A rejection is -2015 "Invalid API-key,
IP, or permissions for action" (https://developers.binance.com/docs/binance-spot-api-docs/errors):
the key may have been deleted, or its IP whitelist may no longer admit the bot, and Binance
does not say which. So a rejection never ticks the checklist's step 1 ("Delete the compromised
key in Binance": a person who deleted it ticks it), and the key stays compromised, its secret
kept and probed, until the incident is closed (``bot.services.response.incidents.close_incident``
retires it then). A key accepted again after a rejection (its whitelist admits the bot again)
is said too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import binance
from bot.job_queue.queue import NewJob
from bot.model.incidents import REJECTED_MEANING
from bot.services.custody.keys import open_credentials
from bot.services.response.incidents import probe_job
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import ApiKey, Incident, IncidentState

PROBE_DELAYS = (30, 60, 120, 300, 600)  # seconds: back off, then every 10 minutes


@dataclass(frozen=True)
class ProbeAnswer:
    accepted: bool | None  # None: Binance could not be asked (or the key cannot be opened)
    binance_said: str | None = None  # for a rejection: the code and Binance's words


def ask_binance(
    *, engine: Engine, ring: KeyRing, gateway: binance.BinanceGateway, incident_id: str
) -> ProbeAnswer:
    """Ask Binance now whether it accepts the incident's key."""
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        key = session.get(ApiKey, incident.key_id) if incident is not None else None
        if key is None or key.secret_sealed is None:
            return ProbeAnswer(None)
        creds = open_credentials(ring, key)
    try:
        gateway.api_restrictions(creds)
        return ProbeAnswer(True)
    except binance.KeyRejected as rejected:
        return ProbeAnswer(False, rejected.binance_said)
    except binance.BinanceError:
        return ProbeAnswer(None)


def key_still_accepted(
    *, engine: Engine, ring: KeyRing, gateway: binance.BinanceGateway, incident_id: str
) -> bool | None:
    """Ask Binance now: True if it still accepts the key, False if not, None if unknown."""
    return ask_binance(engine=engine, ring=ring, gateway=gateway, incident_id=incident_id).accepted


@dataclass(frozen=True)
class ProbeOutcome:
    next_probe: NewJob | None
    refresh: bool  # what Binance says of the key changed: redraw the checklist


def probe_compromised_key(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    incident_id: str,
    attempt: int,
    now: datetime,
) -> ProbeOutcome:
    """One probe of the open incident's key: record what Binance said, and probe again."""
    answer = ask_binance(engine=engine, ring=ring, gateway=gateway, incident_id=incident_id)
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None or incident.state == IncidentState.CLOSED:
            return ProbeOutcome(next_probe=None, refresh=False)  # closed: retired, or back in use
        incident.last_probe_at = now
        incident.last_probe_result = {True: "alive", False: "rejected", None: "unknown"}[
            answer.accepted
        ]
        changed = False
        if answer.accepted is False and incident.key_dead_at is None:
            incident.key_dead_at = now  # rejected since: the column's name predates issue 21
            changed = True
            _audit(session, incident, AuditAction.INCIDENT_KEY_REJECTED, answer.binance_said)
        elif answer.accepted is True and incident.key_dead_at is not None:
            incident.key_dead_at = None
            changed = True
            _audit(session, incident, AuditAction.INCIDENT_KEY_ACCEPTED_AGAIN, None)
        if incident.key_dead_at is not None:  # still rejected: check now and then
            delay = PROBE_DELAYS[-1]
        else:
            delay = PROBE_DELAYS[min(attempt, len(PROBE_DELAYS) - 1)]
        return ProbeOutcome(
            next_probe=probe_job(incident, now + timedelta(seconds=delay), attempt + 1),
            refresh=changed,
        )


def _audit(
    session: Session, incident: Incident, action: AuditAction, binance_said: str | None
) -> None:
    detail: dict[str, object] = {"incident": incident.id}
    if binance_said is not None:
        detail["binance"] = binance_said
        detail["meaning"] = REJECTED_MEANING
    record_event(
        session,
        team_id=incident.team_id,
        actor="bot",
        action=action,
        target=incident.label,
        target_key_id=incident.key_id,
        detail=detail,
    )
