"""Proving a compromised key is dead: probe it on Binance until it is rejected, then tick the
checklist's first step, mark the key revoked and destroy its secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import binance
from bot.job_queue.queue import NewJob
from bot.model.incidents import KEY_DELETED_STEP
from bot.services.delivery_plan import plan_cleanup
from bot.services.incidents import probe_job
from bot.services.keys import open_credentials
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import ApiKey, Incident, IncidentState, IncidentStep, KeyStatus
from storage.vault import shred_api_key_row

PROBE_DELAYS = (30, 60, 120, 300, 600)  # seconds: back off, then every 10 minutes


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
        if incident.state == IncidentState.CLOSED:  # e.g. a false alarm: the key is back in use
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
                plan_cleanup(session, key, now=now)
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
            next_probe=probe_job(incident, now + timedelta(seconds=delay), attempt + 1),
            refresh=False,
        )
